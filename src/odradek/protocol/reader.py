"""Reading Kafka's primitive types from a request frame, for the hand-written parsers of
the hot requests (Produce, Fetch).

Plain functions over ``(data, position, end)`` that return ``(value, next position)``
rather than a cursor object: each parser runs once per request, and every call and
object made here is paid per request. Every length is checked against the bytes
actually in the frame before it is used, so a lying length is a DecodeError, never an
allocation. The parsers add which request they were reading to the message.
"""

from __future__ import annotations

import struct
import uuid

from odradek.protocol.codec import DecodeError

I16 = struct.Struct(">h")
I32 = struct.Struct(">i")


def short(what: str) -> DecodeError:
    return DecodeError(f"{what} runs past the end of the frame")


def uvarint(data: memoryview, position: int, end: int) -> tuple[int, int]:
    if position < end:
        byte = data[position]
        if byte < 0x80:  # one-byte varints (lengths below 127) are nearly all of them
            return byte, position + 1
    value = 0
    for shift in range(0, 35, 7):
        if position >= end:
            raise short("a varint")
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, position
    raise DecodeError("varint longer than 5 bytes")


def int32(data: memoryview, position: int, end: int) -> tuple[int, int]:
    if position + 4 > end:
        raise short("an int32")
    return int(I32.unpack_from(data, position)[0]), position + 4


def string(
    data: memoryview, position: int, end: int, flexible: bool, nullable: bool = False
) -> tuple[str | None, int]:
    if flexible:
        size, position = uvarint(data, position, end)
        size -= 1
    else:
        if position + 2 > end:
            raise short("a string length")
        size = int(I16.unpack_from(data, position)[0])
        position += 2
    if size < 0:
        if nullable and size == -1:
            return None, position
        raise DecodeError("null or negative string length")
    if position + size > end:
        raise short("a string")
    try:
        return str(data[position : position + size], "utf-8"), position + size
    except UnicodeDecodeError as exc:
        raise DecodeError(f"bad UTF-8 in a string: {exc}") from None


def array_length(data: memoryview, position: int, end: int, flexible: bool) -> tuple[int, int]:
    if flexible:
        count, position = uvarint(data, position, end)
        count -= 1
    else:
        count, position = int32(data, position, end)
    if count < 0:
        raise DecodeError("null or negative array length")
    # Each element takes at least one byte: a count beyond the bytes left is a lie.
    if position + count > end:
        raise short("an array")
    return count, position


_UUID_BYTES = struct.Struct("16s")
_UUIDS: dict[bytes, uuid.UUID] = {}
_UUIDS_KEPT = 4096


def uuid_at(data: memoryview, position: int, end: int) -> tuple[uuid.UUID, int]:
    """A 16-byte UUID (a topic id). The few ids a broker sees over and over are kept, so
    a fetch does not build a ``uuid.UUID`` (a Python ``__init__``) per topic."""
    if position + 16 > end:
        raise short("a uuid")
    raw = _UUID_BYTES.unpack_from(data, position)[0]
    found = _UUIDS.get(raw)
    if found is None:
        if len(_UUIDS) >= _UUIDS_KEPT:
            _UUIDS.clear()
        found = _UUIDS[raw] = uuid.UUID(bytes=raw)
    return found, position + 16


def skip_tagged_fields(data: memoryview, position: int, end: int) -> int:
    if position < end and not data[position]:  # none: the usual case
        return position + 1
    return tagged_field(data, position, end, -1)[1]


def tagged_field(
    data: memoryview, position: int, end: int, wanted: int
) -> tuple[tuple[int, int] | None, int]:
    """Walk a tagged-field section: ((start, end) of field ``wanted``'s value, or None
    when it is absent) and the position after the section. Other tags are skipped."""
    found = None
    count, position = uvarint(data, position, end)
    for _ in range(count):
        tag, position = uvarint(data, position, end)
        size, position = uvarint(data, position, end)
        if position + size > end:
            raise short("a tagged field")
        if tag == wanted:
            found = (position, position + size)
        position += size
    return found, position
