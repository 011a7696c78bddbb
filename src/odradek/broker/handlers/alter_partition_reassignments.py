"""AlterPartitionReassignments (key 45, KIP-455): start, replace or cancel reassignments.

The receiving broker validates and writes the first step itself (conditional on the
partition epoch, like any partition change); the elected controller completes it once
the new replicas are in sync (``cluster.reassignment``). v1 adds
``allow_replication_factor_change`` (KIP-860): false refuses a target of another size
with INVALID_REPLICATION_FACTOR.
"""

from __future__ import annotations

from typing import Any

from odradek.broker.api import Handler, RequestContext
from odradek.broker.handlers.common import ZERO_DURATION
from odradek.cluster.reassignment import alter_reassignment
from odradek.protocol import codec
from odradek.protocol.errors import ErrorCode, KafkaError

API_KEY = 45


def handle(ctx: RequestContext, request: Any) -> Any:
    module = codec.response_module(API_KEY, ctx.api_version)
    broker = ctx.broker
    allow_factor_change = bool(getattr(request, "allow_replication_factor_change", True))
    responses = []
    for topic in request.topics:
        partitions = []
        for item in topic.partitions:
            error, message = ErrorCode.none, None
            target = None if item.replicas is None else [int(r) for r in item.replicas]
            try:
                alter_reassignment(
                    broker.metadata,
                    broker.config,
                    topic.name,
                    int(item.partition_index),
                    target,
                    allow_replication_factor_change=allow_factor_change,
                )
            except KafkaError as exc:
                error, message = exc.error_code, exc.message or None
            partitions.append(
                codec.build(
                    module.ReassignablePartitionResponse,
                    partition_index=item.partition_index,
                    error_code=error,
                    error_message=message,
                )
            )
        responses.append(
            codec.build(
                module.ReassignableTopicResponse, name=topic.name, partitions=tuple(partitions)
            )
        )
    return codec.build(
        module.AlterPartitionReassignmentsResponse,
        throttle_time=ZERO_DURATION,
        allow_replication_factor_change=allow_factor_change,
        error_code=ErrorCode.none,
        error_message=None,
        responses=tuple(responses),
    )


HANDLER = Handler(api_key=API_KEY, min_version=0, max_version=1, handle=handle)
