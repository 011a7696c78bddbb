"""AddOffsetsToTxn (key 25): a producer will commit a group's offsets in its transaction
(``send_offsets_to_transaction``); the coordinator adds the group's
``__consumer_offsets`` partition to the transaction, so its marker lands there too."""

from __future__ import annotations

from typing import Any

from odradek.broker.api import Handler, RequestContext
from odradek.broker.handlers.common import ZERO_DURATION
from odradek.coordinator.transaction.errors import error_for_version
from odradek.protocol import codec

API_KEY = 25


async def _handle(ctx: RequestContext, request: Any) -> Any:
    error = await ctx.broker.transaction_coordinator.add_offsets_to_txn(
        request.transactional_id,
        int(request.producer_id),
        int(request.producer_epoch),
        request.group_id,
    )
    return codec.build(
        codec.response_module(API_KEY, ctx.api_version).AddOffsetsToTxnResponse,
        throttle_time=ZERO_DURATION,
        error_code=error_for_version(error, API_KEY, ctx.api_version),
    )


def handle(ctx: RequestContext, request: Any) -> Any:
    return _handle(ctx, request)


HANDLER = Handler(api_key=API_KEY, min_version=0, max_version=3, handle=handle)
