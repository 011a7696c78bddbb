"""OffsetDelete (key 47): drop a group's offsets for topics it no longer consumes; answered
once the ISR of the group's ``__consumer_offsets`` partition has the deletion."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from odradek.broker.api import Handler, Reply, RequestContext
from odradek.broker.handlers.common import ZERO_DURATION, deferred
from odradek.protocol import codec
from odradek.protocol.errors import ErrorCode
from odradek.protocol.types import TopicPartition

API_KEY = 47

Deleted = tuple[ErrorCode, dict[TopicPartition, ErrorCode]]
"""The group's error, and each partition's."""


def handle(ctx: RequestContext, request: Any) -> Reply:
    module = codec.response_module(API_KEY, ctx.api_version)
    wanted = [
        TopicPartition(t.name, p.partition_index) for t in request.topics for p in t.partitions
    ]

    def start(respond: Callable[[Deleted], None]) -> None:
        ctx.broker.group_coordinator.delete_offsets(request.group_id, wanted, respond)

    def render(deleted: Deleted) -> Any:
        error, errors = deleted
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
            module.OffsetDeleteResponse,
            error_code=error,
            throttle_time=ZERO_DURATION,
            topics=topics,
        )

    return deferred(start, render)


HANDLER = Handler(api_key=API_KEY, min_version=0, max_version=0, handle=handle)
