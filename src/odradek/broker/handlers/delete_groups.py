"""DeleteGroups (key 42): remove empty groups and their offsets."""

from __future__ import annotations

from typing import Any

from odradek.broker.api import Handler, RequestContext
from odradek.broker.handlers.common import ZERO_DURATION
from odradek.protocol import codec
from odradek.protocol.errors import KafkaError

API_KEY = 42


def handle(ctx: RequestContext, request: Any) -> Any:
    module = codec.response_module(API_KEY, ctx.api_version)
    results = []
    for group_id in request.groups_names:
        try:
            error = ctx.broker.group_coordinator.shard_for(group_id).delete_group(group_id)
        except KafkaError as exc:
            error = exc.error_code
        results.append(
            codec.build(module.DeletableGroupResult, group_id=group_id, error_code=error)
        )
    return codec.build(
        module.DeleteGroupsResponse, throttle_time=ZERO_DURATION, results=tuple(results)
    )


HANDLER = Handler(api_key=API_KEY, min_version=0, max_version=2, handle=handle)
