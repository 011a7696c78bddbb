"""The log cleaner on real logs: deduplication by key, tombstones and their delete
horizon, transactions, the producer's last batch, a full offset map, the dirty ratio
and compaction lags, and crashes in the middle of a swap."""

from __future__ import annotations

import dataclasses
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from odradek.protocol.record_codec import BatchSpec, NewRecord, build_batch, build_end_txn_marker
from odradek.protocol.records import DELETE_HORIZON_FLAG, CompressionType
from odradek.protocol.types import TopicPartition
from odradek.storage import log_files
from odradek.storage.cleaner.cleaner import Cleaner, CleaningResult, Throttler
from odradek.storage.cleaner.manager import LogCleanerManager
from odradek.storage.file_records import FileHandle, iter_headers
from odradek.storage.log import Log
from odradek.storage.values import AppendOrigin

from .helpers import START_MS, Clock, make_batch, partition_dir, read_all, small_config

TP = TopicPartition("topic", 0)
DAY = 86_400_000


def compact_config(**overrides: Any) -> Any:
    base = small_config(
        cleanup_policy=("compact",), segment_bytes=4096, min_cleanable_dirty_ratio=0.01
    )
    return dataclasses.replace(base, **overrides)


class Harness:
    def __init__(self, path: Path, *, memory: int = 1 << 20, **config: Any) -> None:
        self.path = path
        self.clock = Clock()
        self.config = compact_config(**config)
        self.log = self.open()
        self.manager = LogCleanerManager(lambda: {TP: self.log})
        self.cleaner = Cleaner(memory, clock=self.clock)

    def open(self) -> Log:
        return Log.open(partition_dir(self.path), self.config, clock=self.clock)

    def reopen(self) -> None:
        self.log.close()
        self.log = self.open()

    def put(self, pairs: list[tuple[bytes, bytes | None]], **kwargs: Any) -> None:
        keys = [k for k, _ in pairs]
        values = [v for _, v in pairs]
        self.log.append_as_leader(
            make_batch(values, keys=keys, timestamp=self.clock(), **kwargs), 0
        )
        self.log.update_high_watermark(self.log.log_end_offset)

    def clean(self) -> CleaningResult | None:
        plan = self.manager.grab_filthiest_log(self.clock())
        if plan is None:
            return None
        result = self.cleaner.clean(plan)
        assert self.manager.done_cleaning(plan, result)
        return result

    def latest(self) -> dict[bytes, tuple[int, bytes | None]]:
        out: dict[bytes, tuple[int, bytes | None]] = {}
        for record in read_all(self.log):
            assert record.key is not None
            out[record.key] = (record.offset, record.value)
        return out


def updates(h: Harness, rounds: int, keys: int = 10) -> dict[bytes, bytes]:
    expected: dict[bytes, bytes] = {}
    for n in range(rounds):
        pairs: list[tuple[bytes, bytes | None]] = [
            (b"k%d" % k, b"v%d-%d" % (k, n) + b"." * 40) for k in range(keys)
        ]
        h.put(pairs)
        expected.update((k, v) for k, v in pairs if v is not None)
    return expected


