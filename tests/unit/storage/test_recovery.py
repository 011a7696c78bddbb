"""Crash safety: torn and garbage tails, corrupt indexes, leftovers (Kafka's LogLoaderTest)."""

from __future__ import annotations

import os
import random
import tempfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from odradek.protocol import records as batch
from odradek.storage import Log
from odradek.storage.offset_index import OffsetIndex
from tests.robustness.crash import (
    CORRUPT_LOG_CONFIG,
    corrupt_log_rounds,
    torn_tail_cuts,
)

from .helpers import Clock, make_batch, partition_dir, read_all, small_config


def append_nonsense(path: str, rng: random.Random, size: int) -> None:
    with open(path, "ab") as file:
        file.write(bytes(rng.randrange(256) for _ in range(size)))


def write_records(
    log: Log, rng: random.Random, count: int
) -> list[tuple[bytes | None, bytes | None, int]]:
    for n in range(count):
        value = b"test-%d-" % n + bytes(rng.randrange(256) for _ in range(rng.randrange(20)))
        log.append_as_leader(make_batch([value], keys=[b"key-%d" % n]), leader_epoch=0)
    return [(r.key, r.value, r.timestamp) for r in read_all(log)]


@pytest.mark.parametrize("clean", [False, True])
def test_corrupt_log_rounds(tmp_path: os.PathLike[str], clean: bool) -> None:
    """LogLoaderTest.testCorruptLog: 10 rounds of 50-99 records, 1-1024 random bytes
    appended to the active segment's .log and .index, reopen: log end offset = record
    count, every record identical (``tests.robustness.crash``, which the report runs)."""
    run = corrupt_log_rounds(partition_dir(tmp_path), 20240917 + clean, clean_shutdown=clean)
    assert run.failures == []
    assert run.rounds == 10
    assert 500 <= run.records_written <= 990
    assert run.records_lost == 0


def test_last_batch_truncated_at_1000_positions(tmp_path: os.PathLike[str]) -> None:
    """The last batch cut at 1,000 distinct random byte positions always recovers to the
    batch before it, every earlier record intact. In memory (tmpfs) where there is one:
    each reopening fsyncs a producer snapshot, which a busy disk makes slow."""
    with tempfile.TemporaryDirectory(dir=_tmpfs() or tmp_path) as scratch:
        run = torn_tail_cuts(partition_dir(scratch), 5)
    assert run.failures == []
    assert run.rounds == 1000
    assert run.records_lost == 0


def _tmpfs() -> str | None:
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None


