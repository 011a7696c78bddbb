"""Transactions on the partition side: open and completed transactions, the last stable
offset, the ``.txnindex`` of aborted transactions, fencing, and what a follower, a
restart, a truncation and retention do to all of it."""

from __future__ import annotations

import errno
import os
import struct
import uuid
from pathlib import Path
from typing import Any

import pytest

from odradek.cluster.metadata import PartitionState
from odradek.protocol.record_codec import BatchSpec, NewRecord, build_batch, build_end_txn_marker
from odradek.protocol.records import complete_batches_size
from odradek.protocol.types import TopicPartition
from odradek.replication.partition import READ_COMMITTED, READ_UNCOMMITTED, Partition
from odradek.storage import log_files
from odradek.storage.errors import (
    InvalidProducerEpochError,
    InvalidRecordError,
    InvalidTxnStateError,
    LogDirFullError,
    TransactionCoordinatorFencedError,
)
from odradek.storage.file_records import HandleCache
from odradek.storage.log import Log
from odradek.storage.values import AbortedTxn, AppendOrigin, LogAppendInfo

from .helpers import START_MS, Clock, make_batch, partition_dir, read_all, small_config

A, B, C = 100, 200, 300


class Producer:
    """A transactional producer of one partition: keeps its sequence."""

    def __init__(self, log: Log, pid: int, epoch: int = 0) -> None:
        self.log = log
        self.pid = pid
        self.epoch = epoch
        self.seq = 0

    def send(self, count: int = 2, *, transactional: bool = True) -> LogAppendInfo:
        data = txn_batch(
            [b"%d-%d" % (self.pid, self.seq + i) for i in range(count)],
            self.pid,
            self.seq,
            epoch=self.epoch,
            transactional=transactional,
        )
        info = self.log.append_as_leader(data, 0)
        self.seq += count
        return info


def txn_batch(
    values: list[bytes], pid: int, seq: int, *, epoch: int = 0, transactional: bool = True
) -> bytes:
    spec = BatchSpec(
        producer_id=pid, producer_epoch=epoch, base_sequence=seq, transactional=transactional
    )
    return build_batch([NewRecord(key=None, value=v, timestamp=START_MS) for v in values], spec)


def marker(pid: int, *, commit: bool, epoch: int = 0, coordinator_epoch: int = 0) -> bytes:
    return build_end_txn_marker(
        pid, epoch, commit=commit, coordinator_epoch=coordinator_epoch, timestamp=START_MS
    )


def end_txn(
    log: Log, pid: int, *, commit: bool, epoch: int = 0, coordinator_epoch: int = 0
) -> LogAppendInfo:
    data = marker(pid, commit=commit, epoch=epoch, coordinator_epoch=coordinator_epoch)
    return log.append_as_leader(data, 0, origin=AppendOrigin.COORDINATOR)


def plain(log: Log, count: int = 2, size: int = 10) -> LogAppendInfo:
    return log.append_as_leader(make_batch([b"p" * size] * count), 0)


def open_log(path: Path, **kwargs: Any) -> Log:
    config = kwargs.pop("config", small_config())
    return Log.open(partition_dir(path), config, clock=Clock(), **kwargs)


def index_files(log: Log) -> dict[str, bytes]:
    return {
        name: (Path(log.dir) / name).read_bytes()
        for name in sorted(os.listdir(log.dir))
        if name.endswith(log_files.TXN_INDEX_FILE_SUFFIX)
    }


def entries(data: bytes) -> list[tuple[int, int, int, int, int]]:
    return list(struct.iter_unpack(">hqqqq", data))


def catch_up(log: Log) -> None:
    log.update_high_watermark(log.log_end_offset)


def interleaved(log: Log) -> None:
    """A [0, 2) and B [2, 4) open, A [4, 6), abort A at 6 while B is open, commit B at 7,
    C [8, 10), abort C at 10."""
    a, b, c = Producer(log, A), Producer(log, B), Producer(log, C)
    a.send()
    b.send()
    a.send()
    end_txn(log, A, commit=False)
    end_txn(log, B, commit=True)
    c.send()
    end_txn(log, C, commit=False)


# -- last stable offset ---------------------------------------------------------------------


