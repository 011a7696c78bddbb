"""LogValidator: every rule with the error code Kafka answers."""

from __future__ import annotations

import struct

import pytest

from odradek.protocol import records as batch
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.protocol.record_codec import BatchSpec, NewRecord, build_batch, decode_records
from odradek.protocol.types import TopicPartition
from odradek.storage.validator import LogValidator
from odradek.storage.values import AppendOrigin

from .helpers import START_MS, make_batch, small_config

TP = TopicPartition("t", 0)


def validate(
    data: bytes,
    *,
    now: int = START_MS,
    origin: AppendOrigin = AppendOrigin.CLIENT,
    **config: object,
) -> tuple[bytearray, object]:
    buffer = bytearray(data)
    result = LogValidator(TP, small_config(**config)).validate_and_assign_offsets(
        buffer, first_offset=100, leader_epoch=4, now=now, origin=origin
    )
    return buffer, result


def error_of(data: bytes, **kwargs: object) -> ErrorCode:
    with pytest.raises(KafkaError) as info:
        validate(data, **kwargs)  # type: ignore[arg-type]
    return info.value.error_code


def patch(data: bytes, offset: int, fmt: str, value: int, *, fix_crc: bool = True) -> bytes:
    buffer = bytearray(data)
    struct.pack_into(fmt, buffer, offset, value)
    if fix_crc:
        struct.pack_into(">I", buffer, batch.CRC_OFFSET, batch.compute_crc(buffer, 0, len(buffer)))
    return bytes(buffer)


def test_assigns_offsets_epoch_and_keeps_crc() -> None:
    data = make_batch([b"a", b"b", b"c"])
    buffer, result = validate(data)
    header = batch.read_header(buffer)
    assert (header.base_offset, header.partition_leader_epoch) == (100, 4)
    assert batch.compute_crc(buffer, 0, len(buffer)) == header.crc
    assert result.first_offset == 100 and result.last_offset == 102  # type: ignore[attr-defined]
    assert result.record_count == 3 and result.offset_of_max_timestamp == 102  # type: ignore[attr-defined]
    assert result.log_append_time == -1  # type: ignore[attr-defined]


def test_several_batches_from_a_coordinator() -> None:
    data = (
        make_batch([b"a"]) + make_batch([b"b", b"c"], timestamp=START_MS + 5) + make_batch([b"d"])
    )
    buffer, result = validate(data, origin=AppendOrigin.COORDINATOR)
    bases = [h.base_offset for h in batch.iter_headers(buffer)]
    assert bases == [100, 101, 103]
    assert result.max_timestamp == START_MS + 5  # type: ignore[attr-defined]
    assert result.offset_of_max_timestamp == 102  # type: ignore[attr-defined]


def test_clients_send_exactly_one_batch() -> None:
    assert error_of(make_batch([b"a"]) + make_batch([b"b"])) is ErrorCode.invalid_record


def test_framing_errors() -> None:
    data = make_batch([b"a", b"b"])
    assert error_of(b"") is ErrorCode.invalid_record
    assert error_of(data[:-1]) is ErrorCode.corrupt_message
    assert error_of(data + data[:30]) is ErrorCode.corrupt_message
    assert error_of(data[:10]) is ErrorCode.corrupt_message
    assert error_of(patch(data, batch.LENGTH_OFFSET, ">i", 20, fix_crc=False)) is (
        ErrorCode.corrupt_message
    )


def test_old_magic_is_invalid_record() -> None:
    data = patch(make_batch([b"a"]), batch.MAGIC_OFFSET, ">b", 1, fix_crc=False)
    assert error_of(data) is ErrorCode.invalid_record


def test_crc_mismatch_is_corrupt_message() -> None:
    data = bytearray(make_batch([b"hello"]))
    data[-1] ^= 0xFF
    assert error_of(bytes(data)) is ErrorCode.corrupt_message


def test_base_offset_must_be_zero_from_clients() -> None:
    data = make_batch([b"a"], base_offset=5)
    assert error_of(data) is ErrorCode.invalid_record
    validate(data, origin=AppendOrigin.COORDINATOR)


def test_message_too_large() -> None:
    data = make_batch([b"x" * 500])
    assert error_of(data, max_message_bytes=len(data) - 1) is ErrorCode.message_too_large
    validate(data, max_message_bytes=len(data))


def test_record_count_must_match_offsets() -> None:
    data = make_batch([b"a", b"b"])
    assert error_of(patch(data, 57, ">i", 3)) is ErrorCode.invalid_record
    assert error_of(patch(patch(data, 23, ">i", -1), 57, ">i", 0)) is ErrorCode.invalid_record


def test_control_batches_from_clients_are_rejected() -> None:
    data = build_batch(
        [NewRecord(key=b"\x00\x00\x00\x00", value=b"x", timestamp=START_MS)],
        BatchSpec(control=True, producer_id=1, producer_epoch=0),
    )
    assert error_of(data) is ErrorCode.invalid_record


