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
from typing import NamedTuple

from odradek.protocol.codec import DecodeError
from odradek.protocol.reader import (
    array_length,
    short,
    skip_tagged_fields,
    string,
    uvarint,
)
from odradek.protocol.types import TopicPartition, new_tuple

FLEXIBLE_FROM = 9
MIN_VERSION = 3
MAX_VERSION = 12

_I32 = struct.Struct(">i")
_ACKS_TIMEOUT = struct.Struct(">hi")
_PARTITION = struct.Struct(">ii")  # index, records length (before v9)

PartitionRecords = tuple[TopicPartition, memoryview | None]
"""One partition's records blob, keyed as the log and the response key it: what the
replica manager appends."""


class TopicRecords(NamedTuple):
    name: str
    partitions: list[PartitionRecords]


class ProduceRequestView(NamedTuple):
    """Named tuples built with ``new_tuple``: one of each per request."""

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


# Named tuples built with new_tuple, and partitions as (TopicPartition, records) pairs
# the log and the response use as they are: librdkafka sends one partition per produce
# request, so this parser runs once per partition batch, and every call and object made
# here is paid per batch.


def _acks_and_timeout(data: memoryview, position: int, end: int) -> tuple[int, int, int]:
    if position + _ACKS_TIMEOUT.size > end:
        raise short("acks and timeout")
    acks, timeout_ms = _ACKS_TIMEOUT.unpack_from(data, position)
    return acks, timeout_ms, position + _ACKS_TIMEOUT.size


def parse_produce_request(
    frame: bytes | bytearray, offset: int, version: int
) -> ProduceRequestView:
    """The request in ``frame`` after its header (``offset``), records as views into it."""
    if not MIN_VERSION <= version <= MAX_VERSION:
        raise DecodeError(f"ProduceRequest v{version} is not parsed here")
    try:
        if version >= FLEXIBLE_FROM:
            return _parse_flexible(memoryview(frame), offset)
        return _parse_classic(memoryview(frame), offset)
    except DecodeError as exc:
        raise DecodeError(f"ProduceRequest v{version}: {exc}") from None


def _parse_flexible(data: memoryview, position: int) -> ProduceRequestView:
    """v9+. The common shapes (one-byte counts and name lengths, a null transactional
    id, no tagged fields, records under 16 KiB) are read inline; anything else goes
    through the helpers, which check it as strictly."""
    end = len(data)
    if position < end and not data[position]:
        transactional_id = None
        position += 1
    else:
        transactional_id, position = string(data, position, end, True, nullable=True)
    acks, timeout_ms, position = _acks_and_timeout(data, position, end)
    topics = []
    byte = data[position] if position < end else 0
    if 0 < byte < 0x80:  # as _array_length, inline (a lying count runs out of bytes)
        topic_count = byte - 1
        position += 1
    else:
        topic_count, position = array_length(data, position, end, True)
    for _ in range(topic_count):
        size = data[position] if position < end else 0
        if 0 < size < 0x80 and position + size <= end:  # as _string, inline
            try:
                name = str(data[position + 1 : position + size], "utf-8")
            except UnicodeDecodeError as exc:
                raise DecodeError(f"bad UTF-8 in a string: {exc}") from None
            position += size
        else:
            read, position = string(data, position, end, True)
            assert read is not None  # null is refused unless nullable
            name = read
        partitions: list[PartitionRecords] = []
        byte = data[position] if position < end else 0
        if 0 < byte < 0x80:
            partition_count = byte - 1
            position += 1
        else:
            partition_count, position = array_length(data, position, end, True)
        for _ in range(partition_count):
            if position + 6 > end:  # index, a one-byte records length, tagged fields
                raise short("a partition")
            index = _I32.unpack_from(data, position)[0]
            size = data[position + 4]
            if size < 0x80:
                position += 5
            elif (byte := data[position + 5]) < 0x80:
                size = (size & 0x7F) | byte << 7
                position += 6
            else:
                size, position = uvarint(data, position + 4, end)
            if not size:
                records = None
            elif position + size - 1 > end:
                raise short("a records blob")
            else:
                records = data[position : position + size - 1]
                position += size - 1
            if position < end and not data[position]:  # as _skip_tagged_fields, inline
                position += 1
            else:
                position = skip_tagged_fields(data, position, end)
            partitions.append((new_tuple(TopicPartition, (name, index)), records))
        position = skip_tagged_fields(data, position, end)
        topics.append(new_tuple(TopicRecords, (name, partitions)))
    skip_tagged_fields(data, position, end)
    return new_tuple(ProduceRequestView, (transactional_id, acks, timeout_ms, topics))


def _parse_classic(data: memoryview, position: int) -> ProduceRequestView:
    """v3-v8: int16 string lengths, int32 array counts and records lengths."""
    end = len(data)
    transactional_id, position = string(data, position, end, False, nullable=True)
    acks, timeout_ms, position = _acks_and_timeout(data, position, end)
    topics = []
    topic_count, position = array_length(data, position, end, False)
    for _ in range(topic_count):
        name, position = string(data, position, end, False)
        assert name is not None
        partitions: list[PartitionRecords] = []
        partition_count, position = array_length(data, position, end, False)
        for _ in range(partition_count):
            if position + 8 > end:  # index and records length
                raise short("a partition")
            index, size = _PARTITION.unpack_from(data, position)
            position += 8
            if size == -1:
                records = None
            elif size < 0 or position + size > end:
                raise short("a records blob")
            else:
                records = data[position : position + size]
                position += size
            partitions.append((new_tuple(TopicPartition, (name, index)), records))
        topics.append(new_tuple(TopicRecords, (name, partitions)))
    return new_tuple(ProduceRequestView, (transactional_id, acks, timeout_ms, topics))
