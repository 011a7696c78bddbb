"""Client quotas in a cluster: a quota altered through one broker is stored in ZooKeeper,
described by every broker and enforced by the broker leading the partition."""

from __future__ import annotations

import time
from typing import Any

from confluent_kafka import Producer

from tests.integration.quotas.quota_wire import EXACT, alter, describe, described
from tests.support.clients import admin, create_topic
from tests.support.wire import WireClient

QUOTA = 100 * 1024
VALUE = b"v" * 1000


def test_quota_set_through_one_broker_throttles_on_another(cluster_factory: Any) -> None:
    cluster = cluster_factory(2, **{"quota.window.num": "2"})
    first, second = cluster.brokers[1], cluster.brokers[2]
    create_topic(cluster.bootstrap, "quota-cluster", partitions=2, replication_factor=1)
    topic = (
        admin(cluster.bootstrap).list_topics("quota-cluster", timeout=10).topics["quota-cluster"]
    )
    partition = next(p.id for p in topic.partitions.values() if p.leader == 2)
    with WireClient(first.bootstrap) as client:
        entity = {"user": None, "client-id": "cluster-producer"}
        assert alter(client, [(entity, {"producer_byte_rate": QUOTA})]) == [(0, None)]
    expected = {frozenset(entity.items()): {"producer_byte_rate": float(QUOTA)}}
    deadline = time.monotonic() + 10
    with WireClient(second.bootstrap) as client:
        while True:
            found = described(describe(client, [("client-id", EXACT, "cluster-producer")]))
            if found == expected or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    assert found == expected
    throttled_by: list[int] = []
    acked: list[int] = []
    producer = Producer(
        {
            "bootstrap.servers": second.bootstrap,
            "client.id": "cluster-producer",
            "linger.ms": 5,
            "batch.size": 16384,
            "queue.buffering.max.messages": 500,
            "throttle_cb": lambda event: throttled_by.append(event.broker_id),
            "on_delivery": lambda err, msg: acked.append(0 if err else len(msg.value())),
        }
    )
    started = time.monotonic()
    while time.monotonic() - started < 3.0:
        try:
            producer.produce("quota-cluster", value=VALUE, partition=partition)
        except BufferError:
            producer.poll(0.01)
        producer.poll(0)
    rate = sum(acked) / (time.monotonic() - started)
    assert rate < QUOTA * 2.5, rate
    assert 2 in throttled_by, throttled_by
    # Lifted everywhere once removed (through the other broker this time).
    with WireClient(second.bootstrap) as client:
        assert alter(client, [(entity, {"producer_byte_rate": None})]) == [(0, None)]
    queued = len(producer)
    flush_started = time.monotonic()
    assert producer.flush(30) == 0
    # Still under the quota, what was queued would take queued KB / 100 KB/s to send.
    assert time.monotonic() - flush_started < max(queued * len(VALUE) / QUOTA / 2, 1.0)
