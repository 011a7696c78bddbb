"""Dynamic broker configs in a cluster: a cluster-wide default altered through one
broker reaches the others through ZooKeeper (``/config/brokers/<default>``) and changes
their logs' retention at run time; a per-broker value stays with its broker."""

from __future__ import annotations

import time
from typing import Any

from confluent_kafka.admin import ConfigSource, NewTopic, ResourceType

from tests.integration.cluster.failover import partition_states
from tests.integration.configs.test_dynamic_configs import (
    FAST_RETENTION,
    SMALL_BATCHES,
    SMALL_SEGMENTS,
    alter,
    alter_cluster_default,
    describe,
    log_start,
)
from tests.integration.test_compaction import wait_for
from tests.support.clients import admin, produce_acked


def test_cluster_default_reaches_every_broker(cluster_factory: Any) -> None:
    cluster = cluster_factory(2, **FAST_RETENTION)
    first, second = cluster.brokers[1], cluster.brokers[2]
    client = admin(cluster.bootstrap)
    new = NewTopic("on-two", 1, replica_assignment=[[2]], config=SMALL_SEGMENTS)
    client.create_topics([new])["on-two"].result(timeout=30)
    wait_for(
        lambda: partition_states(cluster.bootstrap, "on-two").get(0, (None, []))[0] == 2,
        10,
        "broker 2 to lead on-two",
    )
    produce_acked(cluster.bootstrap, "on-two", 100, **SMALL_BATCHES)
    alter(client, ResourceType.BROKER, "2", ("log.segment.bytes", "5000000"))

    alter_cluster_default(first.bootstrap, "log.retention.ms", "1")  # sent to broker 1

    def seen_by(broker_id: int) -> Any:
        return describe(client, ResourceType.BROKER, str(broker_id))["log.retention.ms"]

    deadline = time.monotonic() + 10
    while seen_by(2).value != "1" and time.monotonic() < deadline:
        time.sleep(0.1)
    for broker_id in (1, 2):
        entry = seen_by(broker_id)
        assert (entry.value, entry.source) == (
            "1",
            ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value,
        )
    segment = {
        b: describe(client, ResourceType.BROKER, str(b))["log.segment.bytes"] for b in (1, 2)
    }
    assert segment[2].source == ConfigSource.DYNAMIC_BROKER_CONFIG.value
    assert segment[1].source == ConfigSource.DEFAULT_CONFIG.value
    # Broker 2, which was not asked, applies the new default to the log it leads.
    wait_for(lambda: log_start(second.bootstrap, "on-two") > 0, 10, "broker 2's retention")
