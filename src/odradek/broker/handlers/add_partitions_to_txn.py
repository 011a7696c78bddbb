"""AddPartitionsToTxn (key 24): a producer tells its transaction coordinator which
partitions it is about to write to (v0-v3, one transaction), or a partition leader asks
whether partitions are in transactions (v4-v5, KIP-890: a batch of transactions, each
``verify_only`` or not).

Partitions of topics that do not exist are UNKNOWN_TOPIC_OR_PARTITION, and then none of
that transaction's is added or checked (the others get OPERATION_NOT_ATTEMPTED), as
Kafka answers. A partition not in the transaction is TRANSACTION_ABORTABLE from v5;
v4 gets INVALID_TXN_STATE, the code Kafka 3.6 and 3.7 (which send v4) answered and
understand. PRODUCER_FENCED is INVALID_PRODUCER_EPOCH before v2.

Versions 3 and below are the clients' (the Java client caps its requests at v3,
librdkafka sends v0), 4 and up the brokers'. Kafka tells them apart only by authorizing
CLUSTER_ACTION on the cluster for v4+, which every principal passes when no authorizer
is configured; Odradek has no ACLs, so it takes v4+ from anyone, as Kafka does then.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from odradek.broker.api import Handler, RequestContext
from odradek.broker.handlers.common import ZERO_DURATION
from odradek.coordinator.transaction.errors import error_for_version
from odradek.protocol import codec
from odradek.protocol.errors import ErrorCode
from odradek.protocol.types import TopicPartition

API_KEY = 24
FIRST_BROKER_VERSION = 4
FIRST_VERSION_WITH_ABORTABLE = 5

Answer = tuple[list[TopicPartition], dict[TopicPartition, ErrorCode]]
"""The partitions asked about, in request order, and each one's error."""


async def _handle(ctx: RequestContext, request: Any) -> Any:
    module = codec.response_module(API_KEY, ctx.api_version)
    if ctx.api_version < FIRST_BROKER_VERSION:
        wanted, errors = await _transaction(
            ctx,
            request.v3_and_below_transactional_id,
            int(request.v3_and_below_producer_id),
            int(request.v3_and_below_producer_epoch),
            request.v3_and_below_topics,
            verify_only=False,
        )
        return codec.build(
            module.AddPartitionsToTxnResponse,
            throttle_time=ZERO_DURATION,
            results_by_topic_v3_and_below=_topic_results(module, wanted, errors),
        )
    answers = await asyncio.gather(
        *(
            _transaction(
                ctx,
                txn.transactional_id,
                int(txn.producer_id),
                int(txn.producer_epoch),
                txn.topics,
                verify_only=bool(txn.verify_only),
            )
            for txn in request.transactions
        )
    )
    return codec.build(
        module.AddPartitionsToTxnResponse,
        throttle_time=ZERO_DURATION,
        error_code=ErrorCode.none,
        results_by_transaction=tuple(
            codec.build(
                module.AddPartitionsToTxnResult,
                transactional_id=txn.transactional_id,
                topic_results=_topic_results(module, wanted, errors),
            )
            for txn, (wanted, errors) in zip(request.transactions, answers, strict=True)
        ),
    )


async def _transaction(
    ctx: RequestContext,
    transactional_id: str,
    producer_id: int,
    producer_epoch: int,
    topics: Iterable[Any],
    *,
    verify_only: bool,
) -> Answer:
    """One transaction of the request: add its partitions, or check them."""
    store = ctx.broker.metadata
    coordinator = ctx.broker.transaction_coordinator
    wanted: dict[TopicPartition, None] = {}
    rejected: dict[TopicPartition, ErrorCode] = {}
    for topic in topics:
        known = store.topic(topic.name)
        for index in topic.partitions:
            tp = TopicPartition(topic.name, int(index))
            wanted[tp] = None
            if known is None or not 0 <= tp.partition < len(known.partitions):
                rejected[tp] = ErrorCode.unknown_topic_or_partition
    if not verify_only:
        errors = await coordinator.add_partitions_to_txn(
            transactional_id, producer_id, producer_epoch, list(wanted), rejected
        )
    elif rejected:
        errors = dict.fromkeys(wanted, ErrorCode.operation_not_attempted)
        errors.update(rejected)
    else:
        errors = coordinator.verify_partitions_in_txn(
            transactional_id, producer_id, producer_epoch, list(wanted)
        )
    version = ctx.api_version
    return list(wanted), {
        tp: _for_version(errors.get(tp, ErrorCode.unknown_server_error), version) for tp in wanted
    }


def _for_version(error: ErrorCode, version: int) -> ErrorCode:
    if error is ErrorCode.transaction_abortable and version < FIRST_VERSION_WITH_ABORTABLE:
        return ErrorCode.invalid_txn_state
    return error_for_version(error, API_KEY, version)


def _topic_results(
    module: Any, wanted: list[TopicPartition], errors: dict[TopicPartition, ErrorCode]
) -> tuple[Any, ...]:
    by_topic: dict[str, list[Any]] = {}
    for tp in wanted:
        by_topic.setdefault(tp.topic, []).append(
            codec.build(
                module.AddPartitionsToTxnPartitionResult,
                partition_index=tp.partition,
                partition_error_code=errors[tp],
            )
        )
    return tuple(
        codec.build(
            module.AddPartitionsToTxnTopicResult, name=name, results_by_partition=tuple(results)
        )
        for name, results in by_topic.items()
    )


def handle(ctx: RequestContext, request: Any) -> Any:
    return _handle(ctx, request)


HANDLER = Handler(api_key=API_KEY, min_version=0, max_version=5, handle=handle)
