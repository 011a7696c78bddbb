"""ListOffsets (key 2): earliest (-2), latest (-1), max timestamp (-3), earliest local
(-4), or the first offset whose timestamp is at or after a given time."""

from __future__ import annotations

from collections import Counter
from typing import Any

from odradek.broker.api import Handler, RequestContext
from odradek.broker.handlers.common import ZERO_DURATION
from odradek.protocol import codec
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.protocol.types import TopicPartition

API_KEY = 2


def handle(ctx: RequestContext, request: Any) -> Any:
    version = ctx.api_version
    module = codec.response_module(API_KEY, version)
    isolation = getattr(request, "isolation_level", 0)
    replica_manager = ctx.broker.replica_manager
    counts = Counter(
        (topic.name, p.partition_index) for topic in request.topics for p in topic.partitions
    )
    topics = []
    for topic in request.topics:
        partitions = []
        for wanted in topic.partitions:
            tp = TopicPartition(topic.name, wanted.partition_index)
            offset, timestamp, epoch, error = -1, -1, -1, ErrorCode.none
            try:
                if counts[tp] > 1:
                    raise KafkaError("duplicate partition", ErrorCode.invalid_request)
                found = replica_manager.get_partition(tp).fetch_offset_for_timestamp(
                    wanted.timestamp,
                    isolation,
                    getattr(wanted, "current_leader_epoch", -1),
                    from_client=request.replica_id < 0,
                )
                if found is not None:
                    offset, timestamp, epoch = found
            except KafkaError as exc:
                error = exc.error_code
            partitions.append(
                codec.build(
                    module.ListOffsetsPartitionResponse,
                    partition_index=wanted.partition_index,
                    error_code=error,
                    timestamp=timestamp,
                    offset=offset,
                    leader_epoch=epoch,
                )
            )
        topics.append(
            codec.build(
                module.ListOffsetsTopicResponse, name=topic.name, partitions=tuple(partitions)
            )
        )
    return codec.build(
        module.ListOffsetsResponse, throttle_time=ZERO_DURATION, topics=tuple(topics)
    )


HANDLER = Handler(api_key=API_KEY, min_version=1, max_version=8, handle=handle)
