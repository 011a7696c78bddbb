"""Replicated partitions: followers copy the leader, acks=all waits for the ISR, and a
leader's death loses no acknowledged record."""

from __future__ import annotations

from collections.abc import Callable

from tests.integration.cluster.conftest import Cluster
from tests.integration.cluster.failover import partition_states, wait_for, watermarks_ready
from tests.support.clients import consume_all, create_topic, produce_acked

Factory = Callable[..., Cluster]


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
