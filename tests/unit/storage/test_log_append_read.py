"""Log append and read: round trips, offsets, reads inside batches, KIP-74, max offset."""

from __future__ import annotations

import os
import tempfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from odradek.protocol import records as batch
from odradek.protocol.record_codec import iter_records
from odradek.protocol.records import CompressionType
from odradek.storage import Log, OffsetOutOfRangeError
from odradek.storage.errors import RecordBatchTooLargeError, RecordTooLargeError

from .helpers import START_MS, Clock, make_batch, partition_dir, read_all, small_config


@pytest.mark.parametrize("compression", list(CompressionType))
def test_round_trip_every_codec(tmp_path: os.PathLike[str], compression: CompressionType) -> None:
    log = Log.open(partition_dir(tmp_path), small_config(), clock=Clock())
    sent = []
    for n in range(20):
        values = [b"value-%d-%d" % (n, i) * (i + 1) for i in range(n % 5 + 1)]
        info = log.append_as_leader(make_batch(values, compression=compression), leader_epoch=3)
        assert info.record_count == len(values)
        assert info.last_offset - info.first_offset + 1 == len(values)
        sent.extend(values)
    assert log.log_end_offset == len(sent)
    got = read_all(log)
    assert [r.value for r in got] == sent
    assert [r.offset for r in got] == list(range(len(sent)))
    log.close()
    reopened = Log.open(
        partition_dir(tmp_path),
        small_config(),
        clock=Clock(),
        clean_shutdown=True,
        recovery_point=len(sent),
    )
    assert [r.value for r in read_all(reopened)] == sent
    reopened.close()


def test_offsets_epoch_and_bytes_on_disk(tmp_path: os.PathLike[str]) -> None:
    log = Log.open(partition_dir(tmp_path), small_config(), clock=Clock())
    first = make_batch([b"a", b"b"])
    log.append_as_leader(first, leader_epoch=7)
    log.append_as_leader(make_batch([b"c"]), leader_epoch=8)
    with open(log.active_segment.log_path, "rb") as file:
        data = file.read()
    headers = list(batch.iter_headers(data))
    assert [(h.base_offset, h.partition_leader_epoch) for h in headers] == [(0, 7), (2, 8)]
    # everything after base offset and leader epoch is stored exactly as sent
    assert data[batch.MAGIC_OFFSET : headers[0].size] == first[batch.MAGIC_OFFSET :]
    for header in headers:
        assert batch.compute_crc(data, header.position, header.size) == header.crc
    assert log.leader_epoch_cache.entries == [(7, 0), (8, 2)]
    log.close()


def test_log_append_time_topic_stamps_batches(tmp_path: os.PathLike[str]) -> None:
    clock = Clock()
    log = Log.open(
        partition_dir(tmp_path), small_config(message_timestamp_type="LogAppendTime"), clock=clock
    )
    clock.advance(5000)
    info = log.append_as_leader(make_batch([b"x", b"y"], timestamp=START_MS - 10**9), 0)
    assert info.log_append_time == clock.now
    assert info.max_timestamp == clock.now
    records = read_all(log)
    assert {r.timestamp for r in records} == {clock.now}
    log.close()


def test_read_inside_a_batch_returns_the_whole_batch(tmp_path: os.PathLike[str]) -> None:
    log = Log.open(partition_dir(tmp_path), small_config(), clock=Clock())
    log.append_as_leader(make_batch([b"0", b"1", b"2"]), 0)
    log.append_as_leader(make_batch([b"3", b"4", b"5"]), 0)
    info = log.read(4, 1 << 20)
    assert info.fetch_offset == 4
    offsets = [r.offset for r in iter_records(info.records.read())]  # type: ignore[union-attr]
    assert offsets == [3, 4, 5]
    assert info.fetch_offset_metadata.relative_position == info.records.position  # type: ignore[union-attr]
    log.close()


def test_kip74_first_batch_is_returned_whole(tmp_path: os.PathLike[str]) -> None:
    log = Log.open(partition_dir(tmp_path), small_config(), clock=Clock())
    big = make_batch([os.urandom(3000)])
    log.append_as_leader(big, 0)
    log.append_as_leader(make_batch([b"small"]), 0)
    info = log.read(0, 100, min_one_message=True)
    assert info.records is not None and info.records.size == len(big)
    assert [r.offset for r in iter_records(info.records.read())] == [0]
    empty = log.read(0, 100, min_one_message=False)
    assert empty.records is None and empty.first_entry_incomplete
    # without min_one_message a region may end inside the second batch (clients drop it)
    partial = log.read(0, len(big) + 20, min_one_message=False)
    assert partial.size == len(big) + 20
    log.close()


def test_reads_stop_at_max_offset(tmp_path: os.PathLike[str]) -> None:
    log = Log.open(partition_dir(tmp_path), small_config(segment_bytes=600), clock=Clock())
    for n in range(30):
        log.append_as_leader(make_batch([b"v%d" % n, b"w%d" % n]), 0)
    assert log.number_of_segments > 3
    log.update_high_watermark(37)  # inside the batch [36, 37]
    records = read_all(log, 0, max_offset=log.high_watermark)
    assert [r.offset for r in records] == list(range(36))
    for start in range(0, 36):
        info = log.read(start, 1 << 20, max_offset=log.high_watermark)
        assert info.records is not None
        assert all(r.offset < 36 for r in iter_records(info.records.read()))
    at_hw = log.read(36, 1 << 20, max_offset=36)
    assert at_hw.records is None and at_hw.fetch_offset == 36
    above = log.read(50, 1 << 20, max_offset=36)
    assert above.records is None
    log.close()


