"""JoinGroup (key 11): answered when the group's rebalance completes (a long wait)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from odradek.broker.api import Handler, Reply, RequestContext
from odradek.broker.handlers.common import ZERO_DURATION, deferred, duration_ms
from odradek.coordinator.group.group import JoinResult
from odradek.coordinator.group.group_manager import JoinRequest
from odradek.protocol import codec

API_KEY = 11


def handle(ctx: RequestContext, request: Any) -> Reply:
    version = ctx.api_version
    session_timeout = duration_ms(request.session_timeout)
    rebalance_timeout = duration_ms(request.rebalance_timeout) if version >= 1 else session_timeout
    join = JoinRequest(
        group_id=request.group_id,
        member_id=request.member_id,
        group_instance_id=getattr(request, "group_instance_id", None),
        client_id=ctx.header.client_id or "",
        client_host=f"/{ctx.client_host}",
        protocol_type=request.protocol_type,
        protocols=tuple((p.name, bytes(p.metadata)) for p in request.protocols),
        session_timeout_ms=session_timeout,
        rebalance_timeout_ms=rebalance_timeout,
        require_known_member_id=version >= 4,
    )

    def start(respond: Callable[[JoinResult], None]) -> None:
        ctx.broker.group_coordinator.join_group(join, respond)

    def render(result: JoinResult) -> Any:
        return _response(version, result)

    return deferred(start, render)


def _response(version: int, result: JoinResult) -> Any:
    module = codec.response_module(API_KEY, version)
    members = tuple(
        codec.build(
            module.JoinGroupResponseMember,
            member_id=member_id,
            group_instance_id=instance_id,
            metadata=metadata,
        )
        for member_id, instance_id, metadata in result.members
    )
    return codec.build(
        module.JoinGroupResponse,
        throttle_time=ZERO_DURATION,
        error_code=result.error,
        generation_id=result.generation_id,
        protocol_type=result.protocol_type,
        protocol_name=result.protocol_name if version >= 7 else (result.protocol_name or ""),
        leader=result.leader,
        skip_assignment=result.skip_assignment,
        member_id=result.member_id,
        members=members,
    )


HANDLER = Handler(api_key=API_KEY, min_version=2, max_version=9, handle=handle)
