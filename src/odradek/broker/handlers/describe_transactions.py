"""DescribeTransactions (key 65, KIP-664): the state of transactional ids this broker
coordinates (others get NOT_COORDINATOR, as Kafka answers)."""

from __future__ import annotations

import datetime
from typing import Any

from odradek.broker.api import Handler, RequestContext
from odradek.broker.handlers.common import EPOCH, ZERO_DURATION
from odradek.protocol import codec

API_KEY = 65


def handle(ctx: RequestContext, request: Any) -> Any:
    module = codec.response_module(API_KEY, ctx.api_version)
    states = []
    for txn in ctx.broker.transaction_coordinator.describe_transactions(request.transactional_ids):
        by_topic: dict[str, list[int]] = {}
        for tp in txn.partitions:
            by_topic.setdefault(tp.topic, []).append(tp.partition)
        states.append(
            codec.build(
                module.TransactionState,
                error_code=txn.error,
                transactional_id=txn.transactional_id,
                transaction_state=txn.state,
                transaction_timeout=datetime.timedelta(milliseconds=txn.timeout_ms),
                # Not nullable: -1 (no transaction) is one millisecond before the epoch.
                transaction_start_time=EPOCH + datetime.timedelta(milliseconds=txn.start_timestamp),
                producer_id=txn.producer_id,
                producer_epoch=txn.producer_epoch,
                topics=tuple(
                    codec.build(module.TopicData, topic=name, partitions=tuple(sorted(indexes)))
                    for name, indexes in by_topic.items()
                ),
            )
        )
    return codec.build(
        module.DescribeTransactionsResponse,
        throttle_time=ZERO_DURATION,
        transaction_states=tuple(states),
    )


HANDLER = Handler(api_key=API_KEY, min_version=0, max_version=0, handle=handle)
