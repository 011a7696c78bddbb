"""A mixed soak against one broker: producers, consumer group members, admin churn and
connection churn at once, for ``seconds``, with the broker's VmRSS and descriptor count
sampled every ``sample_every`` seconds.

Load, each in its own thread, all stopped together at the end:

- two idempotent acks=all producers, 150 records a second each, on a 6-partition topic
  with 4 MiB segments (so segments roll and are flushed in the background);
- three members of one consumer group reading that topic, committing automatically; every
  20 s one of them leaves and a new one joins (a rebalance each time);
- admin churn: every 2 s a topic is created, described, has a config altered, gets ten
  records, and is deleted; groups are listed and described;
- connection churn: every 2 s, 100 raw connections (a third answered ApiVersions, a
  third half a frame, a third nothing) are opened and dropped.

Verdict (``SoakRun.problems``): every acknowledged record is at its offset, once; RSS and
descriptors are flat, meaning the median of the last quarter's samples is within
``RSS_TOLERANCE`` (or ``RSS_SLACK_KIB``, the larger) of the second quarter's median (the
first quarter is warm-up), and the last quarter's median descriptor count is at most
``FD_SLACK`` above the second quarter's (medians: a sample may land while the connection
churn holds its 100 connections); the broker logged no ERROR or traceback; no load
thread failed.
"""

from __future__ import annotations

import random
import socket
import statistics
import struct
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
)
from kio.schema.api_versions.v3.request import ApiVersionsRequest

from tests.robustness.load import Producing, check_acked, fd_count, read_log, rss_kib
from tests.robustness.slow_clients import log_errors, recv_exact
from tests.support.broker import BrokerProcess
from tests.support.clients import admin, create_topic
from tests.support.wire import request_frame

SOAK_TOPIC = "soak"
SOAK_PARTITIONS = 6
SOAK_GROUP = "soak-group"
RSS_TOLERANCE = 0.10
RSS_SLACK_KIB = 8 * 1024
FD_SLACK = 10
SOAK_BROKER_CONFIG = {"group.initial.rebalance.delay.ms": "300"}


