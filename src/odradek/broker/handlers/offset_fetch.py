"""OffsetFetch (key 9): a group's committed offsets; one group (v1-v7) or several (v8+).

With ``require_stable`` (v7+, KIP-447: read_committed consumers) a partition whose
offset a still-open transaction has committed answers UNSTABLE_OFFSET_COMMIT, and the
consumer asks again once the transaction ends.
"""

from __future__ import annotations

from typing import Any

from odradek.broker.api import Handler, RequestContext
from odradek.broker.handlers.common import ZERO_DURATION
from odradek.coordinator.group.offset_manager import FetchedOffset
from odradek.protocol import codec
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.protocol.types import TopicPartition

API_KEY = 9
MULTI_GROUP_FROM = 8

Fetched = list[FetchedOffset]


def handle(ctx: RequestContext, request: Any) -> Any:
    version = ctx.api_version
    module = codec.response_module(API_KEY, version)
    if version >= MULTI_GROUP_FROM:
        groups = []
        for group in request.groups:
            error, fetched = _fetch(ctx, group.group_id, group.topics, request.require_stable)
            groups.append(
                codec.build(
                    module.OffsetFetchResponseGroup,
                    group_id=group.group_id,
                    topics=_topics(
                        module,
                        "OffsetFetchResponseTopics",
                        "OffsetFetchResponsePartitions",
                        fetched,
                    ),
                    error_code=error,
                )
            )
        return codec.build(
            module.OffsetFetchResponse, throttle_time=ZERO_DURATION, groups=tuple(groups)
        )
    require_stable = bool(getattr(request, "require_stable", False))
    error, fetched = _fetch(ctx, request.group_id, request.topics, require_stable)
    if version < 2 and error is not ErrorCode.none:
        # v1 has no group-level error: every partition carries it.
        fetched_with_error: Fetched = [FetchedOffset(item.tp, None) for item in fetched]
        topics = _topics(
            module,
            "OffsetFetchResponseTopic",
            "OffsetFetchResponsePartition",
            fetched_with_error,
            error,
        )
    else:
        topics = _topics(
            module, "OffsetFetchResponseTopic", "OffsetFetchResponsePartition", fetched
        )
    return codec.build(
        module.OffsetFetchResponse, throttle_time=ZERO_DURATION, topics=topics, error_code=error
    )


def _fetch(
    ctx: RequestContext, group_id: str, topics: Any, require_stable: bool
) -> tuple[ErrorCode, Fetched]:
    wanted = (
        None
        if topics is None
        else [TopicPartition(t.name, p) for t in topics for p in t.partition_indexes]
    )
    try:
        shard = ctx.broker.group_coordinator.shard_for(group_id)
    except KafkaError as exc:
        return exc.error_code, [FetchedOffset(tp, None) for tp in wanted or []]
    return ErrorCode.none, shard.fetch_committed_offsets(
        group_id, wanted, require_stable=require_stable
    )


def _topics(
    module: Any,
    topic_class: str,
    partition_class: str,
    fetched: Fetched,
    error: ErrorCode = ErrorCode.none,
) -> tuple[Any, ...]:
    by_topic: dict[str, list[Any]] = {}
    for item in fetched:
        value = item.value
        by_topic.setdefault(item.tp.topic, []).append(
            codec.build(
                getattr(module, partition_class),
                partition_index=item.tp.partition,
                committed_offset=value.offset if value is not None else -1,
                committed_leader_epoch=value.leader_epoch if value is not None else -1,
                metadata=value.metadata if value is not None else "",
                error_code=error if error is not ErrorCode.none else item.error,
            )
        )
    return tuple(
        codec.build(getattr(module, topic_class), name=name, partitions=tuple(partitions))
        for name, partitions in by_topic.items()
    )


HANDLER = Handler(api_key=API_KEY, min_version=1, max_version=9, handle=handle)
