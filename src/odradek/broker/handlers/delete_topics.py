"""DeleteTopics (key 20): by name (all versions) or topic id (v6+).

Partitions deleted count against the client's ``controller_mutation_rate`` (strict from
v5, see ``quotas.MutationQuota``)."""

from __future__ import annotations

import uuid
from typing import Any

from odradek.broker.api import Handler, RequestContext
from odradek.broker.quotas import THROTTLING_QUOTA_EXCEEDED_MESSAGE, MutationQuota
from odradek.protocol import codec
from odradek.protocol.errors import ErrorCode, KafkaError

API_KEY = 20
STRICT_QUOTA_FROM = 5


def handle(ctx: RequestContext, request: Any) -> Any:
    version = ctx.api_version
    module = codec.response_module(API_KEY, version)
    store = ctx.broker.metadata
    if version >= 6:
        wanted = [(t.name, t.topic_id) for t in request.topics]
    else:
        wanted = [(name, None) for name in request.topic_names]
    results = []
    quota = MutationQuota(ctx, STRICT_QUOTA_FROM)
    for wanted_name, wanted_id in wanted:
        error, message = ErrorCode.none, None
        name, topic_id = wanted_name, wanted_id
        if name is None:
            known = store.topic_by_id(wanted_id) if wanted_id is not None else None
            if known is None:
                error, message = ErrorCode.unknown_topic_id, f"Topic id {wanted_id} not found"
            else:
                name = known.name
        if error is ErrorCode.none and quota.exceeded():
            error, message = ErrorCode.throttling_quota_exceeded, THROTTLING_QUOTA_EXCEEDED_MESSAGE
        elif error is ErrorCode.none:
            assert name is not None
            known = store.topic(name)
            topic_id = known.topic_id if known is not None else wanted_id
            try:
                ctx.broker.controller.delete_topic(name)
                quota.record(len(known.partitions) if known is not None else 0)
            except KafkaError as exc:
                error, message = exc.error_code, exc.message
        results.append(
            codec.build(
                module.DeletableTopicResult,
                name=name,
                topic_id=topic_id or uuid.UUID(int=0),
                error_code=error,
                error_message=message,
            )
        )
    return codec.build(
        module.DeleteTopicsResponse, throttle_time=quota.finish(), responses=tuple(results)
    )


HANDLER = Handler(api_key=API_KEY, min_version=1, max_version=6, handle=handle)
