"""Heartbeat (key 12): keeps a member's session alive; says when to rejoin."""

from __future__ import annotations

from typing import Any

from odradek.broker.api import Handler, RequestContext
from odradek.broker.handlers.common import ZERO_DURATION
from odradek.protocol import codec
from odradek.protocol.errors import KafkaError

API_KEY = 12


def handle(ctx: RequestContext, request: Any) -> Any:
    try:
        shard = ctx.broker.group_coordinator.shard_for(request.group_id)
        error = shard.heartbeat(
            request.group_id,
            request.member_id,
            getattr(request, "group_instance_id", None),
            request.generation_id,
        )
    except KafkaError as exc:
        error = exc.error_code
    module = codec.response_module(API_KEY, ctx.api_version)
    return codec.build(module.HeartbeatResponse, throttle_time=ZERO_DURATION, error_code=error)


HANDLER = Handler(api_key=API_KEY, min_version=0, max_version=4, handle=handle)
