"""Load generator: one produce or consume workload, run as its own process.

Usage: ``python benchmarks/_loadgen.py '<json spec>'``. The worker connects and fetches
metadata, prints ``ready`` on stdout and waits for a line on stdin before it starts the
clock, so that several workers of one phase (``throughput.run_workers``) start together.
It then prints one JSON object (the result) on stdout and exits 0, also when the
workload failed (``error`` says why); a worker that fails before it is ready prints
that result instead of ``ready``.

Running librdkafka in a separate process keeps its CPU out of the broker's accounting.
The worker itself samples the brokers' utime+stime (``/proc/<pid>/stat`` of each of
``broker_pids``: one broker, or every broker of a cluster) and the machine's busy time
right before and right after its timed section, and reports them with the section's
bounds on the system-wide monotonic clock (``window``), so that the parent can measure a
phase of several workers from the first start to the last end. Connection set-up and
Python start-up are not counted against the brokers.

Produce: ``count`` records of ``size`` bytes, round-robin over the partitions starting
at partition ``index`` (explicit partition, no key), delivery reports for errors only
(``delivery.report.only.error``): a message is delivered when ``flush`` returned with
nothing outstanding and no error was reported. The clock stops when the last
acknowledgement is in.

Consume: ``assign()`` every partition from the beginning (no consumer group; librdkafka
needs a ``group.id`` but nothing is committed). The clock stops at the last expected
record. Every record is checked: the value equals the produced payload, and offsets in
each partition are 0, 1, 2, ... with no gap and no duplicate. Counts per partition must
equal what the producers had acknowledged.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from collections import Counter
from typing import Any, TypedDict

from _brokers import cpu_seconds, machine_busy_s, own_cpu_s
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    Message,
    Producer,
    TopicPartition,
)

IDLE_TIMEOUT_S = 15.0


class Spec(TypedDict):
    mode: str  # "produce" | "consume"
    bootstrap: str
    topic: str
    partitions: int
    size: int
    count: int  # produce: records to send; consume: ignored (expected gives it)
    acks: str
    broker_pids: list[int]
    timeout_s: float
    expected: dict[str, int]  # consume: partition -> records acknowledged
    index: int  # this worker's place among the phase's workers (0 when alone)


def payload(size: int) -> bytes:
    """Incompressible and the same in producer and consumer, so values can be compared."""
    return random.Random(size).randbytes(size)


def cpu_used(before: list[float], after: list[float]) -> dict[str, Any]:
    each = [b - a for a, b in zip(before, after, strict=True)]
    return {"broker_cpu_s": sum(each), "broker_cpu_each_s": each}


class Clock:
    """The timed section: its bounds, and the brokers' and machine's CPU at each bound."""

    def __init__(self, broker_pids: list[int]) -> None:
        self.pids = broker_pids
        self.t0 = self.t1 = 0.0
        self.brokers0: list[float] = []
        self.brokers1: list[float] = []
        self.machine0 = self.machine1 = self.own0 = self.own1 = 0.0

    def start(self) -> float:
        self.brokers0, self.own0, self.machine0 = self._cpu()
        self.t0 = time.monotonic()
        return self.t0

    def stop(self, at: float | None = None) -> None:
        """``at``: when the section really ended, if that was before now."""
        self.t1 = time.monotonic() if at is None else at
        self.brokers1, self.own1, self.machine1 = self._cpu()

    def _cpu(self) -> tuple[list[float], float, float]:
        return [cpu_seconds(pid) for pid in self.pids], own_cpu_s(), machine_busy_s()

    def result(self) -> dict[str, Any]:
        return {
            "elapsed_s": self.t1 - self.t0,
            **cpu_used(self.brokers0, self.brokers1),
            "client_cpu_s": self.own1 - self.own0,
            "machine_cpu_s": self.machine1 - self.machine0,
            "window": {
                "t0": self.t0,
                "t1": self.t1,
                "brokers0": self.brokers0,
                "brokers1": self.brokers1,
                "machine0": self.machine0,
                "machine1": self.machine1,
            },
        }


def wait_for_go() -> None:
    """Tell the parent this worker is connected, then wait until it says start."""
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    sys.stdin.readline()


def produce(spec: Spec) -> dict[str, Any]:
    partitions, count, topic = spec["partitions"], spec["count"], spec["topic"]
    producer = Producer(
        {
            "bootstrap.servers": spec["bootstrap"],
            "acks": spec["acks"],
            "linger.ms": 5,
            "batch.size": 1_000_000,
            "batch.num.messages": 100_000,
            "compression.type": "none",
            "queue.buffering.max.messages": 1_000_000,
            "queue.buffering.max.kbytes": 256 * 1024,
            "message.max.bytes": 1_000_000,
            "delivery.report.only.error": True,
            "enable.idempotence": False,
        }
    )
    failed: Counter[int] = Counter()
    first_error: list[str] = []

    def on_delivery(err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            failed[msg.partition() or 0] += 1
            if not first_error:
                first_error.append(str(err))

    producer.list_topics(topic, timeout=10)  # connect and fetch metadata before the clock
    value = payload(spec["size"])
    sent: Counter[int] = Counter()
    error: str | None = None
    first = spec.get("index", 0)
    clock = Clock(spec["broker_pids"])
    wait_for_go()
    deadline = clock.start() + spec["timeout_s"]
    produce_one = producer.produce
    for i in range(count):
        partition = (first + i) % partitions
        while True:
            try:
                produce_one(topic, value, partition=partition, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.01)
        sent[partition] += 1
        if i % 4096 == 0:
            producer.poll(0)
            if time.monotonic() > deadline:
                error = f"timeout after {spec['timeout_s']:.0f}s with {i + 1} of {count} sent"
                break
    remaining = producer.flush(max(deadline - time.monotonic(), 0.1))
    clock.stop()
    if remaining:
        error = error or f"timeout: {remaining} records still unacknowledged after flush"
    if failed:
        error = error or f"{sum(failed.values())} records failed: {first_error[0]}"
    delivered = {p: sent[p] - failed[p] for p in range(partitions)}
    if remaining:  # which partitions they belong to is unknown: report none as delivered
        delivered = {p: 0 for p in range(partitions)}
    records = sum(delivered.values())
    return {
        "records": records,
        "bytes": records * spec["size"],
        **clock.result(),
        "delivered": {str(p): n for p, n in delivered.items()},
        "error": error,
    }


def consume(spec: Spec) -> dict[str, Any]:
    topic, partitions = spec["topic"], spec["partitions"]
    expected = {int(p): n for p, n in spec["expected"].items()}
    want = sum(expected.values())
    consumer = Consumer(
        {
            "bootstrap.servers": spec["bootstrap"],
            "group.id": f"odradek-bench-{os.getpid()}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            # librdkafka's default 1 s back-off when its local queue is "full" (counted
            # with per-message overhead) stalls small-record reads for whole seconds.
            "fetch.queue.backoff.ms": 10,
        }
    )
    value = payload(spec["size"])
    got = [0] * partitions
    next_offset = [0] * partitions
    anomalies: list[str] = []
    errors: list[str] = []
    total = 0
    clock = Clock(spec["broker_pids"])
    try:
        consumer.list_topics(topic, timeout=10)
        wait_for_go()
        last = clock.start()
        deadline = last + spec["timeout_s"]
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        while total < want:
            now = time.monotonic()
            if now > deadline or now - last > IDLE_TIMEOUT_S:
                break
            # consume() waits until it has the number asked for (or the timeout): never ask
            # for more than is still missing, or the last batch adds a timeout to the clock.
            batch = consumer.consume(min(10_000, want - total), 0.5)
            for msg in batch:
                err = msg.error()
                if err is not None:
                    if len(errors) < 5:
                        errors.append(str(err))
                    continue
                partition, offset = msg.partition() or 0, msg.offset()
                if offset != next_offset[partition] and len(anomalies) < 5:
                    anomalies.append(
                        f"partition {partition}: offset {offset}, expected {next_offset[partition]}"
                    )
                next_offset[partition] = (offset or 0) + 1
                if msg.value() != value and len(anomalies) < 5:
                    anomalies.append(f"partition {partition} offset {offset}: value differs")
                got[partition] += 1
                total += 1
            if batch:
                last = time.monotonic()
        clock.stop(at=last)
    finally:
        consumer.close()
    error: str | None = None
    short = {p: (expected[p], got[p]) for p in range(partitions) if got[p] != expected.get(p, 0)}
    if short:
        detail = ", ".join(f"p{p} {w} acked/{g} read" for p, (w, g) in sorted(short.items()))
        error = f"DATA MISMATCH: {total} of {want} records read ({detail})"
    elif anomalies:
        error = "DATA MISMATCH: " + "; ".join(anomalies)
    if error and errors:
        error += "; client errors: " + "; ".join(errors)
    return {
        "records": total,
        "bytes": total * spec["size"],
        **clock.result(),
        "anomalies": anomalies,
        "client_errors": errors,
        "error": error,
    }


def main(argv: list[str]) -> int:
    spec: Spec = json.loads(argv[1])
    try:
        result = produce(spec) if spec["mode"] == "produce" else consume(spec)
    except Exception as exc:  # report, never crash without a result
        result = {"error": f"{type(exc).__name__}: {exc}"}
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