def test_last_stable_offset_waits_for_open_transactions_and_the_high_watermark(
    tmp_path: Path,
) -> None:
    log = open_log(tmp_path)
    plain(log)
    catch_up(log)
    assert (log.first_unstable_offset, log.last_stable_offset) == (None, 2)
    a, b = Producer(log, A), Producer(log, B)
    a.send()  # 2-3
    catch_up(log)
    assert (log.first_unstable_offset, log.last_stable_offset, log.high_watermark) == (2, 2, 4)
    b.send()  # 4-5
    a.send()  # 6-7
    catch_up(log)
    assert end_txn(log, A, commit=True).first_offset == 8
    # A is decided, but its marker is not below the high watermark yet
    assert log.last_stable_offset == 2
    log.update_high_watermark(9)
    assert (log.first_unstable_offset, log.last_stable_offset) == (4, 4)
    # read_committed consumers stop below the LSO
    assert [r.offset for r in read_all(log, max_offset=log.last_stable_offset)] == [0, 1, 2, 3]
    end_txn(log, B, commit=False)  # 9
    assert log.last_stable_offset == 4
    catch_up(log)
    assert (log.first_unstable_offset, log.last_stable_offset) == (None, 10)
    assert log.producer_state.ongoing_txns == {}
    assert log.producer_state.unreplicated_txns == {}
    log.close()


