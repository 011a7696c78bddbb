"""Bad Kafka request frames: every request version the broker serves, broken on purpose.

A case starts from a valid request of one served (API, version) — ``build_request``
encoded by kio, or a hand-built body for Produce v0-2, which kio has no schema for —
and applies one structured mutation and/or up to two blind ones:

    length    a length prefix of the valid body (int16 string, int32 bytes/array,
              compact uvarint, tagged-field count or size; found by
              ``declared_lengths.trace_request``) set to a hostile value: negative,
              INT16_MAX, INT32_MAX, just past the end, 2^31..2^35-1, 6- and 10-byte
              varints, a varint cut off by the end of the frame
    tagged    tagged fields inserted with huge counts, huge or lying sizes, unknown tags
    number    a fixed-size number (found the same way) set to 0, -1, a sign boundary or
              an extreme: the request parses, and the handler gets the value
    header    api key or version out of range, client id length negative or past the
              end, header tagged fields (v2) huge or overlong
    flip      1-8 bytes XORed with random masks
    insert    1-16 random or 0xFF bytes at a random position
    delete    a random byte range
    truncate  the frame cut short

The same code draws from hypothesis (the unit fuzz tests) or from a seeded
``random.Random`` (the live-server run and ``python -m tests.fuzz.report``), so both
runs try the same kinds of damage.

:func:`decode_frame` runs a frame through the decode path of ``broker/connection.py``
(``KafkaConnection._on_frame``, up to the handler call): keep the two in step.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, Protocol, TypeVar, cast

from hypothesis import strategies as st
from kio.schema.index import api_key_map

from odradek.broker.api import Handler, RequestContext
from odradek.broker.handlers import all_handlers
from odradek.protocol import codec
from odradek.protocol.declared_lengths import (
    ARRAY,
    BYTES,
    FIXED,
    STRING,
    TAGGED_COUNT,
    trace_request,
)
from odradek.protocol.headers import API_VERSIONS_KEY, parse_request_header, peek_api
from odradek.protocol.record_codec import NewRecord, build_batch
from tests.support.requests import build_request

T = TypeVar("T")
Layout = tuple[tuple[int, int], ...]

INT16_MIN, INT16_MAX = -(2**15), 2**15 - 1
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
CLIENT_ID = b"fuzz"


class Draw(Protocol):
    """Where a case's choices come from: hypothesis or a seeded ``random.Random``."""

    def integer(self, low: int, high: int) -> int: ...
    def choice(self, options: Sequence[T]) -> T: ...


class RandomDraw:
    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def integer(self, low: int, high: int) -> int:
        return self._rng.randint(low, high)

    def choice(self, options: Sequence[T]) -> T:
        return options[self._rng.randrange(len(options))]


class HypothesisDraw:
    def __init__(self, data: st.DataObject) -> None:
        self._data = data

    def integer(self, low: int, high: int) -> int:
        return self._data.draw(st.integers(low, high))

    def choice(self, options: Sequence[T]) -> T:
        return self._data.draw(st.sampled_from(options))


# -- valid requests to start from ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Target:
    """One (API, version) the broker serves, with a valid request body for it."""

    api_key: int
    version: int
    flexible: bool
    path: str
    """How the broker decodes it: "kio", "own" (the handler's decoder) or "legacy"."""
    body: bytes
    lengths: Layout
    """(position in body, declared_lengths kind) of every length prefix in ``body``."""
    numbers: Layout
    """(position in body, width) of every run of fixed-size numbers in ``body``."""

    @property
    def name(self) -> str:
        return f"{api_key_map.get(self.api_key, self.api_key)} v{self.version}"

    def frame(self, correlation_id: int = 1) -> bytes:
        return header(self.api_key, self.version, self.flexible, correlation_id) + self.body


def header(api_key: int, version: int, flexible: bool, correlation_id: int = 1) -> bytes:
    """Request header v1, or v2 (with no tagged fields) when ``flexible``."""
    head = struct.pack(">hhih", api_key, version, correlation_id, len(CLIENT_ID)) + CLIENT_ID
    return head + b"\x00" if flexible else head


