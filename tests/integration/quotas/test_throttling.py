"""Throttling under a quota measurably limits a real client, and the broker reports the
throttle time to it (confluent-kafka's throttle_cb); removing the quota lifts it.

``quota.window.num=2`` keeps the burst a fresh meter allows to one window (Kafka's rate
counts at least ``num - 1`` windows), so a few seconds show the steady rate.
"""

from __future__ import annotations

import time
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from tests.integration.quotas.quota_wire import alter
from tests.support.broker import BrokerProcess
from tests.support.clients import create_topic
from tests.support.wire import WireClient

QUOTA = 100 * 1024  # bytes per second
VALUE = b"v" * 1000
WINDOW_OVERRIDES = {"quota.window.num": "2"}


def set_quota(broker: BrokerProcess, client_id: str, key: str, value: float | None) -> None:
    with WireClient(broker.bootstrap) as client:
        assert alter(client, [({"client-id": client_id}, {key: value})]) == [(0, None)]


def produce_for(producer: Producer, topic: str, seconds: float, acked: list[int]) -> float:
    """Produce as fast as the client lets us for ``seconds``; acknowledged bytes per second
    over that time."""
    before = sum(acked)
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        try:
            producer.produce(topic, value=VALUE)
        except BufferError:
            producer.poll(0.01)
        producer.poll(0)
    elapsed = time.monotonic() - started
    return (sum(acked) - before) / elapsed


def test_producer_byte_rate_throttles_a_producer(broker_factory: Any) -> None:
    broker: BrokerProcess = broker_factory(WINDOW_OVERRIDES)
    create_topic(broker.bootstrap, "quota-produce", partitions=1)
    set_quota(broker, "slow-producer", "producer_byte_rate", QUOTA)
    throttles: list[int] = []
    acked: list[int] = []

    def delivered(err: Any, msg: Any) -> None:
        assert err is None, err
        acked.append(len(msg.value()))

    producer = Producer(
        {
            "bootstrap.servers": broker.bootstrap,
            "client.id": "slow-producer",
            "linger.ms": 5,
            "queue.buffering.max.messages": 500,
            "batch.size": 16384,
            "throttle_cb": lambda event: throttles.append(event.throttle_time),
            "on_delivery": delivered,
        }
    )
    throttled_rate = produce_for(producer, "quota-produce", 4.0, acked)
    assert QUOTA * 0.5 < throttled_rate < QUOTA * 2, throttled_rate
    assert throttles and max(throttles) > 0, "no throttle time reported to the client"
    # Without the quota the same producer goes many times faster.
    set_quota(broker, "slow-producer", "producer_byte_rate", None)
    producer.flush(30)
    free_rate = produce_for(producer, "quota-produce", 2.0, acked)
    assert free_rate > throttled_rate * 5, (free_rate, throttled_rate)
    assert producer.flush(30) == 0


def test_consumer_byte_rate_throttles_a_consumer(broker_factory: Any) -> None:
    broker: BrokerProcess = broker_factory(WINDOW_OVERRIDES)
    create_topic(broker.bootstrap, "quota-fetch", partitions=1)
    # Batches well below the quota window (a batch is sent whole, KIP-74).
    producer = Producer(
        {"bootstrap.servers": broker.bootstrap, "linger.ms": 20, "batch.size": 16384}
    )
    for _ in range(6000):  # about 6 MB
        try:
            producer.produce("quota-fetch", value=VALUE)
        except BufferError:
            producer.poll(0.05)
            producer.produce("quota-fetch", value=VALUE)
    assert producer.flush(30) == 0
    set_quota(broker, "slow-consumer", "consumer_byte_rate", QUOTA)
    throttles: list[int] = []
    consumer = Consumer(
        {
            "bootstrap.servers": broker.bootstrap,
            "client.id": "slow-consumer",
            "group.id": "quota-tests",
            "enable.auto.commit": False,
            "throttle_cb": lambda event: throttles.append(event.throttle_time),
        }
    )
    try:
        consumer.assign([TopicPartition("quota-fetch", 0, 0)])

        def consume_for(seconds: float) -> float:
            got = 0
            started = time.monotonic()
            while time.monotonic() - started < seconds:
                for message in consumer.consume(500, timeout=0.1):
                    if not message.error():
                        got += len(message.value())
            return got / (time.monotonic() - started)

        throttled_rate = consume_for(4.0)
        assert QUOTA * 0.3 < throttled_rate < QUOTA * 2, throttled_rate
        assert throttles and max(throttles) > 0, "no throttle time reported to the client"
        set_quota(broker, "slow-consumer", "consumer_byte_rate", None)
        time.sleep(1.0)  # the last throttle time passes
        free_rate = consume_for(1.5)
        assert free_rate > throttled_rate * 5, (free_rate, throttled_rate)
    finally:
        consumer.close()
