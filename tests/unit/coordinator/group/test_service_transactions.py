"""GroupCoordinator's transactional entry points over a stub partition: the batch it
writes for TxnOffsetCommit, waiting for the ISR, complete_transaction after a marker,
and loading records and markers back when the partition is led again. No broker, no
network."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from odradek.coordinator.group.offset_manager import OffsetToCommit
from odradek.coordinator.group.service import GroupCoordinator
from odradek.protocol.errors import ErrorCode
from odradek.protocol.records import iter_headers
from odradek.protocol.types import TopicPartition
from odradek.storage.values import AppendOrigin
from tests.unit.coordinator.group.stubs import (
    OFFSETS_TP,
    StubPartition,
    StubReplicaManager,
    coordinator,
)

TP = TopicPartition("in", 0)
PID = 9
EPOCH = 3


def commit(coord: GroupCoordinator, group: str, offset: int) -> dict[TopicPartition, ErrorCode]:
    return asyncio.run(
        coord.commit_transactional_offsets(
            group,
            producer_id=PID,
            producer_epoch=EPOCH,
            member_id="",
            generation_id=-1,
            group_instance_id=None,
            offsets=[OffsetToCommit(TP, offset, -1, "m")],
        )
    )


def fetch(coord: GroupCoordinator, stable: bool) -> tuple[int | None, ErrorCode]:
    (item,) = coord.shard_for("g").fetch_committed_offsets("g", [TP], require_stable=stable)
    return (None if item.value is None else item.value.offset, item.error)


def test_txn_offset_commit_writes_a_transactional_batch_of_the_producer() -> None:
    partition = StubPartition(OFFSETS_TP)
    coord = coordinator(partition)
    coord.became_leader(cast(Any, partition))
    assert commit(coord, "g", 42) == {TP: ErrorCode.none}
    (header,) = iter_headers(partition.backing.data)
    assert (header.producer_id, header.producer_epoch) == (PID, EPOCH)
    assert header.is_transactional and not header.is_control
    assert header.base_sequence == 0
    assert partition.origins == [AppendOrigin.COORDINATOR]
    assert cast(StubReplicaManager, coord.replica_manager).awaited == [1]  # the ISR has it
    assert fetch(coord, stable=True) == (None, ErrorCode.unstable_offset_commit)
    assert fetch(coord, stable=False) == (None, ErrorCode.none)


def test_complete_transaction_after_the_marker_then_reload() -> None:
    partition = StubPartition(OFFSETS_TP)
    coord = coordinator(partition)
    coord.became_leader(cast(Any, partition))
    commit(coord, "g", 42)
    marker = partition.backing.marker(PID, commit=True, producer_epoch=EPOCH)
    coord.complete_transaction(0, PID, True, marker)
    assert fetch(coord, stable=True) == (42, ErrorCode.none)
    commit(coord, "g", 43)  # a second transaction, still open when the partition moves
    coord.resigned(OFFSETS_TP)
    coord.became_leader(cast(Any, partition))
    assert fetch(coord, stable=True) == (None, ErrorCode.unstable_offset_commit)
    assert fetch(coord, stable=False) == (42, ErrorCode.none)
    partition.backing.marker(PID, commit=False, producer_epoch=EPOCH)
    coord.complete_transaction(0, PID, False)  # no marker offset: everything pending ends
    assert fetch(coord, stable=True) == (42, ErrorCode.none)


def test_routing_errors() -> None:
    partition = StubPartition(OFFSETS_TP)
    coord = coordinator(partition)
    assert commit(coord, "g", 1) == {TP: ErrorCode.not_coordinator}  # not loaded
    coord.complete_transaction(0, PID, True)  # not led here: the log has the marker
    coord.became_leader(cast(Any, partition))
    assert commit(coord, "", 1) == {TP: ErrorCode.invalid_group_id}
    coord.complete_transaction(5, PID, True)  # another partition: nothing to do
    assert partition.backing.data == b""


def test_the_answer_waits_for_the_isr_and_reports_its_failure() -> None:
    partition = StubPartition(OFFSETS_TP)
    coord = coordinator(partition)
    coord.became_leader(cast(Any, partition))
    replicas = cast(StubReplicaManager, coord.replica_manager)
    replicas.ack_error = ErrorCode.request_timed_out
    assert commit(coord, "g", 1) == {TP: ErrorCode.coordinator_not_available}
    replicas.ack_error = ErrorCode.not_leader_or_follower
    assert commit(coord, "g", 2) == {TP: ErrorCode.not_coordinator}
    # A request refused before writing waits for nothing.
    replicas.awaited.clear()
    assert commit(coord, "", 3) == {TP: ErrorCode.invalid_group_id}
    assert replicas.awaited == []
