"""Replicated partitions: followers copy the leader, acks=all waits for the ISR, and a
leader's death loses no acknowledged record."""

from __future__ import annotations

import time
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from tests.integration.cluster.conftest import Cluster
from tests.support.clients import consume_all, create_topic, produce_acked

Factory = Callable[..., Cluster]


def partition_states(bootstrap: str, topic: str) -> dict[int, tuple[int, list[int]]]:
    metadata = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=10)
    return {p.id: (p.leader, sorted(p.isrs)) for p in metadata.topics[topic].partitions.values()}


def watermarks_ready(bootstrap: str, topic: str, partitions: int) -> bool:
    """Every partition answers ListOffsets (a new leader answers OFFSET_NOT_AVAILABLE
    until its high watermark reaches the start of its epoch, KIP-207)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "watermarks"})
    try:
        for p in range(partitions):
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=5)
    except KafkaException:
        return False
    finally:
        consumer.close()
    return True


def wait_for(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.2)


def test_acks_all_survives_the_leaders_death(cluster_factory: Factory) -> None:
    cluster = cluster_factory(3)
    bootstrap = cluster.brokers[1].bootstrap
    create_topic(
        bootstrap, "r", partitions=3, replication_factor=3, config={"min.insync.replicas": "2"}
    )
    acked = produce_acked(cluster.bootstrap, "r", 900, acks="all", **{"enable.idempotence": True})
    assert len(acked) == 900
    states = partition_states(bootstrap, "r")
    assert all(isr == [1, 2, 3] for _leader, isr in states.values())
    leader = states[0][0]
    cluster.brokers[leader].kill()
    survivor = next(b for i, b in cluster.brokers.items() if i != leader).bootstrap
    wait_for(
        lambda: all(
            new not in (leader, -1) for new, _isr in partition_states(survivor, "r").values()
        )
    )
    wait_for(lambda: watermarks_ready(survivor, "r", 3))
    assert consume_all(survivor, "r", 3) == acked
    more = produce_acked(survivor, "r", 300, acks="all")
    assert len(more) == 300
    cluster.brokers[leader].start()
    wait_for(lambda: all(isr == [1, 2, 3] for _l, isr in partition_states(survivor, "r").values()))
