"""FindCoordinator (key 10): which broker coordinates a group (key type 0) or a
transactional id (key type 1); v4+ asks for several at once.

The first lookup of a kind creates its internal topic (``__consumer_offsets``,
``__transaction_state``). An empty key is answered like any other, as Kafka answers it
(``KafkaApis.getCoordinator`` checks only the key type): "" hashes to partition 0, and
the coordinator refuses the empty id in the request that follows (INVALID_GROUP_ID,
INVALID_REQUEST).
"""

from __future__ import annotations

from typing import Any

from odradek.broker.api import Handler, RequestContext
from odradek.broker.handlers.common import ZERO_DURATION
from odradek.cluster.brokers import Endpoint
from odradek.protocol import codec
from odradek.protocol.errors import ErrorCode, KafkaError

API_KEY = 10
GROUP_KEY_TYPE = 0
TRANSACTION_KEY_TYPE = 1


def handle(ctx: RequestContext, request: Any) -> Any:
    version = ctx.api_version
    module = codec.response_module(API_KEY, version)
    key_type = getattr(request, "key_type", GROUP_KEY_TYPE)
    if version >= 4:
        coordinators = []
        for key in request.coordinator_keys:
            error, message, node, endpoint = _lookup(ctx, key, key_type)
            coordinators.append(
                codec.build(
                    module.Coordinator,
                    key=key,
                    node_id=node,
                    host=endpoint.host if endpoint else "",
                    port=endpoint.port if endpoint else -1,
                    error_code=error,
                    error_message=message,
                )
            )
        return codec.build(
            module.FindCoordinatorResponse,
            throttle_time=ZERO_DURATION,
            coordinators=tuple(coordinators),
        )
    error, message, node, endpoint = _lookup(ctx, request.key, key_type)
    return codec.build(
        module.FindCoordinatorResponse,
        throttle_time=ZERO_DURATION,
        error_code=error,
        error_message=message,
        node_id=node,
        host=endpoint.host if endpoint else "",
        port=endpoint.port if endpoint else -1,
    )


def _lookup(
    ctx: RequestContext, key: str, key_type: int
) -> tuple[ErrorCode, str | None, int, Endpoint | None]:
    if key_type not in (GROUP_KEY_TYPE, TRANSACTION_KEY_TYPE):
        return ErrorCode.invalid_request, f"unknown coordinator key type {key_type}", -1, None
    coordinators = ctx.broker.group_coordinator, ctx.broker.transaction_coordinator
    try:
        node = coordinators[key_type].coordinator_of(key)
    except KafkaError as exc:
        return exc.error_code, exc.message, -1, None
    endpoint = ctx.broker.broker_endpoint(node, ctx.listener)
    if endpoint is None:
        return ErrorCode.coordinator_not_available, f"coordinator {node} is not live", -1, None
    return ErrorCode.none, None, node, endpoint


HANDLER = Handler(api_key=API_KEY, min_version=0, max_version=6, handle=handle)
