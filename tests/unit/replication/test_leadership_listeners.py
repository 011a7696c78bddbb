"""Leadership listeners (the coordinators) hear when this broker starts leading a
partition, leads it on at a new leader epoch (a reassignment bumps the epoch and may keep
the leader: the coordinator epoch is the leader epoch), and stops leading it; an ISR
change alone tells them nothing."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from odradek.cluster.metadata import LocalStore
from odradek.config import BrokerConfig
from odradek.protocol.types import TopicPartition
from odradek.replication.partition import Partition
from odradek.replication.replica_manager import ReplicaManager
from odradek.storage.log_manager import LogManager
from tests.unit.cluster.helpers import single_broker
from tests.unit.storage.helpers import START_MS


class Recorder:
    def __init__(self) -> None:
        self.heard: list[tuple[str, int]] = []

    def became_leader(self, partition: Partition) -> None:
        self.heard.append(("leader", partition.leader_epoch))

    def resigned(self, tp: TopicPartition) -> None:
        self.heard.append(("resigned", tp.partition))


def test_listeners_hear_leadership_and_new_leader_epochs(tmp_path: Path) -> None:
    store = LocalStore(tmp_path, "cluster")
    logs = LogManager([tmp_path], clock=lambda: START_MS)
    config = BrokerConfig({"log.dirs": str(tmp_path)})
    manager = ReplicaManager(1, config, logs, store, clock=lambda: START_MS)
    manager.startup()
    store.add_listener(manager)
    store.register_broker(single_broker(1))
    recorder = Recorder()
    manager.add_leadership_listener("t", recorder)
    try:
        store.create_topic("t", [[1, 2]], {})  # led here at epoch 0
        assert recorder.heard == [("leader", 0)]

        def alter(**changes: object) -> None:
            topic = store.topic("t")
            assert topic is not None
            store.alter_partition_states("t", {0: replace(topic.partitions[0], **changes)})

        alter(isr=(1,))  # the ISR shrinks: same leader, same epoch
        assert recorder.heard == [("leader", 0)]
        alter(leader_epoch=1, isr=(1, 2))  # the epoch bumped, still led here
        assert recorder.heard == [("leader", 0), ("leader", 1)]
        alter(leader=2, leader_epoch=2)
        assert recorder.heard[-1] == ("resigned", 0)
        alter(leader=1, leader_epoch=3)
        assert recorder.heard[-1] == ("leader", 3)
    finally:
        logs.shutdown()
