"""The fetch purgatory: a parked fetch completes once, on enough data, on expiry, when
its partition goes away or at shutdown; a cancelled one never completes. A read_committed
fetch counts as data only what the last stable offset has passed."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from odradek.cluster.controller import Controller
from odradek.cluster.metadata import LocalStore
from odradek.config import BrokerConfig
from odradek.protocol.record_codec import BatchSpec, NewRecord, build_batch, build_end_txn_marker
from odradek.protocol.types import TopicPartition
from odradek.replication.partition import READ_COMMITTED
from odradek.replication.replica_manager import FetchPartition, FetchResult, ReplicaManager
from odradek.storage.log_manager import LogManager
from odradek.storage.values import AppendOrigin
from tests.unit.cluster.helpers import single_broker
from tests.unit.storage.helpers import START_MS, make_batch

TP = TopicPartition("t", 0)
LONG_WAIT_MS = 60_000


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[ReplicaManager, Controller]]:
    config = BrokerConfig({"log.dirs": str(tmp_path)})
    store = LocalStore(tmp_path, "cluster")
    logs = LogManager([tmp_path], clock=lambda: START_MS)
    manager = ReplicaManager(1, config, logs, store, clock=lambda: START_MS)
    manager.startup()  # logs loaded: partitions may be hosted
    store.add_listener(manager)
    store.register_broker(single_broker(1))
    controller = Controller(store, config)
    controller.create_topic("t", 1, 1)
    yield manager, controller
    logs.shutdown()


def first_read(manager: ReplicaManager) -> list[FetchResult]:
    offset = manager.get_partition(TP).log.log_end_offset
    return manager.read([FetchPartition(TP, offset, 1 << 20)], max_bytes=1 << 20, isolation_level=0)


def append(manager: ReplicaManager, *values: bytes) -> None:
    result = manager.append_records(1, [(TP, bytearray(make_batch(list(values))))])
    assert result[TP].error == 0


def test_append_completes_a_parked_fetch_once(setup: tuple[ReplicaManager, Controller]) -> None:
    manager, _ = setup

    async def scenario() -> list[str]:
        calls: list[str] = []
        parked = manager.park_fetch(first_read(manager), 1, LONG_WAIT_MS, lambda: calls.append("x"))
        assert calls == []
        append(manager, b"one")
        append(manager, b"two")
        assert parked.done
        return calls

    assert asyncio.run(scenario()) == ["x"]
    assert not manager._waiters


def test_fetch_waits_for_min_bytes(setup: tuple[ReplicaManager, Controller]) -> None:
    manager, _ = setup

    async def scenario() -> tuple[int, int]:
        calls: list[int] = []
        one = len(make_batch([b"v" * 100]))
        manager.park_fetch(first_read(manager), 2 * one, LONG_WAIT_MS, lambda: calls.append(1))
        append(manager, b"v" * 100)
        before = len(calls)
        append(manager, b"v" * 100)
        return before, len(calls)

    assert asyncio.run(scenario()) == (0, 1)


def test_expiry_completes_and_forgets(setup: tuple[ReplicaManager, Controller]) -> None:
    manager, _ = setup

    async def scenario() -> list[int]:
        calls: list[int] = []
        done = asyncio.Event()
        manager.park_fetch(first_read(manager), 1, 1, lambda: (calls.append(1), done.set()))
        await asyncio.wait_for(done.wait(), 30)
        append(manager, b"late")  # no second completion
        return calls

    assert asyncio.run(scenario()) == [1]
    assert not manager._waiters


def test_cancelled_fetch_never_completes(setup: tuple[ReplicaManager, Controller]) -> None:
    manager, _ = setup

    async def scenario() -> list[int]:
        calls: list[int] = []
        parked = manager.park_fetch(first_read(manager), 1, 1, lambda: calls.append(1))
        assert parked.cancel()
        assert not parked.cancel()
        append(manager, b"v")
        await asyncio.sleep(0.05)
        return calls

    assert asyncio.run(scenario()) == []
    assert not manager._waiters


def test_append_between_read_and_park_completes_at_once(
    setup: tuple[ReplicaManager, Controller],
) -> None:
    manager, _ = setup

    async def scenario() -> list[int]:
        calls: list[int] = []
        results = first_read(manager)
        append(manager, b"raced")
        manager.park_fetch(results, 1, LONG_WAIT_MS, lambda: calls.append(1))
        return calls

    assert asyncio.run(scenario()) == [1]
    assert not manager._waiters


def test_deleted_topic_and_shutdown_complete_parked_fetches(
    setup: tuple[ReplicaManager, Controller],
) -> None:
    manager, controller = setup

    async def scenario() -> list[str]:
        calls: list[str] = []
        manager.park_fetch(first_read(manager), 1, LONG_WAIT_MS, lambda: calls.append("deleted"))
        controller.delete_topic("t")
        controller.create_topic("t", 1, 1)
        manager.park_fetch(first_read(manager), 1, LONG_WAIT_MS, lambda: calls.append("shutdown"))
        manager.complete_waiting()
        return calls

    assert asyncio.run(scenario()) == ["deleted", "shutdown"]
    assert not manager._waiters


# -- read_committed: woken by the last stable offset, not by appends above it -----------

PID = 4000


def txn_batch(*values: bytes, seq: int = 0) -> bytearray:
    spec = BatchSpec(producer_id=PID, producer_epoch=0, base_sequence=seq, transactional=True)
    return bytearray(
        build_batch([NewRecord(key=None, value=v, timestamp=START_MS) for v in values], spec)
    )


def end_txn(manager: ReplicaManager, *, commit: bool) -> None:
    data = build_end_txn_marker(PID, 0, commit=commit, coordinator_epoch=0, timestamp=START_MS)
    result = manager.append_records(1, [(TP, bytearray(data))], AppendOrigin.COORDINATOR)
    assert result[TP].error == 0


def committed_read(manager: ReplicaManager) -> list[FetchResult]:
    offset = manager.get_partition(TP).log.last_stable_offset
    return manager.read(
        [FetchPartition(TP, offset, 1 << 20)], max_bytes=1 << 20, isolation_level=READ_COMMITTED
    )


@pytest.mark.parametrize("commit", [True, False])
def test_read_committed_fetch_waits_for_the_marker(
    setup: tuple[ReplicaManager, Controller], commit: bool
) -> None:
    manager, _ = setup

    async def scenario() -> tuple[list[str], list[str]]:
        calls: list[str] = []
        manager.park_fetch(
            committed_read(manager),
            1,
            LONG_WAIT_MS,
            lambda: calls.append("woken"),
            read_committed=True,
        )
        for seq in range(3):  # each above the last stable offset: nothing to read yet
            result = manager.append_records(1, [(TP, txn_batch(b"in", seq=seq))])
            assert result[TP].error == 0
        before = list(calls)
        end_txn(manager, commit=commit)
        return before, calls

    assert asyncio.run(scenario()) == ([], ["woken"])
    assert not manager._waiters


def test_read_uncommitted_fetch_sees_transactional_appends(
    setup: tuple[ReplicaManager, Controller],
) -> None:
    manager, _ = setup

    async def scenario() -> list[int]:
        calls: list[int] = []
        manager.park_fetch(first_read(manager), 1, LONG_WAIT_MS, lambda: calls.append(1))
        assert manager.append_records(1, [(TP, txn_batch(b"in"))])[TP].error == 0
        return calls

    assert asyncio.run(scenario()) == [1]


def test_read_committed_fetch_parked_behind_an_open_transaction_sees_later_commits_only(
    setup: tuple[ReplicaManager, Controller],
) -> None:
    """Records of other producers committed after an open transaction stay above the last
    stable offset until that transaction ends."""
    manager, _ = setup

    async def scenario() -> tuple[list[str], list[str]]:
        calls: list[str] = []
        assert manager.append_records(1, [(TP, txn_batch(b"open"))])[TP].error == 0
        manager.park_fetch(
            committed_read(manager),
            1,
            LONG_WAIT_MS,
            lambda: calls.append("woken"),
            read_committed=True,
        )
        append(manager, b"plain", b"records")  # behind the open transaction
        before = list(calls)
        end_txn(manager, commit=False)
        return before, calls

    assert asyncio.run(scenario()) == ([], ["woken"])


def test_read_committed_fetch_is_woken_when_the_high_watermark_passes_the_marker(
    tmp_path: Path,
) -> None:
    """On a replicated partition the marker's append does not move the last stable
    offset; the follower's fetch that moves the high watermark past it does."""
    config = BrokerConfig({"log.dirs": str(tmp_path)})
    store = LocalStore(tmp_path, "cluster")
    logs = LogManager([tmp_path], clock=lambda: START_MS)
    manager = ReplicaManager(1, config, logs, store, clock=lambda: START_MS)
    manager.startup()
    store.add_listener(manager)
    store.register_broker(single_broker(1))
    store.create_topic("t", [[1, 2]], {})  # broker 2 is a follower in the ISR

    def follower_fetch() -> None:
        offset = manager.get_partition(TP).log.log_end_offset
        manager.read(
            [FetchPartition(TP, offset, 1 << 20, 0)],
            max_bytes=1 << 20,
            isolation_level=0,
            replica_id=2,
        )

    async def scenario() -> list[str]:
        calls: list[str] = []
        result = manager.append_records(-1, [(TP, txn_batch(b"in"))])
        assert result[TP].error == 0
        follower_fetch()
        manager.park_fetch(
            committed_read(manager),
            1,
            LONG_WAIT_MS,
            lambda: calls.append("woken"),
            read_committed=True,
        )
        end_txn(manager, commit=True)
        calls.append("marker appended")
        follower_fetch()  # the high watermark passes the marker
        return calls

    try:
        assert asyncio.run(scenario()) == ["marker appended", "woken"]
        assert not manager._waiters
    finally:
        logs.shutdown()
