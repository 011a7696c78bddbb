"""OffsetDelete (key 47): drop a group's offsets for topics it no longer consumes."""

from __future__ import annotations

from typing import Any

from odradek.broker.api import Handler, RequestContext
from odradek.broker.handlers.common import ZERO_DURATION
from odradek.protocol import codec
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.protocol.types import TopicPartition

API_KEY = 47


def handle(ctx: RequestContext, request: Any) -> Any:
    module = codec.response_module(API_KEY, ctx.api_version)
    wanted = [
        TopicPartition(t.name, p.partition_index) for t in request.topics for p in t.partitions
    ]
    try:
        shard = ctx.broker.group_coordinator.shard_for(request.group_id)
        error, errors = shard.delete_offsets(request.group_id, wanted)
    except KafkaError as exc:
        error, errors = exc.error_code, {}
    topics = ()
    if error is ErrorCode.none:
        topics = tuple(
            codec.build(
                module.OffsetDeleteResponseTopic,
                name=t.name,
                partitions=tuple(
                    codec.build(
                        module.OffsetDeleteResponsePartition,
                        partition_index=p.partition_index,
                        error_code=errors.get(
                            TopicPartition(t.name, p.partition_index), ErrorCode.none
                        ),
                    )
                    for p in t.partitions
                ),
            )
            for t in request.topics
        )
    return codec.build(
        module.OffsetDeleteResponse, error_code=error, throttle_time=ZERO_DURATION, topics=topics
    )


HANDLER = Handler(api_key=API_KEY, min_version=0, max_version=0, handle=handle)
