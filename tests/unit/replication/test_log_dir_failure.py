"""Partitions in a failed log dir go offline (Kafka's ``HostedPartition.Offline``): every
request on them gets KAFKA_STORAGE_ERROR, their coordinators resign and their parked
fetches are answered, while partitions in healthy dirs carry on. The failure is real: an
ext4 file system turned read-only (``tests.support.mounts``)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from odradek.cluster.controller import Controller
from odradek.cluster.metadata import LocalStore
from odradek.config import BrokerConfig
from odradek.protocol.errors import ErrorCode
from odradek.protocol.types import TopicPartition
from odradek.replication.partition import Partition
from odradek.replication.replica_manager import FetchPartition, ReplicaManager
from odradek.storage.errors import KafkaStorageError
from odradek.storage.log_manager import LogManager
from tests.support import mounts
from tests.unit.cluster.helpers import single_broker
from tests.unit.storage.helpers import START_MS, make_batch

HEALTHY, FAILING = TopicPartition("t", 0), TopicPartition("t", 1)


class Listener:
    def __init__(self) -> None:
        self.events: list[tuple[str, TopicPartition]] = []

    def became_leader(self, partition: Partition) -> None:
        self.events.append(("leader", partition.tp))

    def resigned(self, tp: TopicPartition) -> None:
        self.events.append(("resigned", tp))


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[ReplicaManager, Controller, Listener, Path]]:
    with mounts.ext4_image(tmp_path, 8) as disk:
        healthy = tmp_path / "healthy"
        healthy.mkdir()
        config = BrokerConfig({"log.dirs": f"{healthy},{disk}"})
        store = LocalStore(healthy, "cluster")
        logs = LogManager([healthy, disk], clock=lambda: START_MS)
        manager = ReplicaManager(1, config, logs, store, clock=lambda: START_MS)
        manager.startup()  # logs loaded: partitions may be hosted
        listener = Listener()
        manager.add_leadership_listener("t", listener)
        store.add_listener(manager)
        store.register_broker(single_broker(1))
        controller = Controller(store, config)
        controller.create_topic("t", 2, 1)
        assert manager.get_partition(FAILING).log.parent_dir == str(disk)
        yield manager, controller, listener, disk
        logs.shutdown()


def produce(manager: ReplicaManager, tp: TopicPartition, value: bytes) -> ErrorCode:
    return manager.append_records(1, [(tp, bytearray(make_batch([value])))])[tp].error


def fetch_error(manager: ReplicaManager, tp: TopicPartition) -> ErrorCode:
    (result,) = manager.read([FetchPartition(tp, 0, 1 << 20)], max_bytes=1 << 20, isolation_level=0)
    return result.error


def test_partitions_of_a_failed_dir_answer_storage_errors(
    setup: tuple[ReplicaManager, Controller, Listener, Path],
) -> None:
    manager, controller, listener, disk = setup
    for tp in (HEALTHY, FAILING):
        assert produce(manager, tp, b"before") == ErrorCode.none

    async def scenario() -> list[str]:
        woken: list[str] = []
        first = manager.read(
            [FetchPartition(FAILING, 1, 1 << 20)], max_bytes=1 << 20, isolation_level=0
        )
        manager.park_fetch(first, 1, 60_000, lambda: woken.append("woken"))
        mounts.fail_ext4(disk)
        assert produce(manager, FAILING, b"after") == ErrorCode.kafka_storage_error
        return woken

    assert asyncio.run(scenario()) == ["woken"], "a fetch parked on the partition is answered"
    assert manager.is_offline(FAILING)
    assert ("resigned", FAILING) in listener.events
    assert fetch_error(manager, FAILING) == ErrorCode.kafka_storage_error
    assert produce(manager, FAILING, b"again") == ErrorCode.kafka_storage_error
    with pytest.raises(KafkaStorageError):
        manager.get_partition(FAILING)

    assert produce(manager, HEALTHY, b"after") == ErrorCode.none
    assert fetch_error(manager, HEALTHY) == ErrorCode.none
    assert not manager.is_offline(HEALTHY)

    controller.create_topic("later", 2, 1)  # both partitions go to the healthy dir
    for index in range(2):
        tp = TopicPartition("later", index)
        assert produce(manager, tp, b"new") == ErrorCode.none
        assert manager.get_partition(tp).log.parent_dir != str(disk)

    controller.delete_topic("t")
    assert not manager.is_offline(FAILING), "a deleted topic is no longer offline"


def test_offline_replicas_are_reported_by_topic_id_until_they_go(
    setup: tuple[ReplicaManager, Controller, Listener, Path],
) -> None:
    manager, controller, _listener, disk = setup
    reports: list[frozenset[tuple[uuid.UUID, int]]] = []
    manager.add_offline_listener(lambda: reports.append(manager.offline_replicas))
    topic = manager.metadata.topic("t")
    assert topic is not None and manager.offline_replicas == frozenset()
    mounts.fail_ext4(disk)
    assert produce(manager, FAILING, b"after") == ErrorCode.kafka_storage_error
    assert reports == [frozenset({(topic.topic_id, 1)})], "one report for the whole dir"
    controller.delete_topic("t")
    assert reports[-1] == frozenset() and manager.offline_replicas == frozenset()
