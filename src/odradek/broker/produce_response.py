"""Produce response body, written by hand (the hot path's answer; kio's generic writer
cost a quarter of a one-record produce request).

Layout, Kafka's ``ProduceResponse`` v3-v11 (flexible, i.e. compact strings and arrays
and tagged fields, from v9)::

    responses: [
        name: string
        partition_responses: [
            index: int32
            error_code: int16
            base_offset: int64
            log_append_time_ms: int64               -1 unless LogAppendTime
            log_start_offset: int64                 v5+
            record_errors: [batch_index: int32,     v8+, always empty here
                            batch_index_error_message: nullable string]
            error_message: nullable string          v8+
            <tagged fields>                         v9+ (current_leader, tag 0, v10+:
                                                    never sent, leadership is static)
        ]
        <tagged fields>                             v9+
    ]
    throttle_time_ms: int32
    <tagged fields>                                 v9+ (node_endpoints, tag 0, v10+:
                                                    never sent)

Strings and arrays: int16/int32 length (-1 null) before v9; unsigned varint length + 1
(0 null) from v9. ``tests/unit/broker/test_produce_response.py`` checks every version
byte for byte against kio's writer.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Sequence
from typing import Final

from odradek.replication.replica_manager import ProduceResult

FLEXIBLE_FROM: Final = 9
MAX_VERSION: Final = 11

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_PARTITION = struct.Struct(">ihqq")  # index, error, base offset, log append time
_PARTITION_V5 = struct.Struct(">ihqqq")  # ... and log start offset
_NO_RECORD_ERRORS_NO_MESSAGE = {
    # What closes a partition that has no record errors and no error message (nearly
    # every one): an empty record_errors array, a null message, and from v9 no tagged
    # fields. Written as one constant after one pack rather than field by field.
    8: _I32.pack(0) + _I16.pack(-1),
    9: b"\x01\x00\x00",
}


def _uvarint(out: bytearray, value: int) -> None:
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def _string(out: bytearray, text: str | None, flexible: bool) -> None:
    if text is None:
        if flexible:
            out.append(0)
        else:
            out += _I16.pack(-1)
        return
    data = text.encode()
    if flexible:
        _uvarint(out, len(data) + 1)
    else:
        out += _I16.pack(len(data))
    out += data


def _count(out: bytearray, count: int, flexible: bool) -> None:
    if flexible:
        _uvarint(out, count + 1)
    else:
        out += _I32.pack(count)


@functools.lru_cache(maxsize=4096)
def _topic_head(name: str, partition_count: int, flexible: bool) -> bytes:
    """A topic's name and partition count, as written before its partitions: the same
    few bytes for nearly every response (librdkafka sends one partition per request)."""
    out = bytearray()
    _string(out, name, flexible)
    _count(out, partition_count, flexible)
    return bytes(out)


def encode_produce_response(
    version: int,
    topics: Sequence[tuple[str, Sequence[tuple[int, ProduceResult]]]],
    throttle_time_ms: int = 0,
) -> bytes:
    """The body of a ProduceResponse of ``version`` (3..11): per topic, per partition
    index, the result of its append."""
    if not 3 <= version <= MAX_VERSION:
        raise ValueError(f"cannot encode ProduceResponse v{version}")
    flexible = version >= FLEXIBLE_FROM
    closing = _NO_RECORD_ERRORS_NO_MESSAGE[min(version, 9)] if version >= 8 else b""
    out = bytearray()
    _count(out, len(topics), flexible)
    for name, partitions in topics:
        out += _topic_head(name, len(partitions), flexible)
        for index, result in partitions:
            if version < 5:
                out += _PARTITION.pack(
                    index, result.error, result.base_offset, result.log_append_time
                )
                continue
            out += _PARTITION_V5.pack(
                index,
                result.error,
                result.base_offset,
                result.log_append_time,
                result.log_start_offset,
            )
            if version < 8:
                continue
            if result.message is None:
                out += closing
                continue
            _count(out, 0, flexible)  # record_errors
            _string(out, result.message, flexible)
            if flexible:
                out.append(0)  # partition tagged fields
        if flexible:
            out.append(0)  # topic tagged fields
    out += _I32.pack(throttle_time_ms)
    if flexible:
        out.append(0)  # response tagged fields
    return bytes(out)
