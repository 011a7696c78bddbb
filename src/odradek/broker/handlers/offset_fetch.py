"""OffsetFetch (key 9): a group's committed offsets; one group (v1-v7) or several (v8+)."""

from __future__ import annotations

from typing import Any

from odradek.broker.api import Handler, RequestContext
from odradek.broker.handlers.common import ZERO_DURATION
from odradek.coordinator.group.records import OffsetCommitValue
from odradek.protocol import codec
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.protocol.types import TopicPartition

API_KEY = 9
MULTI_GROUP_FROM = 8

Fetched = list[tuple[TopicPartition, OffsetCommitValue | None]]


def handle(ctx: RequestContext, request: Any) -> Any:
    version = ctx.api_version
    module = codec.response_module(API_KEY, version)
    if version >= MULTI_GROUP_FROM:
        groups = []
        for group in request.groups:
            error, fetched = _fetch(ctx, group.group_id, group.topics)
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
    error, fetched = _fetch(ctx, request.group_id, request.topics)
    if version < 2 and error is not ErrorCode.none:
        # v1 has no group-level error: every partition carries it.
        fetched_with_error: Fetched = [(tp, None) for tp, _ in fetched]
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


def _fetch(ctx: RequestContext, group_id: str, topics: Any) -> tuple[ErrorCode, Fetched]:
    wanted = (
        None
        if topics is None
        else [TopicPartition(t.name, p) for t in topics for p in t.partition_indexes]
    )
    try:
        shard = ctx.broker.group_coordinator.shard_for(group_id)
    except KafkaError as exc:
        return exc.error_code, [(tp, None) for tp in wanted or []]
    return ErrorCode.none, shard.fetch_offsets(group_id, wanted)


def _topics(
    module: Any,
    topic_class: str,
    partition_class: str,
    fetched: Fetched,
    error: ErrorCode = ErrorCode.none,
) -> tuple[Any, ...]:
    by_topic: dict[str, list[Any]] = {}
    for tp, value in fetched:
        by_topic.setdefault(tp.topic, []).append(
            codec.build(
                getattr(module, partition_class),
                partition_index=tp.partition,
                committed_offset=value.offset if value is not None else -1,
                committed_leader_epoch=value.leader_epoch if value is not None else -1,
                metadata=value.metadata if value is not None else "",
                error_code=error,
            )
        )
    return tuple(
        codec.build(getattr(module, topic_class), name=name, partitions=tuple(partitions))
        for name, partitions in by_topic.items()
    )


HANDLER = Handler(api_key=API_KEY, min_version=1, max_version=9, handle=handle)
