"""Several brokers joined through a real ZooKeeper: one cluster to every client."""

from __future__ import annotations

from collections.abc import Callable

from confluent_kafka.admin import AdminClient

from tests.integration.cluster.conftest import Cluster
from tests.integration.cluster.failover import wait_for
from tests.support.clients import consume_all, create_topic, produce_acked

Factory = Callable[..., Cluster]


def leaders(bootstrap: str, topic: str) -> dict[int, int]:
    metadata = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=10)
    return {p.id: p.leader for p in metadata.topics[topic].partitions.values()}


def test_three_brokers_serve_one_cluster(cluster_factory: Factory) -> None:
    cluster = cluster_factory(3)
    bootstrap = cluster.brokers[1].bootstrap
    metadata = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10)
    assert sorted(metadata.brokers) == [1, 2, 3]
    assert metadata.controller_id in (1, 2, 3)
    ids = {b.cluster_id for b in [metadata]}
    assert len(ids) == 1

    create_topic(bootstrap, "spread", partitions=6)
    assert sorted(set(leaders(bootstrap, "spread").values())) == [1, 2, 3]
    acked = produce_acked(cluster.bootstrap, "spread", 600)
    assert {a.partition for a in acked} == set(range(6))
    # Each record is read back from whichever broker leads its partition.
    assert consume_all(cluster.brokers[3].bootstrap, "spread", 6) == acked


def test_partitions_of_a_dead_broker_go_offline_and_come_back(cluster_factory: Factory) -> None:
    cluster = cluster_factory(3)
    bootstrap = cluster.brokers[1].bootstrap
    create_topic(bootstrap, "t", partitions=3)
    acked = produce_acked(bootstrap, "t", 300)
    owned = [p for p, leader in leaders(bootstrap, "t").items() if leader == 3]
    assert owned

    cluster.brokers[3].kill()
    wait_for(lambda: all(leaders(bootstrap, "t")[p] == -1 for p in owned))
    # The other partitions stay served.
    others = [p for p in range(3) if p not in owned]
    assert all(leaders(bootstrap, "t")[p] in (1, 2) for p in others)

    cluster.brokers[3].start()
    wait_for(lambda: all(leaders(bootstrap, "t")[p] == 3 for p in owned))
    assert consume_all(bootstrap, "t", 3) == acked
