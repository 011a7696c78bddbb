"""Record batch (magic v2) header view: the one wire structure the hot paths parse by hand.

Produce and the log never decode individual records; they read and patch the 61-byte
batch header in place. Layout (big-endian), as in Kafka's ``DefaultRecordBatch``::

    offset  size  field
    0       8     base_offset             patched by the broker on append
    8       4     batch_length            bytes after this field (whole batch = 12 + batch_length)
    12      4     partition_leader_epoch  patched by the broker on append
    16      1     magic                   2
    17      4     crc                     CRC-32C of bytes [21, end)
    21      2     attributes              bits 0-2 compression, 3 timestamp type,
                                          4 transactional, 5 control, 6 delete horizon
    23      4     last_offset_delta
    27      8     base_timestamp
    35      8     max_timestamp
    43      8     producer_id
    51      2     producer_epoch
    53      4     base_sequence
    57      4     records_count
    61      ...   records (possibly compressed)

Base offset, length and leader epoch sit before the CRC'd range, so assigning offsets
never recomputes the checksum; only LogAppendTime (which rewrites attributes and
max_timestamp) does.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterator
from typing import Final

import crc32c

BASE_OFFSET_OFFSET: Final = 0
LENGTH_OFFSET: Final = 8
PARTITION_LEADER_EPOCH_OFFSET: Final = 12
MAGIC_OFFSET: Final = 16
CRC_OFFSET: Final = 17
ATTRIBUTES_OFFSET: Final = 21
MAX_TIMESTAMP_OFFSET: Final = 35
LOG_OVERHEAD: Final = 12
"""Bytes before the batch_length-counted part: base offset (8) + batch length (4)."""
BATCH_HEADER_SIZE: Final = 61
"""Bytes of header before the first record."""
MIN_BATCH_LENGTH: Final = BATCH_HEADER_SIZE - LOG_OVERHEAD

NO_PRODUCER_ID: Final = -1
NO_PRODUCER_EPOCH: Final = -1
NO_SEQUENCE: Final = -1
NO_TIMESTAMP: Final = -1
NO_PARTITION_LEADER_EPOCH: Final = -1

_HEADER = struct.Struct(">qiibIhiqqqhii")
_INT64 = struct.Struct(">q")
_INT32 = struct.Struct(">i")
_UINT32 = struct.Struct(">I")
_INT16 = struct.Struct(">h")
_LOG_PREFIX = struct.Struct(">qii")  # base offset, batch length, partition leader epoch

COMPRESSION_MASK: Final = 0x07
TIMESTAMP_TYPE_MASK: Final = 0x08
TRANSACTIONAL_FLAG: Final = 0x10
CONTROL_FLAG: Final = 0x20
DELETE_HORIZON_FLAG: Final = 0x40


class CompressionType(enum.IntEnum):
    NONE = 0
    GZIP = 1
    SNAPPY = 2
    LZ4 = 3
    ZSTD = 4


class TimestampType(enum.IntEnum):
    CREATE_TIME = 0
    LOG_APPEND_TIME = 1


class BatchHeader:
    """The parsed fixed header of one record batch, and where it sits in its buffer."""

    __slots__ = (
        "attributes",
        "base_offset",
        "base_sequence",
        "base_timestamp",
        "batch_length",
        "crc",
        "last_offset_delta",
        "magic",
        "max_timestamp",
        "partition_leader_epoch",
        "position",
        "producer_epoch",
        "producer_id",
        "records_count",
        "size",
    )

    def __init__(  # noqa: PLR0917 - built from one struct.unpack of the header
        self,
        position: int,
        base_offset: int,
        batch_length: int,
        partition_leader_epoch: int,
        magic: int,
        crc: int,
        attributes: int,
        last_offset_delta: int,
        base_timestamp: int,
        max_timestamp: int,
        producer_id: int,
        producer_epoch: int,
        base_sequence: int,
        records_count: int,
    ) -> None:
        self.position = position
        self.base_offset = base_offset
        self.batch_length = batch_length
        self.partition_leader_epoch = partition_leader_epoch
        self.magic = magic
        self.crc = crc
        self.attributes = attributes
        self.last_offset_delta = last_offset_delta
        self.base_timestamp = base_timestamp
        self.max_timestamp = max_timestamp
        self.producer_id = producer_id
        self.producer_epoch = producer_epoch
        self.base_sequence = base_sequence
        self.records_count = records_count
        self.size = batch_length + LOG_OVERHEAD
        """Whole batch size in bytes, header included (a field, not a property: the
        append path reads it several times per batch)."""

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta

    @property
    def next_offset(self) -> int:
        return self.base_offset + self.last_offset_delta + 1

    @property
    def compression(self) -> int:
        return self.attributes & COMPRESSION_MASK

    @property
    def timestamp_type(self) -> TimestampType:
        return (
            TimestampType.LOG_APPEND_TIME
            if self.attributes & TIMESTAMP_TYPE_MASK
            else TimestampType.CREATE_TIME
        )

    @property
    def is_transactional(self) -> bool:
        return bool(self.attributes & TRANSACTIONAL_FLAG)

    @property
    def is_control(self) -> bool:
        return bool(self.attributes & CONTROL_FLAG)

    @property
    def has_producer_id(self) -> bool:
        return self.producer_id > NO_PRODUCER_ID

    @property
    def last_sequence(self) -> int:
        """Sequence of the batch's last record, wrapping at 2**31 as Kafka does."""
        if self.base_sequence == NO_SEQUENCE:
            return NO_SEQUENCE
        return (self.base_sequence + self.last_offset_delta) % (1 << 31)

    def __repr__(self) -> str:
        return (
            f"BatchHeader(position={self.position}, base_offset={self.base_offset}, "
            f"size={self.size}, last_offset_delta={self.last_offset_delta}, "
            f"records_count={self.records_count}, attributes={self.attributes:#x}, "
            f"producer_id={self.producer_id}, base_sequence={self.base_sequence})"
        )


