"""Idempotent producers: duplicates, sequence and epoch checks, snapshots, reloads, expiry."""

from __future__ import annotations

import os

import pytest

from odradek.protocol.records import read_header
from odradek.protocol.types import TopicPartition
from odradek.storage import InvalidProducerEpochError, Log, OutOfOrderSequenceError
from odradek.storage.errors import CorruptSnapshotError
from odradek.storage.producer_state import (
    ProducerStateEntry,
    ProducerStateManager,
    read_snapshot,
    write_snapshot,
)
from odradek.storage.values import AppendOrigin

from .helpers import Clock, make_batch, partition_dir, read_all, small_config

PID = 1234


def produce(log: Log, seq: int, count: int = 2, *, epoch: int = 0, pid: int = PID):  # type: ignore[no-untyped-def]
    values = [b"p%d-s%d" % (pid, seq + i) for i in range(count)]
    return log.append_as_leader(
        make_batch(values, producer_id=pid, producer_epoch=epoch, base_sequence=seq), 0
    )


def open_log(tmp: os.PathLike[str], **kwargs: object) -> Log:
    return Log.open(partition_dir(tmp), small_config(), clock=Clock(), **kwargs)  # type: ignore[arg-type]


def test_duplicate_of_any_of_the_last_five_returns_original_offsets(
    tmp_path: os.PathLike[str],
) -> None:
    log = open_log(tmp_path)
    originals = [produce(log, seq) for seq in range(0, 12, 2)]
    end = log.log_end_offset
    for original, seq in zip(originals[1:], range(2, 12, 2), strict=True):
        again = produce(log, seq)
        assert again.duplicate
        assert (again.first_offset, again.last_offset) == (
            original.first_offset,
            original.last_offset,
        )
        assert log.log_end_offset == end
    # the oldest batch is no longer retained: its sequence is now simply out of order
    with pytest.raises(OutOfOrderSequenceError):
        produce(log, 0)
    assert len(read_all(log)) == end
    log.close()


def test_sequence_gap_is_out_of_order(tmp_path: os.PathLike[str]) -> None:
    log = open_log(tmp_path)
    produce(log, 0)
    with pytest.raises(OutOfOrderSequenceError):
        produce(log, 3)
    with pytest.raises(OutOfOrderSequenceError):
        produce(log, 1)  # overlaps but does not repeat a batch
    produce(log, 2)
    assert log.log_end_offset == 4
    log.close()


def test_epochs(tmp_path: os.PathLike[str]) -> None:
    log = open_log(tmp_path)
    produce(log, 0, epoch=3)
    with pytest.raises(InvalidProducerEpochError):
        produce(log, 2, epoch=2)
    with pytest.raises(OutOfOrderSequenceError):
        produce(log, 5, epoch=4)
    produce(log, 0, epoch=4)
    produce(log, 2, epoch=4)
    assert log.producer_state.last_entry(PID).producer_epoch == 4  # type: ignore[union-attr]
    log.close()


def test_unknown_producer_may_start_at_any_sequence(tmp_path: os.PathLike[str]) -> None:
    log = open_log(tmp_path)
    produce(log, 41)
    produce(log, 43)
    log.close()


def test_sequence_wraps_at_int32_max(tmp_path: os.PathLike[str]) -> None:
    log = open_log(tmp_path)
    produce(log, 2**31 - 2, count=2)
    produce(log, 0)
    log.close()


def test_non_idempotent_batches_are_not_tracked(tmp_path: os.PathLike[str]) -> None:
    log = open_log(tmp_path)
    log.append_as_leader(make_batch([b"x"]), 0)
    log.append_as_leader(make_batch([b"x"]), 0)
    assert log.log_end_offset == 2 and not log.producer_state.producers
    log.close()


def test_state_survives_clean_reopen(tmp_path: os.PathLike[str]) -> None:
    log = open_log(tmp_path)
    produce(log, 0)
    last = produce(log, 2)
    log.flush()
    log.close()
    assert os.path.exists(os.path.join(partition_dir(tmp_path), "00000000000000000004.snapshot"))
    log = open_log(tmp_path, clean_shutdown=True, recovery_point=4)
    again = produce(log, 2)
    assert again.duplicate and again.first_offset == last.first_offset
    with pytest.raises(OutOfOrderSequenceError):
        produce(log, 7)
    produce(log, 4)
    log.close()


