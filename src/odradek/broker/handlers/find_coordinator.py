"""FindCoordinator (key 10): which broker coordinates a group (v4+: several at once).

The first lookup creates ``__consumer_offsets``. Transaction coordinators arrive with
transactions; until then they are COORDINATOR_NOT_AVAILABLE.
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
    if key_type != GROUP_KEY_TYPE:
        return ErrorCode.coordinator_not_available, "transactions are not supported yet", -1, None
    if not key:
        return ErrorCode.invalid_request, "group id must not be empty", -1, None
    try:
        node = ctx.broker.group_coordinator.coordinator_of(key)
    except KafkaError as exc:
        return exc.error_code, exc.message, -1, None
    endpoint = ctx.broker.broker_endpoint(node, ctx.listener)
    if endpoint is None:
        return ErrorCode.coordinator_not_available, f"coordinator {node} is not live", -1, None
    return ErrorCode.none, None, node, endpoint


HANDLER = Handler(api_key=API_KEY, min_version=0, max_version=6, handle=handle)
