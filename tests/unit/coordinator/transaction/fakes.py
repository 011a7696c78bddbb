"""A manual clock, a record writer and a marker sender that tests hold and release."""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence

from odradek.coordinator.transaction.records import (
    TransactionLogKey,
    TransactionLogValue,
    decode_key,
    decode_value,
    encode_key,
    encode_value,
)
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.protocol.types import TopicPartition


class ManualClock:
    def __init__(self, now: int = 1_700_000_000_000) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now

    def advance(self, ms: int) -> None:
        self.now += ms


class Gate:
    """Closed: callers wait at ``passing()`` until ``open()``."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self._event.set()
        self.waiting = 0

    def close(self) -> None:
        self._event.clear()

    def open(self) -> None:
        self._event.set()

    async def passing(self) -> None:
        self.waiting += 1
        try:
            await self._event.wait()
        finally:
            self.waiting -= 1


class FakeWriter:
    """Keeps what is written, as the log's bytes; can fail (once or always) and hold."""

    def __init__(self) -> None:
        self.records: list[tuple[bytes, bytes | None]] = []
        self.timeouts: list[int] = []
        self.failures: list[ErrorCode] = []
        """Errors for the next writes, one each, in order."""
        self.gate = Gate()

    async def __call__(
        self,
        records: Sequence[tuple[TransactionLogKey, TransactionLogValue | None]],
        timeout_ms: int,
    ) -> None:
        await self.gate.passing()
        if self.failures:
            raise KafkaError("write failed", self.failures.pop(0))
        self.timeouts.append(timeout_ms)
        for key, value in records:
            self.records.append((encode_key(key), None if value is None else encode_value(value)))

    def decoded(self) -> list[tuple[TransactionLogKey, TransactionLogValue | None]]:
        return [(decode_key(key), decode_value(value)) for key, value in self.records]

    def states(self) -> list[str]:
        """The state of each written value ('-' for a tombstone)."""
        return ["-" if v is None else v.state.kafka_name for _, v in self.decoded()]


class FakeMarkers:
    """A MarkerSender that records each round; can hold it or give up."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int, bool, int, frozenset[TopicPartition]]] = []
        self.gate = Gate()
        self.fail_with: ErrorCode | None = None

    async def write_markers(
        self,
        producer_id: int,
        producer_epoch: int,
        commit: bool,
        coordinator_epoch: int,
        partitions: Collection[TopicPartition],
    ) -> None:
        self.calls.append(
            (producer_id, producer_epoch, commit, coordinator_epoch, frozenset(partitions))
        )
        await self.gate.passing()
        if self.fail_with is not None:
            raise KafkaError("marker refused", self.fail_with)


async def settle() -> None:
    """Let every ready task run until they all wait."""
    for _ in range(20):
        await asyncio.sleep(0)
