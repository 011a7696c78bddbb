"""Issue #6's proof: 3 brokers, a topic of 3 partitions with RF 3 and
``min.insync.replicas=2``, an idempotent acks=all producer at about 1,000 records a
second; the leader of partition 0, or the controller, is stopped (SIGTERM) or killed
(kill -9) and restarted five times, then stopped for good. Every acknowledged record is
read back, exactly once."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest

from tests.integration.cluster.conftest import Cluster
from tests.integration.cluster.failover import (
    REPLICATED,
    check_no_loss,
    controller_id,
    fully_replicated,
    live_bootstrap,
    partition_states,
    wait_for,
)
from tests.robustness.load import Producing
from tests.support.clients import create_topic

Factory = Callable[..., Cluster]
BOUNCES = 5
PARTITIONS = 3
_seeds = itertools.count(1)


def victim(cluster: Cluster, role: str, topic: str) -> int:
    bootstrap = live_bootstrap(cluster)
    if role == "controller":
        return controller_id(bootstrap)
    return partition_states(bootstrap, topic)[0][0]


def leaders_avoid(cluster: Cluster, topic: str, broker_id: int) -> bool:
    states = partition_states(live_bootstrap(cluster), topic)
    return all(leader not in (broker_id, -1) for leader, _isr in states.values())


@pytest.mark.timeout(400)
@pytest.mark.parametrize("role", ["leader", "controller"])
@pytest.mark.parametrize("signal", ["sigterm", "kill"])
def test_bounces_lose_no_acknowledged_record(
    cluster_factory: Factory, role: str, signal: str
) -> None:
    # A killed broker is noticed when its ZooKeeper session expires.
    cluster = cluster_factory(3, **{"zookeeper.session.timeout.ms": "4000"})
    topic = f"bounce-{role}-{signal}"
    create_topic(
        cluster.bootstrap, topic, partitions=PARTITIONS, replication_factor=3, config=REPLICATED
    )
    producer = Producing(cluster.bootstrap, topic, PARTITIONS, next(_seeds), rate=1000)
    producer.start()
    try:
        assert producer.wait_for_acks(300, timeout=30), producer.errors[-3:]
        for bounce in range(BOUNCES + 1):
            target = victim(cluster, role, topic)
            broker = cluster.brokers[target]
            if signal == "kill":
                broker.kill()
            else:
                assert broker.stop() == 0, broker.log()
            wait_for(
                lambda target=target: leaders_avoid(cluster, topic, target),
                what=f"leaders away from broker {target}",
            )
            before = len(producer.acked)
            assert producer.wait_for_acks(before + 300, timeout=30), producer.errors[-3:]
            if bounce == BOUNCES:
                break  # the last one stays down: two brokers carry on
            broker.start()
            wait_for(
                lambda: fully_replicated(live_bootstrap(cluster), topic, [1, 2, 3]),
                timeout=60,
                what=f"broker {target} back in every ISR",
            )
        assert producer.wait_for_acks(len(producer.acked) + 300, timeout=30)
    except BaseException:
        producer.stop(timeout=5)
        raise
    check_no_loss(cluster, producer, topic, PARTITIONS)
