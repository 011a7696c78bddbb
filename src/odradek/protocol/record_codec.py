"""Records inside a v2 batch: decode (with decompression) and build batches.

Only the cold paths use this: ListOffsets by timestamp, internal topics written by the
broker itself, tests and tools. Produce and Fetch never look at individual records.

A record, after the batch header (see ``records``)::

    length            varint   bytes after this field
    attributes        int8     unused, 0
    timestamp_delta   varlong  from the batch's base_timestamp
    offset_delta      varint   from the batch's base_offset
    key_length        varint   -1 for null
    key               bytes
    value_length      varint   -1 for null
    value             bytes
    header_count      varint
    headers           (key_length varint, key utf-8, value_length varint, value) * count

Varints are zig-zag encoded as in protobuf. Compression covers all records of a batch:
gzip, snappy (raw, or xerial-framed as the Java client writes it), lz4 (frame format),
zstd.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import cramjam
import crc32c

from odradek.protocol import records as batch
from odradek.protocol.records import BatchHeader, CompressionType

_XERIAL_MAGIC = b"\x82SNAPPY\x00"
_XERIAL_HEADER_SIZE = 16
_UINT32 = struct.Struct(">I")
_BEFORE_CRC = struct.Struct(">qiibI")
"""base offset, batch length, partition leader epoch, magic, crc"""
_AFTER_CRC = struct.Struct(">hiqqqhii")
"""attributes ... records count: the checksummed header fields"""


class RecordDecodeError(ValueError):
    """Records inside a batch do not parse: a corrupt batch."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Record:
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class NewRecord:
    """A record to put into a new batch; offsets and timestamps become deltas."""

    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...] = ()
    timestamp: int | None = None
    """Milliseconds since the epoch; now when not given."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchSpec:
    """Batch-level fields of a batch to build."""

    base_offset: int = 0
    compression: CompressionType = CompressionType.NONE
    producer_id: int = batch.NO_PRODUCER_ID
    producer_epoch: int = batch.NO_PRODUCER_EPOCH
    base_sequence: int = batch.NO_SEQUENCE
    partition_leader_epoch: int = batch.NO_PARTITION_LEADER_EPOCH
    transactional: bool = False
    control: bool = False
    extra_attributes: int = field(default=0)


def decompress(compression: int, data: bytes | memoryview) -> bytes:
    match compression:
        case CompressionType.NONE:
            return bytes(data)
        case CompressionType.GZIP:
            return bytes(cramjam.gzip.decompress(bytes(data)))
        case CompressionType.SNAPPY:
            return _snappy_decompress(bytes(data))
        case CompressionType.LZ4:
            return bytes(cramjam.lz4.decompress(bytes(data)))
        case CompressionType.ZSTD:
            return bytes(cramjam.zstd.decompress(bytes(data)))
    raise RecordDecodeError(f"unknown compression type {compression}")


def compress(compression: int, data: bytes) -> bytes:
    match compression:
        case CompressionType.NONE:
            return data
        case CompressionType.GZIP:
            return bytes(cramjam.gzip.compress(data))
        case CompressionType.SNAPPY:
            return bytes(cramjam.snappy.compress_raw(data))
        case CompressionType.LZ4:
            return bytes(cramjam.lz4.compress(data))
        case CompressionType.ZSTD:
            return bytes(cramjam.zstd.compress(data))
    raise ValueError(f"unknown compression type {compression}")


def _snappy_decompress(data: bytes) -> bytes:
    if not data.startswith(_XERIAL_MAGIC):
        return bytes(cramjam.snappy.decompress_raw(data))
    out = bytearray()
    position = _XERIAL_HEADER_SIZE
    while position < len(data):
        if position + 4 > len(data):
            raise RecordDecodeError("truncated xerial snappy block")
        (size,) = _UINT32.unpack_from(data, position)
        position += 4
        out += bytes(cramjam.snappy.decompress_raw(data[position : position + size]))
        position += size
    return bytes(out)


def _read_varint(data: bytes, position: int) -> tuple[int, int]:
    """Zig-zag varint at ``position``: (value, next position)."""
    shift = 0
    raw = 0
    while True:
        if position >= len(data):
            raise RecordDecodeError("varint runs past the end of the records")
        byte = data[position]
        position += 1
        raw |= (byte & 0x7F) << shift
        if not byte & 0x80:
            break
        shift += 7
        if shift > 63:
            raise RecordDecodeError("varint too long")
    return (raw >> 1) ^ -(raw & 1), position


def _read_bytes(data: bytes, position: int) -> tuple[bytes | None, int]:
    length, position = _read_varint(data, position)
    if length < 0:
        return None, position
    end = position + length
    if end > len(data):
        raise RecordDecodeError("record field runs past the end of the records")
    return data[position:end], end


def decode_records(buffer: bytes | bytearray | memoryview, header: BatchHeader) -> list[Record]:
    """All records of the batch whose header is given, with absolute offsets and timestamps."""
    data = batch_payload(buffer, header)
    log_append_time = header.timestamp_type == batch.TimestampType.LOG_APPEND_TIME
    out: list[Record] = []
    position = 0
    for _ in range(header.records_count):
        length, position = _read_varint(data, position)
        record_end = position + length
        if length < 0 or record_end > len(data):
            raise RecordDecodeError("record length runs past the end of the batch")
        position += 1  # attributes
        timestamp_delta, position = _read_varint(data, position)
        offset_delta, position = _read_varint(data, position)
        key, position = _read_bytes(data, position)
        value, position = _read_bytes(data, position)
        header_count, position = _read_varint(data, position)
        headers: list[tuple[str, bytes | None]] = []
        for _ in range(max(header_count, 0)):
            header_key, position = _read_bytes(data, position)
            header_value, position = _read_bytes(data, position)
            headers.append(((header_key or b"").decode("utf-8", "replace"), header_value))
        if position != record_end:
            raise RecordDecodeError("record fields do not add up to the record length")
        out.append(
            Record(
                offset=header.base_offset + offset_delta,
                timestamp=header.max_timestamp
                if log_append_time
                else header.base_timestamp + timestamp_delta,
                key=key,
                value=value,
                headers=tuple(headers),
            )
        )
    return out


def iter_records(buffer: bytes | bytearray | memoryview) -> Iterator[Record]:
    """Every record of every complete batch in ``buffer``."""
    for header in batch.iter_headers(buffer):
        yield from decode_records(buffer, header)


def _varint(value: int) -> bytes:
    raw = (value << 1) ^ (value >> 63)
    out = bytearray()
    while raw & ~0x7F:
        out.append((raw & 0x7F) | 0x80)
        raw >>= 7
    out.append(raw)
    return bytes(out)


def _field(value: bytes | None) -> bytes:
    if value is None:
        return _varint(-1)
    return _varint(len(value)) + value


def build_batch(records: Sequence[NewRecord], spec: BatchSpec | None = None) -> bytes:
    """Encode ``records`` as one v2 record batch (offset deltas 0..n-1)."""
    if not records:
        raise ValueError("a record batch needs at least one record")
    spec = spec or BatchSpec()
    now = int(time.time() * 1000)
    timestamps = [now if r.timestamp is None else r.timestamp for r in records]
    base_timestamp = timestamps[0]
    body = bytearray()
    for delta, (record, timestamp) in enumerate(zip(records, timestamps, strict=True)):
        inner = bytearray(b"\x00")
        inner += _varint(timestamp - base_timestamp)
        inner += _varint(delta)
        inner += _field(record.key)
        inner += _field(record.value)
        inner += _varint(len(record.headers))
        for header_key, header_value in record.headers:
            inner += _field(header_key.encode())
            inner += _field(header_value)
        body += _varint(len(inner))
        body += inner
    payload = compress(spec.compression, bytes(body))
    attributes = int(spec.compression) | spec.extra_attributes
    if spec.transactional:
        attributes |= batch.TRANSACTIONAL_FLAG
    if spec.control:
        attributes |= batch.CONTROL_FLAG
    after_crc = _AFTER_CRC.pack(
        attributes,
        len(records) - 1,
        base_timestamp,
        max(timestamps),
        spec.producer_id,
        spec.producer_epoch,
        spec.base_sequence,
        len(records),
    )
    after_crc += payload
    crc = int(crc32c.crc32c(after_crc))
    batch_length = len(after_crc) + 4 + 1 + 4  # leader epoch, magic, crc
    head = _BEFORE_CRC.pack(spec.base_offset, batch_length, spec.partition_leader_epoch, 2, crc)
    return head + after_crc


# -- transaction markers ---------------------------------------------------------------
#
# A transaction ends with a control batch (attributes: transactional and control bits)
# holding one control record, written by the transaction coordinator's WriteTxnMarkers
# to every partition of the transaction (Kafka's ``EndTransactionMarker``)::
#
#     key:   version int16 = 0, type int16 (0 = abort, 1 = commit)
#     value: version int16 = 0, coordinator_epoch int32
#
# The batch carries the producer id and epoch of the transaction it ends and no sequence.

CONTROL_TYPE_ABORT = 0
CONTROL_TYPE_COMMIT = 1
_CONTROL_KEY = struct.Struct(">hh")
_END_TXN_VALUE = struct.Struct(">hi")


@dataclass(frozen=True, slots=True)
class EndTxnMarker:
    commit: bool
    coordinator_epoch: int


def build_end_txn_marker(
    producer_id: int,
    producer_epoch: int,
    *,
    commit: bool,
    coordinator_epoch: int,
    timestamp: int | None = None,
) -> bytes:
    """A control batch (base offset 0) ending the producer's transaction."""
    record = NewRecord(
        key=_CONTROL_KEY.pack(0, CONTROL_TYPE_COMMIT if commit else CONTROL_TYPE_ABORT),
        value=_END_TXN_VALUE.pack(0, coordinator_epoch),
        timestamp=timestamp,
    )
    spec = BatchSpec(
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        transactional=True,
        control=True,
    )
    return build_batch([record], spec)