def test_state_rebuilt_after_unclean_stop(tmp_path: os.PathLike[str]) -> None:
    log = open_log(tmp_path)
    produce(log, 0)
    produce(log, 2, pid=77)
    last = produce(log, 2)
    # no close: the process "dies"; no snapshot was written
    assert log.producer_state.snapshot_offsets == []
    del log
    reopened = open_log(tmp_path, recovery_point=0)
    entry = reopened.producer_state.last_entry(PID)
    assert entry is not None and entry.last_seq == 3
    again = produce(reopened, 2)
    assert again.duplicate and again.last_offset == last.last_offset
    with pytest.raises(OutOfOrderSequenceError):
        produce(reopened, 6)
    reopened.close()


def test_snapshot_on_roll_and_replay_after_it(tmp_path: os.PathLike[str]) -> None:
    log = Log.open(partition_dir(tmp_path), small_config(segment_bytes=400), clock=Clock())
    for seq in range(0, 20, 2):
        produce(log, seq)
    assert log.number_of_segments > 2
    assert set(log.producer_state.snapshot_offsets) >= {s.base_offset for s in log.segments[1:]}
    del log
    reopened = Log.open(
        partition_dir(tmp_path), small_config(segment_bytes=400), clock=Clock(), recovery_point=0
    )
    assert reopened.producer_state.last_entry(PID).last_seq == 19  # type: ignore[union-attr]
    produce(reopened, 20)
    reopened.close()


def test_snapshot_format_round_trip(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(tmp_path, "00000000000000000042.snapshot")
    entry = ProducerStateEntry(
        5, 2, coordinator_epoch=9, last_timestamp=1000, current_txn_first_offset=40
    )
    entry.add_batch(2, 10, 41, 3, 1000)
    write_snapshot(path, [entry, ProducerStateEntry(6, 0, last_timestamp=7)], sync=False)
    with open(path, "rb") as file:
        data = file.read()
    assert data[:2] == b"\x00\x01" and len(data) == 2 + 4 + 4 + 2 * 46
    loaded = read_snapshot(path)
    assert [
        (
            e.producer_id,
            e.producer_epoch,
            e.last_seq,
            e.last_data_offset,
            e.coordinator_epoch,
            e.current_txn_first_offset,
        )
        for e in loaded
    ] == [
        (5, 2, 10, 41, 9, 40),
        (6, 0, -1, -1, -1, None),
    ]
    assert loaded[0].batches[0].first_seq == 7 and loaded[0].batches[0].first_offset == 38
    with open(path, "r+b") as file:
        file.seek(20)
        file.write(b"\xff")
    with pytest.raises(CorruptSnapshotError):
        read_snapshot(path)


def test_corrupt_snapshot_falls_back_to_replay(tmp_path: os.PathLike[str]) -> None:
    log = open_log(tmp_path)
    produce(log, 0)
    produce(log, 2)
    log.close()
    snapshot = os.path.join(partition_dir(tmp_path), "00000000000000000004.snapshot")
    with open(snapshot, "wb") as file:
        file.write(b"garbage")
    reopened = open_log(tmp_path, recovery_point=4)
    assert reopened.producer_state.last_entry(PID).last_seq == 3  # type: ignore[union-attr]
    reopened.close()


def test_expiry(tmp_path: os.PathLike[str]) -> None:
    manager = ProducerStateManager(
        TopicPartition("t", 0), str(tmp_path), producer_id_expiration_ms=1000
    )
    info = manager.prepare_update(1, AppendOrigin.CLIENT)
    header = read_header(
        make_batch([b"a"], producer_id=1, producer_epoch=0, base_sequence=0, timestamp=5000)
    )
    info.append(header)
    manager.update(info)
    assert manager.remove_expired_producers(5999) == 0
    assert manager.remove_expired_producers(6000) == 1
    assert manager.last_entry(1) is None
