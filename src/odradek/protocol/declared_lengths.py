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

It runs before every kio decode, so each struct's walk is generated Python, one function
per entity class with its fields' checks written out (``walker_source`` shows it): about
three times faster than interpreting the field list, and faster than kio's own decode.
"""

from __future__ import annotations

import itertools
import linecache
import struct
from collections.abc import Callable
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


Walker = Callable[[bytes | bytearray, int, int, Trace | None], int]
"""``(data, position, end, trace) -> position after the struct``; raises LengthError."""


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
    fixed: int
    """Size of its fields when they are all numbers (then only tagged fields vary), or 0."""
    walker: Walker
    tagged_walker: Walker
    """Reads its tagged fields, from their count on."""


def check_request(cls: type[Any], data: bytes | bytearray, offset: int) -> None:
    """Hold every declared count and length in the body of ``cls`` against ``data``.

    Raises LengthError on a length the rest of ``data`` cannot hold. Only the part of the
    body up to its last array is walked: the rest kio bounds-checks without allocating.
    """
    try:
        walker = _PREFIXES[cls]
    except KeyError:
        walker = _PREFIXES[cls] = _checked_prefix(cls)
    if walker is not None:
        walker(data, offset, len(data), None)


def walk(cls: type[Any], data: bytes | bytearray, offset: int) -> int:
    """Walk the whole body of ``cls`` in ``data`` from ``offset``; where it ends."""
    return compile_struct(cls, False).walker(data, offset, len(data), None)


def trace_request(cls: type[Any], data: bytes | bytearray, offset: int) -> Trace:
    """Where a valid body holds each length prefix and each run of numbers: fuzzers aim
    their mutations with it."""
    trace: Trace = []
    compile_struct(cls, False).walker(data, offset, len(data), trace)
    return trace


def walker_source(cls: type[Any]) -> str:
    """The generated walk of ``cls``'s top-level struct, for reading and debugging."""
    return "".join(linecache.getlines(compile_struct(cls, False).walker.__code__.co_filename))


_SCHEMAS: dict[tuple[type[Any], bool], Schema] = {}
_PREFIXES: dict[type[Any], Walker | None] = {}


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
    name = cls.__name__
    min_size = 1 if nullable else sum(_min_size(op) for op in ops) + (1 if flexible else 0)
    has_arrays = any(_has_arrays(op) for op in (*ops, *tagged.values()))
    fixed = ops[0][1] if len(ops) == 1 and ops[0][0] == FIXED and not nullable else 0
    tagged_walker = _tagged_walker(name, tagged)
    walker = _generate(name, tuple(ops), flexible, nullable, tagged_walker)
    return Schema(
        name,
        tuple(ops),
        flexible,
        nullable,
        tagged,
        min_size,
        has_arrays,
        fixed,
        walker,
        tagged_walker,
    )


def _checked_prefix(cls: type[Any]) -> Walker | None:
    """The walk of ``cls``'s top level cut after its last array; None if it has none."""
    schema = compile_struct(cls, False)
    if not schema.has_arrays:
        return None
    if any(_has_arrays(op) for op in schema.tagged.values()):
        return schema.walker
    last = max(i for i, op in enumerate(schema.ops) if _has_arrays(op))
    return _generate(schema.name + "_prefix", schema.ops[: last + 1], False, False, None)


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


# -- code generation ------------------------------------------------------------------------


def _generate(
    name: str, ops: tuple[Op, ...], flexible: bool, nullable: bool, tagged: Walker | None
) -> Walker:
    """A function that walks one struct: its null marker, its fields, its tagged fields."""
    namespace: dict[str, Any] = {
        "LengthError": LengthError,
        "_i16": _INT16.unpack_from,
        "_i32": _INT32.unpack_from,
        "_uvarint": _uvarint,
        "_bad_length": _bad_length,
        "_too_many": _too_many,
        "tagged": tagged,
    }
    lines = ["def walk(data, pos, end, trace):"]
    if nullable:
        lines += [
            "    if pos >= end:",
            f"        raise LengthError({name + ': truncated before its null marker'!r})",
            "    pos += 1",
            "    if data[pos - 1] == 0xFF:  # int8 -1: null",
            "        return pos",
        ]
    for op in ops:
        lines += _emit(op, "    ", 0, name, namespace)
    if flexible:
        lines += [
            f"    if trace is not None: trace.append((pos, {TAGGED_COUNT}, 0))",
            "    if pos < end and data[pos] == 0:  # no tagged fields: the common case",
            "        return pos + 1",
            "    return tagged(data, pos, end, trace)",
        ]
    else:
        lines.append("    return pos")
    return _define(name, lines, namespace)


def _tagged_walker(name: str, tagged: dict[int, Op]) -> Walker:
    """A function that reads a struct's tagged fields from their count on."""
    namespace: dict[str, Any] = {
        "LengthError": LengthError,
        "_i16": _INT16.unpack_from,
        "_i32": _INT32.unpack_from,
        "_uvarint": _uvarint,
        "_bad_length": _bad_length,
        "_too_many": _too_many,
    }
    fields = {}
    for tag, op in tagged.items():
        body = ["def walk(data, pos, end, trace):"]
        body += _emit(op, "    ", 0, f"{name} tag {tag}", namespace)
        body.append("    return pos")
        fields[tag] = _define(f"{name}_tag{tag}", body, dict(namespace))

    def walk_tagged(data: bytes | bytearray, pos: int, end: int, trace: Trace | None) -> int:
        count, pos = _uvarint(data, pos, end)
        if count > (end - pos) // 2:
            raise LengthError(f"{name}: {count} tagged fields in {end - pos} bytes")
        for _ in range(count):
            tag, pos = _uvarint(data, pos, end)
            if trace is not None:
                trace.append((pos, TAGGED_SIZE, 0))
            size, pos = _uvarint(data, pos, end)
            if size > end - pos:
                raise LengthError(f"{name}: tagged field of {size} bytes in {end - pos}")
            field = fields.get(tag)
            if field is None:
                raise LengthError(f"{name}: unknown tagged field {tag}")
            start, pos = pos, field(data, pos, end, trace)
            if pos - start != size:
                raise LengthError(
                    f"{name}: tagged field {tag} declares {size} bytes, holds {pos - start}"
                )
        return pos

    return walk_tagged


