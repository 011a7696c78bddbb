"""Transactions across restarts, truncation and retention: a clean restart and a
recovery (without snapshots or transaction indexes) rebuild the same producer state,
last stable offset and ``.txnindex`` files; truncation drops entries past the new end;
retention deletes the index with its segment."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from odradek.storage import log_files
from odradek.storage.errors import CorruptIndexError
from odradek.storage.log import Log
from odradek.storage.txn_index import ENTRY_SIZE, TransactionIndex, TxnIndexEntry
from odradek.storage.values import AbortedTxn

from .helpers import Clock, partition_dir, small_config
from .test_transactions import (
    A,
    B,
    C,
    Producer,
    catch_up,
    end_txn,
    entries,
    index_files,
    interleaved,
    plain,
)

SEGMENT_BYTES = 700


def open_log(path: Path, segment_bytes: int = SEGMENT_BYTES, **kwargs: Any) -> Log:
    return Log.open(
        partition_dir(path), small_config(segment_bytes=segment_bytes), clock=Clock(), **kwargs
    )


def long_history(log: Log) -> None:
    """Over several segments: B's transaction stays open from offset 0 while A's are
    aborted and committed (their entries' last stable offset is B's first offset) and C
    writes idempotently; then B aborts, A opens a transaction that stays open, and B's
    next aborts are indexed against it."""
    a, b, c = Producer(log, A), Producer(log, B), Producer(log, C)
    b.send(1)
    for round_ in range(6):
        a.send(1)
        plain(log, 1, 150)
        end_txn(log, A, commit=round_ % 2 == 1)
        c.send(1, transactional=False)
    end_txn(log, B, commit=False)
    a.send(1)
    for _ in range(2):
        b.send(1)
        plain(log, 1, 150)
        end_txn(log, B, commit=False)
    catch_up(log)


def observe(log: Log) -> tuple[object, ...]:
    end = log.log_end_offset
    ranges = [(0, end), (0, 3), (5, 12), (12, end), (end - 4, end)]
    return (
        log.log_end_offset,
        log.active_producers(),
        log.first_unstable_offset,
        log.last_stable_offset,
        index_files(log),
        [log.collect_aborted_transactions(s, e) for s, e in ranges],
    )


def test_history_spans_segments_and_indexes_what_kafka_would(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    long_history(log)
    assert log.number_of_segments >= 4
    assert len(index_files(log)) >= 2
    all_entries = [e for data in index_files(log).values() for e in entries(data)]
    a_entries = [e for e in all_entries if e[1] == A]
    assert len(a_entries) == 3 and all(e[4] == 0 for e in a_entries)  # B open from 0
    b_entries = [e for e in all_entries if e[1] == B]
    a_open = log.first_unstable_offset
    assert a_open is not None and a_open > 0
    assert b_entries[0][2] == 0 and b_entries[0][4] == b_entries[0][3] + 1
    assert [e[4] for e in b_entries[1:]] == [a_open, a_open]
    assert log.last_stable_offset == a_open
    log.close()


def test_clean_restart_restores_the_same_state(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    long_history(log)
    before = observe(log)
    end, high_watermark = log.log_end_offset, log.high_watermark
    log.flush()
    log.close()
    again = open_log(
        tmp_path, clean_shutdown=True, recovery_point=end, high_watermark=high_watermark
    )
    assert observe(again) == before
    again.close()


def test_recovery_without_snapshots_or_indexes_rebuilds_them(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    long_history(log)
    before = observe(log)
    high_watermark = log.high_watermark
    log.close()
    for name in os.listdir(log.dir):
        if name.endswith(
            (log_files.PRODUCER_SNAPSHOT_FILE_SUFFIX, log_files.TXN_INDEX_FILE_SUFFIX)
        ):
            os.unlink(os.path.join(log.dir, name))
    again = open_log(
        tmp_path, clean_shutdown=False, recovery_point=0, high_watermark=high_watermark
    )
    assert observe(again) == before
    again.close()


def test_recovery_of_later_segments_starts_from_their_snapshot(tmp_path: Path) -> None:
    """Only segments after the recovery point are recovered; their entries depend on
    B's transaction opened in the first segment, known from the roll's snapshot."""
    log = open_log(tmp_path)
    long_history(log)
    before = observe(log)
    high_watermark = log.high_watermark
    recovery_point = log.segments[2].base_offset
    log.close()
    names = os.listdir(log.dir)
    removed = 0
    for name in names:
        offset = log_files.offset_from_file_name(name)
        if name.endswith(log_files.TXN_INDEX_FILE_SUFFIX) and (offset or 0) >= recovery_point:
            os.unlink(os.path.join(log.dir, name))
            removed += 1
    assert removed >= 1
    assert f"{recovery_point:020d}.snapshot" in names
    again = open_log(
        tmp_path,
        clean_shutdown=False,
        recovery_point=recovery_point,
        high_watermark=high_watermark,
    )
    assert observe(again) == before
    again.close()


def test_replay_keeps_completed_transactions_unstable_above_the_high_watermark(
    tmp_path: Path,
) -> None:
    log = open_log(tmp_path)
    a = Producer(log, A)
    plain(log)
    a.send()  # 2-3
    end_txn(log, A, commit=True)  # 4
    log.close()
    for name in os.listdir(log.dir):
        if name.endswith(log_files.PRODUCER_SNAPSHOT_FILE_SUFFIX):
            os.unlink(os.path.join(log.dir, name))
    again = open_log(tmp_path, clean_shutdown=False, recovery_point=0, high_watermark=4)
    assert (again.first_unstable_offset, again.last_stable_offset) == (2, 2)
    again.update_high_watermark(5)
    assert (again.first_unstable_offset, again.last_stable_offset) == (None, 5)
    again.close()


def test_corrupt_txn_index_is_rebuilt_at_start_up(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    interleaved(log)
    catch_up(log)
    before = observe(log)
    end = log.log_end_offset
    log.flush()
    log.close()
    (name,) = index_files(log)
    path = Path(log.dir) / name
    data = bytearray(path.read_bytes())
    data[ENTRY_SIZE] = 9  # the second entry's version
    path.write_bytes(data)
    again = open_log(tmp_path, clean_shutdown=True, recovery_point=end, high_watermark=end)
    assert observe(again) == before
    again.close()


def test_torn_entry_is_ignored_and_cut_off_by_the_next_abort(tmp_path: Path) -> None:
    log = open_log(tmp_path, 1 << 20)
    interleaved(log)
    end = log.log_end_offset
    log.flush()
    log.close()
    (name,) = index_files(log)
    path = Path(log.dir) / name
    with open(path, "ab") as file:
        file.write(b"\x00" * 10)
    again = open_log(tmp_path, 1 << 20, clean_shutdown=True, recovery_point=end, high_watermark=end)
    assert again.collect_aborted_transactions(0, end) == [AbortedTxn(A, 0), AbortedTxn(C, 8)]
    b = Producer(again, B)
    b.seq = 2
    b.send()
    end_txn(again, B, commit=False)
    assert path.stat().st_size == 3 * ENTRY_SIZE
    assert [e[1] for e in entries(path.read_bytes())] == [A, C, B]
    again.close()


# -- truncation ------------------------------------------------------------------------------


def test_truncation_drops_the_entries_of_removed_markers(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    interleaved(log)
    b = Producer(log, B)
    b.seq = 2
    b.send()  # 11-12
    catch_up(log)
    assert log.truncate_to(10)  # C's abort marker goes
    (data,) = index_files(log).values()
    assert entries(data) == [(0, A, 0, 6, 2)]
    assert log.collect_aborted_transactions(0, 20) == [AbortedTxn(A, 0)]
    assert log.producer_state.ongoing_txns == {8: C}
    assert (log.high_watermark, log.last_stable_offset) == (10, 8)
    assert end_txn(log, C, commit=False).first_offset == 10
    (data,) = index_files(log).values()
    assert entries(data) == [(0, A, 0, 6, 2), (0, C, 8, 10, 11)]
    log.close()


def test_truncation_across_segments(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    long_history(log)
    keep = log.segments[1].base_offset
    kept_files = {
        name: data
        for name, data in index_files(log).items()
        if (log_files.offset_from_file_name(name) or 0) < keep
    }
    log.truncate_to(keep)
    assert index_files(log) == kept_files
    ongoing = log.producer_state.ongoing_txns
    assert ongoing and next(iter(ongoing)) == 0  # B's transaction is open again
    log.truncate_fully_and_start_at(100)
    assert index_files(log) == {}
    assert (log.first_unstable_offset, log.last_stable_offset) == (None, 100)
    assert log.collect_aborted_transactions(100, 200) == []
    log.close()


# -- retention ---------------------------------------------------------------------------------


def test_retention_deletes_txn_indexes_with_their_segments(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    a = Producer(log, A)
    for _ in range(6):
        a.send(1)
        end_txn(log, A, commit=False)
        plain(log, 1, 300)
    catch_up(log)
    files = index_files(log)
    assert len(files) >= 3
    cut = log.segments[2].base_offset
    log.maybe_increment_log_start_offset(cut)
    assert log.delete_old_segments() == 2
    names = os.listdir(log.dir)
    deleted = [n for n in names if n.endswith(log_files.TXN_INDEX_FILE_SUFFIX + ".deleted")]
    assert len(deleted) == sum(1 for n in files if (log_files.offset_from_file_name(n) or 0) < cut)
    log.delete_pending_files(2**62)
    names = os.listdir(log.dir)
    assert not [n for n in names if n.endswith(".deleted")]
    assert {n: d for n, d in files.items() if (log_files.offset_from_file_name(n) or 0) >= cut} == (
        index_files(log)
    )
    found = log.collect_aborted_transactions(cut, log.log_end_offset)
    assert found and all(txn.first_offset >= cut - 2 for txn in found)
    log.close()


# -- the index file itself -----------------------------------------------------------------------


def test_txn_index_file_operations(tmp_path: Path) -> None:
    path = str(tmp_path / "00000000000000000100.txnindex")
    index = TransactionIndex(path, 100)
    assert index.entries == []
    assert not os.path.exists(path)
    index.append(TxnIndexEntry(1, 90, 105, 100))
    index.append(TxnIndexEntry(2, 101, 110, 120))
    with pytest.raises(ValueError):
        index.append(TxnIndexEntry(3, 100, 110, 120))
    assert os.path.getsize(path) == 2 * ENTRY_SIZE
    index.unload()
    assert not index.loaded
    out: list[AbortedTxn] = []
    assert not index.collect(106, 125, out)  # nothing reaches 125: go on in the next segment
    assert out == [AbortedTxn(2, 101)]
    out = []
    assert index.collect(106, 120, out)  # the second entry's LSO reaches 120
    assert index.collect(111, 100, out)  # an earlier entry's LSO already reaches it
    assert out == [AbortedTxn(2, 101)]
    index.truncate_to(110)
    assert os.path.getsize(path) == ENTRY_SIZE
    assert index.entries == [TxnIndexEntry(1, 90, 105, 100)]
    again = TransactionIndex(path, 100)
    again.sanity_check()
    assert again.entries == [TxnIndexEntry(1, 90, 105, 100)]
    bad = TransactionIndex(path, 106)  # the entry's marker is below this base offset
    with pytest.raises(CorruptIndexError):
        bad.sanity_check()
    index.rename(path + ".deleted")
    assert os.path.exists(path + ".deleted") and not os.path.exists(path)
    index.delete()
    assert not os.path.exists(path + ".deleted")
    assert TransactionIndex(path, 100, exists=False).loaded


def test_tail_validation_drops_the_entry_of_a_torn_marker(tmp_path: Path) -> None:
    log = open_log(tmp_path, 1 << 20)
    interleaved(log)  # C's abort marker is the last batch, at 10
    end = log.log_end_offset
    segment_path = log.active_segment.log_path
    log.flush()
    log.close()
    with open(segment_path, "r+b") as file:  # corrupt the marker's control record
        file.seek(-1, os.SEEK_END)
        last = file.read(1)
        file.seek(-1, os.SEEK_END)
        file.write(bytes([last[0] ^ 0xFF]))
    again = open_log(tmp_path, 1 << 20, clean_shutdown=True, recovery_point=10, high_watermark=end)
    assert again.log_end_offset == 10
    (data,) = index_files(again).values()
    assert entries(data) == [(0, A, 0, 6, 2)]
    assert again.producer_state.ongoing_txns == {8: C}
    assert again.last_stable_offset == 8
    again.close()


def test_flush_jobs_sync_the_txn_index_only_once_written(tmp_path: Path) -> None:
    jobs: list[Any] = []
    log = Log.open(
        partition_dir(tmp_path),
        small_config(segment_bytes=SEGMENT_BYTES),
        clock=Clock(),
        flush_scheduler=jobs.append,
    )
    plain(log, 1, 300)
    plain(log, 1, 300)
    plain(log, 1, 300)  # rolls
    assert jobs and not any(p.endswith(log_files.TXN_INDEX_FILE_SUFFIX) for p in jobs[-1].paths)
    a = Producer(log, A)
    a.send(1)
    end_txn(log, A, commit=False)
    (name,) = index_files(log)
    count = len(jobs)
    while len(jobs) == count:
        plain(log, 1, 300)
    assert os.path.join(log.dir, name) in jobs[-1].paths
    for job in jobs:
        job.run()
        job.complete()
    log.close()
