"""The same metadata-store behaviour from LocalStore (single node) and ZooKeeperStore.

The ZooKeeper store runs against a real ZooKeeper; each test gets its own chroot, so the
tests share one server without seeing each other's metadata.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from kazoo.client import KazooClient

from odradek.cluster.brokers import BrokerRegistration
from odradek.cluster.metadata import (
    LocalStore,
    MetadataListener,
    MetadataStore,
    StaleStateError,
    TopicExistsError,
    TopicMetadata,
    UnknownTopicError,
)
from odradek.cluster.zookeeper import znodes
from odradek.cluster.zookeeper.store import ZooKeeperStore, split_connect
from tests.support.zookeeper import ZooKeeperServer
from tests.unit.cluster.helpers import single_broker

_chroots = itertools.count()


class Recorder(MetadataListener):
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def topic_created(self, topic: TopicMetadata) -> None:
        self.events.append(("created", topic.name))

    def topic_deleted(self, topic: TopicMetadata) -> None:
        self.events.append(("deleted", topic.name))

    def partitions_added(self, topic: TopicMetadata, first_new: int) -> None:
        self.events.append(("added", (topic.name, first_new)))

    def topic_configs_changed(self, topic: TopicMetadata) -> None:
        self.events.append(("configs", topic.name))

    def partition_states_changed(self, topic: TopicMetadata, indices: Sequence[int]) -> None:
        self.events.append(("states", (topic.name, tuple(indices))))

    def controller_changed(self, controller_id: int, is_self: bool) -> None:
        self.events.append(("controller", controller_id))

    def entity_configs_changed(self, entity_type: str, name: str) -> None:
        self.events.append(("entity", (entity_type, name)))


class Stores:
    """Opens stores of one kind that share their metadata (one dir, or one chroot)."""

    def __init__(self, kind: str, tmp_path: Path, zookeeper: ZooKeeperServer | None) -> None:
        self.kind = kind
        self.tmp_path = tmp_path
        self.connect = f"{zookeeper.connect}/t{next(_chroots)}" if zookeeper else ""
        self.opened: list[ZooKeeperStore] = []

    async def open(self, broker_id: int = 1, rack: str | None = None) -> MetadataStore:
        registration = single_broker(broker_id, rack)
        if self.kind == "local":
            local = LocalStore(self.tmp_path, "cluster-a")
            local.register_broker(registration)
            return local
        store = ZooKeeperStore(self.connect, "cluster-a", broker_id, session_timeout_ms=4000)
        self.opened.append(store)
        await store.connect()
        await store.wait_until_registered(registration)
        return store

    def close_all(self) -> None:
        for store in self.opened:
            store.close()


@pytest.fixture(params=["local", "zookeeper"])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stores]:
    zookeeper = request.getfixturevalue("zookeeper") if request.param == "zookeeper" else None
    opened = Stores(request.param, tmp_path, zookeeper)
    yield opened
    opened.close_all()


def run(body: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(body(), 60))


async def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def test_topics_round_trip_and_persist(stores: Stores) -> None:
    async def body() -> None:
        store = await stores.open()
        created = store.create_topic("orders", [[1], [1], [1]], {"retention.ms": "1000"})
        assert store.topic("orders") == created
        assert store.topic_by_id(created.topic_id) == created
        assert [p.leader for p in created.partitions] == [1, 1, 1]
        with pytest.raises(TopicExistsError):
            store.create_topic("orders", [[1]], {})
        store.create_topic("other", [[1]], {})
        store.delete_topic("other")
        with pytest.raises(UnknownTopicError):
            store.delete_topic("other")
        again = await stores.open(2)
        await eventually(lambda: again.topic("orders") is not None)
        assert again.topic("orders") == created
        assert again.topic("other") is None
        assert again.topic("orders").configs == {"retention.ms": "1000"}  # type: ignore[union-attr]

    run(body)


def test_partitions_configs_and_listener_events(stores: Stores) -> None:
    async def body() -> None:
        store = await stores.open()
        recorder = Recorder()
        store.add_listener(recorder)
        store.create_topic("t", [[1], [1]], {})
        grown = store.add_partitions("t", [[1], [1]])
        assert len(grown.partitions) == 4
        changed = store.set_topic_configs("t", {"cleanup.policy": "compact"})
        assert changed.configs == {"cleanup.policy": "compact"}
        store.delete_topic("t")
        topic_events = [e for e in recorder.events if e[0] != "controller"]
        assert topic_events == [
            ("created", "t"),
            ("added", ("t", 2)),
            ("configs", "t"),
            ("deleted", "t"),
        ]

    run(body)


def test_partition_state_updates_are_conditional(stores: Stores) -> None:
    async def body() -> None:
        store = await stores.open()
        topic = store.create_topic("t", [[1], [1]], {})
        recorder = Recorder()
        store.add_listener(recorder)
        state = topic.partitions[1]
        moved = store.alter_partition_states(
            "t", {1: state.__class__(**{**_fields(state), "leader_epoch": 5})}
        )
        assert moved.partitions[1].leader_epoch == 5
        assert moved.partitions[1].partition_epoch == state.partition_epoch + 1
        assert moved.partitions[0] == topic.partitions[0]
        # The same update again is based on a state that is gone now.
        with pytest.raises(StaleStateError):
            store.alter_partition_states("t", {1: state})
        assert store.topic("t") == moved
        assert recorder.events == [("states", ("t", (1,)))]

    run(body)


def test_replica_set_changes_are_conditional_and_persist(stores: Stores) -> None:
    """A reassignment's replica set (replicas, adding, removing) is written with the
    state, under the same partition-epoch condition, and read back by a new store (a
    new controller finishes what the old one started)."""

    async def body() -> None:
        store = await stores.open()
        topic = store.create_topic("moving", [[1], [1]], {})
        state = topic.partitions[0]
        grown = replace(state, replicas=(2, 1), adding_replicas=(2,), removing_replicas=(1,))
        written = store.alter_partition_states("moving", {0: grown})
        expected = replace(grown, partition_epoch=state.partition_epoch + 1)
        assert written.partitions[0] == expected
        assert written.partitions[1] == topic.partitions[1]
        with pytest.raises(StaleStateError):
            store.alter_partition_states("moving", {0: replace(state, replicas=(3, 1))})
        # Adding partitions keeps the reassignment under way.
        store.add_partitions("moving", [[1]])
        again = await stores.open(2)
        await eventually(lambda: again.topic("moving") is not None)
        await eventually(lambda: len(again.topic("moving").partitions) == 3)  # type: ignore[union-attr]
        assert again.topic("moving").partitions[0] == expected  # type: ignore[union-attr]
        done = replace(expected, replicas=(2,), isr=(2,), leader=2, adding_replicas=())
        done = replace(done, removing_replicas=())
        final = store.alter_partition_states("moving", {0: done}).partitions[0]
        assert (final.replicas, final.reassigning) == ((2,), False)
        third = await stores.open(3)
        await eventually(lambda: third.topic("moving").partitions[0] == final)  # type: ignore[union-attr]

    run(body)


def test_producer_ids_never_repeat(stores: Stores) -> None:
    async def body() -> None:
        first = await stores.open()
        seen = [first.allocate_producer_id() for _ in range(3)]
        second = await stores.open(2)
        seen += [second.allocate_producer_id() for _ in range(3)]
        seen += [first.allocate_producer_id() for _ in range(3)]
        assert len(set(seen)) == len(seen)

    run(body)


def test_entity_configs_round_trip_persist_and_are_announced(stores: Stores) -> None:
    async def body() -> None:
        store = await stores.open()
        recorder = Recorder()
        store.add_listener(recorder)
        store.set_entity_configs("brokers", "<default>", {"log.retention.ms": "1000"})
        store.set_entity_configs("clients", "app-1", {"producer_byte_rate": "1024"})
        store.set_entity_configs("users", "alice/clients/app-1", {"request_percentage": "50"})
        store.set_entity_configs("clients", "app-2", {"consumer_byte_rate": "1"})
        store.set_entity_configs("clients", "app-2", {})
        assert dict(store.entity_configs("clients")) == {"app-1": {"producer_byte_rate": "1024"}}
        assert ("entity", ("clients", "app-2")) in recorder.events
        with pytest.raises(ValueError, match="entity type"):
            store.entity_configs("topics")
        again = await stores.open(2)
        await eventually(lambda: bool(again.entity_configs("users")))
        assert dict(again.entity_configs("brokers")) == {"<default>": {"log.retention.ms": "1000"}}
        assert dict(again.entity_configs("users")) == {
            "alice/clients/app-1": {"request_percentage": "50"}
        }
        assert dict(again.entity_configs("clients")) == {"app-1": {"producer_byte_rate": "1024"}}
        if stores.kind == "zookeeper":
            # A change made by one broker reaches the other through the notifications.
            watcher = Recorder()
            again.add_listener(watcher)
            store.set_entity_configs("clients", "app-1", {"producer_byte_rate": "2048"})
            await eventually(lambda: ("entity", ("clients", "app-1")) in watcher.events)
            assert again.entity_configs("clients")["app-1"] == {"producer_byte_rate": "2048"}

    run(body)


class BrokerRecorder(MetadataListener):
    def __init__(self) -> None:
        self.seen: list[Mapping[int, BrokerRegistration]] = []

    def brokers_changed(self, brokers: Mapping[int, BrokerRegistration]) -> None:
        self.seen.append(dict(brokers))


def test_a_registration_update_is_announced(stores: Stores) -> None:
    """A broker's offline replicas change while it stays registered (see
    ``BrokerRegistration``): listeners hear of it, other brokers see it."""

    async def body() -> None:
        store = await stores.open()
        recorder = BrokerRecorder()
        store.add_listener(recorder)
        updated = replace(single_broker(1), offline_replicas=frozenset({(uuid.uuid4(), 3)}))
        store.update_registration(updated)
        await eventually(lambda: store.brokers().get(1) == updated)
        await eventually(lambda: any(seen.get(1) == updated for seen in recorder.seen))
        if stores.kind == "zookeeper":
            other = await stores.open(2)
            await eventually(lambda: other.brokers().get(1) == updated)
            cleared = single_broker(1)
            store.update_registration(cleared)
            await eventually(lambda: other.brokers().get(1) == cleared)

    run(body)


def _fields(state: Any) -> dict[str, Any]:
    return {name: getattr(state, name) for name in state.__slots__}


# -- ZooKeeper only: several brokers ----------------------------------------------------------


@pytest.fixture
def zk_stores(tmp_path: Path, zookeeper: ZooKeeperServer) -> Iterator[Stores]:
    opened = Stores("zookeeper", tmp_path, zookeeper)
    yield opened
    opened.close_all()


def test_brokers_see_each_other_and_each_others_changes(zk_stores: Stores) -> None:
    async def body() -> None:
        one = await zk_stores.open(1, rack="a")
        two = await zk_stores.open(2, rack="b")
        await eventually(lambda: set(one.brokers()) == {1, 2} == set(two.brokers()))
        assert two.brokers()[1].rack == "a"
        assert isinstance(two.brokers()[1], BrokerRegistration)
        recorder = Recorder()
        two.add_listener(recorder)
        topic = one.create_topic("shared", [[1, 2], [2, 1]], {})
        await eventually(lambda: two.topic("shared") == topic)
        state = topic.partitions[0]
        one.alter_partition_states("shared", {0: _with(state, isr=(1,))})
        await eventually(lambda: two.topic("shared") == one.topic("shared"))
        one.set_topic_configs("shared", {"retention.ms": "5"})
        await eventually(lambda: ("configs", "shared") in recorder.events)
        two.delete_topic("shared")
        await eventually(lambda: one.topic("shared") is None)
        events = [e for e in recorder.events if e[0] != "controller"]
        assert events == [
            ("created", "shared"),
            ("states", ("shared", (0,))),
            ("configs", "shared"),
            ("deleted", "shared"),
        ]

    run(body)


def test_one_controller_and_failover(zk_stores: Stores) -> None:
    async def body() -> None:
        one = await zk_stores.open(1)
        two = await zk_stores.open(2)
        await eventually(lambda: one.controller_id == two.controller_id == 1)
        first_epoch = two.controller_epoch
        assert isinstance(one, ZooKeeperStore) and one.is_controller
        one.close()
        await eventually(lambda: two.controller_id == 2, timeout=15)
        assert two.controller_epoch == first_epoch + 1
        assert isinstance(two, ZooKeeperStore) and two.is_controller
        await eventually(lambda: set(two.brokers()) == {2}, timeout=15)

    run(body)


def test_concurrent_creation_of_one_topic_gives_one_topic(zk_stores: Stores) -> None:
    async def body() -> None:
        one = await zk_stores.open(1)
        two = await zk_stores.open(2)
        outcomes = []
        for store in (one, two):
            try:
                outcomes.append(store.create_topic("race", [[1]], {}).topic_id)
            except TopicExistsError:
                outcomes.append(None)
        assert outcomes[1] is None and outcomes[0] is not None
        await eventually(lambda: two.topic("race") is not None)
        assert two.topic("race").topic_id == outcomes[0]  # type: ignore[union-attr]

    run(body)


def test_large_topic_is_written_in_chunks(zk_stores: Stores) -> None:
    async def body() -> None:
        one = await zk_stores.open(1)
        topic = one.create_topic("wide", [[1]] * 1200, {})
        assert len(topic.partitions) == 1200
        two = await zk_stores.open(2)
        assert two.topic("wide") == topic
        one.delete_topic("wide")
        await eventually(lambda: two.topic("wide") is None)

    run(body)


def _with(state: Any, **changes: Any) -> Any:
    return state.__class__(**{**_fields(state), **changes})


def _expire_session(store: ZooKeeperStore, connect: str) -> int:
    """End ``store``'s ZooKeeper session as an expiry would (a second client takes the
    session over and closes it); the id of the session that ended."""
    session_id, password = store._client.client_id
    twin = KazooClient(hosts=split_connect(connect)[0], client_id=(session_id, password))
    twin.start()
    twin.stop()
    twin.close()
    return int(session_id)


def test_offline_replicas_outlive_a_lost_session(zk_stores: Stores) -> None:
    """After its session expires a broker registers again with its latest registration,
    offline replicas included, even one changed while the session was down."""

    async def body() -> None:
        one = await zk_stores.open(1)
        two = await zk_stores.open(2)
        assert isinstance(one, ZooKeeperStore)
        topic = uuid.uuid4()
        first = replace(single_broker(1), offline_replicas=frozenset({(topic, 0)}))
        one.update_registration(first)
        await eventually(lambda: two.brokers().get(1) == first)
        ended = _expire_session(one, zk_stores.connect)
        later = replace(first, offline_replicas=frozenset({(topic, 0), (topic, 1)}))
        one.update_registration(later)

        def registered_again() -> bool:
            client = one._client
            stat = client.exists(one._path(znodes.broker_path(1))) if client.connected else None
            owner = client.client_id[0] if client.client_id else None
            return stat is not None and owner != ended and stat.ephemeralOwner == owner

        await eventually(registered_again, timeout=20)
        await eventually(lambda: two.brokers().get(1) == later, timeout=20)

    run(body)
