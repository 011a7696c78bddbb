"""End-to-end latency client: a paced producer or a consumer, run as its own process.

Usage: ``python benchmarks/_latency_client.py '<json spec>'``; prints one JSON object on
stdout (the consumer first prints a line ``ready`` once it is positioned and fetching),
and exits 0 also when the run failed (``error`` says why).

Every record is ``size`` bytes: an 8-byte sequence number, the 8-byte send time
(``time.monotonic_ns()``, CLOCK_MONOTONIC, which every process on the machine shares),
then filler. The producer stamps the time just before ``produce()``; the consumer reads
the clock as soon as ``poll()`` hands it the record, so a latency is the whole trip:
librdkafka's producer queue, the produce request, the broker's append, its answer to the
parked (long-poll) fetch, and librdkafka's consumer queue.

Pacing: record ``i`` is due at ``start + i / rate``; the producer sleeps until then (no
busy-waiting: the two cores are shared with the broker and the consumer) and sends it.
Oversleeping delays one record, never the schedule; a producer that falls behind sends
at once and reports how far it lagged.

The consumer ``assign()``s the partition at its current end (no consumer group) and
keeps the latencies of the records after the warm-up; it checks that sequence numbers
arrive in order with no gap or duplicate.
"""

from __future__ import annotations

import json
import os
import struct
import sys
import time
from typing import Any, TypedDict

from _brokers import cpu_seconds, machine_busy_s, own_cpu_s
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

HEADER = struct.Struct(">qq")
IDLE_TIMEOUT_S = 15.0
# Percentiles kept per run for the plot (the table uses p50/p99/p999/max).
CURVE = (
    [float(p) for p in range(0, 90, 5)]
    + [90.0, 92.0, 94.0, 95.0, 96.0, 97.0, 98.0, 99.0, 99.5, 99.7, 99.8, 99.9]
    + [99.95, 99.97, 99.99, 100.0]
)


class Spec(TypedDict):
    mode: str  # "produce" | "consume"
    bootstrap: str
    topic: str
    size: int
    rate: float  # records per second
    count: int  # records in all (warm-up + measured)
    warmup: int  # the first ``warmup`` records are not measured
    acks: str
    broker_pids: list[int]  # one broker, or every broker of a cluster
    client: dict[str, Any]  # extra librdkafka settings


def brokers_cpu(pids: list[int]) -> list[float]:
    return [cpu_seconds(pid) for pid in pids]


def percentile(sorted_values: list[int], p: float) -> int:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return 0
    rank = max(1, min(len(sorted_values), int(-(-p * len(sorted_values) // 100))))
    return sorted_values[rank - 1]


def produce(spec: Spec) -> dict[str, Any]:
    config = {
        "bootstrap.servers": spec["bootstrap"],
        "acks": spec["acks"],
        "linger.ms": 0,
        "compression.type": "none",
        "enable.idempotence": False,
        **spec["client"],
    }
    producer = Producer(config)
    errors: list[str] = []
    failed = 0

    def on_delivery(err: KafkaError | None, msg: Message) -> None:
        nonlocal failed
        if err is not None:
            failed += 1
            if len(errors) < 5:
                errors.append(str(err))

    producer.list_topics(spec["topic"], timeout=10)
    filler = b"\0" * (spec["size"] - HEADER.size)
    rate, count, topic = spec["rate"], spec["count"], spec["topic"]
    interval_ns = int(1e9 / rate)
    produce_one = producer.produce
    pack = HEADER.pack
    clock = time.monotonic_ns
    max_lag_ns = 0
    late = 0
    cpu0, own0, all0 = brokers_cpu(spec["broker_pids"]), own_cpu_s(), machine_busy_s()
    start = clock()
    for seq in range(count):
        due = start + seq * interval_ns
        now = clock()
        if now < due:  # sleep, never spin: the broker needs the CPU more than we do
            time.sleep((due - now) / 1e9)
            now = clock()
        lag = max(now - due, 0)
        if lag > 1_000_000:
            late += 1
        max_lag_ns = max(max_lag_ns, lag)
        while True:
            try:
                value = pack(seq, clock()) + filler
                produce_one(topic, value, partition=0, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.001)
        producer.poll(0)
    elapsed = (clock() - start) / 1e9
    remaining = producer.flush(30)
    cpu1, own1, all1 = brokers_cpu(spec["broker_pids"]), own_cpu_s(), machine_busy_s()
    error = None
    if remaining:
        error = f"{remaining} records unacknowledged after flush"
    elif failed:
        error = f"{failed} records failed: {errors[0]}"
    return {
        "sent": count,
        "elapsed_s": elapsed,
        "achieved_rate": count / elapsed if elapsed > 0 else 0.0,
        "max_schedule_lag_ms": max_lag_ns / 1e6,
        "late_sends": late,
        "broker_cpu_s": sum(cpu1) - sum(cpu0),
        "broker_cpu_each_s": [b - a for a, b in zip(cpu0, cpu1, strict=True)],
        "producer_cpu_s": own1 - own0,
        "machine_cpu_s": all1 - all0,
        "error": error,
    }


def consume(spec: Spec) -> dict[str, Any]:
    config = {
        "bootstrap.servers": spec["bootstrap"],
        "group.id": f"odradek-latency-{os.getpid()}",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": False,
        **spec["client"],
    }
    consumer = Consumer(config)
    topic, count, warmup = spec["topic"], spec["count"], spec["warmup"]
    latencies: list[int] = []
    anomalies: list[str] = []
    client_errors: list[str] = []
    expected = 0
    try:
        _low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        consumer.assign([TopicPartition(topic, 0, high)])
        # Let the first fetch go out (and park at the broker) before the producer starts.
        consumer.poll(1.0)
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        own0 = own_cpu_s()
        clock = time.monotonic_ns
        unpack = HEADER.unpack_from
        last = time.monotonic()
        poll = consumer.poll
        while expected < count:
            msg = poll(0.2)
            if msg is None:
                if time.monotonic() - last > IDLE_TIMEOUT_S:
                    break
                continue
            received = clock()
            err = msg.error()
            if err is not None:
                if len(client_errors) < 5:
                    client_errors.append(str(err))
                continue
            last = time.monotonic()
            seq, sent = unpack(msg.value() or b"")
            if seq != expected and len(anomalies) < 5:
                anomalies.append(f"sequence {seq} arrived, {expected} expected")
            expected = seq + 1
            if seq >= warmup:
                latencies.append(received - sent)
        consumer_cpu = own_cpu_s() - own0
    finally:
        consumer.close()
    latencies.sort()
    measured = count - warmup
    error = None
    if len(latencies) != measured:
        error = f"{len(latencies)} of {measured} measured records received"
    elif anomalies:
        error = "; ".join(anomalies)
    if error and client_errors:
        error += "; client errors: " + "; ".join(client_errors)
    ms = [percentile(latencies, p) / 1e6 for p in (50, 99, 99.9, 100)]
    return {
        "received": len(latencies),
        "consumer_cpu_s": consumer_cpu,
        "p50_ms": ms[0],
        "p99_ms": ms[1],
        "p999_ms": ms[2],
        "max_ms": ms[3],
        "mean_ms": sum(latencies) / len(latencies) / 1e6 if latencies else 0.0,
        "over_5ms": sum(1 for x in latencies if x > 5_000_000),
        "curve": [[p, percentile(latencies, p) / 1e6] for p in CURVE],
        "anomalies": anomalies,
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
