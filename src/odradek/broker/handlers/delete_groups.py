"""DeleteGroups (key 42): remove empty groups and their offsets; answered once the ISR of
each group's ``__consumer_offsets`` partition has the deletion."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from odradek.broker.api import Handler, Reply, RequestContext
from odradek.broker.handlers.common import ZERO_DURATION, deferred
from odradek.protocol import codec
from odradek.protocol.errors import ErrorCode

API_KEY = 42


def handle(ctx: RequestContext, request: Any) -> Reply:
    module = codec.response_module(API_KEY, ctx.api_version)
    names = list(request.groups_names)

    def start(respond: Callable[[list[ErrorCode]], None]) -> None:
        ctx.broker.group_coordinator.delete_groups(names, respond)

    def render(errors: list[ErrorCode]) -> Any:
        results = tuple(
            codec.build(module.DeletableGroupResult, group_id=group_id, error_code=error)
            for group_id, error in zip(names, errors, strict=True)
        )
        return codec.build(
            module.DeleteGroupsResponse, throttle_time=ZERO_DURATION, results=results
        )

    return deferred(start, render)


HANDLER = Handler(api_key=API_KEY, min_version=0, max_version=2, handle=handle)