def test_garbage_in_time_index_after_clean_shutdown(tmp_path: os.PathLike[str]) -> None:
    rng = random.Random(7)
    log = Log.open(partition_dir(tmp_path), CORRUPT_LOG_CONFIG, clock=Clock())
    write_records(log, rng, 60)
    active = log.active_segment
    largest = active.max_timestamp_so_far
    log.close()
    append_nonsense(active.time_index.path, rng, 24)
    log = Log.open(
        partition_dir(tmp_path),
        CORRUPT_LOG_CONFIG,
        clock=Clock(),
        clean_shutdown=True,
        recovery_point=60,
    )
    assert log.active_segment.max_timestamp_so_far == largest
    assert os.path.getsize(log.active_segment.time_index.path) % 12 == 0
    log.close()


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_torn_tail_recovers_to_last_whole_batch(data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        directory = partition_dir(tmp)
        log = Log.open(directory, small_config(index_interval_bytes=50), clock=Clock())
        counts = data.draw(st.lists(st.integers(1, 4), min_size=1, max_size=12))
        for n, count in enumerate(counts):
            log.append_as_leader(make_batch([b"b%d-%d" % (n, i) for i in range(count)]), 0)
        expected = [r.value for r in read_all(log)]
        path = log.active_segment.log_path
        log.close()
        with open(path, "rb") as file:
            content = file.read()
        ends = [h.position + h.size for h in batch.iter_headers(content)]
        cut = data.draw(st.integers(0, len(content) - 1))
        os.truncate(path, cut)
        whole = [end for end in ends if end <= cut]
        kept = sum(counts[: len(whole)])
        log = Log.open(
            directory, small_config(index_interval_bytes=50), clock=Clock(), recovery_point=0
        )
        assert log.log_end_offset == kept
        assert [r.value for r in read_all(log)] == expected[:kept]
        assert log.active_segment.size == (whole[-1] if whole else 0)
        log.close()


def test_corruption_mid_log_truncates_and_drops_later_segments(tmp_path: os.PathLike[str]) -> None:
    config = small_config(segment_bytes=400)
    log = Log.open(partition_dir(tmp_path), config, clock=Clock())
    for n in range(30):
        log.append_as_leader(make_batch([b"v%d" % n]), 0)
    segments = log.segments
    assert len(segments) >= 4
    victim = segments[1]
    with open(victim.log_path, "r+b") as file:
        file.seek(victim.size - 5)
        file.write(b"\x00\xff\x00\xff\x00")
    log.close()
    first_victim_offset = victim.base_offset
    log = Log.open(partition_dir(tmp_path), config, clock=Clock(), recovery_point=0)
    # the corrupt (last) batch of segment 1 and every later segment are gone
    assert [s.base_offset for s in log.segments] == [0, first_victim_offset]
    values = [r.value for r in read_all(log)]
    assert values == [b"v%d" % n for n in range(len(values))]
    assert log.log_end_offset == len(values) < 30
    log.close()


def test_recovery_only_scans_after_the_recovery_point(tmp_path: os.PathLike[str]) -> None:
    config = small_config(segment_bytes=400)
    log = Log.open(partition_dir(tmp_path), config, clock=Clock())
    for n in range(30):
        log.append_as_leader(make_batch([b"v%d" % n]), 0)
    log.flush()
    segments = log.segments
    log.close()
    # corrupt a batch in the first segment: below the recovery point it is not re-checked
    with open(segments[0].log_path, "r+b") as file:
        file.seek(segments[0].size - 3)
        file.write(b"\xff\xff\xff")
    recovery_point = segments[-2].base_offset
    log = Log.open(partition_dir(tmp_path), config, clock=Clock(), recovery_point=recovery_point)
    assert log.log_end_offset == 30 and log.number_of_segments == len(segments)
    log.close()


def test_missing_index_files_are_rebuilt(tmp_path: os.PathLike[str]) -> None:
    config = small_config(segment_bytes=600, index_interval_bytes=40)
    log = Log.open(partition_dir(tmp_path), config, clock=Clock())
    for n in range(40):
        log.append_as_leader(make_batch([b"v%d" % n]), 0)
    first = log.segments[0]
    with open(first.offset_index.path, "rb") as file:
        original_index = file.read()
    assert original_index
    log.close()
    os.unlink(first.offset_index.path)
    os.unlink(log.segments[1].time_index.path)
    log = Log.open(
        partition_dir(tmp_path), config, clock=Clock(), clean_shutdown=True, recovery_point=40
    )
    with open(first.offset_index.path, "rb") as file:
        assert file.read() == original_index
    assert os.path.exists(log.segments[1].time_index.path)
    assert len(read_all(log)) == 40
    log.close()


def test_corrupt_index_of_old_segment_rebuilt_on_first_use(tmp_path: os.PathLike[str]) -> None:
    config = small_config(segment_bytes=600, index_interval_bytes=40)
    log = Log.open(partition_dir(tmp_path), config, clock=Clock())
    for n in range(40):
        log.append_as_leader(make_batch([b"v%d" % n]), 0)
    first = log.segments[0]
    log.close()
    with open(first.offset_index.path, "r+b") as file:
        file.seek(8)
        file.write(b"\x00\x00\x00\x00\x7f\x00\x00\x00")  # offset goes backwards, huge position
    log = Log.open(
        partition_dir(tmp_path), config, clock=Clock(), clean_shutdown=True, recovery_point=40
    )
    assert [r.value for r in read_all(log)] == [b"v%d" % n for n in range(40)]
    index = OffsetIndex(first.offset_index.path, 0, 1 << 20)
    index.load()
    index.sanity_check(first.size)
    log.close()


def test_leftover_files_are_handled(tmp_path: os.PathLike[str]) -> None:
    directory = partition_dir(tmp_path)
    log = Log.open(directory, small_config(segment_bytes=400), clock=Clock())
    for n in range(20):
        log.append_as_leader(make_batch([b"v%d" % n]), 0)
    log.close()
    for name in (
        "00000000000000000003.log.deleted",
        "00000000000000000005.index.cleaned",
        "leader-epoch-checkpoint.tmp",
        "00000000000000000999.index",
        "00000000000000000999.log.swap",
    ):
        with open(os.path.join(directory, name), "wb") as file:
            file.write(b"junk")
    with open(os.path.join(directory, "00000000000000000000.log.cleaned"), "wb"):
        pass
    log = Log.open(
        directory,
        small_config(segment_bytes=400),
        clock=Clock(),
        clean_shutdown=True,
        recovery_point=20,
    )
    names = os.listdir(directory)
    assert not [n for n in names if n.endswith((".deleted", ".cleaned", ".tmp", ".swap"))]
    assert "00000000000000000999.index" not in names
    assert len(read_all(log)) == 20
    log.close()


def test_swap_file_replaces_the_segments_it_covers(tmp_path: os.PathLike[str]) -> None:
    """A compaction that wrote ``.swap`` files but died before renaming them: the swap
    replaces the segments in its offset range."""
    directory = partition_dir(tmp_path)
    config = small_config(segment_bytes=400)
    log = Log.open(directory, config, clock=Clock())
    for n in range(20):
        log.append_as_leader(make_batch([b"v%d" % n]), 0)
    second = log.segments[1].base_offset
    log.close()
    with open(os.path.join(directory, "00000000000000000000.log"), "rb") as file:
        content = file.read()
    first = next(batch.iter_headers(content))
    with open(os.path.join(directory, "00000000000000000000.log.swap"), "wb") as file:
        file.write(content[: first.size])  # the "compacted" segment 0 keeps offset 0 only
    log = Log.open(directory, config, clock=Clock(), clean_shutdown=True, recovery_point=20)
    assert [r.value for r in read_all(log)] == [b"v0"] + [b"v%d" % n for n in range(second, 20)]
    assert not [n for n in os.listdir(directory) if ".swap" in n]
    assert os.path.getsize(os.path.join(directory, "00000000000000000000.index")) == 0
    log.close()
