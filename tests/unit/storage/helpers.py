"""Shared helpers for the storage tests: an injectable clock, batches, whole-log reads."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import Any

from odradek.config import LogConfig
from odradek.protocol.record_codec import BatchSpec, NewRecord, Record, build_batch, iter_records
from odradek.protocol.records import CompressionType
from odradek.storage.log import Log

START_MS = 1_700_000_000_000


class Clock:
    """Epoch milliseconds that only move when a test says so."""

    def __init__(self, now: int = START_MS) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now

    def advance(self, ms: int) -> None:
        self.now += ms


def make_batch(
    values: Sequence[bytes | None],
    *,
    keys: Sequence[bytes | None] | None = None,
    timestamp: int | None = START_MS,
    timestamps: Sequence[int] | None = None,
    compression: CompressionType = CompressionType.NONE,
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
    base_offset: int = 0,
) -> bytes:
    keys = keys if keys is not None else [b"k%d" % i for i in range(len(values))]
    stamps = timestamps if timestamps is not None else [timestamp] * len(values)
    records = [
        NewRecord(key=k, value=v, timestamp=t) for k, v, t in zip(keys, values, stamps, strict=True)
    ]
    spec = BatchSpec(
        base_offset=base_offset,
        compression=compression,
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        base_sequence=base_sequence,
    )
    return build_batch(records, spec)


def read_all(log: Log, start: int | None = None, *, max_offset: int | None = None) -> list[Record]:
    """Every record from ``start`` (default: log start) to ``max_offset`` / log end."""
    offset = log.log_start_offset if start is None else start
    out: list[Record] = []
    while True:
        info = log.read(offset, 1 << 30, max_offset=max_offset)
        if info.records is None or info.records.size == 0:
            return out
        records = [r for r in iter_records(info.records.read()) if r.offset >= offset]
        if not records:
            return out
        out.extend(records)
        offset = records[-1].offset + 1


def small_config(**overrides: Any) -> LogConfig:
    base = LogConfig(segment_bytes=1 << 20, index_interval_bytes=256, retention_ms=-1)
    return dataclasses.replace(base, **overrides)


def partition_dir(tmp: str | os.PathLike[str], name: str = "topic-0") -> str:
    return os.path.join(tmp, name)
