"""OffsetCommit (key 8): store a group's consumed positions in ``__consumer_offsets``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from odradek.broker.api import Handler, Reply, RequestContext
from odradek.broker.handlers.common import ZERO_DURATION, deferred
from odradek.coordinator.group.offset_manager import OffsetToCommit
from odradek.protocol import codec
from odradek.protocol.errors import ErrorCode
from odradek.protocol.types import TopicPartition

API_KEY = 8


def offsets_to_commit(
    ctx: RequestContext, topics: Any
) -> tuple[dict[TopicPartition, ErrorCode], list[OffsetToCommit]]:
    """The offsets of an OffsetCommit or TxnOffsetCommit request's ``topics``, and
    UNKNOWN_TOPIC_OR_PARTITION for the partitions that do not exist."""
    store = ctx.broker.metadata
    errors: dict[TopicPartition, ErrorCode] = {}
    wanted: list[OffsetToCommit] = []
    for topic in topics:
        known = store.topic(topic.name)
        for partition in topic.partitions:
            tp = TopicPartition(topic.name, partition.partition_index)
            if known is None or not 0 <= tp.partition < len(known.partitions):
                errors[tp] = ErrorCode.unknown_topic_or_partition
                continue
            wanted.append(
                OffsetToCommit(
                    tp,
                    partition.committed_offset,
                    getattr(partition, "committed_leader_epoch", -1),
                    partition.committed_metadata,
                )
            )
    return errors, wanted


def handle(ctx: RequestContext, request: Any) -> Reply:
    errors, wanted = offsets_to_commit(ctx, request.topics)
    if not wanted:
        return _response(ctx, request, errors)

    def start(respond: Callable[[dict[TopicPartition, ErrorCode]], None]) -> None:
        # Answered once the commit is on the ISR: a failover cannot lose it then.
        ctx.broker.group_coordinator.commit_offsets(
            request.group_id,
            wanted,
            respond,
            member_id=request.member_id,
            instance_id=getattr(request, "group_instance_id", None),
            generation_id=request.generation_id_or_member_epoch,
        )

    def render(written: dict[TopicPartition, ErrorCode]) -> Any:
        return _response(ctx, request, errors | written)

    return deferred(start, render)


def _response(ctx: RequestContext, request: Any, errors: dict[TopicPartition, ErrorCode]) -> Any:
    module = codec.response_module(API_KEY, ctx.api_version)
    topics = tuple(
        codec.build(
            module.OffsetCommitResponseTopic,
            name=topic.name,
            partitions=tuple(
                codec.build(
                    module.OffsetCommitResponsePartition,
                    partition_index=p.partition_index,
                    error_code=errors[TopicPartition(topic.name, p.partition_index)],
                )
                for p in topic.partitions
            ),
        )
        for topic in request.topics
    )
    return codec.build(module.OffsetCommitResponse, throttle_time=ZERO_DURATION, topics=topics)


HANDLER = Handler(api_key=API_KEY, min_version=2, max_version=9, handle=handle)