def control_record_type(key: bytes | None) -> int:
    """The type of a control record (0 abort, 1 commit, others are not transaction
    markers); RecordDecodeError when the key is not a control record key."""
    if key is None or len(key) < _CONTROL_KEY.size:
        raise RecordDecodeError("control record without a valid key")
    _version, kind = _CONTROL_KEY.unpack_from(key)
    return int(kind)


def read_end_txn_marker(
    buffer: bytes | bytearray | memoryview, header: BatchHeader
) -> EndTxnMarker | None:
    """The transaction marker in a control batch, or None for another kind of control
    record; RecordDecodeError when the batch does not hold a readable control record."""
    records = decode_records(buffer, header)
    if not records:
        raise RecordDecodeError("control batch without records")
    kind = control_record_type(records[0].key)
    if kind not in (CONTROL_TYPE_ABORT, CONTROL_TYPE_COMMIT):
        return None
    value = records[0].value
    if value is None or len(value) < _END_TXN_VALUE.size:
        raise RecordDecodeError("transaction marker without a valid value")
    _version, coordinator_epoch = _END_TXN_VALUE.unpack_from(value)
    return EndTxnMarker(commit=kind == CONTROL_TYPE_COMMIT, coordinator_epoch=coordinator_epoch)


# -- rewriting a batch (the log cleaner) -----------------------------------------------
#
# Compaction drops records from a batch and keeps the rest byte for byte: each record is
# self-contained (length, deltas from the batch's base offset and base timestamp), so a
# cleaned batch is the original header (base offset, last offset delta, producer id,
# epoch and base sequence all kept, so producer state reads the same) over the kept
# records, recompressed with the batch's codec. KIP-534: a batch holding tombstones or a
# transaction marker gets a delete horizon when first cleaned: attribute bit 6 set and
# the base timestamp replaced by the horizon, the records' timestamp deltas moved by the
# same amount so that every record keeps its timestamp.


