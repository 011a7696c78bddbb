"""Records of ``__transaction_state``, in Kafka's key and value formats.

Key and value each start with an int16 version. Key version 0 (``TransactionLogKey``),
the only one, not flexible::

    transactional_id  string (int16 length, UTF-8)

Value (``TransactionLogValue``), version 0::

    producer_id                   int64
    producer_epoch                int16
    transaction_timeout_ms        int32
    transaction_status            int8    TransactionState id
    transaction_partitions        nullable array (int32 count, -1 = null) of
        topic                     string (int16 length)
        partition_ids             array (int32 count) of int32
    last_update_timestamp_ms      int64
    start_timestamp_ms            int64

Version 1 is the same fields in Kafka's flexible encoding: strings and arrays carry an
unsigned varint of length + 1 (0 = null), and every structure (each partitions entry,
and the value itself) ends with tagged fields -- an unsigned varint count, then per
field its tag, its size and its bytes, in tag order. The value's tagged fields::

    tag 0  previous_producer_id       int64, default -1
    tag 1  next_producer_id           int64, default -1
    tag 2  client_transaction_version int16, default 0

A field at its default is not written. Kafka writes version 1 once ``transaction.version``
is 1 or more (Kafka 4), version 0 before; it writes a null partition array for the Empty
state, and never writes tags 0 and 1 (they are read, for Transactions V2). We write
version 1 by default, as Kafka 4 does, and read both. A null value (tombstone) deletes
an expired transactional id.
"""

from __future__ import annotations

import struct
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from odradek.coordinator.group.records import partition_for
from odradek.coordinator.transaction.state import TransactionState
from odradek.protocol.headers import unsigned_varint
from odradek.protocol.types import TopicPartition

__all__ = [
    "KEY_VERSION",
    "VALUE_VERSION",
    "RecordFormatError",
    "TransactionLogKey",
    "TransactionLogValue",
    "decode_key",
    "decode_value",
    "encode_key",
    "encode_value",
    "partition_for",
]

KEY_VERSION: Final = 0
VALUE_VERSION: Final = 1
"""The value version written (1: flexible, as Kafka 4 with transaction.version >= 1)."""

_TAG_PREVIOUS_PRODUCER_ID = 0
_TAG_NEXT_PRODUCER_ID = 1
_TAG_CLIENT_TRANSACTION_VERSION = 2

_I8 = struct.Struct(">b")
_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")


class RecordFormatError(ValueError):
    """A ``__transaction_state`` record this coordinator cannot read."""


@dataclass(frozen=True, slots=True)
class TransactionLogKey:
    transactional_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TransactionLogValue:
    producer_id: int
    producer_epoch: int
    transaction_timeout_ms: int
    state: TransactionState
    partitions: frozenset[TopicPartition] = frozenset()
    last_update_timestamp_ms: int
    start_timestamp_ms: int
    previous_producer_id: int = -1
    next_producer_id: int = -1
    client_transaction_version: int = 0


# -- encoding ------------------------------------------------------------------------------


class _Writer:
    __slots__ = ("flexible", "out")

    def __init__(self, version: int, *, flexible: bool) -> None:
        self.out = bytearray(_I16.pack(version))
        self.flexible = flexible

    def string(self, value: str) -> None:
        data = value.encode()
        if self.flexible:
            self.out += unsigned_varint(len(data) + 1)
        else:
            self.out += _I16.pack(len(data))
        self.out += data

    def array_length(self, count: int | None) -> None:
        """An array's element count (None: a null array)."""
        if self.flexible:
            self.out += unsigned_varint(0 if count is None else count + 1)
        else:
            self.out += _I32.pack(-1 if count is None else count)

    def tagged_fields(self, fields: Iterable[tuple[int, bytes]] = ()) -> None:
        if not self.flexible:
            return
        present = sorted(fields)
        self.out += unsigned_varint(len(present))
        for tag, data in present:
            self.out += unsigned_varint(tag)
            self.out += unsigned_varint(len(data))
            self.out += data

    def int8(self, value: int) -> None:
        self.out += _I8.pack(value)

    def int16(self, value: int) -> None:
        self.out += _I16.pack(value)

    def int32(self, value: int) -> None:
        self.out += _I32.pack(value)

    def int64(self, value: int) -> None:
        self.out += _I64.pack(value)


def encode_key(key: TransactionLogKey) -> bytes:
    writer = _Writer(KEY_VERSION, flexible=False)
    writer.string(key.transactional_id)
    return bytes(writer.out)


