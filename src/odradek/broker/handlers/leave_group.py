"""LeaveGroup (key 13): one member (v0-v2) or a batch of members (v3+) leave."""

from __future__ import annotations

from typing import Any

from odradek.broker.api import Handler, RequestContext
from odradek.broker.handlers.common import ZERO_DURATION
from odradek.protocol import codec
from odradek.protocol.errors import ErrorCode, KafkaError

API_KEY = 13


def handle(ctx: RequestContext, request: Any) -> Any:
    version = ctx.api_version
    module = codec.response_module(API_KEY, version)
    if version >= 3:
        leaving = [(m.member_id, m.group_instance_id) for m in request.members]
    else:
        leaving = [(request.member_id, None)]
    try:
        shard = ctx.broker.group_coordinator.shard_for(request.group_id)
        error, errors = shard.leave_group(request.group_id, leaving)
    except KafkaError as exc:
        error, errors = exc.error_code, [exc.error_code for _ in leaving]
    if version < 3 and error is ErrorCode.none:
        error = errors[0]
    members = (
        tuple(
            codec.build(
                module.MemberResponse,
                member_id=member_id,
                group_instance_id=instance_id,
                error_code=member_error,
            )
            for (member_id, instance_id), member_error in zip(leaving, errors, strict=True)
        )
        if version >= 3
        else ()
    )
    return codec.build(
        module.LeaveGroupResponse, throttle_time=ZERO_DURATION, error_code=error, members=members
    )


HANDLER = Handler(api_key=API_KEY, min_version=0, max_version=5, handle=handle)
