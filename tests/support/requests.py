"""Build a plausible request of any kio request class, for version-matrix tests.

Every field gets a simple value of its type: numbers 0 (or -1 for ids and epochs), one
element in each array, strings naming a test topic. The broker may well answer with an
error code; what matters is that it answers, at that version, with a decodable response.
"""

from __future__ import annotations

import dataclasses
import datetime
import types
import typing
import uuid
from typing import Any

from kio.schema.errors import ErrorCode

from odradek.protocol.record_codec import NewRecord, build_batch

TOPIC = "matrix"
_RECORDS = build_batch([NewRecord(key=b"k", value=b"v")])


def build_request(cls: type[Any], topic: str = TOPIC) -> Any:
    return _build(cls, topic)


def _build(cls: type[Any], topic: str) -> Any:
    hints = typing.get_type_hints(cls)
    values = {}
    for field in dataclasses.fields(cls):
        if not field.init:
            continue
        values[field.name] = _value(field.name, hints[field.name], topic)
    return cls(**values)


def _value(name: str, hint: Any, topic: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if name in ("transactional_id", "rack", "group_instance_id"):
            return None
        return _value(name, args[0], topic)
    if origin is tuple:
        (item, _ellipsis) = typing.get_args(hint)
        return (_value(name, item, topic),)
    if isinstance(hint, type):
        if dataclasses.is_dataclass(hint):
            return _build(hint, topic)
        if issubclass(hint, ErrorCode):
            return ErrorCode.none
        if issubclass(hint, bool):
            return False
        if issubclass(hint, bytes):
            return _RECORDS if name == "records" else b""
        if issubclass(hint, str):
            return topic if name in ("name", "topic", "resource_name", "topic_name") else "x"
        if issubclass(hint, datetime.timedelta):
            return datetime.timedelta(milliseconds=100)
        if issubclass(hint, datetime.datetime):
            return datetime.datetime.now(datetime.UTC)
        if issubclass(hint, uuid.UUID):
            return uuid.UUID(int=0)
        if issubclass(hint, float):
            return 0.0
        if issubclass(hint, int):
            return _int(name)
    raise TypeError(f"no value for {name}: {hint!r}")


def _int(name: str) -> int:
    if name in (
        "replica_id",
        "producer_id",
        "leader_epoch",
        "current_leader_epoch",
        "producer_epoch",
        "session_epoch",
        "broker_epoch",
        "timestamp",
    ):
        return -1
    if name in ("acks", "num_partitions", "replication_factor", "count", "min_bytes"):
        return 1
    if name in ("max_bytes", "partition_max_bytes"):
        return 1 << 20
    if name in ("resource_type",):
        return 2
    return 0
