"""An offset commit is acknowledged only once the in-sync replicas of the group's
``__consumer_offsets`` partition have it, so a coordinator failover cannot lose it."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable

from confluent_kafka import Consumer, TopicPartition

from odradek.coordinator.group.records import partition_for
from tests.integration.cluster.conftest import Cluster
from tests.integration.cluster.failover import partition_states, wait_for
from tests.support.clients import create_topic

Factory = Callable[..., Cluster]
GROUP = "durable-commits"


def _commit(bootstrap: str, offset: int) -> None:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": GROUP, "enable.auto.commit": False}
    )
    try:
        consumer.commit(offsets=[TopicPartition("commits", 0, offset)], asynchronous=False)
    finally:
        consumer.close()


def _committed(bootstrap: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": GROUP})
    try:
        (tp,) = consumer.committed([TopicPartition("commits", 0)], timeout=10)
        return int(tp.offset)
    finally:
        consumer.close()


def test_offset_commit_waits_for_the_isr(cluster_factory: Factory) -> None:
    # A frozen follower stays in the ISR for a minute: long enough to see the wait.
    cluster = cluster_factory(
        2, **{"replica.lag.time.max.ms": "60000", "offsets.topic.replication.factor": "2"}
    )
    create_topic(cluster.bootstrap, "commits", partitions=1, replication_factor=2)
    _commit(cluster.bootstrap, 1)  # creates __consumer_offsets
    index = partition_for(GROUP, 50)
    wait_for(
        lambda: partition_states(cluster.bootstrap, "__consumer_offsets")[index][1] == [1, 2],
        what="the group's partition fully replicated",
    )
    leader = partition_states(cluster.bootstrap, "__consumer_offsets")[index][0]
    follower = next(b for b in cluster.brokers if b != leader)
    process = cluster.brokers[follower].process
    assert process is not None
    leader_bootstrap = cluster.brokers[leader].bootstrap

    os.kill(process.pid, signal.SIGSTOP)
    try:
        done = threading.Event()
        failure: list[BaseException] = []

        def commit() -> None:
            try:
                _commit(leader_bootstrap, 2)
            except BaseException as exc:
                failure.append(exc)
            done.set()

        threading.Thread(target=commit, daemon=True).start()
        assert not done.wait(3.0), "acknowledged while the in-sync follower had not fetched it"
    finally:
        os.kill(process.pid, signal.SIGCONT)
    assert done.wait(30.0), "not acknowledged after the follower caught up"
    assert not failure, failure
    assert _committed(leader_bootstrap) == 2