def header_size(flexible: bool) -> int:
    return 10 + len(CLIENT_ID) + (1 if flexible else 0)


@cache
def handlers() -> dict[int, Handler]:
    return {handler.api_key: handler for handler in all_handlers()}


@cache
def targets() -> tuple[Target, ...]:
    """Every (API, version) the broker serves: all_handlers() within kio's versions, and
    the versions a handler answers from the raw frame (Produce v0-2)."""
    out = []
    for handler in all_handlers():
        low, high = codec.kio_versions(handler.api_key) or (0, -1)
        for version in range(handler.min_version, handler.lowest_served):
            assert handler.api_key == 0, "only Produce answers versions kio cannot read"
            body, lengths, numbers = _legacy_produce_body()
            out.append(Target(0, version, False, "legacy", body, lengths, numbers))
        for version in range(max(handler.lowest_served, low), min(handler.max_version, high) + 1):
            cls = codec.request_class(handler.api_key, version)
            body = codec.encode(build_request(cls))
            path = "kio" if handler.decode is None else "own"
            trace = trace_request(cls, body, 0)
            lengths = tuple((pos, kind) for pos, kind, _width in trace if kind != FIXED)
            numbers = tuple((pos, width) for pos, kind, width in trace if kind == FIXED)
            flexible = bool(cls.__flexible__)
            out.append(Target(handler.api_key, version, flexible, path, body, lengths, numbers))
    for target in out:  # kio compiles a reader on first use: keep that out of measurements
        decode_frame(target.frame())
    return tuple(out)


def _legacy_produce_body() -> tuple[bytes, Layout, Layout]:
    """Produce v0-2: acks, timeout, [name, [index, records]]; its lengths and numbers."""
    records = build_batch([NewRecord(key=b"k", value=b"v")])
    body = struct.pack(">hi", 1, 1000) + struct.pack(">i", 1)
    body += struct.pack(">h", 6) + b"matrix" + struct.pack(">i", 1)
    body += struct.pack(">ii", 0, len(records)) + records
    return body, ((6, ARRAY), (10, STRING), (18, ARRAY), (26, BYTES)), ((0, 6), (22, 4))


# -- mutations ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Case:
    target: Target
    frame: bytes
    """The request frame without its size prefix."""
    mutations: tuple[str, ...]

    @property
    def label(self) -> str:
        return f"{self.target.name} [{', '.join(self.mutations)}]"

    def framed(self) -> bytes:
        return struct.pack(">i", len(self.frame)) + self.frame


def uvarint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def varint_width(data: bytes, position: int) -> int:
    """Bytes the varint at ``position`` takes (up to the end of ``data``)."""
    width = 1
    while position + width - 1 < len(data) and data[position + width - 1] & 0x80:
        width += 1
    return min(width, len(data) - position)


HOSTILE_VARINTS: tuple[bytes, ...] = (
    uvarint(2**31),  # count or length 2^31 - 1
    uvarint(2**31 + 1),
    uvarint(2**32 - 1),  # count 2^32 - 2: kio would reserve 32 GiB
    b"\xff\xff\xff\xff\x7f",  # 2^35 - 1, the largest 5-byte varint
    b"\xff\xff\xff\xff\xff\x01",  # 6 bytes: longer than any Kafka varint
    b"\x80" * 9 + b"\x00",  # 10-byte zero
    b"\x81\x80\x80\x80\x80\x80\x80\x80\x80\x01",
)
HOSTILE_INT32 = (INT32_MIN, -2, -1, 2**24, 2**30, INT32_MAX)
HOSTILE_INT16 = (INT16_MIN, -2, -1, INT16_MAX)


def _splice(frame: bytes, position: int, width: int, new: bytes) -> bytes:
    return frame[:position] + new + frame[position + width :]


