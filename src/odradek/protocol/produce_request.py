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
from odradek.protocol.types import TopicPartition

FLEXIBLE_FROM = 9
MIN_VERSION = 3
MAX_VERSION = 12

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_ACKS_TIMEOUT = struct.Struct(">hi")

PartitionRecords = tuple[TopicPartition, memoryview | None]
"""One partition's records blob, keyed as the log and the response key it: what the
replica manager appends."""


@dataclass(slots=True)
class TopicRecords:
    name: str
    partitions: list[PartitionRecords]


@dataclass(slots=True)
class ProduceRequestView:
    transactional_id: str | None
    acks: int
    timeout_ms: int
    topics: list[TopicRecords]

    def entries(self) -> list[PartitionRecords]:
        """Every partition's records, in request order."""
        topics = self.topics
        if len(topics) == 1:
            return topics[0].partitions
        return [entry for topic in topics for entry in topic.partitions]


# Plain functions over (data, position) rather than a cursor object, plain (not frozen)
# dataclasses, and partitions as (TopicPartition, records) pairs the log and the response
# use as they are: librdkafka sends one partition per produce request, so this parser runs
# once per partition batch, and with one record per request (linger.ms=0) its method
# calls and frozen-dataclass constructions took 17 us of it.


def _short(what: str) -> DecodeError:
    return DecodeError(f"ProduceRequest: {what} runs past the end of the frame")


def _uvarint(data: memoryview, position: int, end: int) -> tuple[int, int]:
    if position < end:
        byte = data[position]
        if byte < 0x80:  # one-byte varints (lengths below 127) are nearly all of them
            return byte, position + 1
    value = 0
    for shift in range(0, 35, 7):
        if position >= end:
            raise _short("a varint")
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, position
    raise DecodeError("ProduceRequest: varint longer than 5 bytes")


def _int32(data: memoryview, position: int, end: int) -> tuple[int, int]:
    if position + 4 > end:
        raise _short("an int32")
    return int(_I32.unpack_from(data, position)[0]), position + 4


def _string(
    data: memoryview, position: int, end: int, flexible: bool, nullable: bool = False
) -> tuple[str | None, int]:
    if flexible:
        if position < end and data[position] < 0x80:  # _uvarint's usual case, inline
            size = data[position] - 1
            position += 1
        else:
            size, position = _uvarint(data, position, end)
            size -= 1
    else:
        if position + 2 > end:
            raise _short("a string length")
        size = int(_I16.unpack_from(data, position)[0])
        position += 2
    if size < 0:
        if nullable and size == -1:
            return None, position
        raise DecodeError("ProduceRequest: null or negative string length")
    if position + size > end:
        raise _short("a string")
    try:
        return str(data[position : position + size], "utf-8"), position + size
    except UnicodeDecodeError as exc:
        raise DecodeError(f"ProduceRequest: bad UTF-8 in a string: {exc}") from None


def _array_length(data: memoryview, position: int, end: int, flexible: bool) -> tuple[int, int]:
    if flexible:
        if position < end and data[position] < 0x80:  # _uvarint's usual case, inline
            count = data[position] - 1
            position += 1
        else:
            count, position = _uvarint(data, position, end)
            count -= 1
    else:
        count, position = _int32(data, position, end)
    if count < 0:
        raise DecodeError("ProduceRequest: null or negative array length")
    # Each element takes at least one byte: a count beyond the bytes left is a lie.
    if position + count > end:
        raise _short("an array")
    return count, position


def _skip_tagged_fields(data: memoryview, position: int, end: int) -> int:
    if position < end and not data[position]:  # none: the usual case
        return position + 1
    count, position = _uvarint(data, position, end)
    for _ in range(count):
        _tag, position = _uvarint(data, position, end)
        size, position = _uvarint(data, position, end)
        if position + size > end:
            raise _short("a tagged field")
        position += size
    return position


def parse_produce_request(
    frame: bytes | bytearray, offset: int, version: int
) -> ProduceRequestView:
    """The request in ``frame`` after its header (``offset``), records as views into it."""
    if not MIN_VERSION <= version <= MAX_VERSION:
        raise DecodeError(f"ProduceRequest v{version} is not parsed here")
    flexible = version >= FLEXIBLE_FROM
    data = memoryview(frame)
    end = len(data)
    transactional_id, position = _string(data, offset, end, flexible, nullable=True)
    if position + _ACKS_TIMEOUT.size > end:
        raise _short("acks and timeout")
    acks, timeout_ms = _ACKS_TIMEOUT.unpack_from(data, position)
    position += _ACKS_TIMEOUT.size
    topics = []
    topic_count, position = _array_length(data, position, end, flexible)
    for _ in range(topic_count):
        name, position = _string(data, position, end, flexible)
        assert name is not None
        partitions: list[PartitionRecords] = []
        partition_count, position = _array_length(data, position, end, flexible)
        for _ in range(partition_count):
            if position + 5 > end:  # index and the shortest records length
                raise _short("a partition")
            index = _I32.unpack_from(data, position)[0]
            position += 4
            if flexible:
                size = data[position]
                if size < 0x80:
                    position += 1
                else:
                    size, position = _uvarint(data, position, end)
                size -= 1
            else:
                size, position = _int32(data, position, end)
            if size == -1:
                records = None
            elif size < 0 or position + size > end:
                raise _short("a records blob")
            else:
                records = data[position : position + size]
                position += size
            if flexible:
                if position < end and not data[position]:  # as _skip_tagged_fields, inline
                    position += 1
                else:
                    position = _skip_tagged_fields(data, position, end)
            partitions.append((TopicPartition(name, index), records))
        if flexible:
            position = _skip_tagged_fields(data, position, end)
        topics.append(TopicRecords(name, partitions))
    if flexible:
        _skip_tagged_fields(data, position, end)
    return ProduceRequestView(transactional_id, int(acks), int(timeout_ms), topics)