def read_header(buffer: bytes | bytearray | memoryview, position: int = 0) -> BatchHeader:
    """Parse the batch header at ``position``. The caller checks that 61 bytes are there."""
    return BatchHeader(position, *_HEADER.unpack_from(buffer, position))


def read_header_prefix(buffer: bytes | bytearray | memoryview, position: int) -> tuple[int, int]:
    """(base_offset, batch_length) of the batch at ``position``: the 12-byte log overhead."""
    return _INT64.unpack_from(buffer, position)[0], _INT32.unpack_from(buffer, position + 8)[0]


def compute_crc(buffer: bytes | bytearray | memoryview, position: int, size: int) -> int:
    """CRC-32C over the checksummed part of the batch at ``position`` of ``size`` bytes."""
    view = memoryview(buffer)[position + ATTRIBUTES_OFFSET : position + size]
    return int(crc32c.crc32c(view))


def iter_headers(
    buffer: bytes | bytearray | memoryview, start: int = 0, end: int | None = None
) -> Iterator[BatchHeader]:
    """Headers of the complete batches in ``buffer[start:end]``.

    Stops silently at a partial trailing batch; callers that must reject trailing bytes
    compare the last batch's end with ``end``.
    """
    stop = len(buffer) if end is None else end
    position = start
    while position + BATCH_HEADER_SIZE <= stop:
        header = read_header(buffer, position)
        if header.batch_length < MIN_BATCH_LENGTH or position + header.size > stop:
            return
        yield header
        position += header.size


def complete_batches_size(buffer: bytes | bytearray | memoryview) -> int:
    """Bytes of ``buffer`` up to the end of its last complete batch, by length fields only.

    A fetch response may end inside a batch (the leader cuts its read at the byte limit;
    Kafka's readers drop the partial batch). A batch whose length is below the minimum is
    not cut: the whole buffer is kept so that validation rejects it as corrupt.
    """
    end = len(buffer)
    position = 0
    while position + LOG_OVERHEAD <= end:
        length = _INT32.unpack_from(buffer, position + LENGTH_OFFSET)[0]
        if length < MIN_BATCH_LENGTH:
            return end
        if position + LOG_OVERHEAD + length > end:
            return position
        position += LOG_OVERHEAD + length
    return position


def set_base_offset(buffer: bytearray | memoryview, position: int, base_offset: int) -> None:
    _INT64.pack_into(buffer, position + BASE_OFFSET_OFFSET, base_offset)


def assign_offset_and_epoch(buffer: bytearray | memoryview, header: BatchHeader) -> None:
    """Write ``header``'s base offset and partition leader epoch into its batch in
    ``buffer`` (with one ``pack_into``: the two fields enclose the batch length)."""
    _LOG_PREFIX.pack_into(
        buffer,
        header.position,
        header.base_offset,
        header.batch_length,
        header.partition_leader_epoch,
    )


def set_log_append_time(
    buffer: bytearray | memoryview, header: BatchHeader, timestamp_ms: int
) -> None:
    """Mark the batch LogAppendTime with ``timestamp_ms`` as max timestamp; recompute CRC.

    As Kafka does, the records keep their deltas; readers take max_timestamp for every
    record of a LogAppendTime batch.
    """
    position = header.position
    attributes = header.attributes | TIMESTAMP_TYPE_MASK
    _INT16.pack_into(buffer, position + ATTRIBUTES_OFFSET, attributes)
    _INT64.pack_into(buffer, position + MAX_TIMESTAMP_OFFSET, timestamp_ms)
    header.attributes = attributes
    header.max_timestamp = timestamp_ms
    header.crc = compute_crc(buffer, position, header.size)
    _UINT32.pack_into(buffer, position + CRC_OFFSET, header.crc)
