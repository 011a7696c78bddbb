"""AddPartitionsToTxn (key 24), the client form (v0-v3): a producer tells its transaction
coordinator which partitions it is about to write to, so that the coordinator will
write the transaction's markers there.

Partitions of topics that do not exist are UNKNOWN_TOPIC_OR_PARTITION, and then none is
added (the others get OPERATION_NOT_ATTEMPTED), as Kafka answers. Versions 4 and up
(brokers verifying a partition, KIP-890) are not served.
"""

from __future__ import annotations

from typing import Any

from odradek.broker.api import Handler, RequestContext
from odradek.broker.handlers.common import ZERO_DURATION
from odradek.coordinator.transaction.errors import error_for_version
from odradek.protocol import codec
from odradek.protocol.errors import ErrorCode
from odradek.protocol.types import TopicPartition

API_KEY = 24


async def _handle(ctx: RequestContext, request: Any) -> Any:
    module = codec.response_module(API_KEY, ctx.api_version)
    store = ctx.broker.metadata
    wanted: list[TopicPartition] = []
    rejected: dict[TopicPartition, ErrorCode] = {}
    for topic in request.v3_and_below_topics:
        known = store.topic(topic.name)
        for index in topic.partitions:
            tp = TopicPartition(topic.name, int(index))
            wanted.append(tp)
            if known is None or not 0 <= tp.partition < len(known.partitions):
                rejected[tp] = ErrorCode.unknown_topic_or_partition
    errors = await ctx.broker.transaction_coordinator.add_partitions_to_txn(
        request.v3_and_below_transactional_id,
        int(request.v3_and_below_producer_id),
        int(request.v3_and_below_producer_epoch),
        wanted,
        rejected,
    )
    by_topic: dict[str, list[Any]] = {}
    for tp in wanted:
        by_topic.setdefault(tp.topic, []).append(
            codec.build(
                module.AddPartitionsToTxnPartitionResult,
                partition_index=tp.partition,
                partition_error_code=error_for_version(
                    errors.get(tp, ErrorCode.unknown_server_error), API_KEY, ctx.api_version
                ),
            )
        )
    return codec.build(
        module.AddPartitionsToTxnResponse,
        throttle_time=ZERO_DURATION,
        results_by_topic_v3_and_below=tuple(
            codec.build(
                module.AddPartitionsToTxnTopicResult,
                name=name,
                results_by_partition=tuple(results),
            )
            for name, results in by_topic.items()
        ),
    )


def handle(ctx: RequestContext, request: Any) -> Any:
    return _handle(ctx, request)


HANDLER = Handler(api_key=API_KEY, min_version=0, max_version=3, handle=handle)