def test_out_of_range_reads(tmp_path: os.PathLike[str]) -> None:
    log = Log.open(partition_dir(tmp_path), small_config(), clock=Clock())
    log.append_as_leader(make_batch([b"a", b"b"]), 0)
    with pytest.raises(OffsetOutOfRangeError):
        log.read(3, 100)
    with pytest.raises(OffsetOutOfRangeError):
        log.read(-1, 100)
    at_end = log.read(2, 100)
    assert at_end.records is None and at_end.fetch_offset == 2
    log.update_high_watermark(2)
    log.maybe_increment_log_start_offset(1)
    with pytest.raises(OffsetOutOfRangeError):
        log.read(0, 100)
    log.close()


def test_append_larger_than_segment_is_rejected(tmp_path: os.PathLike[str]) -> None:
    log = Log.open(partition_dir(tmp_path), small_config(segment_bytes=500), clock=Clock())
    with pytest.raises(RecordBatchTooLargeError):
        log.append_as_leader(make_batch([os.urandom(600)]), 0)
    assert log.log_end_offset == 0
    log.close()


def test_roll_by_size(tmp_path: os.PathLike[str]) -> None:
    log = Log.open(partition_dir(tmp_path), small_config(segment_bytes=1000), clock=Clock())
    sizes = []
    for _ in range(40):
        data = make_batch([b"x" * 100])
        sizes.append(len(data))
        log.append_as_leader(data, 0)
    bases = [s.base_offset for s in log.segments]
    assert bases[0] == 0 and len(bases) > 3
    for segment in log.segments:
        assert segment.size <= 1000
    # each rolled segment was full: adding one more batch would have overflowed it
    for segment in log.segments[:-1]:
        assert segment.size + sizes[0] > 1000
    assert [r.value for r in read_all(log)] == [b"x" * 100] * 40
    log.close()


def test_roll_by_time_uses_record_timestamps_and_jitter(tmp_path: os.PathLike[str]) -> None:
    clock = Clock()
    config = small_config(segment_ms=60_000)
    log = Log.open(partition_dir(tmp_path), config, clock=clock)
    log.append_as_leader(make_batch([b"a"], timestamp=clock.now), 0)
    clock.advance(59_000)
    log.append_as_leader(make_batch([b"b"], timestamp=clock.now), 0)
    assert log.number_of_segments == 1
    clock.advance(2_000)
    log.append_as_leader(make_batch([b"c"], timestamp=clock.now), 0)
    assert [s.base_offset for s in log.segments] == [0, 2]
    log.close()
    jittered = Log.open(partition_dir(tmp_path, "j-0"), config, clock=clock)
    jittered.active_segment.roll_jitter_ms = 30_000
    jittered.append_as_leader(make_batch([b"a"], timestamp=clock.now), 0)
    clock.advance(31_000)
    jittered.append_as_leader(make_batch([b"b"], timestamp=clock.now), 0)
    assert jittered.number_of_segments == 2
    jittered.close()


def test_roll_when_offset_index_is_full(tmp_path: os.PathLike[str]) -> None:
    config = small_config(index_interval_bytes=1, segment_index_bytes=8 * 4)
    log = Log.open(partition_dir(tmp_path), config, clock=Clock())
    for _ in range(20):
        log.append_as_leader(make_batch([b"x"]), 0)
    assert log.number_of_segments >= 4
    for segment in log.segments:
        assert segment.offset_index.entries <= 4
    assert len(read_all(log)) == 20
    log.close()


def test_flush_messages_advances_recovery_point(tmp_path: os.PathLike[str]) -> None:
    log = Log.open(partition_dir(tmp_path), small_config(flush_messages=5), clock=Clock())
    log.append_as_leader(make_batch([b"a"] * 3), 0)
    assert log.recovery_point == 0
    log.append_as_leader(make_batch([b"a"] * 3), 0)
    assert log.recovery_point == 6
    log.close()


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.lists(st.binary(max_size=300), min_size=1, max_size=8), min_size=1, max_size=25),
    st.integers(min_value=200, max_value=4000),
)
def test_property_every_offset_reads_back(batches: list[list[bytes]], segment_bytes: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        log = Log.open(
            partition_dir(tmp),
            small_config(segment_bytes=max(segment_bytes, 2000), index_interval_bytes=64),
            clock=Clock(),
        )
        flat = [v for values in batches for v in values]
        for values in batches:
            log.append_as_leader(make_batch(values), 0)
        for offset in range(len(flat)):
            info = log.read(offset, 1, min_one_message=True)
            assert info.records is not None
            records = list(iter_records(info.records.read()))
            assert any(r.offset == offset and r.value == flat[offset] for r in records)
        assert [r.value for r in read_all(log)] == flat
        log.close()


def test_update_config_applies_to_later_appends(tmp_path: os.PathLike[str]) -> None:
    log = Log.open(partition_dir(tmp_path), small_config(), clock=Clock())
    for _ in range(10):
        log.append_as_leader(make_batch([b"x" * 50]), 0)
    assert log.number_of_segments == 1
    log.update_config(small_config(segment_bytes=300, max_message_bytes=200))
    with pytest.raises(RecordTooLargeError):
        log.append_as_leader(make_batch([b"y" * 300]), 0)
    log.append_as_leader(make_batch([b"z"]), 0)
    assert log.number_of_segments == 2 and log.active_segment.base_offset == 10
    log.close()
