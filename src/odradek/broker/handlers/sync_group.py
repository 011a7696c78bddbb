"""SyncGroup (key 14): members get their assignment once the leader has sent it and the
ISR of the group's ``__consumer_offsets`` partition has it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from odradek.broker.api import Handler, Reply, RequestContext
from odradek.broker.handlers.common import ZERO_DURATION, deferred
from odradek.coordinator.group.group import SyncResult
from odradek.coordinator.group.group_manager import SyncRequest
from odradek.protocol import codec

API_KEY = 14


def handle(ctx: RequestContext, request: Any) -> Reply:
    version = ctx.api_version
    sync = SyncRequest(
        group_id=request.group_id,
        member_id=request.member_id,
        group_instance_id=getattr(request, "group_instance_id", None),
        generation_id=request.generation_id,
        protocol_type=getattr(request, "protocol_type", None),
        protocol_name=getattr(request, "protocol_name", None),
        assignments={a.member_id: bytes(a.assignment) for a in request.assignments},
    )

    def start(respond: Callable[[SyncResult], None]) -> None:
        ctx.broker.group_coordinator.sync_group(sync, respond)

    def render(result: SyncResult) -> Any:
        return _response(version, result)

    return deferred(start, render)


def _response(version: int, result: SyncResult) -> Any:
    module = codec.response_module(API_KEY, version)
    return codec.build(
        module.SyncGroupResponse,
        throttle_time=ZERO_DURATION,
        error_code=result.error,
        protocol_type=result.protocol_type,
        protocol_name=result.protocol_name,
        assignment=result.assignment,
    )


HANDLER = Handler(api_key=API_KEY, min_version=0, max_version=5, handle=handle)
