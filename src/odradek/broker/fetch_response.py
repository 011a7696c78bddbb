"""Fetch responses (v4-v16) written as chunks, so record data never enters Python.

kio would need the records as bytes inside its entity; here the response is laid out by
hand with each partition's records left as a file region that the connection sends with
sendfile. Layout (``(vN+)`` marks fields from that version; v12+ is flexible: compact
strings/arrays/bytes as uvarint(length + 1), and an empty tagged-field section (0x00)
closing every struct)::

    (v1+)  throttle_time_ms      int32
    (v7+)  error_code            int16
    (v7+)  session_id            int32
           responses             array of
             topic               string (v0-12) | topic_id uuid (v13+)
             partitions          array of
               partition_index       int32
               error_code            int16
               high_watermark        int64
               last_stable_offset    int64
               (v5+) log_start_offset int64
               aborted_transactions  nullable array of (producer_id int64, first_offset int64)
               (v11+) preferred_read_replica int32
               records               nullable bytes

The unit tests hold this against kio's own encoder for every version.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from odradek.broker.api import FileRegion, ResponseChunks
from odradek.protocol.headers import unsigned_varint

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")
_HEAD_V7 = struct.Struct(">ihi")  # throttle_time_ms, error_code, session_id
_PARTITION_HEAD = struct.Struct(">ihqq")
_ABORTED = struct.Struct(">qq")
# A partition's fields up to its records when it has no aborted transactions (null for
# read_uncommitted, empty for read_committed): one pack instead of five.
_NO_ABORTED_V4 = struct.Struct(">ihqqi")  # ... last_stable_offset, aborted count
_NO_ABORTED_V5 = struct.Struct(">ihqqqi")  # + log_start_offset
_NO_ABORTED_V12 = struct.Struct(">ihqqqBi")  # the count as a one-byte compact length

FLEXIBLE_FROM = 12
TOPIC_ID_FROM = 13


@dataclass(slots=True)
class PartitionData:
    """One partition of the response; built per fetch, so not frozen (a frozen
    dataclass's __init__ costs three times as much)."""

    index: int
    error_code: int
    high_watermark: int = -1
    last_stable_offset: int = -1
    log_start_offset: int = -1
    aborted_transactions: Sequence[tuple[int, int]] | None = None
    preferred_read_replica: int = -1
    records: FileRegion | bytes | None = None


class TopicData(NamedTuple):
    name: str
    topic_id: uuid.UUID
    partitions: Sequence[PartitionData]


def _array_length(out: bytearray, count: int | None, flexible: bool) -> None:
    if flexible:
        out += unsigned_varint(0 if count is None else count + 1)
    else:
        out += _I32.pack(-1 if count is None else count)


def encode_fetch_response(
    version: int,
    topics: Sequence[TopicData],
    *,
    error_code: int = 0,
    session_id: int = 0,
    throttle_time_ms: int = 0,
) -> ResponseChunks:
    flexible = version >= FLEXIBLE_FROM
    parts: list[bytes | FileRegion] = []
    if version >= 7:
        out = bytearray(_HEAD_V7.pack(throttle_time_ms, error_code, session_id))
    else:
        out = bytearray(_I32.pack(throttle_time_ms))
    _array_length(out, len(topics), flexible)
    for topic in topics:
        if version >= TOPIC_ID_FROM:
            out += topic.topic_id.bytes
        else:
            name = topic.name.encode()
            if flexible:
                out += unsigned_varint(len(name) + 1)
            else:
                out += _I16.pack(len(name))
            out += name
        _array_length(out, len(topic.partitions), flexible)
        for partition in topic.partitions:
            aborted = partition.aborted_transactions
            if not aborted:
                _head_without_aborted(out, version, partition, aborted is not None)
            else:
                _head_with_aborted(out, version, flexible, partition, aborted)
            records = partition.records
            if records is None:
                out += b"\x01" if flexible else b"\x00\x00\x00\x00"  # empty, not null
            elif isinstance(records, bytes):
                out += unsigned_varint(len(records) + 1) if flexible else _I32.pack(len(records))
                out += records
            else:
                size = records.size
                out += unsigned_varint(size + 1) if flexible else _I32.pack(size)
                if size:
                    parts.append(bytes(out))
                    parts.append(records)
                    out = bytearray()
            if flexible:
                out.append(0)  # partition tagged fields
        if flexible:
            out.append(0)  # topic tagged fields
    if flexible:
        out.append(0)  # response tagged fields
    parts.append(bytes(out))
    return ResponseChunks(parts)


def _head_without_aborted(
    out: bytearray, version: int, partition: PartitionData, empty: bool
) -> None:
    """A partition's fields before its records, with a null or ``empty`` aborted
    transactions array."""
    if version >= FLEXIBLE_FROM:
        out += _NO_ABORTED_V12.pack(
            partition.index,
            partition.error_code,
            partition.high_watermark,
            partition.last_stable_offset,
            partition.log_start_offset,
            1 if empty else 0,
            partition.preferred_read_replica,
        )
        return
    count = 0 if empty else -1
    if version >= 5:
        out += _NO_ABORTED_V5.pack(
            partition.index,
            partition.error_code,
            partition.high_watermark,
            partition.last_stable_offset,
            partition.log_start_offset,
            count,
        )
        if version >= 11:
            out += _I32.pack(partition.preferred_read_replica)
    else:
        out += _NO_ABORTED_V4.pack(
            partition.index,
            partition.error_code,
            partition.high_watermark,
            partition.last_stable_offset,
            count,
        )


def _head_with_aborted(
    out: bytearray,
    version: int,
    flexible: bool,
    partition: PartitionData,
    aborted: Sequence[tuple[int, int]],
) -> None:
    """A partition's fields before its records, with its aborted transactions."""
    out += _PARTITION_HEAD.pack(
        partition.index,
        partition.error_code,
        partition.high_watermark,
        partition.last_stable_offset,
    )
    if version >= 5:
        out += _I64.pack(partition.log_start_offset)
    _array_length(out, len(aborted), flexible)
    for producer_id, first_offset in aborted:
        out += _ABORTED.pack(producer_id, first_offset)
        if flexible:
            out.append(0)
    if version >= 11:
        out += _I32.pack(partition.preferred_read_replica)
