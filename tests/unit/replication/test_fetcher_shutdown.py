"""A stopping broker's fetchers stay stopped.

ZooKeeper stays connected while the broker stops (until the very end), so a leader
change can reach the replica manager after the fetchers were shut down. It once started
a new fetcher there that nobody stopped: ``asyncio.run`` then waited on it for ever and
the broker never exited (seen in CI, a follower stopped just after a restart)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

from odradek.cluster.metadata import LocalStore
from odradek.config import BrokerConfig
from odradek.replication.replica_manager import ReplicaManager
from odradek.storage.log_manager import LogManager
from tests.unit.cluster.helpers import single_broker
from tests.unit.storage.helpers import START_MS


def test_a_leader_change_after_shutdown_starts_no_fetcher(tmp_path: Path) -> None:
    store = LocalStore(tmp_path, "cluster")
    logs = LogManager([tmp_path], clock=lambda: START_MS)
    config = BrokerConfig({"log.dirs": str(tmp_path), "broker.id": "1"})
    manager = ReplicaManager(1, config, logs, store, clock=lambda: START_MS)
    manager.startup()
    store.add_listener(manager)
    for broker_id in (1, 2, 3):
        store.register_broker(single_broker(broker_id))

    async def scenario() -> tuple[set[int], set[int], int]:
        store.create_topic("t", [[2, 1, 3]], {})  # led by 2: followed from here
        before = set(manager.fetchers.fetchers)
        await manager.fetchers.shutdown()
        topic = store.topic("t")
        assert topic is not None
        state = topic.partitions[0]
        store.alter_partition_states("t", {0: replace(state, leader=3, leader_epoch=1)})
        after = set(manager.fetchers.fetchers)
        others = asyncio.all_tasks() - {asyncio.current_task()}
        return before, after, len(others)

    try:
        before, after, tasks_left = asyncio.run(scenario())
    finally:
        logs.shutdown()
    assert before == {2}
    assert after == set()
    assert tasks_left == 0
