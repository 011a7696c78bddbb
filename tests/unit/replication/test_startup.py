"""What a broker does at start-up with logs that no longer match the metadata."""

from __future__ import annotations

import uuid
from pathlib import Path

from odradek.cluster.metadata import LocalStore
from odradek.config import BrokerConfig, LogConfig
from odradek.protocol.types import TopicPartition
from odradek.replication.replica_manager import ReplicaManager
from odradek.storage.log_manager import LogManager
from tests.unit.cluster.helpers import single_broker
from tests.unit.storage.helpers import START_MS, make_batch


def test_log_of_an_older_topic_of_the_same_name_is_deleted(tmp_path: Path) -> None:
    """The topic was deleted and created again while this broker was away: the old log
    (another topic id) goes, and the new topic's partition is hosted, empty."""
    config = BrokerConfig({"log.dirs": str(tmp_path)})
    tp = TopicPartition("again", 0)
    logs = LogManager([tmp_path], clock=lambda: START_MS)
    old = logs.get_or_create_log(tp, LogConfig.build(config, {}), uuid.uuid4())
    old.append_as_leader(make_batch([b"old-1", b"old-2"]), 0)
    store = LocalStore(tmp_path, "cluster")
    store.register_broker(single_broker(1))
    new = store.create_topic("again", [[1]], {})
    manager = ReplicaManager(1, config, logs, store, clock=lambda: START_MS)
    manager.startup()
    partition = manager.get_partition(tp)
    assert partition.topic_id == new.topic_id
    assert partition.log.log_end_offset == 0
    assert partition.log.topic_id == new.topic_id
    logs.shutdown()