def test_keeps_the_last_value_of_every_key_at_its_offset(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    expected = updates(h, 40)
    h.log.roll()
    before = {r.key: (r.offset, r.value) for r in read_all(h.log)}
    end, size = h.log.log_end_offset, h.log.size_in_bytes
    result = h.clean()
    assert result is not None and result.end_offset == end
    records = read_all(h.log)
    assert len(records) == 10
    assert {r.key: r.value for r in records} == expected
    assert {r.key: (r.offset, r.value) for r in records} == before
    assert h.log.log_end_offset == end
    assert h.log.size_in_bytes < size / 20
    # Nothing dirty is left: no second cleaning.
    assert h.clean() is None
    # The next cleaning groups the small cleaned segments into one.
    segments = h.log.number_of_segments
    h.put([(b"k1", b"again")])
    h.log.roll()
    assert h.clean() is not None
    assert h.log.number_of_segments < segments
    expected[b"k1"] = b"again"
    h.reopen()
    assert {r.key: r.value for r in read_all(h.log)} == expected


def test_never_cleans_the_active_segment(tmp_path: Path) -> None:
    h = Harness(tmp_path, segment_bytes=1 << 20)
    updates(h, 5)
    assert h.clean() is None
    assert len(read_all(h.log)) == 50


def test_tombstones_go_once_their_delete_horizon_passed(tmp_path: Path) -> None:
    h = Harness(tmp_path, delete_retention_ms=DAY)
    updates(h, 10)
    h.put([(b"k1", None), (b"k2", None)])
    h.log.roll()
    h.clean()
    latest = h.latest()
    assert latest[b"k1"][1] is None and latest[b"k2"][1] is None
    assert len(latest) == 10
    # The batch holding the tombstones carries its delete horizon now.
    flagged = [
        header
        for segment in h.log.segments
        for header in segment.iter_headers()
        if header.attributes & DELETE_HORIZON_FLAG
    ]
    assert [f.base_timestamp for f in flagged] == [h.clock() + DAY]
    # Timestamps survive the horizon rewrite.
    assert {r.timestamp for r in read_all(h.log)} == {START_MS}
    assert h.clean() is None
    h.clock.advance(DAY)
    assert h.clean() is not None
    assert sorted(h.latest()) == [b"k%d" % k for k in (0, 3, 4, 5, 6, 7, 8, 9)]


def test_a_key_written_again_after_its_tombstone_lives(tmp_path: Path) -> None:
    h = Harness(tmp_path, delete_retention_ms=0)
    h.put([(b"a", b"1")])
    h.put([(b"a", None)])
    h.put([(b"a", b"2")])
    h.log.roll()
    h.clean()
    h.clock.advance(1)
    h.clean()
    assert [(r.key, r.value) for r in read_all(h.log)] == [(b"a", b"2")]


def test_compressed_batches_are_rebuilt_with_their_codec(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    for n in range(20):
        h.put(
            [(b"k%d" % k, b"v%d" % n + b"x" * 50) for k in range(5)],
            compression=CompressionType.GZIP,
        )
    h.log.roll()
    h.clean()
    records = read_all(h.log)
    assert {r.key: r.value for r in records} == {b"k%d" % k: b"v19" + b"x" * 50 for k in range(5)}
    compressions = {h.compression for s in h.log.segments for h in s.iter_headers()}
    assert compressions == {CompressionType.GZIP}


def test_a_full_offset_map_cleans_part_of_the_log_and_the_rest_later(tmp_path: Path) -> None:
    h = Harness(tmp_path, memory=136 * 40, segment_bytes=2048)
    for n in range(6):
        h.put([(b"k%d-%d" % (n, k), b"v" * 20) for k in range(30)])
        h.put([(b"k%d-%d" % (n, k), b"w" * 20) for k in range(30)])
    h.log.roll()
    end = h.log.log_end_offset
    first = h.clean()
    assert first is not None and first.end_offset < end
    assert h.manager.checkpoint(TP) == first.end_offset
    while (result := h.clean()) is not None:
        assert result.end_offset <= end
    assert h.manager.checkpoint(TP) == end
    values = {r.key: r.value for r in read_all(h.log)}
    assert len(values) == 180 and set(values.values()) == {b"w" * 20}
    assert len(read_all(h.log)) == 180


def test_min_compaction_lag_keeps_young_segments_dirty(tmp_path: Path) -> None:
    h = Harness(tmp_path, min_compaction_lag_ms=60_000)
    updates(h, 20)
    h.log.roll()
    assert h.clean() is None
    h.clock.advance(60_000)
    assert h.clean() is not None
    assert len(read_all(h.log)) == 10


def test_dirty_ratio_below_the_minimum_waits(tmp_path: Path) -> None:
    h = Harness(tmp_path, min_cleanable_dirty_ratio=0.5)
    updates(h, 40)
    h.log.roll()
    assert h.clean() is not None
    # A little more dirt over a clean log: under the ratio, nothing to do.
    h.put([(b"k1", b"again")])
    h.log.roll()
    assert h.clean() is None


def test_max_compaction_lag_forces_a_cleaning_below_the_ratio(tmp_path: Path) -> None:
    h = Harness(tmp_path, min_cleanable_dirty_ratio=1.0, max_compaction_lag_ms=60_000)
    updates(h, 5)
    h.log.roll()
    assert h.clean() is None
    h.clock.advance(60_001)
    assert h.clean() is not None
    assert len(read_all(h.log)) == 10


# -- transactions ---------------------------------------------------------------------------

PID = 7


def txn_put(h: Harness, pairs: list[tuple[bytes, bytes]], seq: int) -> None:
    spec = BatchSpec(producer_id=PID, producer_epoch=0, base_sequence=seq, transactional=True)
    data = build_batch([NewRecord(key=k, value=v, timestamp=h.clock()) for k, v in pairs], spec)
    h.log.append_as_leader(data, 0)


def end_txn(h: Harness, *, commit: bool) -> None:
    data = build_end_txn_marker(PID, 0, commit=commit, coordinator_epoch=0, timestamp=h.clock())
    h.log.append_as_leader(data, 0, origin=AppendOrigin.COORDINATOR)
    h.log.update_high_watermark(h.log.log_end_offset)


def control_batches(log: Log) -> int:
    return sum(1 for s in log.segments for header in s.iter_headers() if header.is_control)


def test_aborted_records_go_and_their_marker_after_its_horizon(tmp_path: Path) -> None:
    h = Harness(tmp_path, delete_retention_ms=1000)
    h.put([(b"a", b"1"), (b"b", b"1")])
    txn_put(h, [(b"a", b"aborted"), (b"c", b"aborted")], 0)
    end_txn(h, commit=False)
    txn_put(h, [(b"b", b"committed")], 2)
    end_txn(h, commit=True)
    h.put([(b"z", b"pad" * 400)])
    h.log.roll()
    h.clean()
    assert {r.key: r.value for r in read_all(h.log) if r.key in (b"a", b"b", b"c")} == {
        b"a": b"1",
        b"b": b"committed",
    }
    # The markers stay while their transactions still had data in this pass.
    assert control_batches(h.log) == 2
    # The next cleaning (more dirt came) finds the aborted transaction empty and gives
    # its marker a delete horizon; once that passed, the one after removes it.
    h.put([(b"z", b"pad" * 400)])
    h.log.roll()
    assert h.clean() is not None
    assert control_batches(h.log) == 2
    h.clock.advance(1000)
    assert h.clean() is not None  # the horizon passed: no dirt needed
    # The commit marker stays while its transaction's record does.
    assert control_batches(h.log) == 1
    assert {r.key: r.value for r in read_all(h.log) if r.key in (b"a", b"b", b"c")} == {
        b"a": b"1",
        b"b": b"committed",
    }


def test_the_last_batch_of_a_producer_stays_empty_so_its_sequence_survives(
    tmp_path: Path,
) -> None:
    h = Harness(tmp_path)
    h.log.append_as_leader(
        make_batch([b"old"], keys=[b"k"], producer_id=9, producer_epoch=0, base_sequence=0), 0
    )
    h.put([(b"k", b"new"), (b"pad", b"x" * 3000)])
    h.log.roll()
    h.clean()
    assert next((r.key, r.value) for r in read_all(h.log)) == (b"k", b"new")
    empty = [hd for s in h.log.segments for hd in s.iter_headers() if hd.records_count == 0]
    assert [(e.producer_id, e.base_sequence, e.base_offset) for e in empty] == [(9, 0, 0)]
    h.reopen()
    # The producer goes on at sequence 1: no OutOfOrderSequence after the cleaning.
    h.log.append_as_leader(
        make_batch([b"next"], keys=[b"k"], producer_id=9, producer_epoch=0, base_sequence=1), 0
    )


# -- crashes ----------------------------------------------------------------------------------


def test_leftover_cleaned_files_are_deleted_at_start(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    expected = updates(h, 40)
    h.log.roll()
    plan = h.manager.grab_filthiest_log(h.clock())
    assert plan is not None
    h.cleaner.clean(plan)  # written, never swapped: the broker died here
    assert any(n.endswith(".cleaned") for n in os.listdir(h.log.dir))
    h.reopen()
    assert not any(n.endswith(".cleaned") for n in os.listdir(h.log.dir))
    assert {r.key: r.value for r in read_all(h.log)} == expected
    assert len(read_all(h.log)) == 400


@pytest.mark.parametrize("renamed_old", [0, 1, "all"])
def test_an_interrupted_swap_is_completed_at_start(tmp_path: Path, renamed_old: int | str) -> None:
    """The broker died after the cleaned files became ``.swap``, with none, some or all of
    the old segments renamed ``.deleted``: recovery completes the swap."""
    h = Harness(tmp_path, delete_retention_ms=0)
    expected = updates(h, 40)
    h.put([(b"k3", None)])
    expected.pop(b"k3")
    h.log.roll()
    h.clean()  # the tombstone gets its horizon
    h.clock.advance(1)
    plan = h.manager.grab_filthiest_log(h.clock())
    assert plan is not None
    result = h.cleaner.clean(plan)
    directory = h.log.dir
    h.log.close()
    for cleaned in result.segments:
        for suffix in ("log", "index", "timeindex", "txnindex"):
            path = os.path.join(directory, f"{cleaned.base_offset:020d}.{suffix}.cleaned")
            if os.path.exists(path):
                os.rename(path, path[: -len(".cleaned")] + ".swap")
    old = [s for c in result.segments for s in c.replaces]
    count = len(old) if renamed_old == "all" else int(renamed_old)
    for segment in old[:count]:
        os.rename(segment.log_path, segment.log_path + ".deleted")
    h.log = h.open()
    names = os.listdir(directory)
    assert not any(n.endswith((".swap", ".deleted", ".cleaned")) for n in names)
    assert {r.key: r.value for r in read_all(h.log)} == expected


def test_a_log_truncated_while_being_cleaned_is_not_swapped(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    updates(h, 40)
    h.log.roll()
    plan = h.manager.grab_filthiest_log(h.clock())
    assert plan is not None
    result = h.cleaner.clean(plan)
    h.log.truncate_to(100)
    assert not h.manager.done_cleaning(plan, result)
    assert not any(n.endswith(".cleaned") for n in os.listdir(h.log.dir))
    assert len(read_all(h.log)) == 100


def test_cleaned_segments_read_back_with_valid_crcs(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    updates(h, 40)
    h.put([(b"k0", None)])
    h.log.roll()
    h.clean()
    copy = tmp_path / "copy" / "topic-0"
    shutil.copytree(h.log.dir, copy)
    h.log.close()
    # An unclean start validates every batch's CRC: all of the cleaned ones pass.
    for name in os.listdir(copy):
        if name.endswith(log_files.LOG_FILE_SUFFIX):
            path = str(copy / name)
            handle = FileHandle.open(path, writable=False)
            headers = list(iter_headers(handle, 0, os.path.getsize(path)))
            handle.close()
            assert sum(x.size for x in headers) == os.path.getsize(path)
    reopened = Log.open(str(copy), h.config, clock=h.clock, recovery_point=0)
    assert len(read_all(reopened)) == 10


def test_the_throttler_holds_reads_to_the_rate() -> None:
    abort = threading.Event()
    throttler = Throttler(4 << 20, abort)
    started = time.monotonic()
    for _ in range(12):
        throttler.maybe_throttle(256 << 10)  # 3 MiB at 4 MiB/s
    assert time.monotonic() - started >= 0.5
    unlimited = Throttler(Throttler.UNLIMITED, abort)
    started = time.monotonic()
    for _ in range(1000):
        unlimited.maybe_throttle(1 << 20)
    assert time.monotonic() - started < 0.5


def test_a_truncation_moves_the_checkpoint_back_to_the_truncation_point(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    updates(h, 40)
    h.log.roll()
    h.clean()
    assert h.manager.checkpoint(TP) == 400
    h.log.truncate_to(300)
    # A new leader's data arrives above the truncation point before the cleaner looks.
    updates(h, 20)
    h.log.roll()
    plan = h.manager.grab_filthiest_log(h.clock())
    assert plan is not None and plan.first_dirty_offset == 300