@dataclass
class SoakRun:
    seconds: float = 0.0
    samples: list[tuple[float, int, int]] = field(default_factory=list)
    """(seconds since the start, VmRSS KiB, descriptors)."""
    acknowledged: int = 0
    lost: int = 0
    duplicated: int = 0
    ack_failures: list[str] = field(default_factory=list)
    delivery_errors: int = 0
    consumed: int = 0
    member_replacements: int = 0
    topics_churned: int = 0
    connections_churned: int = 0
    load_errors: list[str] = field(default_factory=list)
    """Exceptions of the load threads (a failed round of churn, a consumer error)."""
    log_errors: list[str] = field(default_factory=list)

    def quarter(self, n: int) -> list[tuple[float, int, int]]:
        """Samples of the n-th quarter (1-4) of the run, by time."""
        span = self.seconds / 4
        return [
            s
            for s in self.samples
            if (n - 1) * span <= s[0] < n * span or (n == 4 and s[0] >= 3 * span)
        ]

    @property
    def rss_medians_kib(self) -> tuple[float, float]:
        """Median VmRSS of the second and of the last quarter."""
        return (
            statistics.median(s[1] for s in self.quarter(2)),
            statistics.median(s[1] for s in self.quarter(4)),
        )

    @property
    def fd_medians(self) -> tuple[float, float]:
        """Median descriptor count of the second and of the last quarter."""
        return (
            statistics.median(s[2] for s in self.quarter(2)),
            statistics.median(s[2] for s in self.quarter(4)),
        )

    def summary(self) -> str:
        """One paragraph of figures."""
        rss2, rss4 = self.rss_medians_kib if self.samples else (0.0, 0.0)
        fds2, fds4 = self.fd_medians if self.samples else (0.0, 0.0)
        fds = [s[2] for s in self.samples] or [0]
        rss = [s[1] for s in self.samples] or [0]
        return (
            f"{self.seconds:.0f} s, {len(self.samples)} samples: RSS median second quarter "
            f"{rss2 / 1024:.1f} MiB, last quarter {rss4 / 1024:.1f} MiB (min "
            f"{min(rss) / 1024:.1f}, max {max(rss) / 1024:.1f}); descriptors median "
            f"{fds2:.0f} / {fds4:.0f} (min {min(fds)}, max {max(fds)}); "
            f"{self.acknowledged:,} records acknowledged, {self.lost} lost, "
            f"{self.duplicated} duplicated, {self.delivery_errors} delivery errors; "
            f"{self.consumed:,} consumed by the group, {self.member_replacements} member "
            f"replacements, {self.topics_churned} topics created and deleted, "
            f"{self.connections_churned:,} connections churned; {len(self.load_errors)} load "
            f"errors, {len(self.log_errors)} broker ERROR lines"
        )

    def problems(self) -> list[str]:
        found = []
        if self.lost or self.duplicated:
            found.append(
                f"{self.lost} acknowledged records lost, {self.duplicated} written twice: "
                f"{self.ack_failures[:5]}"
            )
        if any(len(self.quarter(n)) < 2 for n in range(1, 5)):
            found.append(f"too few samples ({len(self.samples)}) to judge flatness")
            return found
        second, last = self.rss_medians_kib
        allowed = max(second * RSS_TOLERANCE, RSS_SLACK_KIB)
        if last - second > allowed:
            found.append(
                f"RSS grew: last-quarter median {last:.0f} KiB vs second-quarter "
                f"{second:.0f} KiB (allowed +{allowed:.0f})"
            )
        fds_second, fds_last = self.fd_medians
        if fds_last - fds_second > FD_SLACK:
            found.append(f"descriptors grew: {fds_second} -> {fds_last}")
        if self.consumed == 0:
            found.append("the consumer group consumed nothing")
        found.extend(f"load thread: {e}" for e in self.load_errors[:10])
        found.extend(f"broker log: {line}" for line in self.log_errors[:10])
        return found


class _Loop(threading.Thread):
    """Runs ``step`` every ``interval`` seconds until stopped; exceptions are recorded."""

    def __init__(self, name: str, step: Callable[[], None], interval: float, run: SoakRun):
        super().__init__(name=name, daemon=True)
        self.step = step
        self.interval = interval
        self.run_record = run
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(self.interval):
            try:
                self.step()
            except Exception as exc:
                line = traceback.format_exception_only(exc)[-1].strip()
                self.run_record.load_errors.append(f"{self.name}: {line}")


class _Member(threading.Thread):
    """One consumer group member polling until stopped, then leaving the group."""

    def __init__(self, bootstrap: str, run: SoakRun, number: int) -> None:
        super().__init__(name=f"member-{number}", daemon=True)
        self.bootstrap = bootstrap
        self.run_record = run
        self.stopping = threading.Event()

    def run(self) -> None:
        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": SOAK_GROUP,
                "auto.offset.reset": "earliest",
                "session.timeout.ms": 10_000,
                "heartbeat.interval.ms": 1_000,
            }
        )
        try:
            consumer.subscribe([SOAK_TOPIC])
            while not self.stopping.is_set():
                message = consumer.poll(0.2)
                if message is None:
                    continue
                if message.error() is None:
                    self.run_record.consumed += 1
        except KafkaException as exc:
            self.run_record.load_errors.append(f"{self.name}: {exc}")
        finally:
            consumer.close()