def test_non_transactional_traffic_leaves_no_trace(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    for seq in range(0, 20, 2):
        log.append_as_leader(
            make_batch([b"x", b"y"], producer_id=5, producer_epoch=0, base_sequence=seq), 0
        )
        plain(log)
        catch_up(log)
        assert log.last_stable_offset == log.high_watermark
        assert log.first_unstable_offset is None
    assert log.collect_aborted_transactions(0, log.log_end_offset) == []
    log.close()
    assert index_files(log) == {}


def test_log_start_offset_past_an_open_transaction_clamps_the_first_unstable_offset(
    tmp_path: Path,
) -> None:
    log = open_log(tmp_path)
    Producer(log, A).send()  # 0-1, stays open
    plain(log, 4)  # 2-5
    catch_up(log)
    assert log.last_stable_offset == 0
    log.maybe_increment_log_start_offset(4)
    assert (log.first_unstable_offset, log.last_stable_offset) == (4, 4)
    end_txn(log, A, commit=True)
    catch_up(log)
    assert log.last_stable_offset == log.log_end_offset == 7
    log.close()


# -- transaction index and aborted transactions ---------------------------------------------


def test_aborts_are_indexed_with_kafkas_last_stable_offset(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    interleaved(log)
    files = index_files(log)
    assert list(files) == ["00000000000000000000.txnindex"]
    # A's abort came while B (from offset 2) was open; C's with nothing else open
    assert entries(files["00000000000000000000.txnindex"]) == [(0, A, 0, 6, 2), (0, C, 8, 10, 11)]
    collect = log.collect_aborted_transactions
    assert collect(0, 11) == [AbortedTxn(A, 0), AbortedTxn(C, 8)]
    assert collect(0, 2) == [AbortedTxn(A, 0)]  # A's entry already reaches 2: stop there
    assert collect(5, 7) == [AbortedTxn(A, 0)]
    assert collect(7, 8) == []
    assert collect(9, 11) == [AbortedTxn(C, 8)]
    assert collect(11, 12) == []
    log.close()


def test_marker_without_an_open_transaction_completes_nothing(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    a = Producer(log, A)
    a.send(transactional=False)  # idempotent, no transaction
    info = end_txn(log, A, commit=False, coordinator_epoch=3)
    assert info.first_offset == info.last_offset == 2
    assert log.first_unstable_offset is None
    assert index_files(log) == {}
    (state,) = log.active_producers()
    assert (state.coordinator_epoch, state.current_txn_start_offset, state.last_sequence) == (
        3,
        -1,
        1,
    )
    a.send()  # the marker did not move the sequence: 2 follows 1
    assert log.first_unstable_offset == 3
    log.close()


def test_active_producers(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    a, b = Producer(log, A, epoch=2), Producer(log, B)
    a.send(3)
    b.send(1, transactional=False)
    end_txn(log, A, commit=True, epoch=2, coordinator_epoch=7)
    a.send(1)
    states = {s.producer_id: s for s in log.active_producers()}
    assert [s.producer_id for s in log.active_producers()] == [A, B]
    assert (
        states[A].producer_epoch,
        states[A].last_sequence,
        states[A].coordinator_epoch,
        states[A].current_txn_start_offset,
        states[A].last_timestamp,
    ) == (2, 3, 7, 5, START_MS)
    assert (
        states[B].last_sequence,
        states[B].coordinator_epoch,
        states[B].current_txn_start_offset,
    ) == (0, -1, -1)
    log.close()


def test_partition_read_reports_aborted_transactions_for_read_committed_only(
    tmp_path: Path,
) -> None:
    log = open_log(tmp_path)
    interleaved(log)
    state = PartitionState(leader=1, leader_epoch=0, replicas=(1,), isr=(1,))
    partition = Partition(TopicPartition("topic", 0), uuid.uuid4(), log, state, broker_id=1)
    assert log.last_stable_offset == log.log_end_offset == 11
    committed = partition.read(0, 1 << 20, READ_COMMITTED, min_one_message=True)
    assert committed.last_stable_offset == 11
    assert committed.aborted_transactions == [AbortedTxn(A, 0), AbortedTxn(C, 8)]
    later = partition.read(7, 1 << 20, READ_COMMITTED, min_one_message=True)
    assert later.aborted_transactions == [AbortedTxn(C, 8)]
    nothing = partition.read(11, 1 << 20, READ_COMMITTED, min_one_message=True)
    assert nothing.aborted_transactions == []
    assert (
        partition.read(0, 1 << 20, READ_UNCOMMITTED, min_one_message=True).aborted_transactions
        is None
    )
    log.close()


def test_upper_bound_of_a_read_stops_at_the_data_returned(tmp_path: Path) -> None:
    # Every batch after the first gets an offset index entry (its last offset, its
    # position): the first entry at or past the end of the data read bounds it, as in
    # Kafka, which may take in the batch after the data (never less than the data).
    log = open_log(tmp_path, config=small_config(index_interval_bytes=1))
    a, c = Producer(log, A), Producer(log, C)
    plain(log, 1, 200)  # 0
    plain(log, 1, 200)  # 1
    a.send()  # 2-3
    end_txn(log, A, commit=False)  # 4
    plain(log, 1, 200)  # 5
    c.send()  # 6-7
    end_txn(log, C, commit=False)  # 8
    catch_up(log)
    first = log.read(0, 1, min_one_message=True)  # just the first batch: bound 1
    assert log.aborted_transactions_for(first) == []
    after_a = log.read(5, 1, min_one_message=True)  # offset 5 only: bound 7
    assert log.aborted_transactions_for(after_a) == [AbortedTxn(C, 6)]
    everything = log.read(0, 1 << 20)
    assert log.aborted_transactions_for(everything) == [AbortedTxn(A, 2), AbortedTxn(C, 6)]
    log.close()


def test_transaction_spanning_segments_is_found_from_its_first_segment(tmp_path: Path) -> None:
    log = open_log(tmp_path, config=small_config(segment_bytes=600))
    a = Producer(log, A)
    for _ in range(8):
        a.send(1)
        plain(log, 1, 150)
    end_txn(log, A, commit=False)
    catch_up(log)
    assert log.number_of_segments > 3
    files = index_files(log)
    assert len(files) == 1  # the segment holding the marker
    (name,) = files
    assert log_files.offset_from_file_name(name) == log.active_segment.base_offset
    assert log.collect_aborted_transactions(0, 3) == [AbortedTxn(A, 0)]
    assert log.collect_aborted_transactions(5, 6) == [AbortedTxn(A, 0)]
    log.close()


def test_txn_index_survives_handle_eviction(tmp_path: Path) -> None:
    cache = HandleCache(1)
    log = Log.open(
        partition_dir(tmp_path), small_config(segment_bytes=400), clock=Clock(), handle_cache=cache
    )
    a = Producer(log, A)
    expected = []
    for _ in range(4):
        first = a.send(1).first_offset
        end_txn(log, A, commit=False)
        expected.append(AbortedTxn(A, first))
        plain(log, 1, 300)
    catch_up(log)
    assert len(index_files(log)) == 4
    assert len(cache) <= 1
    assert log.collect_aborted_transactions(0, log.log_end_offset) == expected
    log.close()


# -- fencing and refusals ---------------------------------------------------------------------


def test_zombie_coordinator_is_fenced(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    a = Producer(log, A)
    a.send()
    end_txn(log, A, commit=True, coordinator_epoch=5)
    a.send()
    catch_up(log)
    end = log.log_end_offset
    with pytest.raises(TransactionCoordinatorFencedError):
        end_txn(log, A, commit=False, coordinator_epoch=4)
    assert log.log_end_offset == end
    assert log.first_unstable_offset == 3
    end_txn(log, A, commit=False, coordinator_epoch=6)
    catch_up(log)
    assert log.first_unstable_offset is None
    log.close()


def test_marker_of_an_older_producer_epoch_is_refused(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    Producer(log, A, epoch=3).send()
    with pytest.raises(InvalidProducerEpochError):
        end_txn(log, A, commit=True, epoch=2)
    assert log.log_end_offset == 2
    end_txn(log, A, commit=True, epoch=4)  # a bumped epoch ends the transaction
    catch_up(log)
    assert log.first_unstable_offset is None
    assert log.active_producers()[0].producer_epoch == 4
    log.close()


def test_non_transactional_batch_inside_a_transaction_is_invalid_txn_state(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    a = Producer(log, A)
    a.send()
    with pytest.raises(InvalidTxnStateError):
        a.send(transactional=False)
    assert log.log_end_offset == 2
    log.close()


def test_control_batches_only_from_the_coordinator(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    Producer(log, A).send()
    with pytest.raises(InvalidRecordError):
        log.append_as_leader(marker(A, commit=True), 0)
    assert log.first_unstable_offset == 0
    end_txn(log, A, commit=True)
    assert log.log_end_offset == 3
    log.close()


def test_coordinator_transactional_batches_without_sequences(tmp_path: Path) -> None:
    """What TxnOffsetCommit writes to __consumer_offsets: transactional, no sequence."""
    log = open_log(tmp_path)
    offsets = txn_batch([b"commit"], A, -1)
    log.append_as_leader(offsets, 0, origin=AppendOrigin.COORDINATOR)
    log.append_as_leader(txn_batch([b"again"], A, -1), 0, origin=AppendOrigin.COORDINATOR)
    assert log.first_unstable_offset == 0
    end_txn(log, A, commit=False)
    assert log.collect_aborted_transactions(0, 3) == [AbortedTxn(A, 0)]
    log.close()


def test_full_disk_while_indexing_an_abort_undoes_the_marker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = open_log(tmp_path)
    Producer(log, A).send()
    catch_up(log)

    def no_space(*args: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(os, "pwrite", no_space)  # only the transaction index uses pwrite here
        with pytest.raises(LogDirFullError):
            end_txn(log, A, commit=False)
    assert log.log_end_offset == 2
    assert log.first_unstable_offset == 0
    assert os.path.getsize(log.active_segment.log_path) == log.active_segment.size
    assert log.collect_aborted_transactions(0, 10) == []
    assert end_txn(log, A, commit=False).first_offset == 2
    assert log.collect_aborted_transactions(0, 10) == [AbortedTxn(A, 0)]
    assert [r.offset for r in read_all(log)] == [0, 1, 2]
    log.close()


# -- followers ---------------------------------------------------------------------------------


def test_follower_applies_transactions_and_writes_the_same_index(tmp_path: Path) -> None:
    leader = Log.open(partition_dir(tmp_path, "lead-0"), small_config(), clock=Clock())
    interleaved(leader)
    b = Producer(leader, B)
    b.seq = 2
    b.send()  # B opens another transaction at 11
    catch_up(leader)
    follower = Log.open(partition_dir(tmp_path, "follow-0"), small_config(), clock=Clock())
    offset = 0
    while offset < leader.log_end_offset:
        info = leader.read(offset, 150, min_one_message=True)
        assert info.records is not None
        data = info.records.read()
        appended = follower.append_as_follower(data[: complete_batches_size(data)])
        offset = appended.last_offset + 1
    follower.update_high_watermark(leader.high_watermark)
    assert index_files(follower) == index_files(leader)
    assert follower.active_producers() == leader.active_producers()
    assert follower.last_stable_offset == leader.last_stable_offset == 11
    leader.close()
    follower.close()


def test_follower_takes_markers_the_leader_took(tmp_path: Path) -> None:
    """Replication does not fence: the leader decided."""
    log = open_log(tmp_path)
    a = Producer(log, A)
    a.send()
    end_txn(log, A, commit=True, coordinator_epoch=5)
    follower = Log.open(partition_dir(tmp_path, "follow-0"), small_config(), clock=Clock())
    follower.append_as_follower(log.read(0, 1 << 20).records.read())  # type: ignore[union-attr]
    stale = bytearray(marker(A, commit=True, coordinator_epoch=4))
    stale[:8] = (3).to_bytes(8, "big")
    follower.append_as_follower(stale)
    assert follower.log_end_offset == 4
    log.close()
    follower.close()
