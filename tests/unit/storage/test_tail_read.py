"""A read from the offset just appended starts where that append wrote (``LocalLog``'s
last-append hint, which spares a consumer at the log end the index lookup); the hint
is dropped by anything that moves batches: truncation, a roll, another append."""

from __future__ import annotations

from pathlib import Path

import pytest

from odradek.protocol.record_codec import iter_records
from odradek.storage.log import Log
from odradek.storage.segment import LogSegment

from .helpers import Clock, make_batch, partition_dir, small_config


def tail_values(log: Log, offset: int) -> list[bytes | None]:
    info = log.read(offset, 1 << 20)
    assert info.records is not None
    return [r.value for r in iter_records(info.records.read()) if r.offset >= offset]


def test_reading_the_last_append_returns_exactly_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = Log.open(partition_dir(tmp_path), small_config(), clock=Clock())
    log.append_as_leader(make_batch([b"a", b"b", b"c"]), 0)
    first = log.append_as_leader(make_batch([b"d", b"e"]), 0).first_offset
    with monkeypatch.context() as patch:

        def no_lookup(*args: object) -> None:
            raise AssertionError("the index was searched for the offset just appended")

        patch.setattr(LogSegment, "translate_offset", no_lookup)
        info = log.read(first, 1 << 20)
    assert info.fetch_offset_metadata.relative_position > 0
    assert tail_values(log, first) == [b"d", b"e"]
    # The same read on a reopened log (no hint) finds the same place.
    log.close()
    reopened = Log.open(partition_dir(tmp_path), small_config(), clock=Clock())
    again = reopened.read(first, 1 << 20)
    assert again.fetch_offset_metadata == info.fetch_offset_metadata
    assert tail_values(reopened, first) == [b"d", b"e"]


def test_a_truncation_drops_the_hint(tmp_path: Path) -> None:
    log = Log.open(partition_dir(tmp_path), small_config(), clock=Clock())
    log.append_as_leader(make_batch([b"a"]), 0)
    log.append_as_leader(make_batch([b"b", b"c", b"d"]), 0)  # offsets 1-3, hint at 1
    log.truncate_to(1)
    log.append_as_leader(make_batch([b"x" * 50]), 0)  # offset 1 again, hint at 1
    log.truncate_to(1)
    log.append_as_follower(make_batch([b"y", b"z"], base_offset=1))  # a follower's append
    assert tail_values(log, 1) == [b"y", b"z"]
    assert tail_values(log, 2) == [b"z"]  # inside the batch: the index lookup


def test_a_read_past_a_roll_and_inside_a_batch(tmp_path: Path) -> None:
    log = Log.open(partition_dir(tmp_path), small_config(segment_bytes=300), clock=Clock())
    for n in range(12):
        log.append_as_leader(make_batch([b"v%d" % n, b"w%d" % n]), 0)
    assert log.number_of_segments > 1
    end = log.log_end_offset
    assert tail_values(log, end - 2) == [b"v11", b"w11"]
    assert tail_values(log, end - 1) == [b"w11"]
    assert tail_values(log, 0)[:2] == [b"v0", b"w0"]
