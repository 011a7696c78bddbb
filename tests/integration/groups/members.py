"""confluent-kafka group members that record their rebalance callbacks, polled together.

Several consumers live in one test thread: ``poll_until`` polls each in turn with a short
timeout (librdkafka runs rebalance callbacks from ``poll``) until a condition holds or a
deadline passes, so no assertion rests on a bare sleep.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, Message, TopicPartition

from tests.support.broker import BrokerProcess

SESSION_TIMEOUT_MS = 6000
HEARTBEAT_MS = 1000

Partitions = frozenset[int]


def name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def fast_config(bootstrap: str, group: str, **extra: Any) -> dict[str, Any]:
    return {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "session.timeout.ms": SESSION_TIMEOUT_MS,
        "heartbeat.interval.ms": HEARTBEAT_MS,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        **extra,
    }


@dataclass
class Event:
    kind: str  # "assign", "revoke" or "lost"
    partitions: Partitions
    at: float


@dataclass
class Member:
    """One consumer, the callbacks it got, and the records it read."""

    label: str
    consumer: Consumer
    events: list[Event] = field(default_factory=list)
    records: list[tuple[int, int, bytes | None]] = field(default_factory=list)
    cooperative: bool = False
    closed: bool = False

    def on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.events.append(Event("assign", _ids(partitions), time.monotonic()))
        # What an application does with incremental rebalancing; librdkafka raises if
        # told to add a partition this member already owns.
        if self.cooperative:
            consumer.incremental_assign(partitions)
        else:
            consumer.assign(partitions)

    def on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.events.append(Event("revoke", _ids(partitions), time.monotonic()))
        if self.cooperative:
            consumer.incremental_unassign(partitions)
        else:
            consumer.unassign()

    def on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.events.append(Event("lost", _ids(partitions), time.monotonic()))

    def assignment(self) -> Partitions:
        return frozenset() if self.closed else _ids(self.consumer.assignment())

    def poll(self, timeout: float) -> Message | None:
        message = self.consumer.poll(timeout)
        if message is None:
            return None
        error = message.error()
        if error is not None:
            assert not error.fatal(), f"{self.label}: fatal {error}"
            return None
        self.records.append((message.partition(), message.offset(), message.value()))
        return message

    def since(self, mark: int) -> list[Event]:
        return self.events[mark:]

    def close(self) -> None:
        if not self.closed:
            self.consumer.close()
            self.closed = True


def _ids(partitions: Iterable[TopicPartition]) -> Partitions:
    return frozenset(tp.partition for tp in partitions)


def join(
    bootstrap: str,
    group: str,
    topic: str,
    label: str,
    *,
    cooperative: bool = False,
    **extra: Any,
) -> Member:
    config = fast_config(bootstrap, group, **extra)
    if cooperative:
        config["partition.assignment.strategy"] = "cooperative-sticky"
    member = Member(label, Consumer(config), cooperative=cooperative)
    member.consumer.subscribe(
        [topic], on_assign=member.on_assign, on_revoke=member.on_revoke, on_lost=member.on_lost
    )
    return member


def live(members: Iterable[Member]) -> list[Member]:
    return [m for m in members if not m.closed]


def poll_until(
    members: Sequence[Member],
    condition: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    slice_s: float = 0.05,
) -> float:
    """Poll every open member until ``condition()``; the seconds it took."""
    start = time.monotonic()
    deadline = start + timeout
    while True:
        for member in live(members):
            member.poll(slice_s)
        if condition():
            return time.monotonic() - start
        if time.monotonic() > deadline:
            state = {m.label: sorted(m.assignment()) for m in live(members)}
            raise AssertionError(f"not within {timeout}s: {what}; assignments: {state}")


def poll_for(members: Sequence[Member], seconds: float) -> None:
    """Keep members alive (polling) for a while, e.g. to show nothing else happens."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for member in live(members):
            member.poll(0.05)


def split_evenly(members: Sequence[Member], partitions: int) -> Callable[[], bool]:
    """Condition: the open members own every partition, disjointly, and none owns none."""

    def check() -> bool:
        owned = [m.assignment() for m in live(members)]
        union = frozenset().union(*owned)
        return (
            all(owned)
            and sum(len(o) for o in owned) == partitions
            and union == frozenset(range(partitions))
        )

    return check


def generations(broker: BrokerProcess, group: str) -> list[int]:
    """The generations the broker logged for ``group`` ("group G generation N with ...")."""
    pattern = re.compile(rf"group {re.escape(group)} generation (\d+) with")
    return [int(found) for found in pattern.findall(broker.log_path.read_text(errors="replace"))]
