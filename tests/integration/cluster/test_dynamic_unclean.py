"""``unclean.leader.election.enable`` turned on as a dynamic cluster default brings an
offline partition back, as Kafka's controller does on that change: no other event is
needed."""

from __future__ import annotations

from typing import Any

from confluent_kafka.admin import NewTopic

from tests.integration.cluster.failover import partition_states, wait_for
from tests.integration.configs.test_dynamic_configs import alter_cluster_default
from tests.support.clients import admin, produce_acked


def test_enabling_unclean_election_dynamically_elects_offline_partitions(
    cluster_factory: Any,
) -> None:
    cluster = cluster_factory(3)
    client = admin(cluster.bootstrap)
    client.create_topics([NewTopic("pair", 1, replica_assignment=[[2, 3]])])["pair"].result(30)

    def state() -> tuple[int | None, list[int]]:
        # Empty until broker 1's metadata has the new topic's partition.
        return partition_states(cluster.brokers[1].bootstrap, "pair").get(0, (None, []))

    wait_for(lambda: state() == (2, [2, 3]))
    produce_acked(cluster.bootstrap, "pair", 20, acks="all")
    assert cluster.brokers[3].stop() == 0
    wait_for(lambda: state() == (2, [2]))
    assert cluster.brokers[2].stop() == 0
    cluster.brokers[3].start()
    wait_for(lambda: state()[0] == -1)  # its ISR, [2], is down: no clean leader

    alter_cluster_default(cluster.brokers[1].bootstrap, "unclean.leader.election.enable", "true")
    wait_for(lambda: state() == (3, [3]), 8)
