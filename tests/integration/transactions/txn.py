"""Helpers for the transaction tests: transactional producers and readers by isolation."""

from __future__ import annotations

import itertools
import time
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

_ids = itertools.count(1)


def transactional_producer(bootstrap: str, txn_id: str | None = None, **config: Any) -> Producer:
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "transactional.id": txn_id or f"txn-{next(_ids)}",
            "linger.ms": 5,
            **config,
        }
    )
    producer.init_transactions(30)
    return producer


def read_values(
    bootstrap: str,
    topic: str,
    partitions: int,
    isolation: str,
    *,
    settle: float = 2.0,
    timeout: float = 30.0,
) -> list[bytes]:
    """Every value a consumer with ``isolation`` reads from the start of each partition,
    until nothing new has arrived for ``settle`` seconds after the end offsets (high
    watermark or last stable offset) were reached."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{next(_ids)}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": isolation,
        }
    )
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        values: list[bytes] = []
        deadline = time.monotonic() + timeout
        quiet_since = time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - quiet_since < settle:
            message = consumer.poll(0.2)
            if message is None or message.error():
                continue
            value = message.value()
            assert value is not None
            values.append(value)
            quiet_since = time.monotonic()
        return values
    finally:
        consumer.close()


def positions_reached(
    bootstrap: str, topic: str, partitions: int, isolation: str, timeout: float = 30.0
) -> dict[int, int]:
    """Each partition's position once a consumer with ``isolation`` has read all it can
    (read_committed: stops at the last stable offset)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"positions-{next(_ids)}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": isolation,
            "enable.partition.eof": True,
        }
    )
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        at_end: dict[int, int] = {}
        deadline = time.monotonic() + timeout
        while len(at_end) < partitions and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is None:
                continue
            error = message.error()
            if error is not None and error.code() == error._PARTITION_EOF:
                at_end[message.partition()] = message.offset()
        return at_end
    finally:
        consumer.close()
