"""Records of ``__consumer_offsets``, in Kafka's key and value formats.

Every record's key and value start with an int16 version; the key's version says which
record it is. Strings are int16-length UTF-8 (nullable: -1), bytes are int32-length.

Key version 0 or 1 -- an offset commit::

    group string, topic string, partition int32

Key version 2 -- group metadata::

    group string

OffsetCommitValue (written at v3; v0-v3 read)::

    offset int64, (v3+) leader_epoch int32, metadata string, commit_timestamp int64,
    (v1 only) expire_timestamp int64

GroupMetadataValue (written at v3; v0-v3 read)::

    protocol_type string, generation int32, protocol nullable string,
    leader nullable string, (v2+) current_state_timestamp int64,
    members [member_id string, (v3+) group_instance_id nullable string,
             client_id string, client_host string, (v1+) rebalance_timeout int32,
             session_timeout int32, subscription bytes, assignment bytes]

A null value (tombstone) deletes what the key names. Version 4 of both values is
flexible (tagged fields); Kafka 4 still writes v3 unless asked, and so do we.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

OFFSET_COMMIT_KEY_VERSION: Final = 1
GROUP_METADATA_KEY_VERSION: Final = 2
OFFSET_COMMIT_VALUE_VERSION: Final = 3
GROUP_METADATA_VALUE_VERSION: Final = 3

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")


class RecordFormatError(ValueError):
    """A ``__consumer_offsets`` record this coordinator cannot read."""


@dataclass(frozen=True, slots=True)
class OffsetCommitKey:
    group: str
    topic: str
    partition: int


@dataclass(frozen=True, slots=True)
class GroupMetadataKey:
    group: str


@dataclass(frozen=True, slots=True, kw_only=True)
class OffsetCommitValue:
    offset: int
    leader_epoch: int = -1
    metadata: str = ""
    commit_timestamp: int = -1
    expire_timestamp: int = -1


@dataclass(frozen=True, slots=True, kw_only=True)
class MemberMetadata:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    rebalance_timeout: int
    session_timeout: int
    subscription: bytes
    assignment: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupMetadataValue:
    protocol_type: str
    generation: int
    protocol: str | None
    leader: str | None
    current_state_timestamp: int
    members: tuple[MemberMetadata, ...]


Key = OffsetCommitKey | GroupMetadataKey
Value = OffsetCommitValue | GroupMetadataValue


class _Writer:
    __slots__ = ("out",)

    def __init__(self, version: int) -> None:
        self.out = bytearray(_I16.pack(version))

    def string(self, value: str | None) -> None:
        if value is None:
            self.out += _I16.pack(-1)
            return
        data = value.encode()
        self.out += _I16.pack(len(data))
        self.out += data

    def bytes_(self, value: bytes) -> None:
        self.out += _I32.pack(len(value))
        self.out += value

    def int16(self, value: int) -> None:
        self.out += _I16.pack(value)

    def int32(self, value: int) -> None:
        self.out += _I32.pack(value)

    def int64(self, value: int) -> None:
        self.out += _I64.pack(value)


class _Reader:
    __slots__ = ("data", "position")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.position = 0

    def _take(self, size: int) -> bytes:
        end = self.position + size
        if size < 0 or end > len(self.data):
            raise RecordFormatError("record shorter than its fields")
        chunk = self.data[self.position : end]
        self.position = end
        return chunk

    def int16(self) -> int:
        return int(_I16.unpack(self._take(2))[0])

    def int32(self) -> int:
        return int(_I32.unpack(self._take(4))[0])

    def int64(self) -> int:
        return int(_I64.unpack(self._take(8))[0])

    def nullable_string(self) -> str | None:
        length = self.int16()
        if length == -1:
            return None
        return self._take(length).decode("utf-8", "replace")

    def string(self) -> str:
        value = self.nullable_string()
        if value is None:
            raise RecordFormatError("null where a string is required")
        return value

    def bytes_(self) -> bytes:
        length = self.int32()
        return b"" if length == -1 else self._take(length)


def encode_key(key: Key) -> bytes:
    if isinstance(key, OffsetCommitKey):
        writer = _Writer(OFFSET_COMMIT_KEY_VERSION)
        writer.string(key.group)
        writer.string(key.topic)
        writer.int32(key.partition)
    else:
        writer = _Writer(GROUP_METADATA_KEY_VERSION)
        writer.string(key.group)
    return bytes(writer.out)


def encode_value(value: Value) -> bytes:
    if isinstance(value, OffsetCommitValue):
        writer = _Writer(OFFSET_COMMIT_VALUE_VERSION)
        writer.int64(value.offset)
        writer.int32(value.leader_epoch)
        writer.string(value.metadata)
        writer.int64(value.commit_timestamp)
        return bytes(writer.out)
    writer = _Writer(GROUP_METADATA_VALUE_VERSION)
    writer.string(value.protocol_type)
    writer.int32(value.generation)
    writer.string(value.protocol)
    writer.string(value.leader)
    writer.int64(value.current_state_timestamp)
    writer.int32(len(value.members))
    for member in value.members:
        writer.string(member.member_id)
        writer.string(member.group_instance_id)
        writer.string(member.client_id)
        writer.string(member.client_host)
        writer.int32(member.rebalance_timeout)
        writer.int32(member.session_timeout)
        writer.bytes_(member.subscription)
        writer.bytes_(member.assignment)
    return bytes(writer.out)


def decode_key(data: bytes) -> Key:
    reader = _Reader(data)
    version = reader.int16()
    if version in (0, 1):
        return OffsetCommitKey(reader.string(), reader.string(), reader.int32())
    if version == GROUP_METADATA_KEY_VERSION:
        return GroupMetadataKey(reader.string())
    raise RecordFormatError(f"unknown __consumer_offsets key version {version}")


def decode_offset_commit_value(data: bytes) -> OffsetCommitValue:
    reader = _Reader(data)
    version = reader.int16()
    if not 0 <= version <= 3:
        raise RecordFormatError(f"unsupported OffsetCommitValue version {version}")
    offset = reader.int64()
    leader_epoch = reader.int32() if version >= 3 else -1
    metadata = reader.string()
    commit_timestamp = reader.int64()
    expire_timestamp = reader.int64() if version == 1 else -1
    return OffsetCommitValue(
        offset=offset,
        leader_epoch=leader_epoch,
        metadata=metadata,
        commit_timestamp=commit_timestamp,
        expire_timestamp=expire_timestamp,
    )


def decode_group_metadata_value(data: bytes) -> GroupMetadataValue:
    reader = _Reader(data)
    version = reader.int16()
    if not 0 <= version <= 3:
        raise RecordFormatError(f"unsupported GroupMetadataValue version {version}")
    protocol_type = reader.string()
    generation = reader.int32()
    protocol = reader.nullable_string()
    leader = reader.nullable_string()
    timestamp = reader.int64() if version >= 2 else -1
    count = reader.int32()
    if count < 0 or count > len(data):
        raise RecordFormatError(f"bad member count {count}")
    members = []
    for _ in range(count):
        member_id = reader.string()
        instance_id = reader.nullable_string() if version >= 3 else None
        client_id = reader.string()
        client_host = reader.string()
        session_timeout_first = version < 1
        rebalance_timeout = -1 if session_timeout_first else reader.int32()
        session_timeout = reader.int32()
        if session_timeout_first:
            rebalance_timeout = session_timeout
        members.append(
            MemberMetadata(
                member_id=member_id,
                group_instance_id=instance_id,
                client_id=client_id,
                client_host=client_host,
                rebalance_timeout=rebalance_timeout,
                session_timeout=session_timeout,
                subscription=reader.bytes_(),
                assignment=reader.bytes_(),
            )
        )
    return GroupMetadataValue(
        protocol_type=protocol_type,
        generation=generation,
        protocol=protocol,
        leader=leader,
        current_state_timestamp=timestamp,
        members=tuple(members),
    )


def decode_value(key: Key, data: bytes | None) -> Value | None:
    """The value for ``key``, or None for a tombstone."""
    if data is None:
        return None
    if isinstance(key, OffsetCommitKey):
        return decode_offset_commit_value(data)
    return decode_group_metadata_value(data)


def java_string_hash(value: str) -> int:
    """Java's ``String.hashCode`` (over UTF-16 code units), as a signed 32-bit int."""
    h = 0
    units = value.encode("utf-16-be")
    for index in range(0, len(units), 2):
        h = (31 * h + (units[index] << 8 | units[index + 1])) & 0xFFFFFFFF
    return h - (1 << 32) if h & 0x80000000 else h


def partition_for(group_id: str, partitions: int) -> int:
    """The ``__consumer_offsets`` partition of a group, as Kafka computes it."""
    return (java_string_hash(group_id) & 0x7FFFFFFF) % partitions
