"""ListGroups (key 16): every group this broker coordinates, filtered by state (v4+)."""

from __future__ import annotations

from typing import Any

from odradek.broker.api import Handler, RequestContext
from odradek.broker.handlers.common import ZERO_DURATION
from odradek.protocol import codec
from odradek.protocol.errors import ErrorCode

API_KEY = 16
CLASSIC = "classic"


def handle(ctx: RequestContext, request: Any) -> Any:
    module = codec.response_module(API_KEY, ctx.api_version)
    states = {s.lower() for s in getattr(request, "states_filter", ()) or ()}
    types = {t.lower() for t in getattr(request, "types_filter", ()) or ()}
    groups = []
    for shard in ctx.broker.group_coordinator.shards.values():
        for listing in shard.list_groups():
            if states and listing.state.lower() not in states:
                continue
            if types and CLASSIC not in types:
                continue
            groups.append(
                codec.build(
                    module.ListedGroup,
                    group_id=listing.group_id,
                    protocol_type=listing.protocol_type,
                    group_state=listing.state,
                    group_type=CLASSIC,
                )
            )
    return codec.build(
        module.ListGroupsResponse,
        throttle_time=ZERO_DURATION,
        error_code=ErrorCode.none,
        groups=tuple(groups),
    )


HANDLER = Handler(api_key=API_KEY, min_version=0, max_version=5, handle=handle)
