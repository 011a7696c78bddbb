"""DescribeClientQuotas (key 48, KIP-546): the quotas of the entities matching a filter
(per entity type: EXACT name, DEFAULT entity, or ANY specified name; ``strict`` leaves
out entities with other types), as Kafka's ``ClientQuotasImage.describe``."""

from __future__ import annotations

from typing import Any

from odradek.broker.api import Handler, RequestContext
from odradek.broker.client_quotas import FilterComponent, describe
from odradek.broker.handlers.common import ZERO_DURATION
from odradek.protocol import codec
from odradek.protocol.errors import ErrorCode, KafkaError

API_KEY = 48


def handle(ctx: RequestContext, request: Any) -> Any:
    module = codec.response_module(API_KEY, ctx.api_version)
    components = [
        FilterComponent(c.entity_type, int(c.match_type), c.match) for c in request.components
    ]
    try:
        found = describe(ctx.broker.metadata, components, request.strict)
    except KafkaError as exc:
        return codec.build(
            module.DescribeClientQuotasResponse,
            throttle_time=ZERO_DURATION,
            error_code=exc.error_code,
            error_message=exc.message,
            entries=None,
        )
    entries = tuple(
        codec.build(
            module.EntryData,
            entity=tuple(
                codec.build(module.EntityData, entity_type=t, entity_name=n)
                for t, n in entity.items()
            ),
            values=tuple(
                codec.build(module.ValueData, key=k, value=v) for k, v in sorted(values.items())
            ),
        )
        for entity, values in found
    )
    return codec.build(
        module.DescribeClientQuotasResponse,
        throttle_time=ZERO_DURATION,
        error_code=ErrorCode.none,
        error_message=None,
        entries=entries,
    )


HANDLER = Handler(api_key=API_KEY, min_version=0, max_version=1, handle=handle)
