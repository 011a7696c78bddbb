"""Offset/time index lookups and persistence; segment reads; file regions' lifetime."""

from __future__ import annotations

import gc
import os
import struct
import tempfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from odradek.protocol.record_codec import iter_records
from odradek.storage import Log
from odradek.storage.errors import CorruptIndexError
from odradek.storage.file_records import FileHandle, HandleCache
from odradek.storage.offset_index import OffsetIndex
from odradek.storage.segment import LogSegment
from odradek.storage.time_index import TimeIndex

from .helpers import Clock, make_batch, partition_dir, read_all, small_config


def test_offset_index_lookup_persist_and_truncate(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(tmp_path, "00000000000000000100.index")
    index = OffsetIndex(path, 100, 8 * 10)
    index.mark_empty()
    for n in range(1, 6):
        index.append(100 + 10 * n, 1000 * n)
    assert index.lookup(99) == (100, 0)
    assert index.lookup(110) == (110, 1000)
    assert index.lookup(125) == (120, 2000)
    assert index.lookup(10**9) == (150, 5000)
    with pytest.raises(ValueError):
        index.append(150, 6000)
    index.persist()
    with open(path, "rb") as file:
        assert file.read() == b"".join(struct.pack(">ii", 10 * n, 1000 * n) for n in range(1, 6))
    index.truncate_to(130)
    assert index.entries == 2 and os.path.getsize(path) == 16
    reloaded = OffsetIndex(path, 100, 80)
    assert reloaded.lookup(135) == (120, 2000) and not index.is_full()
    for n in range(3, 11):
        index.append(100 + 10 * n, 1000 * n)
    assert index.is_full()


def test_time_index_lookup_and_append_rules(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(tmp_path, "00000000000000000000.timeindex")
    index = TimeIndex(path, 0, 12 * 4)
    index.mark_empty()
    assert index.lookup(5) == (-1, 0)
    index.maybe_append(1000, 3)
    index.maybe_append(1000, 5)  # not larger: ignored
    index.maybe_append(2000, 9)
    assert index.entries == 2
    assert index.lookup(999) == (-1, 0)
    assert index.lookup(1500) == (1000, 3)
    assert index.lookup(2000) == (2000, 9)
    assert index.is_full() is False
    index.maybe_append(3000, 12)
    assert index.is_full()  # the last slot is kept for roll / close
    index.maybe_append(4000, 15, skip_full_check=True)
    index.persist()
    assert os.path.getsize(path) == 48
    assert TimeIndex(path, 0, 48).peek_last_entry() == (4000, 15)
    index.truncate_to(9)
    assert index.last_entry() == (1000, 3)


@pytest.mark.parametrize(
    "content",
    [b"\x00" * 7, struct.pack(">iiii", 5, 100, 4, 200), struct.pack(">iiii", 5, 100, 6, 100)],
)
def test_offset_index_sanity_checks(tmp_path: os.PathLike[str], content: bytes) -> None:
    path = os.path.join(tmp_path, "00000000000000000000.index")
    with open(path, "wb") as file:
        file.write(content)
    with pytest.raises(CorruptIndexError):
        index = OffsetIndex(path, 0, 1 << 20)
        index.load()


def test_offset_index_must_stay_inside_the_log(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(tmp_path, "00000000000000000000.index")
    with open(path, "wb") as file:
        file.write(struct.pack(">ii", 5, 4096))
    index = OffsetIndex(path, 0, 1 << 20)
    index.load()
    index.sanity_check(5000)
    with pytest.raises(CorruptIndexError):
        index.sanity_check(4096)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(1, 5000), min_size=1, max_size=200), st.integers(0, 10**6))
def test_offset_index_lookup_matches_linear_search(gaps: list[int], target: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        index = OffsetIndex(os.path.join(tmp, "x.index"), 0, 1 << 20)
        index.mark_empty()
        offset = position = 0
        entries = []
        for gap in gaps:
            offset += gap
            position += gap * 3
            index.append(offset, position)
            entries.append((offset, position))
        expected = max((e for e in entries if e[0] <= target), default=(0, 0))
        assert index.lookup(target) == expected
        index.persist()
        reloaded = OffsetIndex(index.path, 0, 1 << 20)
        assert reloaded.lookup(target) == expected


def test_segment_is_lazy(tmp_path: os.PathLike[str]) -> None:
    log = Log.open(partition_dir(tmp_path), small_config(index_interval_bytes=10), clock=Clock())
    for n in range(10):
        log.append_as_leader(make_batch([b"v%d" % n]), 0)
    log.close()
    segment = LogSegment(
        partition_dir(tmp_path), 0, index_interval_bytes=10, max_index_size=1 << 20, clock=Clock()
    )
    assert segment._handle is None and not segment.offset_index.loaded
    assert segment.read_next_offset() == 10
    assert segment.offset_index.loaded and segment.offset_index.entries == 9
    header = segment.translate_offset(4)
    assert header is not None and header.base_offset == 4
    segment.close()


def test_regions_outlive_segment_handles_and_deletion(tmp_path: os.PathLike[str]) -> None:
    cache = HandleCache(1)
    log = Log.open(
        partition_dir(tmp_path), small_config(segment_bytes=300), clock=Clock(), handle_cache=cache
    )
    for n in range(12):
        log.append_as_leader(make_batch([b"value-%d" % n]), 0)
    log.update_high_watermark(log.log_end_offset)
    first = log.read(0, 1 << 20)
    assert first.records is not None
    expected = first.records.read()
    # touching another segment evicts the first one's descriptor from the cache
    log.read(log.active_segment.base_offset, 100)
    assert log.segments[0]._handle is None
    assert first.records.read() == expected
    # retention deletes the file; the region still reads through its own descriptor
    log.maybe_increment_log_start_offset(log.segments[1].base_offset)
    log.delete_old_segments()
    log.delete_pending_files(2**62)
    assert not os.path.exists(os.path.join(partition_dir(tmp_path), "00000000000000000000.log"))
    assert first.records.read() == expected
    fd = first.records.fileno()
    del first, expected
    gc.collect()
    with pytest.raises(OSError):
        os.fstat(fd)
    log.close()


def test_file_handle_closes_once(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(tmp_path, "f")
    with open(path, "wb") as file:
        file.write(b"hello world")
    handle = FileHandle.open(path, writable=False)
    assert handle.pread(5, 6) == b"world"
    handle.close()
    handle.close()
    with pytest.raises(ValueError):
        handle.fileno()


def test_sendfile_from_a_region(tmp_path: os.PathLike[str]) -> None:
    log = Log.open(partition_dir(tmp_path), small_config(), clock=Clock())
    log.append_as_leader(make_batch([b"a" * 100, b"b" * 100]), 0)
    info = log.read(0, 1 << 20)
    assert info.records is not None
    out_path = os.path.join(tmp_path, "out")
    with open(out_path, "wb") as out:
        sent = os.sendfile(
            out.fileno(), info.records.fileno(), info.records.position, info.records.size
        )
    assert sent == info.records.size
    with open(out_path, "rb") as file:
        assert [r.value for r in iter_records(file.read())] == [b"a" * 100, b"b" * 100]
    assert len(read_all(log)) == 2
    log.close()
