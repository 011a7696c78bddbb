"""ListOffsets by timestamp, retention, DeleteRecords, truncation and follower appends."""

from __future__ import annotations

import os

import pytest

from odradek.protocol import records as batch
from odradek.protocol.records import CompressionType
from odradek.storage import (
    EARLIEST_TIMESTAMP,
    LATEST_TIMESTAMP,
    MAX_TIMESTAMP,
    Log,
    OffsetOutOfRangeError,
    TimestampAndOffset,
    UnexpectedAppendOffsetError,
)

from .helpers import START_MS, Clock, make_batch, partition_dir, read_all, small_config


def timed_log(tmp: os.PathLike[str], **config: object) -> tuple[Log, list[int]]:
    """30 batches of 3 records; record i has timestamp START_MS + 10 * i, except that the
    middle record of each batch is 5 ms later than the last (so max is not last)."""
    log = Log.open(
        partition_dir(tmp),
        small_config(segment_bytes=700, index_interval_bytes=100, **config),
        clock=Clock(START_MS + 10**6),
    )
    stamps = []
    for b in range(30):
        base = START_MS + 30 * b
        batch_stamps = [base, base + 25, base + 20]
        stamps.extend(batch_stamps)
        log.append_as_leader(
            make_batch(
                [b"r%d" % (3 * b + i) for i in range(3)],
                timestamps=batch_stamps,
                compression=CompressionType.LZ4 if b % 2 else CompressionType.NONE,
            ),
            leader_epoch=b // 10,
        )
    log.update_high_watermark(log.log_end_offset)
    return log, stamps


def test_list_offsets_special_timestamps(tmp_path: os.PathLike[str]) -> None:
    log, stamps = timed_log(tmp_path)
    assert log.number_of_segments > 3
    assert log.fetch_offset_by_timestamp(EARLIEST_TIMESTAMP) == TimestampAndOffset(-1, 0, 0)
    assert log.fetch_offset_by_timestamp(LATEST_TIMESTAMP) == TimestampAndOffset(-1, 90, 2)
    top = max(stamps)
    assert log.fetch_offset_by_timestamp(MAX_TIMESTAMP) == TimestampAndOffset(
        top, stamps.index(top), 2
    )
    log.close()


def test_list_offsets_by_timestamp_finds_first_record_at_or_after(
    tmp_path: os.PathLike[str],
) -> None:
    log, stamps = timed_log(tmp_path)
    for target in range(START_MS - 5, START_MS + 30 * 30 + 30, 7):
        expected = next(((stamps[o], o) for o in range(len(stamps)) if stamps[o] >= target), None)
        found = log.fetch_offset_by_timestamp(target)
        if expected is None:
            assert found is None
        else:
            assert found is not None and (found.timestamp, found.offset) == expected
            assert found.leader_epoch == found.offset // 30
    log.close()


def test_list_offsets_respects_log_start_offset(tmp_path: os.PathLike[str]) -> None:
    log, stamps = timed_log(tmp_path)
    log.maybe_increment_log_start_offset(31)
    found = log.fetch_offset_by_timestamp(START_MS)
    assert found is not None and found.offset == 31 and found.timestamp == stamps[31]
    assert log.fetch_offset_by_timestamp(EARLIEST_TIMESTAMP).offset == 31  # type: ignore[union-attr]
    log.close()


def test_max_timestamp_on_empty_log(tmp_path: os.PathLike[str]) -> None:
    log = Log.open(partition_dir(tmp_path), small_config(), clock=Clock())
    assert log.fetch_offset_by_timestamp(MAX_TIMESTAMP) is None
    assert log.fetch_offset_by_timestamp(START_MS) is None
    assert log.fetch_offset_by_timestamp(LATEST_TIMESTAMP) == TimestampAndOffset(-1, 0, None)
    log.close()


def test_retention_by_time_advances_log_start_offset(tmp_path: os.PathLike[str]) -> None:
    clock = Clock()
    log = Log.open(
        partition_dir(tmp_path), small_config(segment_bytes=400, retention_ms=10_000), clock=clock
    )
    for n in range(30):
        log.append_as_leader(make_batch([b"v%d" % n], timestamp=clock.now + 100 * n), 0)
    log.update_high_watermark(log.log_end_offset)
    bases = [s.base_offset for s in log.segments]
    # segment k is expired once now - its largest timestamp > retention.ms
    largest_of_first = START_MS + 100 * (bases[1] - 1)
    clock.now = largest_of_first + 10_000
    assert log.delete_old_segments() == 0
    clock.now += 1
    assert log.delete_old_segments() == 1
    assert log.log_start_offset == bases[1]
    assert read_all(log)[0].offset == bases[1]
    with pytest.raises(OffsetOutOfRangeError):
        log.read(0, 100)
    clock.advance(10**7)
    assert log.delete_old_segments() == len(bases) - 1
    # even the active segment goes; an empty one takes its place at the log end offset
    assert log.number_of_segments == 1 and log.active_segment.base_offset == 30
    assert log.log_start_offset == 30 == log.log_end_offset
    log.append_as_leader(make_batch([b"new"]), 0)
    assert [r.offset for r in read_all(log)] == [30]
    log.close()


