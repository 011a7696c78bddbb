"""OffsetCommit (key 8): store a group's consumed positions in ``__consumer_offsets``."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from odradek.broker.api import Handler, RequestContext
from odradek.broker.handlers.common import ZERO_DURATION
from odradek.coordinator.group.offset_manager import OffsetToCommit
from odradek.protocol import codec
from odradek.protocol.errors import ErrorCode, KafkaError
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


def handle(ctx: RequestContext, request: Any) -> Any:
    errors, wanted = offsets_to_commit(ctx, request.topics)
    if wanted:
        coordinator = ctx.broker.group_coordinator
        try:
            shard = coordinator.shard_for(request.group_id)
            errors.update(
                shard.commit_offsets(
                    request.group_id,
                    request.member_id,
                    getattr(request, "group_instance_id", None),
                    request.generation_id_or_member_epoch,
                    wanted,
                )
            )
        except KafkaError as exc:
            errors.update({item.tp: exc.error_code for item in wanted})
        if ErrorCode.none in errors.values():
            # Answered once the commit is on the ISR: a failover cannot lose it then.
            waiting = coordinator.replication_wait(coordinator.partition_of(request.group_id))
            if not isinstance(waiting, ErrorCode):
                return _after(ctx, request, errors, waiting)
            _replication_failed(errors, waiting)
    return _response(ctx, request, errors)


async def _after(
    ctx: RequestContext,
    request: Any,
    errors: dict[TopicPartition, ErrorCode],
    waiting: Awaitable[ErrorCode],
) -> Any:
    _replication_failed(errors, await waiting)
    return _response(ctx, request, errors)


def _replication_failed(errors: dict[TopicPartition, ErrorCode], outcome: ErrorCode) -> None:
    """The commits written get the replication's error, if any (the client retries)."""
    if outcome is not ErrorCode.none:
        for tp, error in errors.items():
            if error is ErrorCode.none:
                errors[tp] = outcome


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
