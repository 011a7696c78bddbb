"""InitProducerId (key 22): producer ids and epochs.

Without a transactional id (idempotent producers) the broker hands out an id itself
(``replication/producer_ids.py``). With one, the transaction coordinator of that id
answers: a new id, or the id's next epoch, fencing earlier producers of the same
transactional id and aborting the transaction they left open.
"""

from __future__ import annotations

from typing import Any

from odradek.broker.api import Handler, RequestContext
from odradek.broker.handlers.common import ZERO_DURATION, duration_ms
from odradek.coordinator.transaction.errors import error_for_version
from odradek.protocol import codec
from odradek.protocol.errors import ErrorCode, KafkaError

API_KEY = 22


def _response(ctx: RequestContext, error: ErrorCode, producer_id: int, epoch: int) -> Any:
    return codec.build(
        codec.response_module(API_KEY, ctx.api_version).InitProducerIdResponse,
        throttle_time=ZERO_DURATION,
        error_code=error_for_version(error, API_KEY, ctx.api_version),
        producer_id=producer_id,
        producer_epoch=epoch,
    )


async def _transactional(ctx: RequestContext, request: Any) -> Any:
    result = await ctx.broker.transaction_coordinator.init_producer_id(
        request.transactional_id,
        duration_ms(request.transaction_timeout),
        int(getattr(request, "producer_id", -1)),
        int(getattr(request, "producer_epoch", -1)),
    )
    return _response(ctx, result.error, result.producer_id, result.producer_epoch)


def handle(ctx: RequestContext, request: Any) -> Any:
    if request.transactional_id is not None:
        return _transactional(ctx, request)
    try:
        producer_id, epoch = ctx.broker.producer_ids.init_producer_id(
            getattr(request, "producer_id", -1), getattr(request, "producer_epoch", -1)
        )
    except KafkaError as exc:
        return _response(ctx, exc.error_code, -1, -1)
    return _response(ctx, ErrorCode.none, producer_id, epoch)


HANDLER = Handler(api_key=API_KEY, min_version=0, max_version=5, handle=handle)
