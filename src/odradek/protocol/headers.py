"""Request and response headers (Kafka's RequestHeader v1/v2 and ResponseHeader v0/v1).

Request header, big-endian::

    api_key         int16
    api_version     int16
    correlation_id  int32
    client_id       nullable string (int16 length, -1 = null) -- never compact, even in v2
    tagged_fields   (v2 only) uvarint count, then (uvarint tag, uvarint size, bytes) each

Header v2 goes with the flexible versions of an API, v1 with the others. Responses to
flexible versions carry header v1 (correlation id + empty tagged fields), except
ApiVersions, whose response header is always v0 so a client can read it before it knows
what the broker supports.
"""

from __future__ import annotations

import struct
from typing import Final, NamedTuple

from odradek.protocol.types import new_tuple

_HEAD = struct.Struct(">hhih")
_API = struct.Struct(">hhi")
_RESPONSE_HEAD_V0 = struct.Struct(">ii")  # size prefix, correlation id
_RESPONSE_HEAD_V1 = struct.Struct(">iiB")  # ... and no tagged fields
API_VERSIONS_KEY = 18


class HeaderError(ValueError):
    """A request header that cannot be parsed: the connection is closed."""


class RequestHeader(NamedTuple):
    """Immutable; a named tuple because one is made per request (a frozen dataclass took
    a third of the header's parse time)."""

    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None
    size: int
    """Bytes of the frame the header occupies; the body starts there."""


_ONE_BYTE_VARINTS: Final = tuple(bytes((value,)) for value in range(0x80))


def unsigned_varint(value: int) -> bytes:
    """``value`` (>= 0) as an unsigned varint: compact lengths and tag counts."""
    if 0 <= value < 0x80:  # nearly every compact length and count on the hot paths
        return _ONE_BYTE_VARINTS[value]
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def read_unsigned_varint(data: bytes | bytearray, position: int) -> tuple[int, int]:
    """Unsigned LEB128 varint at ``position`` (at most 5 bytes): (value, next position)."""
    value = 0
    for shift in range(0, 35, 7):
        if position >= len(data):
            raise HeaderError("truncated varint")
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, position
    raise HeaderError("varint longer than 5 bytes")


def skip_tagged_fields(data: bytes | bytearray, position: int) -> int:
    if position < len(data) and data[position] == 0:  # no tagged fields: the usual case
        return position + 1
    count, position = read_unsigned_varint(data, position)
    for _ in range(count):
        _tag, position = read_unsigned_varint(data, position)
        size, position = read_unsigned_varint(data, position)
        position += size
        if position > len(data):
            raise HeaderError("tagged field runs past the end of the frame")
    return position


def peek_api(frame: bytes | bytearray) -> tuple[int, int, int]:
    """(api_key, api_version, correlation_id) without parsing the rest of the header."""
    if len(frame) < 8:
        raise HeaderError("frame shorter than a request header")
    api_key, api_version, correlation_id = _API.unpack_from(frame, 0)
    return api_key, api_version, correlation_id


def parse_request_header(frame: bytes | bytearray, flexible: bool) -> RequestHeader:
    """Parse the header of ``frame``; ``flexible`` selects header v2 (tagged fields)."""
    if len(frame) < _HEAD.size:
        raise HeaderError("frame shorter than a request header")
    api_key, api_version, correlation_id, client_id_length = _HEAD.unpack_from(frame, 0)
    position = _HEAD.size
    client_id: str | None = None
    if client_id_length >= 0:
        end = position + client_id_length
        if end > len(frame):
            raise HeaderError("client id runs past the end of the frame")
        client_id = frame[position:end].decode("utf-8", "replace")
        position = end
    elif client_id_length != -1:
        raise HeaderError(f"negative client id length {client_id_length}")
    if flexible:
        if position < len(frame) and not frame[position]:  # no tagged fields, inline
            position += 1
        else:
            position = skip_tagged_fields(frame, position)
    return new_tuple(RequestHeader, (api_key, api_version, correlation_id, client_id, position))


def response_head(correlation_id: int, flexible: bool, body_size: int) -> bytes:
    """What goes before a response body of ``body_size`` bytes: the frame's size prefix,
    then the response header, v1 (with empty tagged fields) when ``flexible``, else v0."""
    if flexible:
        return _RESPONSE_HEAD_V1.pack(body_size + 5, correlation_id, 0)
    return _RESPONSE_HEAD_V0.pack(body_size + 4, correlation_id)


def encode_request_header(
    api_key: int, api_version: int, correlation_id: int, client_id: str | None, flexible: bool
) -> bytes:
    """Request header bytes: v2 (client id, then empty tagged fields) when ``flexible``,
    else v1."""
    head = struct.pack(">hhi", api_key, api_version, correlation_id)
    if client_id is None:
        head += b"\xff\xff"
    else:
        raw = client_id.encode()
        head += struct.pack(">h", len(raw)) + raw
    return head + b"\x00" if flexible else head