def test_idempotent_batch_needs_a_sequence() -> None:
    data = make_batch([b"a"], producer_id=9, producer_epoch=0, base_sequence=-1)
    assert error_of(data) is ErrorCode.invalid_record


def test_create_time_bounds() -> None:
    now = START_MS
    old = make_batch([b"a"], timestamp=now - 1001)
    future = make_batch([b"a"], timestamp=now + 1001)
    bounds = {"message_timestamp_before_max_ms": 1000, "message_timestamp_after_max_ms": 1000}
    assert error_of(old, **bounds) is ErrorCode.invalid_timestamp
    assert error_of(future, **bounds) is ErrorCode.invalid_timestamp
    validate(make_batch([b"a"], timestamp=now - 1000), **bounds)
    validate(make_batch([b"a"], timestamp=now + 1000), **bounds)
    # a record in the middle of the batch is not checked, base and max are
    mixed = make_batch([b"a", b"b"], timestamps=[now, now + 5000])
    assert error_of(mixed, **bounds) is ErrorCode.invalid_timestamp


def test_producers_may_not_set_log_append_time() -> None:
    data = bytearray(make_batch([b"a"]))
    header = batch.read_header(data)
    batch.set_log_append_time(data, header, START_MS)
    assert error_of(bytes(data)) is ErrorCode.invalid_timestamp
    assert (
        error_of(bytes(data), message_timestamp_type="LogAppendTime") is ErrorCode.invalid_timestamp
    )


def test_log_append_time_rewrites_max_timestamp_and_crc() -> None:
    buffer, result = validate(
        make_batch([b"a"], timestamp=1), message_timestamp_type="LogAppendTime", now=START_MS + 7
    )
    header = batch.read_header(buffer)
    assert header.timestamp_type is batch.TimestampType.LOG_APPEND_TIME
    assert header.max_timestamp == START_MS + 7
    assert batch.compute_crc(buffer, 0, len(buffer)) == header.crc
    assert result.log_append_time == START_MS + 7  # type: ignore[attr-defined]


def test_compacted_topics_need_keys() -> None:
    keyless = make_batch([b"a", b"b"], keys=[b"k", None])
    assert error_of(keyless, cleanup_policy=("compact",)) is ErrorCode.invalid_record
    validate(keyless)
    validate(make_batch([b"a"], keys=[b"k"]), cleanup_policy=("compact",))


def test_unknown_compression_codec() -> None:
    data = patch(make_batch([b"a"]), batch.ATTRIBUTES_OFFSET, ">h", 7)
    assert error_of(data) is ErrorCode.invalid_record


# -- broker-side recompression ---------------------------------------------------------------


def stored(data: bytes, **config: object) -> tuple[bytes, list[batch.BatchHeader]]:
    buffer, result = validate(data, **config)
    records = getattr(result, "records", None)
    out = bytes(buffer if records is None else records)
    return out, list(batch.iter_headers(out))


@pytest.mark.parametrize(
    ("topic_codec", "sent", "expected"),
    [
        ("gzip", batch.CompressionType.NONE, batch.CompressionType.GZIP),
        ("zstd", batch.CompressionType.SNAPPY, batch.CompressionType.ZSTD),
        ("uncompressed", batch.CompressionType.LZ4, batch.CompressionType.NONE),
        ("producer", batch.CompressionType.SNAPPY, batch.CompressionType.SNAPPY),
        ("lz4", batch.CompressionType.LZ4, batch.CompressionType.LZ4),
    ],
)
def test_topic_compression_type_is_what_is_stored(
    topic_codec: str, sent: batch.CompressionType, expected: batch.CompressionType
) -> None:
    values = [b"value-%d" % i * 20 for i in range(30)]
    data = make_batch(
        values,
        compression=sent,
        producer_id=5,
        producer_epoch=1,
        base_sequence=7,
        timestamps=[START_MS + i for i in range(30)],
    )
    out, headers = stored(data, compression_type=topic_codec)
    assert len(headers) == 1
    header = headers[0]
    assert header.compression == expected
    assert batch.compute_crc(out, 0, header.size) == header.crc
    assert (header.base_offset, header.records_count, header.last_offset_delta) == (100, 30, 29)
    assert (header.producer_id, header.producer_epoch, header.base_sequence) == (5, 1, 7)
    assert header.partition_leader_epoch == 4
    records = decode_records(out, header)
    assert [r.value for r in records] == values
    assert [r.offset for r in records] == list(range(100, 130))
    assert [r.timestamp for r in records] == [START_MS + i for i in range(30)]
    assert header.max_timestamp == START_MS + 29


def test_a_recompressed_batch_must_still_fit_max_message_bytes() -> None:
    data = make_batch([b"a" * 2000] * 5, compression=batch.CompressionType.GZIP)
    assert len(data) < 1000
    code = error_of(data, compression_type="uncompressed", max_message_bytes=5000)
    assert code == ErrorCode.message_too_large
