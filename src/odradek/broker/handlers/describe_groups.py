"""DescribeGroups (key 15): state, protocol, members and their assignments."""

from __future__ import annotations

from typing import Any

from odradek.broker.api import Handler, RequestContext
from odradek.broker.handlers.common import ZERO_DURATION
from odradek.protocol import codec
from odradek.protocol.errors import ErrorCode, KafkaError

API_KEY = 15
NOT_FOUND_ERROR_FROM = 6
NO_OPERATIONS = -(2**31)


def handle(ctx: RequestContext, request: Any) -> Any:
    version = ctx.api_version
    module = codec.response_module(API_KEY, version)
    described = []
    for group_id in request.groups:
        try:
            description = ctx.broker.group_coordinator.shard_for(group_id).describe_group(group_id)
        except KafkaError as exc:
            described.append(_empty(module, group_id, exc.error_code, exc.message))
            continue
        error = description.error
        if error is ErrorCode.group_id_not_found:
            if version < NOT_FOUND_ERROR_FROM:
                error = ErrorCode.none  # older versions: a "Dead" group with no error
            described.append(
                _empty(module, group_id, error, f"Group {group_id} not found.", state="Dead")
            )
            continue
        members = tuple(
            codec.build(
                module.DescribedGroupMember,
                member_id=m.member_id,
                group_instance_id=m.group_instance_id,
                client_id=m.client_id,
                client_host=m.client_host,
                member_metadata=m.metadata,
                member_assignment=m.assignment,
            )
            for m in description.members
        )
        described.append(
            codec.build(
                module.DescribedGroup,
                error_code=ErrorCode.none,
                error_message=None,
                group_id=group_id,
                group_state=description.state,
                protocol_type=description.protocol_type,
                protocol_data=description.protocol,
                members=members,
                authorized_operations=NO_OPERATIONS,
            )
        )
    return codec.build(
        module.DescribeGroupsResponse, throttle_time=ZERO_DURATION, groups=tuple(described)
    )


def _empty(
    module: Any, group_id: str, error: ErrorCode, message: str | None, state: str = ""
) -> Any:
    return codec.build(
        module.DescribedGroup,
        error_code=error,
        error_message=message,
        group_id=group_id,
        group_state=state,
        protocol_type="",
        protocol_data="",
        members=(),
        authorized_operations=NO_OPERATIONS,
    )


HANDLER = Handler(api_key=API_KEY, min_version=0, max_version=6, handle=handle)
