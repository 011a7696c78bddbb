"""ListTransactions (key 66, KIP-664): the transactional ids this broker coordinates,
filtered by state, producer id and (v1, KIP-994) how long they have been running."""

from __future__ import annotations

from typing import Any

from odradek.broker.api import Handler, RequestContext
from odradek.broker.handlers.common import ZERO_DURATION
from odradek.protocol import codec

API_KEY = 66


def handle(ctx: RequestContext, request: Any) -> Any:
    module = codec.response_module(API_KEY, ctx.api_version)
    found = ctx.broker.transaction_coordinator.list_transactions(
        states=request.state_filters,
        producer_ids=[int(p) for p in request.producer_id_filters],
        duration_ms=int(getattr(request, "duration_filter", -1)),
    )
    return codec.build(
        module.ListTransactionsResponse,
        throttle_time=ZERO_DURATION,
        error_code=found.error,
        unknown_state_filters=found.unknown_state_filters,
        transaction_states=tuple(
            codec.build(
                module.TransactionState,
                transactional_id=txn.transactional_id,
                producer_id=txn.producer_id,
                transaction_state=txn.state,
            )
            for txn in found.transactions
        ),
    )


HANDLER = Handler(api_key=API_KEY, min_version=0, max_version=1, handle=handle)