def mutate_length(draw: Draw, frame: bytes, target: Target) -> tuple[bytes, str]:
    """A length prefix of the body set to a hostile value."""
    if not target.lengths:
        return mutate_flip(draw, frame, target)
    offset, kind = draw.choice(target.lengths)
    position = header_size(target.flexible) + offset
    left = len(frame) - position
    if kind == STRING:
        value = draw.choice((*HOSTILE_INT16, left - 1, left))
        return _splice(frame, position, 2, struct.pack(">h", value)), f"length:int16={value}"
    if kind in (BYTES, ARRAY):
        value = draw.choice((*HOSTILE_INT32, left - 3, left))
        return _splice(frame, position, 4, struct.pack(">i", value)), f"length:int32={value}"
    width = varint_width(frame, position)
    if draw.integer(0, 7) == 0:  # a varint the end of the frame cuts off
        return frame[:position] + b"\x80" * draw.integer(1, 4), "length:varint-cut"
    new = draw.choice((*HOSTILE_VARINTS, uvarint(left + 1), uvarint(left + 2)))
    name = "tagged-count" if kind == TAGGED_COUNT else "varint"
    return _splice(frame, position, width, new), f"length:{name}={new.hex()}"


def mutate_tagged(draw: Draw, frame: bytes, target: Target) -> tuple[bytes, str]:
    """Tagged fields inserted where a flexible struct's tagged-field count is."""
    counts = [offset for offset, kind in target.lengths if kind == TAGGED_COUNT]
    if not counts:
        return mutate_header(draw, frame, target)
    position = header_size(target.flexible) + draw.choice(counts)
    width = varint_width(frame, position)
    count = draw.choice((1, 1, 2, 2**31, 2**32 - 1))
    tag = draw.choice((0, 1, 2, 3, 99, 2**31 - 1))
    size = draw.choice((0, 1, 8, 2**31 - 1, 2**35 - 1, len(frame)))
    payload = bytes(draw.integer(0, 255) for _ in range(draw.integer(0, 8)))
    fields = uvarint(count) + uvarint(tag) + uvarint(size) + payload
    return _splice(frame, position, width, fields), f"tagged:n={count},tag={tag},size={size}"


def mutate_header(draw: Draw, frame: bytes, target: Target) -> tuple[bytes, str]:
    """The request header broken: key, version, client id length, tagged fields."""
    where = draw.integer(0, 3 if target.flexible else 2)
    if where == 0:
        key = draw.choice((-1, 17, 99, 9999, INT16_MAX))
        return _splice(frame, 0, 2, struct.pack(">h", key)), f"header:api_key={key}"
    if where == 1:
        handler = handlers()[target.api_key]
        version = draw.choice((-1, handler.max_version + 1, INT16_MAX, handler.min_version - 1))
        return _splice(frame, 2, 2, struct.pack(">h", version)), f"header:version={version}"
    if where == 2:
        length = draw.choice((*HOSTILE_INT16, len(frame) - 9, len(frame) - 10))
        return _splice(frame, 8, 2, struct.pack(">h", length)), f"header:client_id={length}"
    position = header_size(True) - 1
    new = draw.choice((*HOSTILE_VARINTS, b"\x01\x00" + uvarint(2**31), b"\x01\x00\xff"))
    return _splice(frame, position, 1, new), f"header:tagged={new.hex()}"


HOSTILE_NUMBERS = (0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, INT32_MAX, 2**31, 2**32 - 1)


def mutate_number(draw: Draw, frame: bytes, target: Target) -> tuple[bytes, str]:
    """A number of the body (an int8..int64 in a run of them) set to an extreme."""
    if not target.numbers:
        return mutate_flip(draw, frame, target)
    offset, width = draw.choice(target.numbers)
    size = draw.choice([size for size in (1, 2, 4, 8) if size <= width])
    position = header_size(target.flexible) + offset + draw.integer(0, width - size)
    value = draw.choice(HOSTILE_NUMBERS) % (1 << (8 * size))
    if draw.integer(0, 1):
        value = (1 << (8 * size)) - 1 - value  # and the negative ones
    new = value.to_bytes(size, "big")
    return _splice(frame, position, size, new), f"number:{new.hex()}@{offset}"


