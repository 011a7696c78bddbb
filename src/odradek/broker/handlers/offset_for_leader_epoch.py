"""OffsetForLeaderEpoch (key 23): end offset of a leader epoch (KIP-101, KIP-320).

librdkafka consumers call it (v2) to validate their position after a leader change.
"""

from __future__ import annotations

from typing import Any

from odradek.broker.api import Handler, RequestContext
from odradek.broker.handlers.common import ZERO_DURATION
from odradek.protocol import codec
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.protocol.types import TopicPartition

API_KEY = 23


def handle(ctx: RequestContext, request: Any) -> Any:
    module = codec.response_module(API_KEY, ctx.api_version)
    replica_manager = ctx.broker.replica_manager
    topics = []
    for topic in request.topics:
        partitions = []
        for wanted in topic.partitions:
            epoch, end_offset, error = -1, -1, ErrorCode.none
            try:
                partition = replica_manager.get_partition(
                    TopicPartition(topic.topic, wanted.partition)
                )
                epoch, end_offset = partition.last_offset_for_leader_epoch(
                    wanted.current_leader_epoch, wanted.leader_epoch
                )
            except KafkaError as exc:
                error = exc.error_code
            partitions.append(
                codec.build(
                    module.EpochEndOffset,
                    error_code=error,
                    partition=wanted.partition,
                    leader_epoch=epoch,
                    end_offset=end_offset,
                )
            )
        topics.append(
            codec.build(
                module.OffsetForLeaderTopicResult, topic=topic.topic, partitions=tuple(partitions)
            )
        )
    return codec.build(
        module.OffsetForLeaderEpochResponse, throttle_time=ZERO_DURATION, topics=tuple(topics)
    )


HANDLER = Handler(api_key=API_KEY, min_version=2, max_version=4, handle=handle)
