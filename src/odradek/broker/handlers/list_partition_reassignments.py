"""ListPartitionReassignments (key 46, KIP-455): the partitions under reassignment, with
their full replica set and the replicas being added and removed. Partitions and topics
that do not exist, or are not being reassigned, are left out, as Kafka does."""

from __future__ import annotations

from typing import Any

from odradek.broker.api import Handler, RequestContext
from odradek.broker.handlers.common import ZERO_DURATION
from odradek.cluster.reassignment import ongoing_reassignments
from odradek.protocol import codec
from odradek.protocol.errors import ErrorCode

API_KEY = 46


def handle(ctx: RequestContext, request: Any) -> Any:
    module = codec.response_module(API_KEY, ctx.api_version)
    wanted: dict[str, list[int]] | None = None
    if request.topics is not None:
        wanted = {}
        for topic in request.topics:
            wanted.setdefault(topic.name, []).extend(int(p) for p in topic.partition_indexes)
    ongoing = ongoing_reassignments(ctx.broker.metadata, wanted)
    return codec.build(
        module.ListPartitionReassignmentsResponse,
        throttle_time=ZERO_DURATION,
        error_code=ErrorCode.none,
        error_message=None,
        topics=tuple(
            codec.build(
                module.OngoingTopicReassignment,
                name=name,
                partitions=tuple(
                    codec.build(
                        module.OngoingPartitionReassignment,
                        partition_index=index,
                        replicas=state.replicas,
                        adding_replicas=state.adding_replicas,
                        removing_replicas=state.removing_replicas,
                    )
                    for index, state in sorted(partitions.items())
                ),
            )
            for name, partitions in ongoing.items()
        ),
    )


HANDLER = Handler(api_key=API_KEY, min_version=0, max_version=0, handle=handle)
