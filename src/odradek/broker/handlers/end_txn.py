"""EndTxn (key 26): commit or abort the producer's transaction. The answer comes once
the coordinator's PrepareCommit/PrepareAbort record is replicated; the markers follow."""

from __future__ import annotations

from typing import Any

from odradek.broker.api import Handler, RequestContext
from odradek.broker.handlers.common import ZERO_DURATION
from odradek.coordinator.transaction.errors import error_for_version
from odradek.protocol import codec

API_KEY = 26


async def _handle(ctx: RequestContext, request: Any) -> Any:
    result = await ctx.broker.transaction_coordinator.end_txn(
        request.transactional_id,
        int(request.producer_id),
        int(request.producer_epoch),
        commit=bool(request.committed),
    )
    return codec.build(
        codec.response_module(API_KEY, ctx.api_version).EndTxnResponse,
        throttle_time=ZERO_DURATION,
        error_code=error_for_version(result.error, API_KEY, ctx.api_version),
        producer_id=result.producer_id,
        producer_epoch=result.producer_epoch,
    )


def handle(ctx: RequestContext, request: Any) -> Any:
    return _handle(ctx, request)


# v5 is Transactions V2 (KIP-890: a new epoch per transaction), not served yet.
HANDLER = Handler(api_key=API_KEY, min_version=0, max_version=4, handle=handle)
