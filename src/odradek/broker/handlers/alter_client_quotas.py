"""AlterClientQuotas (key 49, KIP-546): set or remove quotas of user, client-id,
user+client-id and ip entities, defaults included (a null name).

Each entry is applied on its own and answered with its own error, as Kafka does. In a
cluster the receiving broker writes the store itself (Kafka forwards to its controller);
every broker hears of the change through the store.
"""

from __future__ import annotations

from typing import Any

from odradek.broker.api import Handler, RequestContext
from odradek.broker.client_quotas import Entity, QuotaOp, alter_entity
from odradek.broker.handlers.common import ZERO_DURATION
from odradek.protocol import codec
from odradek.protocol.errors import ErrorCode, KafkaError

API_KEY = 49


def handle(ctx: RequestContext, request: Any) -> Any:
    module = codec.response_module(API_KEY, ctx.api_version)
    entries = []
    done: set[frozenset[tuple[str, str | None]]] = set()
    for entry in request.entries:
        entity: Entity = tuple((e.entity_type, e.entity_name) for e in entry.entity)
        error, message = ErrorCode.none, None
        try:
            key = frozenset(entity)
            if key in done:
                raise KafkaError(
                    "Ignoring duplicate entity ClientQuotaEntity(entries={"
                    + ", ".join(f"{t}={n}" for t, n in entity)
                    + "})",
                    ErrorCode.invalid_request,
                )
            done.add(key)
            ops = [QuotaOp(op.key, None if op.remove else float(op.value)) for op in entry.ops]
            alter_entity(ctx.broker.metadata, entity, ops, request.validate_only)
        except KafkaError as exc:
            error, message = exc.error_code, exc.message
        entries.append(
            codec.build(
                module.EntryData,
                error_code=error,
                error_message=message,
                entity=tuple(
                    codec.build(module.EntityData, entity_type=t, entity_name=n) for t, n in entity
                ),
            )
        )
    return codec.build(
        module.AlterClientQuotasResponse, throttle_time=ZERO_DURATION, entries=tuple(entries)
    )


HANDLER = Handler(api_key=API_KEY, min_version=0, max_version=1, handle=handle)
