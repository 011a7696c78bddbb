"""ElectLeaders (key 43, KIP-460): preferred or unclean leader elections on request.

The receiving broker runs the elections itself against the metadata store (see
``cluster.election`` for why, and for the error codes); it never answers NOT_CONTROLLER.
With null topic partitions every partition is considered and, as in Kafka, only the ones
that needed an election (or failed) are listed. v0 has no election type: preferred.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from odradek.broker.api import Handler, RequestContext
from odradek.broker.handlers.common import ZERO_DURATION
from odradek.cluster.election import ElectionResult, ElectionType, elect_leaders
from odradek.protocol import codec
from odradek.protocol.errors import ErrorCode

API_KEY = 43


def handle(ctx: RequestContext, request: Any) -> Any:
    module = codec.response_module(API_KEY, ctx.api_version)
    store = ctx.broker.metadata
    raw_type = int(getattr(request, "election_type", ElectionType.PREFERRED))
    wanted: dict[str, list[int]] = defaultdict(list)
    if request.topic_partitions is None:
        for name, topic in store.topics().items():
            wanted[name].extend(range(len(topic.partitions)))
    else:
        for item in request.topic_partitions:
            wanted[item.topic].extend(int(p) for p in item.partitions)
    results: dict[tuple[str, int], ElectionResult]
    if raw_type not in {t.value for t in ElectionType}:
        invalid = ElectionResult(ErrorCode.invalid_request, f"Unknown election type {raw_type}")
        results = {(name, p): invalid for name, ps in wanted.items() for p in ps}
    else:
        results = elect_leaders(store, ElectionType(raw_type), wanted)
    if request.topic_partitions is None:
        results = {
            tp: r for tp, r in results.items() if r.error is not ErrorCode.election_not_needed
        }
    by_topic: dict[str, list[Any]] = defaultdict(list)
    for (name, index), result in sorted(results.items()):
        by_topic[name].append(
            codec.build(
                module.PartitionResult,
                partition_id=index,
                error_code=result.error,
                error_message=result.message if result.error is not ErrorCode.none else None,
            )
        )
    return codec.build(
        module.ElectLeadersResponse,
        throttle_time=ZERO_DURATION,
        error_code=ErrorCode.none,
        replica_election_results=tuple(
            codec.build(
                module.ReplicaElectionResult, topic=name, partition_result=tuple(partitions)
            )
            for name, partitions in by_topic.items()
        ),
    )


HANDLER = Handler(api_key=API_KEY, min_version=0, max_version=2, handle=handle)