class RecordSpan(NamedTuple):
    """Where one record lies in a batch's (decompressed) records, and what compaction
    needs of it: its key and whether it is a tombstone (null value). A tuple: the
    cleaner makes one per record."""

    start: int
    """First byte of the record (its length varint)."""
    end: int
    offset_delta: int
    timestamp_delta: int
    key: bytes | None
    tombstone: bool


def batch_payload(buffer: bytes | bytearray | memoryview, header: BatchHeader) -> bytes:
    """The batch's records, decompressed."""
    start = header.position + batch.BATCH_HEADER_SIZE
    end = header.position + header.size
    try:
        return decompress(header.compression, memoryview(buffer)[start:end])
    except RecordDecodeError:
        raise
    except Exception as exc:  # cramjam raises its own error types
        raise RecordDecodeError(f"cannot decompress batch: {exc}") from exc


def _varint_at(data: bytes, position: int) -> tuple[int, int]:
    """``_read_varint`` with the one- and two-byte cases (nearly every varint of a
    record: its length, deltas and key length) taken without a loop."""
    raw = data[position]
    if raw < 0x80:
        return (raw >> 1) ^ -(raw & 1), position + 1
    second = data[position + 1]
    if second < 0x80:
        raw = (raw & 0x7F) | (second << 7)
        return (raw >> 1) ^ -(raw & 1), position + 2
    return _read_varint(data, position)