def _somewhere(draw: Draw, frame: bytes, target: Target, past_end: int = 0) -> int:
    """A position in ``frame``, in the body seven times out of eight (the header has its
    own mutation); ``past_end`` 1 allows the end itself."""
    start = header_size(target.flexible)
    if start >= len(frame) or draw.integer(0, 7) == 0:
        start = 0
    return draw.integer(start, len(frame) - 1 + past_end)


def mutate_flip(draw: Draw, frame: bytes, target: Target) -> tuple[bytes, str]:
    data = bytearray(frame)
    for _ in range(draw.integer(1, 8)):
        data[_somewhere(draw, frame, target)] ^= draw.integer(1, 255)
    return bytes(data), "flip"


def mutate_insert(draw: Draw, frame: bytes, target: Target) -> tuple[bytes, str]:
    position = _somewhere(draw, frame, target, past_end=1)
    size = draw.integer(1, 16)
    new = b"\xff" * size if draw.integer(0, 1) else bytes(draw.integer(0, 255) for _ in range(size))
    return frame[:position] + new + frame[position:], "insert"


def mutate_delete(draw: Draw, frame: bytes, target: Target) -> tuple[bytes, str]:
    start = _somewhere(draw, frame, target)
    end = draw.integer(start + 1, min(len(frame), start + 32))
    return frame[:start] + frame[end:], "delete"


def mutate_truncate(draw: Draw, frame: bytes, target: Target) -> tuple[bytes, str]:
    return frame[: _somewhere(draw, frame, target)], "truncate"


Mutation = Callable[[Draw, bytes, Target], tuple[bytes, str]]
STRUCTURED: tuple[Mutation | None, ...] = (
    mutate_length,
    mutate_length,
    mutate_length,
    mutate_number,
    mutate_number,
    mutate_tagged,
    mutate_header,
    None,
)
BLIND: tuple[Mutation, ...] = (mutate_flip, mutate_insert, mutate_delete, mutate_truncate)


def draw_case(draw: Draw, target: Target | None = None) -> Case:
    """A valid request of ``target`` (or of any served version), then broken.

    The structured mutation goes first, while the layout ``target.lengths`` describes is
    intact; blind ones follow.
    """
    if target is None:
        target = draw.choice(targets())
    frame = target.frame(correlation_id=draw.integer(0, INT32_MAX))
    names = []
    structured = draw.choice(STRUCTURED)
    if structured is not None:
        frame, name = structured(draw, frame, target)
        names.append(name)
    for _ in range(draw.integer(0, 1) if names else draw.integer(1, 2)):
        if not frame:
            break
        frame, name = draw.choice(BLIND)(draw, frame, target)
        names.append(name)
    return Case(target, frame, tuple(names))


# -- the broker's decode path, without a socket -------------------------------------------


class RefusedError(Exception):
    """The broker closes the connection without decoding (unknown key or version)."""


def decode_frame(frame: bytes | bytearray) -> Any:
    """What ``KafkaConnection._on_frame`` does with a frame before its handler runs.

    Returns the decoded request (or the legacy reply, or the header for an ApiVersions
    fallback); raises HeaderError or DecodeError where the broker closes the connection
    for a bad frame, RefusedError where it closes it for an unknown key or version.
    """
    body = bytearray(frame)  # FrameDecoder hands out writable frames
    api_key, version, _correlation_id = peek_api(body)
    handler = handlers().get(api_key)
    if handler is None:
        raise RefusedError(f"unknown API key {api_key}")
    if version < handler.min_version or version > handler.max_version:
        if api_key != API_VERSIONS_KEY:
            raise RefusedError(f"unsupported version {version} of API {api_key}")
        return parse_request_header(body, flexible=False)
    if version < handler.lowest_served:
        head = parse_request_header(body, flexible=False)
        assert handler.legacy is not None
        context = RequestContext(
            header=head, broker=cast(Any, None), client_host="", client_port=0, listener=""
        )
        return handler.legacy(context, body[head.size :])
    head = parse_request_header(body, codec.is_flexible_request(api_key, version))
    if handler.decode is not None:
        return handler.decode(body, head.size, version)
    return codec.decode_request(api_key, version, body, head.size)
