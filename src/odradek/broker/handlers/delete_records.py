"""DeleteRecords (key 21): move a partition's log start offset forward."""

from __future__ import annotations

from typing import Any

from odradek.broker.api import Handler, RequestContext
from odradek.broker.handlers.common import ZERO_DURATION
from odradek.protocol import codec
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.protocol.types import TopicPartition

API_KEY = 21


def handle(ctx: RequestContext, request: Any) -> Any:
    module = codec.response_module(API_KEY, ctx.api_version)
    replica_manager = ctx.broker.replica_manager
    topics = []
    for topic in request.topics:
        partitions = []
        for wanted in topic.partitions:
            low_watermark, error = -1, ErrorCode.none
            try:
                partition = replica_manager.get_partition(
                    TopicPartition(topic.name, wanted.partition_index)
                )
                low_watermark = partition.delete_records_before(wanted.offset)
            except KafkaError as exc:
                error = exc.error_code
            partitions.append(
                codec.build(
                    module.DeleteRecordsPartitionResult,
                    partition_index=wanted.partition_index,
                    low_watermark=low_watermark,
                    error_code=error,
                )
            )
        topics.append(
            codec.build(
                module.DeleteRecordsTopicResult, name=topic.name, partitions=tuple(partitions)
            )
        )
    return codec.build(
        module.DeleteRecordsResponse, throttle_time=ZERO_DURATION, topics=tuple(topics)
    )


HANDLER = Handler(api_key=API_KEY, min_version=0, max_version=2, handle=handle)