def test_retention_by_size(tmp_path: os.PathLike[str]) -> None:
    log = Log.open(
        partition_dir(tmp_path),
        small_config(segment_bytes=400, retention_bytes=1000),
        clock=Clock(),
    )
    for n in range(40):
        log.append_as_leader(make_batch([b"v%d" % n]), 0)
    log.update_high_watermark(log.log_end_offset)
    sizes = [s.size for s in log.segments]
    deleted = log.delete_old_segments()
    assert deleted > 0
    assert sum(sizes[deleted:]) == log.size_in_bytes
    assert sum(sizes[deleted:]) >= 1000 > sum(sizes[deleted + 1 :])
    assert log.log_start_offset == log.segments[0].base_offset
    log.close()


def test_retention_never_passes_the_high_watermark(tmp_path: os.PathLike[str]) -> None:
    clock = Clock()
    log = Log.open(
        partition_dir(tmp_path), small_config(segment_bytes=400, retention_ms=0), clock=clock
    )
    for n in range(30):
        log.append_as_leader(make_batch([b"v%d" % n]), 0)
    assert log.delete_old_segments(clock.now + 10**9) == 0  # high watermark still 0
    log.update_high_watermark(log.segments[2].base_offset)
    assert log.delete_old_segments(clock.now + 10**9) == 2
    assert log.log_start_offset == log.segments[0].base_offset == log.high_watermark
    log.close()


def test_delete_records(tmp_path: os.PathLike[str]) -> None:
    log = Log.open(
        partition_dir(tmp_path),
        small_config(segment_bytes=400, cleanup_policy=("compact",)),
        clock=Clock(),
    )
    for n in range(30):
        log.append_as_leader(make_batch([b"v%d" % n], keys=[b"k"]), 0)
    log.update_high_watermark(20)
    with pytest.raises(OffsetOutOfRangeError):
        log.maybe_increment_log_start_offset(21)
    assert log.maybe_increment_log_start_offset(13)
    assert not log.maybe_increment_log_start_offset(5)
    assert read_all(log)[0].offset == 13
    before = log.number_of_segments
    log.delete_old_segments()  # compact topic: only segments wholly below log start go
    assert log.number_of_segments < before
    assert (
        log.segments[0].base_offset
        <= 13
        < (log.segments[1].base_offset if log.number_of_segments > 1 else 99)
    )
    log.close()
    reopened = Log.open(
        partition_dir(tmp_path),
        small_config(segment_bytes=400),
        clock=Clock(),
        log_start_offset=13,
        clean_shutdown=True,
        recovery_point=30,
    )
    assert reopened.log_start_offset == 13
    assert reopened.leader_epoch_cache.entries == [(0, 13)]
    reopened.close()


def test_truncate_to(tmp_path: os.PathLike[str]) -> None:
    log = Log.open(partition_dir(tmp_path), small_config(segment_bytes=400), clock=Clock())
    for n in range(30):
        log.append_as_leader(
            make_batch(
                [b"v%d" % n, b"w%d" % n], producer_id=5, producer_epoch=0, base_sequence=2 * n
            ),
            leader_epoch=n // 10,
        )
    log.update_high_watermark(60)
    assert not log.truncate_to(60)
    assert log.truncate_to(33)  # inside the batch [32, 33]: the whole batch goes
    assert log.log_end_offset == 32
    assert log.high_watermark == 32
    assert [r.offset for r in read_all(log)] == list(range(32))
    assert log.leader_epoch_cache.entries == [(0, 0), (1, 20)]
    assert log.producer_state.last_entry(5).last_seq == 31  # type: ignore[union-attr]
    log.append_as_leader(
        make_batch([b"again"], producer_id=5, producer_epoch=0, base_sequence=32), 3
    )
    assert read_all(log, 32)[0].value == b"again"
    assert log.truncate_to(0)
    assert log.log_end_offset == 0 and read_all(log) == []
    log.close()


def test_truncate_fully_and_start_at(tmp_path: os.PathLike[str]) -> None:
    log = Log.open(partition_dir(tmp_path), small_config(), clock=Clock())
    log.append_as_leader(make_batch([b"a"]), 1)
    log.truncate_fully_and_start_at(500)
    assert (log.log_start_offset, log.log_end_offset, log.high_watermark) == (500, 500, 500)
    assert log.leader_epoch_cache.entries == []
    log.append_as_leader(make_batch([b"b"]), 2)
    assert [(r.offset, r.value) for r in read_all(log)] == [(500, b"b")]
    log.close()


def test_append_as_follower_keeps_leader_offsets(tmp_path: os.PathLike[str]) -> None:
    leader = Log.open(
        partition_dir(tmp_path, "lead-0"), small_config(segment_bytes=500), clock=Clock()
    )
    for n in range(20):
        leader.append_as_leader(
            make_batch([b"v%d" % n], producer_id=3, producer_epoch=1, base_sequence=n),
            leader_epoch=n // 7,
        )
    follower = Log.open(
        partition_dir(tmp_path, "follow-0"), small_config(segment_bytes=500), clock=Clock()
    )
    while follower.log_end_offset < leader.log_end_offset:
        info = leader.read(follower.log_end_offset, 300)
        assert info.records is not None
        data = info.records.read()
        # whole batches only, as a follower keeps them from a fetch response
        end = max(h.position + h.size for h in batch.iter_headers(data))
        follower.append_as_follower(data[:end])
    assert follower.log_end_offset == 20
    assert read_all(follower) == read_all(leader)
    assert follower.leader_epoch_cache.entries == leader.leader_epoch_cache.entries
    assert follower.producer_state.last_entry(3).last_seq == 19  # type: ignore[union-attr]
    with pytest.raises(UnexpectedAppendOffsetError):
        follower.append_as_follower(make_batch([b"old"], base_offset=5))
    leader.close()
    follower.close()
