"""DescribeProducers (key 61, KIP-664): the active producers of partitions this broker
leads, with each one's open transaction, if any (where ``transactions abort`` finds a
hanging transaction's producer id, epoch and coordinator epoch)."""

from __future__ import annotations

from typing import Any

from odradek.broker.api import Handler, RequestContext
from odradek.broker.handlers.common import ZERO_DURATION
from odradek.protocol import codec
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.protocol.types import TopicPartition

API_KEY = 61


def handle(ctx: RequestContext, request: Any) -> Any:
    module = codec.response_module(API_KEY, ctx.api_version)
    replica_manager = ctx.broker.replica_manager
    topics = []
    for topic in request.topics:
        partitions = []
        for index in topic.partition_indexes:
            error, message, producers = ErrorCode.none, None, ()
            try:
                partition = replica_manager.get_partition(TopicPartition(topic.name, int(index)))
                if not partition.is_leader:
                    raise KafkaError(
                        f"not the leader of {topic.name}-{index}",
                        ErrorCode.not_leader_or_follower,
                    )
                producers = tuple(
                    codec.build(
                        module.ProducerState,
                        producer_id=state.producer_id,
                        producer_epoch=state.producer_epoch,
                        last_sequence=state.last_sequence,
                        last_timestamp=state.last_timestamp,
                        coordinator_epoch=state.coordinator_epoch,
                        current_txn_start_offset=state.current_txn_start_offset,
                    )
                    for state in partition.log.active_producers()
                )
            except KafkaError as exc:
                error, message = exc.error_code, exc.message or None
            partitions.append(
                codec.build(
                    module.PartitionResponse,
                    partition_index=index,
                    error_code=error,
                    error_message=message,
                    active_producers=producers,
                )
            )
        topics.append(
            codec.build(module.TopicResponse, name=topic.name, partitions=tuple(partitions))
        )
    return codec.build(
        module.DescribeProducersResponse, throttle_time=ZERO_DURATION, topics=tuple(topics)
    )


HANDLER = Handler(api_key=API_KEY, min_version=0, max_version=0, handle=handle)
