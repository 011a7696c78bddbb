from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from odradek.cluster.brokers import BrokerRegistration
from odradek.cluster.controller import Controller, rack_alternated
from odradek.cluster.metadata import LocalStore, MetadataListener, TopicMetadata
from odradek.config import BrokerConfig
from odradek.protocol.errors import ErrorCode, KafkaError
from tests.unit.cluster.helpers import single_broker


class Recorder(MetadataListener):
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def topic_created(self, topic: TopicMetadata) -> None:
        self.events.append(("created", topic.name))

    def topic_deleted(self, topic: TopicMetadata) -> None:
        self.events.append(("deleted", topic.name))

    def partitions_added(self, topic: TopicMetadata, first_new: int) -> None:
        self.events.append(("added", f"{topic.name}:{first_new}"))

    def topic_configs_changed(self, topic: TopicMetadata) -> None:
        self.events.append(("configs", topic.name))


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path, "cluster-a")


def controller(store: LocalStore, **props: str) -> tuple[Controller, Recorder]:
    recorder = Recorder()
    store.register_broker(single_broker(1))
    store.add_listener(recorder)
    return Controller(store, BrokerConfig(props)), recorder


def error_of(call: object) -> ErrorCode:
    with pytest.raises(KafkaError) as info:
        call()  # type: ignore[operator]
    return info.value.error_code


def test_create_uses_broker_defaults_and_persists(store: LocalStore, tmp_path: Path) -> None:
    ctl, recorder = controller(store, **{"num.partitions": "3"})
    topic = ctl.create_topic("orders", configs={"retention.ms": "1000"})
    assert topic is not None and len(topic.partitions) == 3
    assert recorder.events == [("created", "orders")]
    reopened = LocalStore(tmp_path, "ignored")
    again = reopened.topic("orders")
    assert again is not None
    assert again.topic_id == topic.topic_id
    assert again.configs == {"retention.ms": "1000"}
    assert reopened.cluster_id == "cluster-a"


def test_validate_only_changes_nothing(store: LocalStore) -> None:
    ctl, recorder = controller(store)
    assert ctl.create_topic("t", 2, 1, validate_only=True) is None
    assert store.topic("t") is None and recorder.events == []


def test_kafka_errors(store: LocalStore) -> None:
    ctl, _ = controller(store)
    ctl.create_topic("a.b", 1, 1)
    assert error_of(lambda: ctl.create_topic("a.b")) is ErrorCode.topic_already_exists
    assert error_of(lambda: ctl.create_topic("a_b")) is ErrorCode.invalid_topic_exception
    assert error_of(lambda: ctl.create_topic("bad name")) is ErrorCode.invalid_topic_exception
    assert error_of(lambda: ctl.create_topic("x" * 250)) is ErrorCode.invalid_topic_exception
    assert error_of(lambda: ctl.create_topic("p", 0, 1)) is ErrorCode.invalid_partitions
    assert error_of(lambda: ctl.create_topic("r", 1, 3)) is ErrorCode.invalid_replication_factor
    assert (
        error_of(lambda: ctl.create_topic("c", configs={"retention.ms": "x"}))
        is ErrorCode.invalid_config
    )
    assert error_of(lambda: ctl.create_partitions("a.b", 1)) is ErrorCode.invalid_partitions
    assert error_of(lambda: ctl.create_partitions("zz", 4)) is ErrorCode.unknown_topic_or_partition
    assert error_of(lambda: ctl.delete_topic("zz")) is ErrorCode.unknown_topic_or_partition


def test_partitions_added_and_deleted(store: LocalStore) -> None:
    ctl, recorder = controller(store)
    ctl.create_topic("t", 2, 1)
    ctl.create_partitions("t", 5)
    topic = store.topic("t")
    assert topic is not None and len(topic.partitions) == 5
    ctl.delete_topic("t")
    assert store.topic("t") is None
    assert recorder.events == [("created", "t"), ("added", "t:2"), ("deleted", "t")]


def test_producer_ids_never_repeat_across_restarts(tmp_path: Path) -> None:
    first = LocalStore(tmp_path, "c")
    seen = {first.allocate_producer_id() for _ in range(5)}
    second = LocalStore(tmp_path, "c")
    assert second.allocate_producer_id() not in seen


def test_assignment_spreads_leaders_and_replicas_rack_aware(tmp_path: Path) -> None:
    store = LocalStoreWithBrokers(tmp_path, racks={1: "a", 2: "a", 3: "b", 4: "b"})
    topic = Controller(store, BrokerConfig({})).create_topic("spread", 8, 2)
    assert topic is not None
    leaders = [p.leader for p in topic.partitions]
    assert sorted(set(leaders)) == [1, 2, 3, 4]
    assert all(leaders.count(b) == 2 for b in (1, 2, 3, 4))
    racks = {1: "a", 2: "a", 3: "b", 4: "b"}
    # Each partition's two replicas sit on different racks.
    assert all(racks[p.replicas[0]] != racks[p.replicas[1]] for p in topic.partitions)


def test_rack_alternated_order() -> None:
    brokers = {i: single_broker(i, rack) for i, rack in {1: "a", 2: "a", 3: "b", 5: "c"}.items()}
    assert rack_alternated(brokers) == [1, 3, 5, 2]
    assert rack_alternated({i: single_broker(i) for i in (3, 1, 2)}) == [1, 2, 3]


class LocalStoreWithBrokers(LocalStore):
    """A LocalStore that reports several live brokers (as a cluster would)."""

    def __init__(self, directory: Path, racks: dict[int, str]) -> None:
        super().__init__(directory, "c")
        self._many = {i: single_broker(i, rack) for i, rack in racks.items()}

    def brokers(self) -> Mapping[int, BrokerRegistration]:
        return self._many
