"""confluent-kafka (librdkafka) producing and assign()-based reading, as :class:`Rec` lists.

Other compat modules use these too: the records another client produced are read back
with librdkafka, and the records librdkafka produced are read by the other client.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from confluent_kafka import (
    TIMESTAMP_CREATE_TIME,
    Consumer,
    KafkaError,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

from tests.integration.compat.common import Outgoing, Rec, placed

TIMEOUT = 20.0


def admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap})


def create_topic(
    bootstrap: str, name: str, partitions: int = 1, config: Mapping[str, str] | None = None
) -> None:
    client = admin(bootstrap)
    futures = client.create_topics(
        [NewTopic(name, partitions, 1, config=dict(config or {}))], operation_timeout=10
    )
    futures[name].result(timeout=TIMEOUT)


def produce(bootstrap: str, topic: str, records: Sequence[Outgoing], **config: Any) -> list[Rec]:
    """Send ``records`` to their partitions; the acknowledged records, in report order.

    Delivery reports come in send order per partition. With ``acks=0`` there are no
    offsets to report; callers compute the expected ones.
    """
    acked: list[Rec] = []
    errors: list[str] = []
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, **config})

    def report(err: KafkaError | None, msg: Message, record: Outgoing) -> None:
        if err is not None:
            errors.append(str(err))
            return
        assert msg.partition() == record.partition
        acked.append(placed(record, msg.offset()))

    for record in records:
        producer.produce(
            topic,
            key=record.key,
            value=record.value,
            partition=record.partition,
            headers=list(record.headers) or None,
            timestamp=record.timestamp,
            on_delivery=lambda err, msg, record=record: report(err, msg, record),
        )
        producer.poll(0)
    remaining = producer.flush(TIMEOUT)
    assert remaining == 0, f"{remaining} records not delivered"
    assert not errors, errors[:3]
    return acked


def consumer(bootstrap: str, **config: Any) -> Consumer:
    """A consumer for assign() only: a group id is required by the client, never used."""
    settings = {
        "bootstrap.servers": bootstrap,
        "group.id": "compat-assign-only",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "fetch.wait.max.ms": 100,
        "check.crcs": True,
        **config,
    }
    return Consumer(settings)


def to_rec(message: Message, timestamp_type: int = TIMESTAMP_CREATE_TIME) -> Rec:
    kind, timestamp = message.timestamp()
    assert kind == timestamp_type, (kind, timestamp)
    return Rec(
        message.partition(),
        message.offset(),
        message.key(),
        message.value(),
        tuple(message.headers() or ()),
        timestamp,
    )


def poll_until(
    client: Consumer,
    ends: Mapping[int, int],
    timeout: float = TIMEOUT,
    timestamp_type: int = TIMESTAMP_CREATE_TIME,
) -> list[Rec]:
    """Poll until each partition in ``ends`` has been read up to (not including) its end."""
    read: list[Rec] = []
    positions: dict[int, int] = {}
    deadline = time.monotonic() + timeout
    while any(positions.get(p, -1) + 1 < end for p, end in ends.items() if end > 0):
        assert time.monotonic() < deadline, f"read {len(read)} records, positions {positions}"
        message = client.poll(0.2)
        if message is None:
            continue
        error = message.error()
        if error is not None and error.code() == KafkaError._PARTITION_EOF:
            continue
        assert error is None, error
        read.append(to_rec(message, timestamp_type))
        positions[message.partition()] = message.offset()
    return read


def read_all(bootstrap: str, topic: str, partitions: int, **config: Any) -> list[Rec]:
    """Every record of ``topic`` from offset 0 to the high watermark, in arrival order."""
    client = consumer(bootstrap, **config)
    try:
        ends = {
            p: client.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in range(partitions)
        }
        client.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        return poll_until(client, ends)
    finally:
        client.close()
