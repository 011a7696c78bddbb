"""A clock and timer that tests move by hand, and a writer that keeps the records."""

from __future__ import annotations

from collections.abc import Callable

from odradek.coordinator.group.group_manager import TxnProducer
from odradek.coordinator.group.records import (
    Key,
    Value,
    decode_key,
    decode_value,
    encode_key,
    encode_value,
)
from odradek.protocol.errors import ErrorCode, KafkaError


class ManualTime:
    def __init__(self, now: int = 1_000_000) -> None:
        self.now = now
        self._timers: dict[str, tuple[int, Callable[[], None]]] = {}

    def clock(self) -> int:
        return self.now

    def schedule(self, key: str, delay_ms: int, callback: Callable[[], None]) -> None:
        self._timers[key] = (self.now + delay_ms, callback)

    def cancel(self, key: str) -> None:
        self._timers.pop(key, None)

    def pending(self) -> set[str]:
        return set(self._timers)

    def advance(self, ms: int) -> None:
        """Move the clock, firing due timeouts in deadline order."""
        target = self.now + ms
        while True:
            due = [(d, k) for k, (d, _) in self._timers.items() if d <= target]
            if not due:
                break
            deadline, key = min(due)
            _, callback = self._timers.pop(key)
            self.now = deadline
            callback()
        self.now = target


class RecordingWriter:
    """Keeps written records as bytes (what the log would hold; a record's offset is its
    index); can be told to fail."""

    def __init__(self) -> None:
        self.records: list[tuple[bytes, bytes | None]] = []
        self.fail_with: ErrorCode | None = None

    def __call__(
        self, records: list[tuple[Key, Value | None]], producer: TxnProducer | None = None, /
    ) -> int:
        if self.fail_with is not None:
            raise KafkaError("write failed", self.fail_with)
        first = len(self.records)
        for key, value in records:
            self.records.append((encode_key(key), None if value is None else encode_value(value)))
        return first

    def decoded(self) -> list[tuple[Key, Value | None]]:
        out = []
        for key_bytes, value_bytes in self.records:
            key = decode_key(key_bytes)
            out.append((key, decode_value(key, value_bytes)))
        return out