def scan_records(payload: bytes, count: int) -> list[RecordSpan]:
    """The ``count`` records of a batch's decompressed ``payload``, without decoding
    their values or headers (a tombstone's value length is -1, one byte: 0x01). The
    log cleaner's hot loop."""
    spans: list[RecordSpan] = []
    append = spans.append
    position = 0
    size = len(payload)
    varint = _varint_at
    try:
        for _ in range(count):
            start = position
            length, position = varint(payload, position)
            end = position + length
            if length < 1 or end > size:
                raise RecordDecodeError("record length runs past the end of the batch")
            timestamp_delta, position = varint(payload, position + 1)  # after attributes
            offset_delta, position = varint(payload, position)
            key_length, position = varint(payload, position)
            key = None
            if key_length >= 0:
                key = payload[position : position + key_length]
                position += key_length
            if position >= end:
                raise RecordDecodeError("record fields run past the record length")
            tombstone = payload[position] == 1
            append(RecordSpan(start, end, offset_delta, timestamp_delta, key, tombstone))
            position = end
    except IndexError:
        raise RecordDecodeError("record runs past the end of the batch") from None
    if position != size:
        raise RecordDecodeError("bytes left over after the batch's last record")
    return spans


def rebuild_batch(
    header: BatchHeader,
    payload: bytes,
    kept: Sequence[RecordSpan],
    *,
    delete_horizon: int | None = None,
    compression: int | None = None,
) -> bytes:
    """The batch of ``header`` holding only the ``kept`` records of its ``payload``
    (Kafka's ``MemoryRecords.filterTo``); with ``delete_horizon``, marked with it; with
    ``compression``, compressed with that codec instead of the batch's own (the broker's
    recompression for a topic's ``compression.type``).

    With no record kept, the result is Kafka's empty batch (``writeEmptyHeader``): the
    header alone, uncompressed, still spanning the original offsets, so the producer's
    last sequence survives compaction.
    """
    attributes = header.attributes
    base_timestamp = header.base_timestamp
    shift = 0
    if delete_horizon is not None:
        attributes |= batch.DELETE_HORIZON_FLAG
        shift = header.base_timestamp - delete_horizon
        base_timestamp = delete_horizon
    log_append_time = header.timestamp_type == batch.TimestampType.LOG_APPEND_TIME
    if kept:
        body = bytearray()
        for span in kept:
            if shift:
                _append_shifted(body, payload, span, shift)
            else:
                body += payload[span.start : span.end]
        codec = header.compression if compression is None else compression
        attributes = (attributes & ~batch.COMPRESSION_MASK) | codec
        records = compress(codec, bytes(body))
        max_timestamp = (
            header.max_timestamp
            if log_append_time
            else max(header.base_timestamp + span.timestamp_delta for span in kept)
        )
    else:
        records = b""
        attributes &= ~batch.COMPRESSION_MASK
        max_timestamp = header.max_timestamp
        if delete_horizon is None and not attributes & batch.DELETE_HORIZON_FLAG:
            base_timestamp = max_timestamp
    after_crc = _AFTER_CRC.pack(
        attributes,
        header.last_offset_delta,
        base_timestamp,
        max_timestamp,
        header.producer_id,
        header.producer_epoch,
        header.base_sequence,
        len(kept),
    )
    after_crc += records
    crc = int(crc32c.crc32c(after_crc))
    head = _BEFORE_CRC.pack(
        header.base_offset, len(after_crc) + 9, header.partition_leader_epoch, 2, crc
    )
    return head + after_crc


def _append_shifted(body: bytearray, payload: bytes, span: RecordSpan, shift: int) -> None:
    """Append the record of ``span`` with its timestamp delta moved by ``shift``."""
    _length, position = _read_varint(payload, span.start)
    attributes_at = position
    _delta, rest = _read_varint(payload, attributes_at + 1)
    inner = bytearray(payload[attributes_at : attributes_at + 1])
    inner += _varint(span.timestamp_delta + shift)
    inner += payload[rest : span.end]
    body += _varint(len(inner))
    body += inner
