"""CreatePartitions (key 37): grow a topic's partition count.

Partitions added count against the client's ``controller_mutation_rate`` (strict from
v3, see ``quotas.MutationQuota``)."""

from __future__ import annotations

from typing import Any

from odradek.broker.api import Handler, RequestContext
from odradek.broker.quotas import THROTTLING_QUOTA_EXCEEDED_MESSAGE, MutationQuota
from odradek.cluster.controller import check_batch_size
from odradek.protocol import codec
from odradek.protocol.errors import ErrorCode, KafkaError

API_KEY = 37
STRICT_QUOTA_FROM = 3


def handle(ctx: RequestContext, request: Any) -> Any:
    module = codec.response_module(API_KEY, ctx.api_version)
    results = []
    seen: set[str] = set()
    too_many = _too_many(ctx, request)
    quota = MutationQuota(ctx, STRICT_QUOTA_FROM)
    for topic in request.topics:
        error, message = ErrorCode.none, None
        if too_many is not None:
            error, message = too_many.error_code, too_many.message
        elif topic.name in seen:
            error, message = ErrorCode.invalid_request, "Duplicate topic in request."
        elif quota.exceeded():
            error, message = ErrorCode.throttling_quota_exceeded, THROTTLING_QUOTA_EXCEEDED_MESSAGE
        else:
            seen.add(topic.name)
            known = ctx.broker.metadata.topic(topic.name)
            before = len(known.partitions) if known is not None else topic.count
            assignment = (
                [list(a.broker_ids) for a in topic.assignments]
                if topic.assignments is not None
                else None
            )
            try:
                ctx.broker.controller.create_partitions(
                    topic.name, topic.count, assignment, validate_only=request.validate_only
                )
                quota.record(topic.count - before)
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
        module.CreatePartitionsResponse, throttle_time=quota.finish(), results=tuple(results)
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