def _emit(op: Op, indent: str, depth: int, name: str, namespace: dict[str, Any]) -> list[str]:
    """Lines that walk one field, ``pos`` before it to ``pos`` after it."""
    kind = op[0]
    if kind == FIXED:
        return [
            f"{indent}if trace is not None: trace.append((pos, {FIXED}, {op[1]}))",
            f"{indent}pos += {op[1]}",
            f"{indent}if pos > end: raise LengthError({name + ': truncated'!r})",
        ]
    if kind == STRUCT:
        return [f"{indent}pos = {_bind(namespace, op[1].walker)}(data, pos, end, trace)"]
    n = f"n{depth}"
    lines = [f"{indent}if trace is not None: trace.append((pos, {kind}, 0))"]
    if kind in (COMPACT_BYTES, COMPACT_ARRAY):
        lines += [
            f"{indent}if pos < end and data[pos] < 0x80:",
            f"{indent}    {n} = data[pos] - 1  # 0 (now -1) is null",
            f"{indent}    pos += 1",
            f"{indent}else:",
            f"{indent}    {n}, pos = _uvarint(data, pos, end)",
            f"{indent}    {n} -= 1",
        ]
    else:
        width, unpack = (2, "_i16") if kind == STRING else (4, "_i32")
        lines += [
            f"{indent}if pos + {width} > end: raise LengthError({name + ': truncated'!r})",
            f"{indent}{n} = {unpack}(data, pos)[0]",
            f"{indent}pos += {width}",
        ]
    array = kind in (ARRAY, COMPACT_ARRAY)
    nullable = op[3] if array else op[1]
    lines += [
        f"{indent}if {n} < 0:",
        f"{indent}    {'if ' + n + ' != -1: ' if nullable else ''}raise _bad_length({name!r}, {n})",
        f"{indent}else:",
    ]
    inner = indent + "    "
    if not array:
        return [
            *lines,
            f"{inner}pos += {n}",
            f"{inner}if pos > end: raise _bad_length({name!r}, {n}, end - pos + {n})",
        ]
    element, element_min = op[1], op[2]
    lines.append(
        f"{inner}if {n} > (end - pos) // {element_min}: "
        f"raise _too_many({name!r}, {n}, {element_min}, end - pos)"
    )
    if element[0] == FIXED:
        return [
            *lines,
            f"{inner}width = {n} * {element[1]}",
            f"{inner}if trace is not None and width: trace.append((pos, {FIXED}, width))",
            f"{inner}pos += width",
        ]
    if element[0] != STRUCT:
        return [
            *lines,
            f"{inner}for _ in range({n}):",
            *_emit(element, inner + "    ", depth + 1, name, namespace),
        ]
    schema: Schema = element[1]
    walker = _bind(namespace, schema.walker)
    loop = [f"{inner}for _ in range({n}):", f"{inner}    pos = {walker}(data, pos, end, trace)"]
    if not schema.fixed:
        return lines + loop
    if not schema.flexible:  # all numbers: count checked against their size already
        return [
            *lines,
            f"{inner}if trace is None:",
            f"{inner}    pos += {n} * {schema.fixed}",
            f"{inner}else:",
            *("    " + line for line in loop),
        ]
    tagged = _bind(namespace, schema.tagged_walker)
    return [
        *lines,
        f"{inner}if trace is None:  # numbers, then (mostly no) tagged fields: inline",
        f"{inner}    for _ in range({n}):",
        f"{inner}        pos += {schema.fixed}",
        f"{inner}        if pos < end and data[pos] == 0:",
        f"{inner}            pos += 1",
        f"{inner}        elif pos > end:",
        f"{inner}            raise LengthError({schema.name + ': truncated'!r})",
        f"{inner}        else:",
        f"{inner}            pos = {tagged}(data, pos, end, None)",
        f"{inner}else:",
        *("    " + line for line in loop),
    ]


def _bind(namespace: dict[str, Any], value: Any) -> str:
    """A name for ``value`` in the generated function's globals."""
    name = f"_w{len(namespace)}"
    namespace[name] = value
    return name


_NUMBERS = itertools.count(1)


def _define(name: str, lines: list[str], namespace: dict[str, Any]) -> Walker:
    """Compile the function in ``lines``; its source stays readable through linecache."""
    source = "\n".join(lines) + "\n"
    filename = f"<declared_lengths {name} #{next(_NUMBERS)}>"
    exec(compile(source, filename, "exec"), namespace)
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    walker: Walker = namespace["walk"]
    return walker


def _bad_length(name: str, length: int, left: int | None = None) -> LengthError:
    if left is not None:
        return LengthError(f"{name}: {length} bytes declared, {left} left")
    if length == -1:
        return LengthError(f"{name}: null where the schema has no null")
    return LengthError(f"{name}: length {length} where a length or null (-1) belongs")


def _too_many(name: str, count: int, element_min: int, left: int) -> LengthError:
    return LengthError(
        f"{name}: array of {count} elements of at least {element_min} bytes, in {left} bytes"
    )


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
