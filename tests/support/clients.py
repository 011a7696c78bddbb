"""confluent-kafka helpers shared by integration tests: create, produce, read back."""

from __future__ import annotations

import time
from typing import Any, NamedTuple

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


class Acked(NamedTuple):
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap})


def create_topic(
    bootstrap: str,
    name: str,
    partitions: int = 1,
    config: dict[str, str] | None = None,
    replication_factor: int = 1,
) -> None:
    client = admin(bootstrap)  # must outlive the future
    futures = client.create_topics(
        [NewTopic(name, partitions, replication_factor, config=config or {})],
        operation_timeout=10,
    )
    futures[name].result(timeout=30)


def produce_acked(
    bootstrap: str, topic: str, count: int, *, partitions: int | None = None, **config: Any
) -> list[Acked]:
    """Produce ``count`` records and return exactly those the broker acknowledged."""
    acked: list[Acked] = []
    errors: list[str] = []

    def report(err: KafkaError | None, msg: Any) -> None:
        if err is not None:
            errors.append(str(err))
        else:
            acked.append(Acked(msg.partition(), msg.offset(), msg.key(), msg.value()))

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 2, **config})
    for i in range(count):
        kwargs: dict[str, Any] = {}
        if partitions is not None:
            kwargs["partition"] = i % partitions
        producer.produce(topic, key=b"k%d" % i, value=b"value-%d" % i, on_delivery=report, **kwargs)
        producer.poll(0)
    remaining = producer.flush(30)
    assert remaining == 0, f"{remaining} records not delivered"
    assert not errors, errors[:3]
    return sorted(acked)


def consume_all(
    bootstrap: str,
    topic: str,
    partitions: int,
    *,
    expected: int | None = None,
    timeout: float = 30.0,
    **config: Any,
) -> list[Acked]:
    """Read every partition from its start until the high watermark is reached."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "tests-assign-only",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            **config,
        }
    )
    try:
        ends = {}
        for p in range(partitions):
            _low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            ends[p] = high
        consumer.assign([TopicPartition(topic, p, 0 if ends[p] else -2) for p in range(partitions)])
        got: list[Acked] = []
        positions = {p: 0 for p in range(partitions)}
        deadline = time.monotonic() + timeout
        target = expected if expected is not None else sum(ends.values())
        while len(got) < target and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error():
                continue
            got.append(Acked(message.partition(), message.offset(), message.key(), message.value()))
            positions[message.partition()] = message.offset() + 1
        return sorted(got)
    finally:
        consumer.close()