def encode_value(value: TransactionLogValue, version: int = VALUE_VERSION) -> bytes:
    """``value`` at ``version`` (0 or 1). The partitions are written grouped by topic,
    topics and partition ids in ascending order; null for the Empty state, as Kafka."""
    if version not in (0, 1):
        raise ValueError(f"TransactionLogValue version {version} is not 0 or 1")
    if value.state is TransactionState.EMPTY and value.partitions:
        raise ValueError("an Empty transaction has no partitions")
    writer = _Writer(version, flexible=version >= 1)
    writer.int64(value.producer_id)
    writer.int16(value.producer_epoch)
    writer.int32(value.transaction_timeout_ms)
    writer.int8(int(value.state))
    if value.state is TransactionState.EMPTY:
        writer.array_length(None)
    else:
        by_topic: dict[str, list[int]] = defaultdict(list)
        for tp in value.partitions:
            by_topic[tp.topic].append(tp.partition)
        writer.array_length(len(by_topic))
        for topic in sorted(by_topic):
            writer.string(topic)
            ids = sorted(by_topic[topic])
            writer.array_length(len(ids))
            for partition in ids:
                writer.int32(partition)
            writer.tagged_fields()
    writer.int64(value.last_update_timestamp_ms)
    writer.int64(value.start_timestamp_ms)
    tags = []
    if value.previous_producer_id != -1:
        tags.append((_TAG_PREVIOUS_PRODUCER_ID, _I64.pack(value.previous_producer_id)))
    if value.next_producer_id != -1:
        tags.append((_TAG_NEXT_PRODUCER_ID, _I64.pack(value.next_producer_id)))
    if value.client_transaction_version != 0:
        tags.append((_TAG_CLIENT_TRANSACTION_VERSION, _I16.pack(value.client_transaction_version)))
    if tags and version < 1:
        raise ValueError("tagged fields need TransactionLogValue version 1")
    writer.tagged_fields(tags)
    return bytes(writer.out)


# -- decoding ------------------------------------------------------------------------------


class _Reader:
    __slots__ = ("data", "flexible", "position")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.position = 0
        self.flexible = False

    def _take(self, size: int) -> bytes:
        end = self.position + size
        if size < 0 or end > len(self.data):
            raise RecordFormatError("record shorter than its fields")
        chunk = self.data[self.position : end]
        self.position = end
        return chunk

    def uvarint(self) -> int:
        value = shift = 0
        while True:
            (byte,) = self._take(1)
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7
            if shift > 28:
                raise RecordFormatError("unsigned varint longer than 5 bytes")

    def int8(self) -> int:
        return int(_I8.unpack(self._take(1))[0])

    def int16(self) -> int:
        return int(_I16.unpack(self._take(2))[0])

    def int32(self) -> int:
        return int(_I32.unpack(self._take(4))[0])

    def int64(self) -> int:
        return int(_I64.unpack(self._take(8))[0])

    def string(self) -> str:
        length = self.uvarint() - 1 if self.flexible else self.int16()
        if length < 0:
            raise RecordFormatError("null where a string is required")
        try:
            return self._take(length).decode()
        except UnicodeDecodeError as exc:
            raise RecordFormatError(f"string is not UTF-8: {exc}") from exc

    def array_length(self) -> int | None:
        count = self.uvarint() - 1 if self.flexible else self.int32()
        if count < 0:
            return None
        # Every element takes at least one byte: a count beyond the bytes left is a lie.
        if count > len(self.data) - self.position:
            raise RecordFormatError(f"array of {count} elements in a shorter record")
        return count

    def tagged_fields(self) -> dict[int, bytes]:
        if not self.flexible:
            return {}
        fields = {}
        for _ in range(self.uvarint()):
            tag = self.uvarint()
            fields[tag] = self._take(self.uvarint())
        return fields


def decode_key(data: bytes) -> TransactionLogKey:
    reader = _Reader(data)
    version = reader.int16()
    if version != KEY_VERSION:
        raise RecordFormatError(f"unknown __transaction_state key version {version}")
    return TransactionLogKey(reader.string())


def _tag_int(fields: dict[int, bytes], tag: int, layout: struct.Struct, default: int) -> int:
    data = fields.get(tag)
    if data is None:
        return default
    if len(data) != layout.size:
        raise RecordFormatError(f"tagged field {tag} has {len(data)} bytes")
    return int(layout.unpack(data)[0])


def decode_value(data: bytes | None) -> TransactionLogValue | None:
    """The value, or None for a tombstone. Unknown tagged fields are skipped."""
    if data is None:
        return None
    reader = _Reader(data)
    version = reader.int16()
    if version not in (0, 1):
        raise RecordFormatError(f"unsupported TransactionLogValue version {version}")
    reader.flexible = version >= 1
    producer_id = reader.int64()
    producer_epoch = reader.int16()
    timeout_ms = reader.int32()
    status = reader.int8()
    try:
        state = TransactionState(status)
    except ValueError:
        raise RecordFormatError(f"unknown transaction state id {status}") from None
    partitions: set[TopicPartition] = set()
    for _ in range(reader.array_length() or 0):
        topic = reader.string()
        for _ in range(reader.array_length() or 0):
            partitions.add(TopicPartition(topic, reader.int32()))
        reader.tagged_fields()
    last_update = reader.int64()
    start = reader.int64()
    tags = reader.tagged_fields()
    return TransactionLogValue(
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        transaction_timeout_ms=timeout_ms,
        state=state,
        # Kafka ignores the partitions of an Empty transaction.
        partitions=frozenset() if state is TransactionState.EMPTY else frozenset(partitions),
        last_update_timestamp_ms=last_update,
        start_timestamp_ms=start,
        previous_producer_id=_tag_int(tags, _TAG_PREVIOUS_PRODUCER_ID, _I64, -1),
        next_producer_id=_tag_int(tags, _TAG_NEXT_PRODUCER_ID, _I64, -1),
        client_transaction_version=_tag_int(tags, _TAG_CLIENT_TRANSACTION_VERSION, _I16, 0),
    )
