"""Declared lengths held against the bytes received, before kio allocates for them.

kio's native reader reserves room for an array's declared element count before it reads
one element (``Vec::with_capacity(count)``, 8 bytes an element): a 30-byte request that
declares 2^32 - 2 elements makes it ask for 32 GiB, and a failed allocation in Rust aborts
the whole process (``handle_alloc_error``), not just the request; INT32_MAX in a legacy
array reserves 16 GiB of address space. That is CVE-2022-34917's bug class, which Kafka
fixed with "Tried to allocate a collection of size N, but there are only M bytes
remaining". So every request body kio decodes is first walked here, by the schema kio
reads it with (the entity dataclasses' fields and their ``kafka_type`` metadata):

- an array's count must fit the bytes left at the smallest encoding of one element;
- a string's, bytes' or tagged field's declared size must fit the bytes left;
- a tagged field must be one its schema declares, and read exactly its declared size;
- an array may be null only where the schema says so. kio reads null for any array, and
  a handler iterating over a field its schema makes non-nullable would fail on None;
  Kafka rejects such a request as malformed, and so does this walk.

Wire encodings, by kafka type (``flexible`` versions use the compact forms)::

    int8/16/32/64, uint*, float64, bool, uuid, timedelta_*, datetime_i64   fixed size
    string          int16 length (-1 = null)     | compact: uvarint(length + 1), 0 = null
    bytes, records  int32 length (-1 = null)     | compact: uvarint(length + 1), 0 = null
    array           int32 count (-1 = null)      | compact: uvarint(count + 1), 0 = null
    struct          fields in order; flexible: then uvarint count of tagged fields, each
                    uvarint tag, uvarint size, the field; nullable struct: int8 -1 = null

The walk reads lengths only and builds nothing. On valid input it ends where kio ends
(the fuzz tests hold it to that for every request version served); on invalid input it
may stop earlier than kio would, which closes the connection just the same.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, fields
from types import NoneType, UnionType
from typing import Any, Final, Union, get_args, get_origin

from kio.serial._introspect import (
    EntityField,
    EntityTupleField,
    PrimitiveTupleField,
    classify_field,
    get_field_tag,
    get_schema_field_type,
    is_optional,
)

_INT16: Final = struct.Struct(">h")
_INT32: Final = struct.Struct(">i")

FIXED_SIZES: Final = {
    "int8": 1,
    "int16": 2,
    "int32": 4,
    "int64": 8,
    "uint8": 1,
    "uint16": 2,
    "uint32": 4,
    "uint64": 8,
    "float64": 8,
    "bool": 1,
    "uuid": 16,
    "error_code": 2,
    "timedelta_i32": 4,
    "timedelta_i64": 8,
    "datetime_i64": 8,
}

# Operation kinds; also the kinds a trace reports.
FIXED: Final = 0
"""Fixed-size numbers; a trace gives the width of each run of them."""
STRING: Final = 1
"""int16 length, then bytes."""
BYTES: Final = 2
"""int32 length, then bytes."""
COMPACT_BYTES: Final = 3
"""uvarint length + 1, then bytes (compact string, bytes and records)."""
ARRAY: Final = 4
"""int32 count, then elements. Op: (ARRAY, element op, element's min size, nullable)."""
COMPACT_ARRAY: Final = 5
"""uvarint count + 1, then elements; op as ARRAY's."""
STRUCT: Final = 6
TAGGED_COUNT: Final = 7
"""Trace only: the uvarint count of a struct's tagged fields."""
TAGGED_SIZE: Final = 8
"""Trace only: the uvarint size of one tagged field."""

Op = tuple[Any, ...]
Trace = list[tuple[int, int, int]]
"""(position, kind, width of a FIXED run or 0) of what a walk read."""


class LengthError(ValueError):
    """A declared length or count that the bytes received cannot hold, or a null where
    the schema has none."""


@dataclass(frozen=True, slots=True)
class Schema:
    """One entity class compiled for the walk."""

    name: str
    ops: tuple[Op, ...]
    flexible: bool
    nullable: bool
    tagged: dict[int, Op]
    min_size: int
    """Fewest bytes one encoding of this struct can take."""
    has_arrays: bool
    """Whether an array is in it, at any depth, tagged fields included."""


def check_request(cls: type[Any], data: bytes | bytearray, offset: int) -> None:
    """Hold every declared count and length in the body of ``cls`` against ``data``.

    Raises LengthError on a length the rest of ``data`` cannot hold. Only the part of the
    body up to its last array is walked: the rest kio bounds-checks without allocating.
    """
    try:
        schema = _PREFIXES[cls]
    except KeyError:
        schema = _PREFIXES[cls] = _checked_prefix(cls)
    if schema is not None:
        walk(schema, data, offset, len(data), None)


def trace_request(cls: type[Any], data: bytes | bytearray, offset: int) -> Trace:
    """Where a valid body holds each length prefix and each run of numbers: fuzzers aim
    their mutations with it."""
    trace: Trace = []
    walk(compile_struct(cls, False), data, offset, len(data), trace)
    return trace


_SCHEMAS: dict[tuple[type[Any], bool], Schema] = {}
_PREFIXES: dict[type[Any], Schema | None] = {}


def compile_struct(cls: type[Any], nullable: bool) -> Schema:
    """The walk's schema of an entity class (compiled once, then cached)."""
    schema = _SCHEMAS.get((cls, nullable))
    if schema is None:
        schema = _SCHEMAS[cls, nullable] = _compile(cls, nullable)
    return schema


def _compile(cls: type[Any], nullable: bool) -> Schema:
    flexible = bool(cls.__flexible__)
    ops: list[Op] = []
    tagged: dict[int, Op] = {}
    for field in fields(cls):
        tag = get_field_tag(field)
        op = _field_op(field, flexible, tag is not None)
        if tag is not None:
            tagged[int(tag)] = op
        elif ops and op[0] == FIXED and ops[-1][0] == FIXED:
            ops[-1] = (FIXED, ops[-1][1] + op[1])  # one bounds check for a run of numbers
        else:
            ops.append(op)
    min_size = 1 if nullable else sum(_min_size(op) for op in ops) + (1 if flexible else 0)
    has_arrays = any(_has_arrays(op) for op in (*ops, *tagged.values()))
    return Schema(cls.__name__, tuple(ops), flexible, nullable, tagged, min_size, has_arrays)


def _checked_prefix(cls: type[Any]) -> Schema | None:
    """The top-level struct of ``cls`` cut after its last array; None if it has none."""
    schema = compile_struct(cls, False)
    if not schema.has_arrays:
        return None
    if any(_has_arrays(op) for op in schema.tagged.values()):
        return schema
    last = max(i for i, op in enumerate(schema.ops) if _has_arrays(op))
    ops = schema.ops[: last + 1]
    return Schema(schema.name, ops, False, False, {}, schema.min_size, True)


def _has_arrays(op: Op) -> bool:
    return op[0] in (ARRAY, COMPACT_ARRAY) or (op[0] == STRUCT and op[1].has_arrays)


def _field_op(field: Any, flexible: bool, is_tagged: bool) -> Op:
    """The operation that reads ``field``, as kio's native schema compiler decides it."""
    kind = classify_field(field)
    if isinstance(kind, EntityField | EntityTupleField):
        nullable_struct = isinstance(kind, EntityField) and is_optional(field)
        element: Op = (STRUCT, compile_struct(kind.type_, nullable_struct))
    else:
        kafka_type = get_schema_field_type(field)
        # kio reads an optional primitive as non-nullable when it is a tagged field.
        nullable = (
            is_optional(field) and not is_tagged and not isinstance(kind, PrimitiveTupleField)
        )
        element = _primitive_op(kafka_type, flexible, nullable)
    if isinstance(kind, EntityTupleField | PrimitiveTupleField):
        count_kind = COMPACT_ARRAY if flexible else ARRAY
        nullable_array = get_origin(field.type) in (Union, UnionType) and NoneType in get_args(
            field.type
        )
        return (count_kind, element, max(_min_size(element), 1), nullable_array)
    return element


def _primitive_op(kafka_type: str, flexible: bool, nullable: bool) -> Op:
    size = FIXED_SIZES.get(kafka_type)
    if size is not None:
        return (FIXED, size)
    if kafka_type == "string":
        return (COMPACT_BYTES, nullable) if flexible else (STRING, nullable)
    if kafka_type in ("bytes", "records"):
        return (COMPACT_BYTES, nullable) if flexible else (BYTES, nullable)
    raise TypeError(f"no wire encoding known for kafka_type {kafka_type!r}")


def _min_size(op: Op) -> int:
    kind = op[0]
    if kind == FIXED:
        return int(op[1])
    if kind == STRUCT:
        return op[1].min_size  # type: ignore[no-any-return]
    return {STRING: 2, BYTES: 4, COMPACT_BYTES: 1, ARRAY: 4, COMPACT_ARRAY: 1}[kind]


def walk(schema: Schema, data: bytes | bytearray, pos: int, end: int, trace: Trace | None) -> int:
    """Walk one struct from ``pos``; the position after it. (Hot: dispatch is inlined.)"""
    if schema.nullable:
        if pos >= end:
            raise LengthError(f"{schema.name}: truncated before its null marker")
        pos += 1
        if data[pos - 1] == 0xFF:  # int8 -1: null
            return pos
    for op in schema.ops:
        kind = op[0]
        if kind == FIXED:
            if trace is not None:
                trace.append((pos, FIXED, op[1]))
            pos += op[1]
            if pos > end:
                raise LengthError(f"{schema.name}: truncated")
        elif kind == STRUCT:
            pos = walk(op[1], data, pos, end, trace)
        else:
            pos = _prefixed(op, data, pos, end, trace)
    if not schema.flexible:
        return pos
    if trace is not None:
        trace.append((pos, TAGGED_COUNT, 0))
    if pos < end and data[pos] == 0:  # no tagged fields: the common case
        return pos + 1
    count, pos = _uvarint(data, pos, end)
    if count > (end - pos) // 2:
        raise LengthError(f"{schema.name}: {count} tagged fields in {end - pos} bytes")
    for _ in range(count):
        tag, pos = _uvarint(data, pos, end)
        if trace is not None:
            trace.append((pos, TAGGED_SIZE, 0))
        size, pos = _uvarint(data, pos, end)
        if size > end - pos:
            raise LengthError(f"{schema.name}: tagged field of {size} bytes in {end - pos}")
        tagged = schema.tagged.get(tag)
        if tagged is None:
            raise LengthError(f"{schema.name}: unknown tagged field {tag}")
        start = pos
        if tagged[0] == FIXED:
            pos += tagged[1]
        elif tagged[0] == STRUCT:
            pos = walk(tagged[1], data, pos, end, trace)
        else:
            pos = _prefixed(tagged, data, pos, end, trace)
        if pos - start != size:
            raise LengthError(
                f"{schema.name}: tagged field {tag} declares {size} bytes, holds {pos - start}"
            )
    return pos


def _prefixed(op: Op, data: bytes | bytearray, pos: int, end: int, trace: Trace | None) -> int:
    """A string, bytes or array: its length prefix, then its contents."""
    kind = op[0]
    if trace is not None:
        trace.append((pos, kind, 0))
    if kind in (COMPACT_BYTES, COMPACT_ARRAY):
        if pos < end and data[pos] < 0x80:
            length = data[pos] - 1  # 0 (now -1) is null
            pos += 1
        else:
            length, pos = _uvarint(data, pos, end)
            length -= 1
    elif kind == STRING:
        if pos + 2 > end:
            raise LengthError("truncated before a string length")
        length = _INT16.unpack_from(data, pos)[0]
        pos += 2
    else:
        if pos + 4 > end:
            raise LengthError("truncated before a length")
        length = _INT32.unpack_from(data, pos)[0]
        pos += 4
    if length < 0:
        nullable = op[3] if kind in (ARRAY, COMPACT_ARRAY) else op[1]
        if length == -1 and nullable:
            return pos
        if length == -1:
            raise LengthError("null where the schema has no null")
        raise LengthError(f"length {length} where a length or null (-1) belongs")
    if kind not in (ARRAY, COMPACT_ARRAY):
        pos += length
        if pos > end:
            raise LengthError(f"{length} bytes declared, {end - pos + length} left")
        return pos
    element, element_min = op[1], op[2]
    if length > (end - pos) // element_min:
        raise LengthError(
            f"array of {length} elements of at least {element_min} bytes, in {end - pos} bytes"
        )
    element_kind = element[0]
    if element_kind == FIXED:
        if trace is not None and length:
            trace.append((pos, FIXED, length * element[1]))
        return pos + length * int(element[1])
    if element_kind == STRUCT:
        schema = element[1]
        for _ in range(length):
            pos = walk(schema, data, pos, end, trace)
        return pos
    for _ in range(length):
        pos = _prefixed(element, data, pos, end, trace)
    return pos


def _uvarint(data: bytes | bytearray, pos: int, end: int) -> tuple[int, int]:
    """Unsigned varint of at most 5 bytes, as kio reads it: (value, next position)."""
    value = 0
    for shift in (0, 7, 14, 21, 28):
        if pos >= end:
            raise LengthError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
    raise LengthError("varint longer than 5 bytes")
