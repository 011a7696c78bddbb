"""Requests that write to ``__consumer_offsets`` (OffsetCommit, SyncGroup's assignment,
DeleteGroups) are answered only once the in-sync replicas of the group's partition have
the write, so a coordinator failover cannot lose what a client was told is done. Each
test freezes the in-sync follower (SIGSTOP; it stays in the ISR for a minute, and its
ZooKeeper session outlives the freeze) and sees the answer wait for it, then come once
it runs again."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from odradek.coordinator.group.records import partition_for
from tests.integration.cluster.conftest import Cluster
from tests.integration.cluster.failover import partition_states, wait_for
from tests.support.clients import create_topic

Factory = Callable[..., Cluster]
GROUP = "durable-commits"
FROZEN_S = 3.0
"""How long an answer is seen not to come: well under the 6 s ZooKeeper session of the
frozen broker (which would take it out of the ISR) and the 5 s the coordinator waits for
the ISR before answering COORDINATOR_NOT_AVAILABLE."""


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


class Replicated:
    """A cluster of 2 whose ``__consumer_offsets`` partition of GROUP is on both brokers:
    ``leader_bootstrap`` reaches its leader, ``frozen()`` stops the other."""

    def __init__(self, cluster_factory: Factory) -> None:
        # A frozen follower stays in the ISR for a minute: long enough to see the wait.
        self.cluster = cluster_factory(
            2,
            **{
                "replica.lag.time.max.ms": "60000",
                "offsets.topic.replication.factor": "2",
                "group.initial.rebalance.delay.ms": "0",
            },
        )
        create_topic(self.cluster.bootstrap, "commits", partitions=1, replication_factor=2)
        _commit(self.cluster.bootstrap, 1)  # creates __consumer_offsets
        index = partition_for(GROUP, 50)
        wait_for(
            lambda: (
                partition_states(self.cluster.bootstrap, "__consumer_offsets")[index][1] == [1, 2]
            ),
            what="the group's partition fully replicated",
        )
        leader = partition_states(self.cluster.bootstrap, "__consumer_offsets")[index][0]
        self.leader_bootstrap = self.cluster.brokers[leader].bootstrap
        follower = next(b for b in self.cluster.brokers if b != leader)
        process = self.cluster.brokers[follower].process
        assert process is not None
        self.follower_pid = process.pid

    @contextmanager
    def frozen(self) -> Iterator[None]:
        os.kill(self.follower_pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(self.follower_pid, signal.SIGCONT)


def test_offset_commit_waits_for_the_isr(cluster_factory: Factory) -> None:
    setup = Replicated(cluster_factory)
    done = threading.Event()
    failure: list[BaseException] = []

    def commit() -> None:
        try:
            _commit(setup.leader_bootstrap, 2)
        except BaseException as exc:
            failure.append(exc)
        done.set()

    with setup.frozen():
        threading.Thread(target=commit, daemon=True).start()
        assert not done.wait(FROZEN_S), "acknowledged while the in-sync follower had not it"
    assert done.wait(30.0), "not acknowledged after the follower caught up"
    assert not failure, failure
    assert _committed(setup.leader_bootstrap) == 2


def test_assignment_and_group_deletion_wait_for_the_isr(cluster_factory: Factory) -> None:
    setup = Replicated(cluster_factory)
    assigned: list[list[TopicPartition]] = []
    consumer = Consumer({"bootstrap.servers": setup.leader_bootstrap, "group.id": GROUP})
    try:
        with setup.frozen():
            consumer.subscribe(["commits"], on_assign=lambda _, parts: assigned.append(parts))
            deadline = time.monotonic() + FROZEN_S
            while time.monotonic() < deadline:
                consumer.poll(0.1)
            assert not assigned, "SyncGroup answered before the ISR had the assignment"
        deadline = time.monotonic() + 30
        while not assigned and time.monotonic() < deadline:
            consumer.poll(0.1)
        assert [tp.topic for tp in assigned[0]] == ["commits"]
    finally:
        consumer.close()  # leaves: the group is empty

    admin = AdminClient({"bootstrap.servers": setup.leader_bootstrap})
    with setup.frozen():
        deleting = admin.delete_consumer_groups([GROUP], request_timeout=30)[GROUP]
        time.sleep(FROZEN_S)
        assert not deleting.done(), "DeleteGroups answered before the ISR had the deletion"
    deleting.result(timeout=30)
