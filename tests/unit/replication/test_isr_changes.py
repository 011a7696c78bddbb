"""ISR changes are written a topic at a time: a follower that catches up on many
partitions in one fetch costs the leader one metadata write per topic, not one per
partition (each is a ZooKeeper round trip on the event loop in cluster mode)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path

import pytest

from odradek.cluster.brokers import BrokerRegistration
from odradek.cluster.controller import Controller
from odradek.cluster.metadata import LocalStore, PartitionState, TopicMetadata
from odradek.config import BrokerConfig
from odradek.protocol.types import TopicPartition
from odradek.replication.replica_manager import FetchPartition, ReplicaManager
from odradek.storage.log_manager import LogManager
from tests.unit.cluster.helpers import single_broker
from tests.unit.storage.helpers import START_MS, make_batch

PARTITIONS = {"a": 6, "b": 3}


class CountingStore(LocalStore):
    """The real local store, counting its partition state writes by topic, with broker 2
    live beside this one (a local store knows only its own broker)."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory, "cluster")
        self.writes: list[tuple[str, list[int]]] = []

    def brokers(self) -> Mapping[int, BrokerRegistration]:
        return {**super().brokers(), 2: single_broker(2)}

    def alter_partition_states(
        self, name: str, states: Mapping[int, PartitionState]
    ) -> TopicMetadata:
        self.writes.append((name, sorted(states)))
        return super().alter_partition_states(name, states)


@pytest.fixture
def leader(tmp_path: Path) -> Iterator[tuple[ReplicaManager, CountingStore]]:
    config = BrokerConfig({"log.dirs": str(tmp_path)})
    store = CountingStore(tmp_path)
    logs = LogManager([tmp_path], clock=lambda: START_MS)
    manager = ReplicaManager(1, config, logs, store, clock=lambda: START_MS)
    manager.startup()
    store.add_listener(manager)
    store.register_broker(single_broker(1))
    controller = Controller(store, config)
    for topic, count in PARTITIONS.items():
        controller.create_topic(topic, assignment={p: [1, 2] for p in range(count)})
        # Broker 2 fell out of every ISR; broker 1 leads alone.
        states = store.topic(topic).partitions  # type: ignore[union-attr]
        store.alter_partition_states(topic, {p: replace(s, isr=(1,)) for p, s in enumerate(states)})
    store.writes.clear()
    yield manager, store
    logs.shutdown()


def isr(store: LocalStore, topic: str) -> list[tuple[int, ...]]:
    return [s.isr for s in store.topic(topic).partitions]  # type: ignore[union-attr]


def test_a_follower_catching_up_everywhere_costs_one_write_per_topic(
    leader: tuple[ReplicaManager, CountingStore],
) -> None:
    manager, store = leader
    wanted = []
    for topic, count in PARTITIONS.items():
        for p in range(count):
            tp = TopicPartition(topic, p)
            manager.append_records(1, [(tp, bytearray(make_batch([b"v"])))])
            wanted.append(FetchPartition(tp, 1, 1 << 20, current_leader_epoch=0))
    results = manager.read(wanted, max_bytes=1 << 20, isolation_level=0, replica_id=2)
    assert [r.error for r in results] == [0] * len(wanted)
    assert store.writes == [("a", list(range(6))), ("b", list(range(3)))]
    assert isr(store, "a") == [(1, 2)] * 6
    assert isr(store, "b") == [(1, 2)] * 3


def test_a_refused_batch_is_asked_for_again_by_the_next_fetch(
    leader: tuple[ReplicaManager, CountingStore],
) -> None:
    manager, store = leader
    tp = TopicPartition("a", 0)
    manager.append_records(1, [(tp, bytearray(make_batch([b"v"])))])
    fetch = [FetchPartition(tp, 1, 1 << 20, current_leader_epoch=0)]
    # Someone else moved the partition on: the leader's next write is stale.
    stale = manager.get_partition(tp).state
    store.alter_partition_states("a", {0: replace(stale, isr=(1,))})
    partition = manager.get_partition(tp)
    partition_state = partition.state
    partition.state = stale  # as if the store's notice had not arrived yet
    manager.read(fetch, max_bytes=1 << 20, isolation_level=0, replica_id=2)
    assert isr(store, "a")[0] == (1,), "a stale ISR change is refused"
    partition.state = partition_state
    manager.read(fetch, max_bytes=1 << 20, isolation_level=0, replica_id=2)
    assert isr(store, "a")[0] == (1, 2)
