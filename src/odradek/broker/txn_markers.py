"""Transaction markers written into partitions this broker leads.

The transaction coordinator ends a transaction by asking the leader of every partition
in it to append a commit or abort marker (a control batch, see
``protocol.record_codec.build_end_txn_marker``). A leader does so for WriteTxnMarkers
requests from coordinators on other brokers and, without a network round trip, for its
own coordinator. As Kafka's ``handleWriteTxnMarkersRequest``, the marker is appended
with acks=all and the answer waits until it is replicated to the ISR; a marker that
lands in ``__consumer_offsets`` then makes the group coordinator commit or drop the
offsets that the transaction committed (``TxnOffsetCommit``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from odradek.coordinator.group.service import OFFSETS_TOPIC
from odradek.coordinator.transaction.markers import TxnMarker
from odradek.protocol.errors import ErrorCode
from odradek.protocol.record_codec import build_end_txn_marker
from odradek.protocol.types import TopicPartition
from odradek.storage.values import AppendOrigin

if TYPE_CHECKING:
    from odradek.broker.server import Broker


async def write_txn_marker(broker: Broker, marker: TxnMarker) -> dict[TopicPartition, ErrorCode]:
    """Append ``marker`` to each of its partitions; the error of each (NONE: written and
    replicated)."""
    batch = build_end_txn_marker(
        marker.producer_id,
        marker.producer_epoch,
        commit=marker.commit,
        coordinator_epoch=marker.coordinator_epoch,
    )
    replica_manager = broker.replica_manager
    # An append patches offsets into its buffer: each partition gets its own copy.
    results = replica_manager.append_records(
        -1, [(tp, bytearray(batch)) for tp in marker.partitions], AppendOrigin.COORDINATOR
    )
    # As Kafka, a marker waits for its ISR up to the broker's request.timeout.ms.
    waiting = replica_manager.await_acks(results, broker.config.get("request.timeout.ms"))
    if waiting is not None:
        results = await waiting
    for tp, result in results.items():
        if tp.topic == OFFSETS_TOPIC and result.error is ErrorCode.none:
            # The marker's offset: offsets the producer's next transaction committed
            # after it stay pending.
            broker.group_coordinator.complete_transaction(
                tp.partition, marker.producer_id, marker.commit, marker_offset=result.base_offset
            )
    return {tp: result.error for tp, result in results.items()}


async def write_txn_markers(
    broker: Broker, markers: Sequence[TxnMarker]
) -> list[dict[TopicPartition, ErrorCode]]:
    """Each marker in turn (a producer's markers must land in the order given)."""
    return [await write_txn_marker(broker, marker) for marker in markers]


async def write_local_txn_markers(
    broker: Broker, markers: list[TxnMarker]
) -> dict[TopicPartition, ErrorCode]:
    """The transaction coordinator's path to partitions this broker leads: no request,
    the same appends; the errors of all the markers' partitions."""
    errors: dict[TopicPartition, ErrorCode] = {}
    for outcome in await write_txn_markers(broker, markers):
        errors.update(outcome)
    return errors
