"""DescribeTransactions (key 65, KIP-664): the state of transactional ids this broker
coordinates (others get NOT_COORDINATOR, as Kafka answers).

An id with no transaction open has start time -1, as in Kafka; kio (and so our own
clients) refuse a negative timestamp, which is why ``odradek transactions describe``
decodes this answer itself.
"""

from __future__ import annotations

import datetime
from typing import Any

from odradek.broker.api import Handler, RequestContext
from odradek.broker.handlers.common import EPOCH, ZERO_DURATION
from odradek.protocol import codec
from odradek.protocol.errors import ErrorCode

API_KEY = 65


def handle(ctx: RequestContext, request: Any) -> Any:
    module = codec.response_module(API_KEY, ctx.api_version)
    states = []
    for txn in ctx.broker.transaction_coordinator.describe_transactions(request.transactional_ids):
        if txn.error is not ErrorCode.none:
            # As Kafka: an error entry carries the id and the code, every other field
            # its schema default (0, empty).
            states.append(
                codec.build(
                    module.TransactionState,
                    error_code=txn.error,
                    transactional_id=txn.transactional_id,
                    transaction_state="",
                    transaction_timeout=ZERO_DURATION,
                    transaction_start_time=EPOCH,
                    producer_id=0,
                    producer_epoch=0,
                    topics=(),
                )
            )
            continue
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
