"""A broker around GroupCoordinator, stubbed: one ``__consumer_offsets`` partition over an
``OffsetsLog``, and a replica manager whose replication the test decides."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, cast

from odradek.config import BrokerConfig
from odradek.coordinator.group.service import OFFSETS_TOPIC, GroupCoordinator
from odradek.protocol.errors import ErrorCode
from odradek.protocol.types import TopicPartition
from odradek.replication.replica_manager import ProduceResult
from odradek.storage.values import AppendOrigin
from tests.unit.coordinator.group.fakes import OffsetsLog

OFFSETS_TP = TopicPartition(OFFSETS_TOPIC, 0)


@dataclass
class StubRecords:
    data: bytes

    def read(self) -> bytes:
        return self.data


@dataclass
class StubRead:
    records: StubRecords | None


@dataclass
class StubAppendInfo:
    first_offset: int


@dataclass
class StubLog:
    """The Log methods loading and waiting for the ISR use, over an OffsetsLog's bytes."""

    backing: OffsetsLog
    high_watermark: int
    log_start_offset: int = 0

    @property
    def log_end_offset(self) -> int:
        return self.backing.end_offset

    def read(self, offset: int, max_bytes: int, *, max_offset: int) -> StubRead:
        # Whole batches from the start: the loader skips what lies before ``offset``.
        return StubRead(StubRecords(bytes(self.backing.data)))


@dataclass
class StubPartition:
    tp: TopicPartition
    backing: OffsetsLog = field(default_factory=OffsetsLog)
    origins: list[AppendOrigin] = field(default_factory=list)
    single_node: bool = False
    """The high watermark follows every append (no followers); else it stays where the
    replica manager's stub puts it."""
    high_watermark: int = 0

    @property
    def log(self) -> StubLog:
        end = self.backing.end_offset
        return StubLog(self.backing, end if self.single_node else self.high_watermark)

    def append_records_to_leader(
        self, records: bytes, required_acks: int, origin: AppendOrigin
    ) -> StubAppendInfo:
        self.origins.append(origin)
        return StubAppendInfo(self.backing.append_batch(records))


@dataclass
class StubTopic:
    partitions: tuple[Any, ...]


class StubMetadata:
    def topic(self, name: str) -> StubTopic | None:
        @dataclass
        class State:
            leader: int = 1

        return StubTopic((State(),)) if name == OFFSETS_TOPIC else None


class StubReplicaManager:
    """Replication answers ``ack_error`` at once (None: the ISR has the records); with
    ``hold``, waits are left pending until ``release``."""

    def __init__(self, partition: StubPartition) -> None:
        self.partition = partition
        self.partitions = {partition.tp: partition}
        self.ack_error: ErrorCode | None = None
        self.awaited: list[int] = []
        self.hold = False
        self._held: list[
            tuple[
                asyncio.Future[dict[TopicPartition, ProduceResult]],
                dict[TopicPartition, ProduceResult],
            ]
        ] = []

    def await_acks(
        self, results: dict[TopicPartition, ProduceResult], timeout_ms: int
    ) -> asyncio.Future[dict[TopicPartition, ProduceResult]] | None:
        self.awaited += [r.required_offset for r in results.values()]
        if self.hold:
            future = asyncio.get_running_loop().create_future()
            self._held.append((future, results))
            return future
        if self.ack_error is None:
            return None
        future = asyncio.get_running_loop().create_future()
        future.set_result({tp: r._replace(error=self.ack_error) for tp, r in results.items()})
        return future

    @property
    def waiting(self) -> int:
        return len(self._held)

    def release(self, error: ErrorCode = ErrorCode.none) -> None:
        """The waits end: the ISR caught up (the high watermark moves to the log end),
        or ``error`` (timeout, lost leadership)."""
        if error is ErrorCode.none:
            self.partition.high_watermark = self.partition.backing.end_offset
        for future, results in self._held:
            future.set_result({tp: r._replace(error=error) for tp, r in results.items()})
        self._held.clear()

    def append_records(
        self,
        required_acks: int,
        entries: list[tuple[TopicPartition, bytearray]],
        origin: AppendOrigin,
    ) -> dict[TopicPartition, ProduceResult]:
        results = {}
        for tp, records in entries:
            info = self.partitions[tp].append_records_to_leader(records, required_acks, origin)
            results[tp] = ProduceResult(base_offset=info.first_offset)
        return results

    def add_leadership_listener(self, topic: str, listener: object) -> None:
        pass

    def is_offline(self, tp: TopicPartition) -> bool:
        return False


def coordinator(partition: StubPartition) -> GroupCoordinator:
    return GroupCoordinator(
        BrokerConfig({"offsets.topic.num.partitions": "1"}),
        metadata=cast(Any, StubMetadata()),
        controller=cast(Any, None),
        replica_manager=cast(Any, StubReplicaManager(partition)),
        clock=lambda: 1_000,
        live_brokers=lambda: [1],
    )
