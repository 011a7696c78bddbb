"""ProduceRequest v3-v11 read without copying the records: the hot path's own parser.

kio would copy every partition's records into a new ``bytes``; here each partition's
records stay a ``memoryview`` into the request frame, which the log then patches (base
offset, leader epoch) and writes in place. Layout (v9+ is flexible: compact strings,
arrays and bytes as uvarint(length + 1), and tagged fields closing every struct)::

    transactional_id   nullable string
    acks               int16
    timeout_ms         int32
    topic_data         array of
      name             string
      partition_data   array of
        index          int32
        records        nullable bytes

Every length is checked against the bytes actually in the frame before it is used, so a
lying length is a DecodeError, never an allocation. The unit tests hold this parser
against kio's encoder for every version.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from odradek.protocol.codec import DecodeError

FLEXIBLE_FROM = 9
MIN_VERSION = 3
MAX_VERSION = 12

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_ACKS_TIMEOUT = struct.Struct(">hi")


@dataclass(frozen=True, slots=True)
class PartitionRecords:
    index: int
    records: memoryview | None


@dataclass(frozen=True, slots=True)
class TopicRecords:
    name: str
    partitions: list[PartitionRecords]


@dataclass(frozen=True, slots=True)
class ProduceRequestView:
    transactional_id: str | None
    acks: int
    timeout_ms: int
    topics: list[TopicRecords]


class _Cursor:
    __slots__ = ("data", "end", "position")

    def __init__(self, data: memoryview, position: int) -> None:
        self.data = data
        self.position = position
        self.end = len(data)

    def need(self, size: int) -> None:
        if size < 0 or self.position + size > self.end:
            raise DecodeError("ProduceRequest: a length runs past the end of the frame")

    def int16(self) -> int:
        self.need(2)
        value = _I16.unpack_from(self.data, self.position)[0]
        self.position += 2
        return int(value)

    def int32(self) -> int:
        self.need(4)
        value = _I32.unpack_from(self.data, self.position)[0]
        self.position += 4
        return int(value)

    def uvarint(self) -> int:
        value = 0
        for shift in range(0, 35, 7):
            self.need(1)
            byte = self.data[self.position]
            self.position += 1
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
        raise DecodeError("ProduceRequest: varint longer than 5 bytes")

    def take(self, size: int) -> memoryview:
        self.need(size)
        chunk = self.data[self.position : self.position + size]
        self.position += size
        return chunk

    def string(self, flexible: bool, nullable: bool = False) -> str | None:
        size = self.uvarint() - 1 if flexible else self.int16()
        if size < 0:
            if nullable and size == -1:
                return None
            raise DecodeError("ProduceRequest: null or negative string length")
        try:
            return str(self.take(size), "utf-8")
        except UnicodeDecodeError as exc:
            raise DecodeError(f"ProduceRequest: bad UTF-8 in a string: {exc}") from None

    def array_length(self, flexible: bool) -> int:
        count = self.uvarint() - 1 if flexible else self.int32()
        if count < 0:
            raise DecodeError("ProduceRequest: null or negative array length")
        # Each element takes at least one byte: a count beyond the bytes left is a lie.
        self.need(count)
        return count

    def skip_tagged_fields(self) -> None:
        for _ in range(self.uvarint()):
            self.uvarint()
            self.take(self.uvarint())


def parse_produce_request(
    frame: bytes | bytearray, offset: int, version: int
) -> ProduceRequestView:
    """The request in ``frame`` after its header (``offset``), records as views into it."""
    if not MIN_VERSION <= version <= MAX_VERSION:
        raise DecodeError(f"ProduceRequest v{version} is not parsed here")
    flexible = version >= FLEXIBLE_FROM
    cursor = _Cursor(memoryview(frame), offset)
    transactional_id = cursor.string(flexible, nullable=True)
    cursor.need(_ACKS_TIMEOUT.size)
    acks, timeout_ms = _ACKS_TIMEOUT.unpack_from(cursor.data, cursor.position)
    cursor.position += _ACKS_TIMEOUT.size
    topics = []
    for _ in range(cursor.array_length(flexible)):
        name = cursor.string(flexible)
        assert name is not None
        partitions = []
        for _ in range(cursor.array_length(flexible)):
            index = cursor.int32()
            size = cursor.uvarint() - 1 if flexible else cursor.int32()
            records = None if size == -1 else cursor.take(size)
            if flexible:
                cursor.skip_tagged_fields()
            partitions.append(PartitionRecords(index, records))
        if flexible:
            cursor.skip_tagged_fields()
        topics.append(TopicRecords(name, partitions))
    if flexible:
        cursor.skip_tagged_fields()
    return ProduceRequestView(transactional_id, int(acks), int(timeout_ms), topics)
