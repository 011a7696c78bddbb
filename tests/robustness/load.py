"""Load for the robustness campaigns: a producer thread that remembers what was
acknowledged, reading a topic back, checking one against the other, and the broker's
resident memory and descriptors from ``/proc``."""

from __future__ import annotations

import hashlib
import os
import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

Digest = tuple[bytes, bytes]
"""A record as compared: its key and a BLAKE2b digest of its value."""


def digest(key: bytes | None, value: bytes | None) -> Digest:
    return (key or b"", hashlib.blake2b(value or b"", digest_size=16).digest())


def rss_kib(pid: int) -> int:
    """The process's resident set (VmRSS), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise ValueError(f"no VmRSS for process {pid}")


def fd_count(pid: int) -> int:
    """How many descriptors the process has open."""
    return len(os.listdir(f"/proc/{pid}/fd"))


class Producing(threading.Thread):
    """A confluent-kafka producer thread sending keyed, numbered records (``<prefix>-<n>``,
    value ``<n>:`` and 10-200 random bytes) round robin over the partitions until
    ``stop()``, with at most ``window`` records unacknowledged and, if ``rate`` is given,
    at most that many records a second. ``acked`` maps (partition, offset) to the
    record's ``digest``, from the delivery reports."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        partitions: int,
        seed: int,
        *,
        prefix: str = "key",
        rate: float | None = None,
        window: int = 2000,
        config: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(name=f"producer-{topic}", daemon=True)
        self.topic = topic
        self.partitions = partitions
        self.rng = random.Random(seed)
        self.prefix = prefix.encode()
        self.rate = rate
        self.window = window
        self.config: dict[str, Any] = {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 2,
            "message.timeout.ms": 120_000,
            "reconnect.backoff.ms": 20,
            "reconnect.backoff.max.ms": 200,
            "retry.backoff.ms": 20,
            "retry.backoff.max.ms": 200,
            "log_level": 2,  # connection refusals while the broker restarts are expected
            **(config or {}),
        }
        self.acked: dict[tuple[int, int], Digest] = {}
        self.duplicate_acks: list[str] = []
        self.errors: list[str] = []
        self.sent = 0
        self.unflushed = 0
        self._done = threading.Event()

    def run(self) -> None:
        producer = Producer(self.config)
        started = time.monotonic()
        while not self._done.is_set():
            unanswered = self.sent - len(self.acked) - len(self.errors)
            behind = self.rate is not None and self.sent >= (time.monotonic() - started) * self.rate
            if unanswered >= self.window or behind:
                producer.poll(0.01)
                continue
            n = self.sent
            value = b"%d:" % n + self.rng.randbytes(self.rng.randrange(10, 200))
            try:
                producer.produce(
                    self.topic,
                    key=b"%s-%d" % (self.prefix, n),
                    value=value,
                    partition=n % self.partitions,
                    on_delivery=self._report,
                )
            except BufferError:
                producer.poll(0.01)
                continue
            self.sent += 1
            producer.poll(0)
        self.unflushed = producer.flush(120)

    def stop(self, timeout: float = 150) -> None:
        """Stop sending, wait for the last acknowledgements (``unflushed``: still none)."""
        self._done.set()
        self.join(timeout)

    def _report(self, err: KafkaError | None, msg: Any) -> None:
        if err is not None:
            self.errors.append(str(err))
            return
        where = (msg.partition(), msg.offset())
        if where in self.acked:
            self.duplicate_acks.append(f"{where} acknowledged twice")
        self.acked[where] = digest(msg.key(), msg.value())

    def wait_for_acks(self, count: int, timeout: float) -> bool:
        """Wait until ``count`` records in all are acknowledged; whether they were."""
        deadline = time.monotonic() + timeout
        while len(self.acked) < count and time.monotonic() < deadline and self.is_alive():
            time.sleep(0.01)
        return len(self.acked) >= count


def read_log(bootstrap: str, topic: str, partitions: int) -> dict[tuple[int, int], Digest]:
    """Every record of every partition by (partition, offset), from offset 0 to the high
    watermarks as they are when called."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "robustness-check",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    try:
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in range(partitions)
        }
        remaining = {p for p in range(partitions) if ends[p]}
        consumer.assign([TopicPartition(topic, p, 0) for p in sorted(remaining)])
        found: dict[tuple[int, int], Digest] = {}
        deadline = time.monotonic() + 120
        while remaining and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            partition, offset = message.partition(), message.offset()
            error = message.error()
            if error is None and partition is not None and offset is not None:
                found[(partition, offset)] = digest(message.key(), message.value())
                if offset + 1 >= ends[partition]:
                    remaining.discard(partition)
            elif error is not None and error.code() == KafkaError._PARTITION_EOF:
                remaining.discard(partition)
        if remaining:
            raise TimeoutError(f"partitions {sorted(remaining)} of {topic} not read to the end")
        return found
    finally:
        consumer.close()


@dataclass
class AckCheck:
    """Acknowledged records against the log."""

    acknowledged: int = 0
    lost: int = 0
    """Acknowledged records missing at their offset, or different there."""
    duplicated: int = 0
    """Acknowledged records whose key is also at another offset."""
    failures: list[str] = field(default_factory=list)
    """The first problems, one line each."""
    duplicate_places: list[tuple[int, int]] = field(default_factory=list)
    """(partition, offset) of every copy of the first duplicated records."""


def check_acked(
    acked: dict[tuple[int, int], Digest], log: dict[tuple[int, int], Digest], limit: int = 20
) -> AckCheck:
    """Each acknowledged (partition, offset) must hold the acknowledged key and value, and
    that key must be nowhere else in the log."""
    check = AckCheck(acknowledged=len(acked))
    places: dict[bytes, list[tuple[int, int]]] = {}
    for where, (key, _value) in log.items():
        places.setdefault(key, []).append(where)
    for where, record in sorted(acked.items()):
        found = log.get(where)
        if found != record:
            check.lost += 1
            if len(check.failures) < limit:
                shown = "missing" if found is None else f"holds {found[0]!r}"
                check.failures.append(f"acknowledged {record[0]!r} at {where}: {shown}")
        elif len(places[record[0]]) > 1:
            check.duplicated += 1
            if len(check.failures) < limit:
                check.duplicate_places.extend(places[record[0]])
                check.failures.append(
                    f"acknowledged {record[0]!r} at {where} is also at {places[record[0]]}"
                )
    return check