def run_soak(
    broker: BrokerProcess, seconds: float, *, sample_every: float = 5.0, seed: int = 1
) -> SoakRun:
    """Run the mixed load for ``seconds`` against ``broker`` (started with
    ``SOAK_BROKER_CONFIG``), then check it (``SoakRun.problems``)."""
    assert broker.process is not None
    pid = broker.process.pid
    rng = random.Random(seed)
    run = SoakRun(seconds=seconds)
    log_start = broker.log_path.stat().st_size
    create_topic(
        broker.bootstrap, SOAK_TOPIC, SOAK_PARTITIONS, config={"segment.bytes": str(4 << 20)}
    )
    producers = [
        Producing(broker.bootstrap, SOAK_TOPIC, SOAK_PARTITIONS, seed + n, prefix=f"p{n}", rate=150)
        for n in range(2)
    ]
    members = [_Member(broker.bootstrap, run, n) for n in range(3)]
    churn_admin = admin(broker.bootstrap)
    frame = request_frame(
        ApiVersionsRequest(client_software_name="soak", client_software_version="1")
    )

    def replace_member() -> None:
        index = rng.randrange(len(members))
        members[index].stopping.set()
        members[index].join(30)
        members[index] = _Member(broker.bootstrap, run, run.member_replacements + 3)
        members[index].start()
        run.member_replacements += 1

    def topic_churn() -> None:
        name = f"churn-{run.topics_churned}"
        churn_admin.create_topics([NewTopic(name, 2, 1)], operation_timeout=10)[name].result(30)
        resource = ConfigResource(ConfigResource.Type.TOPIC, name)
        churn_admin.describe_configs([resource])[resource].result(30)
        entry = ConfigEntry("retention.ms", "3600000", incremental_operation=AlterConfigOpType.SET)
        altered = ConfigResource(ConfigResource.Type.TOPIC, name, incremental_configs=[entry])
        churn_admin.incremental_alter_configs([altered])[altered].result(30)
        producer = Producer({"bootstrap.servers": broker.bootstrap, "log_level": 2})
        for n in range(10):
            producer.produce(name, key=b"%d" % n, value=b"churn")
        if producer.flush(30):
            raise RuntimeError(f"records to {name} not delivered")
        churn_admin.list_consumer_groups().result(30)
        churn_admin.describe_consumer_groups([SOAK_GROUP])[SOAK_GROUP].result(30)
        churn_admin.delete_topics([name], operation_timeout=10)[name].result(30)
        run.topics_churned += 1

    def connection_churn() -> None:
        socks = []
        try:
            for n in range(100):
                sock = socket.create_connection(("127.0.0.1", broker.port), timeout=10)
                socks.append(sock)
                if n % 3 == 0:
                    sock.sendall(frame)
                elif n % 3 == 1:
                    sock.sendall(frame[: len(frame) // 2])
            for n, sock in enumerate(socks):
                if n % 3 == 0:
                    (size,) = struct.unpack(">i", recv_exact(sock, 4))
                    recv_exact(sock, size)
        finally:
            for n, sock in enumerate(socks):
                if n % 2:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.close()
        run.connections_churned += len(socks)

    loops = [
        _Loop("member churn", replace_member, 20.0, run),
        _Loop("topic churn", topic_churn, 2.0, run),
        _Loop("connection churn", connection_churn, 2.0, run),
    ]
    threads: list[threading.Thread] = [*producers, *members, *loops]
    started = time.monotonic()
    try:
        for thread in threads:
            thread.start()
        while (elapsed := time.monotonic() - started) < seconds:
            run.samples.append((elapsed, rss_kib(pid), fd_count(pid)))
            time.sleep(min(sample_every, max(seconds - elapsed, 0.01)))
    finally:
        for loop in loops:
            loop.stopping.set()
        for loop in loops:
            loop.join(60)
        for member in members:
            member.stopping.set()
        for member in members:
            member.join(30)
        for producer in producers:
            producer.stop()
    acked = {}
    for producer in producers:
        acked.update(producer.acked)
        run.delivery_errors += len(producer.errors)
        run.load_errors.extend(f"{producer.name}: {d}" for d in producer.duplicate_acks)
        if producer.unflushed:
            run.load_errors.append(f"{producer.name}: {producer.unflushed} records unflushed")
    check = check_acked(acked, read_log(broker.bootstrap, SOAK_TOPIC, SOAK_PARTITIONS))
    run.acknowledged, run.lost, run.duplicated = check.acknowledged, check.lost, check.duplicated
    run.ack_failures = check.failures
    run.log_errors = log_errors(broker, log_start)
    return run
