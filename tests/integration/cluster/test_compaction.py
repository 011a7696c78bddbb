"""Compaction in a cluster: every replica cleans its own log; a follower copies the
leader's compacted log (offsets with gaps, empty batches) and a new leader after a
failover serves the last value of each key."""

from __future__ import annotations

from collections.abc import Callable

from tests.integration.cluster.conftest import Cluster
from tests.integration.cluster.failover import partition_states, wait_for, watermarks_ready
from tests.integration.test_compaction import (
    TOPIC_CONFIG,
    produce,
    read_from_beginning,
    roll_active_segment,
    updates,
)
from tests.support.clients import create_topic

Factory = Callable[..., Cluster]


def test_replicas_compact_and_a_new_leader_serves_the_last_values(
    cluster_factory: Factory,
) -> None:
    cluster = cluster_factory(2, **{"log.cleaner.backoff.ms": "100"})
    bootstrap = cluster.brokers[1].bootstrap
    create_topic(bootstrap, "state", replication_factor=2, config=TOPIC_CONFIG)
    produce(cluster.bootstrap, "state", updates(100, 20))
    roll_active_segment(cluster.bootstrap, "state")
    latest = {b"key-%04d" % k: b"value-%d-19" % k for k in range(100)}

    def compacted_on(broker_id: int) -> bool:
        directory = cluster.brokers[broker_id].partition_dir("state", 0)
        return sum(p.stat().st_size for p in directory.glob("*.log")) < 20_000

    # Both replicas clean their own copy (2,000 records of ~25 bytes of value each).
    wait_for(
        lambda: compacted_on(1) and compacted_on(2), timeout=30, what="both replicas compacted"
    )
    leader = partition_states(bootstrap, "state")[0][0]
    survivor_id = 2 if leader == 1 else 1
    cluster.brokers[leader].kill()
    survivor = cluster.brokers[survivor_id].bootstrap
    wait_for(lambda: partition_states(survivor, "state")[0][0] == survivor_id)
    wait_for(lambda: watermarks_ready(survivor, "state", 1))
    records = [r for r in read_from_beginning(survivor, "state") if r[1] != b"~roll"]
    assert {key: value for _, key, value in records} == latest
    assert len(records) == 100
    # The old leader comes back as a follower and copies on from the compacted log.
    cluster.brokers[leader].start()
    produce(survivor, "state", [(b"key-0000", b"after")])
    wait_for(lambda: partition_states(survivor, "state")[0][1] == [1, 2], timeout=30)
