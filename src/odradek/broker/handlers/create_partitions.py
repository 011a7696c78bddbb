"""CreatePartitions (key 37): grow a topic's partition count."""

from __future__ import annotations

from typing import Any

from odradek.broker.api import Handler, RequestContext
from odradek.broker.handlers.common import ZERO_DURATION
from odradek.cluster.controller import check_batch_size
from odradek.protocol import codec
from odradek.protocol.errors import ErrorCode, KafkaError

API_KEY = 37


def handle(ctx: RequestContext, request: Any) -> Any:
    module = codec.response_module(API_KEY, ctx.api_version)
    results = []
    seen: set[str] = set()
    too_many = _too_many(ctx, request)
    for topic in request.topics:
        error, message = ErrorCode.none, None
        if too_many is not None:
            error, message = too_many.error_code, too_many.message
        elif topic.name in seen:
            error, message = ErrorCode.invalid_request, "Duplicate topic in request."
        else:
            seen.add(topic.name)
            assignment = (
                [list(a.broker_ids) for a in topic.assignments]
                if topic.assignments is not None
                else None
            )
            try:
                ctx.broker.controller.create_partitions(
                    topic.name, topic.count, assignment, validate_only=request.validate_only
                )
            except KafkaError as exc:
                error, message = exc.error_code, exc.message
        results.append(
            codec.build(
                module.CreatePartitionsTopicResult,
                name=topic.name,
                error_code=error,
                error_message=message,
            )
        )
    return codec.build(
        module.CreatePartitionsResponse, throttle_time=ZERO_DURATION, results=tuple(results)
    )


def _too_many(ctx: RequestContext, request: Any) -> KafkaError | None:
    """Kafka refuses the whole request when it adds more partitions than one request may."""
    store = ctx.broker.metadata
    added = 0
    for topic in request.topics:
        known = store.topic(topic.name)
        if known is not None and topic.count > len(known.partitions):
            added += topic.count - len(known.partitions)
    try:
        check_batch_size(added)
    except KafkaError as exc:
        return exc
    return None


HANDLER = Handler(api_key=API_KEY, min_version=0, max_version=3, handle=handle)
