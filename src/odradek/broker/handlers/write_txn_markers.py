"""WriteTxnMarkers (key 27): append commit/abort markers to partitions this broker leads.

Sent by transaction coordinators on other brokers, and by admin clients aborting a
hanging transaction (``Admin.abortTransaction``, ``odradek transactions abort``). The
answer waits until every marker is replicated (``broker/txn_markers.py``).
"""

from __future__ import annotations

from typing import Any

from odradek.broker.api import Handler, RequestContext
from odradek.broker.txn_markers import write_txn_markers
from odradek.coordinator.transaction.markers import TxnMarker
from odradek.protocol import codec
from odradek.protocol.errors import ErrorCode
from odradek.protocol.types import TopicPartition

API_KEY = 27


async def _handle(ctx: RequestContext, request: Any) -> Any:
    module = codec.response_module(API_KEY, ctx.api_version)
    markers = [
        TxnMarker(
            producer_id=int(marker.producer_id),
            producer_epoch=int(marker.producer_epoch),
            commit=bool(marker.transaction_result),
            coordinator_epoch=int(marker.coordinator_epoch),
            partitions=tuple(
                TopicPartition(topic.name, int(index))
                for topic in marker.topics
                for index in topic.partition_indexes
            ),
        )
        for marker in request.markers
    ]
    outcomes = await write_txn_markers(ctx.broker, markers)
    results = []
    for marker, errors in zip(request.markers, outcomes, strict=True):
        topics = tuple(
            codec.build(
                module.WritableTxnMarkerTopicResult,
                name=topic.name,
                partitions=tuple(
                    codec.build(
                        module.WritableTxnMarkerPartitionResult,
                        partition_index=index,
                        error_code=errors.get(
                            TopicPartition(topic.name, int(index)), ErrorCode.unknown_server_error
                        ),
                    )
                    for index in topic.partition_indexes
                ),
            )
            for topic in marker.topics
        )
        results.append(
            codec.build(
                module.WritableTxnMarkerResult, producer_id=marker.producer_id, topics=topics
            )
        )
    return codec.build(module.WriteTxnMarkersResponse, markers=tuple(results))


def handle(ctx: RequestContext, request: Any) -> Any:
    return _handle(ctx, request)


HANDLER = Handler(api_key=API_KEY, min_version=1, max_version=1, handle=handle)
