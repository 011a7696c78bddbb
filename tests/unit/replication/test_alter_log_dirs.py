"""AlterReplicaLogDirs in the replica manager: Kafka's answers per partition, and a move
that copies while appends go on and hands the partition its new log."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from odradek.cluster.metadata import LocalStore
from odradek.config import BrokerConfig
from odradek.protocol.errors import ErrorCode
from odradek.protocol.types import TopicPartition
from odradek.replication.replica_manager import ReplicaManager
from odradek.storage.log_manager import LogManager
from tests.unit.cluster.helpers import single_broker
from tests.unit.storage.helpers import START_MS, make_batch, read_all

TP = TopicPartition("t", 0)


@pytest.fixture
def dirs(tmp_path: Path) -> list[Path]:
    return [tmp_path / "a", tmp_path / "b"]


@pytest.fixture
def manager(tmp_path: Path, dirs: list[Path]) -> Iterator[ReplicaManager]:
    config = BrokerConfig(
        {
            "log.dirs": ",".join(map(str, dirs)),
            "log.segment.bytes": "2000",
            "replica.alter.log.dirs.io.max.bytes.per.second": "20000",
        }
    )
    store = LocalStore(tmp_path, "cluster")
    logs = LogManager.from_config(config, clock=lambda: START_MS)
    replicas = ReplicaManager(1, config, logs, store, clock=lambda: START_MS)
    replicas.startup()
    store.add_listener(replicas)
    store.register_broker(single_broker(1))
    store.create_topic("t", [[1]], {})
    store.create_topic("elsewhere", [[2]], {})  # a replica on another broker only
    yield replicas
    logs.shutdown()


def test_kafka_answers_per_partition(manager: ReplicaManager, dirs: list[Path]) -> None:
    mover = manager.log_dir_mover
    here = manager.get_partition(TP).log.parent_dir
    assert mover.alter(TP, "relative/dir") == ErrorCode.log_dir_not_found
    assert mover.alter(TP, str(dirs[0].parent / "c")) == ErrorCode.log_dir_not_found
    assert mover.alter(TopicPartition("t", 5), str(dirs[1])) == ErrorCode.unknown_topic_or_partition
    assert mover.alter(TopicPartition("nope", 0), str(dirs[1])) == (
        ErrorCode.unknown_topic_or_partition
    )
    assert mover.alter(TopicPartition("elsewhere", 0), str(dirs[1])) == (
        ErrorCode.replica_not_available
    )
    assert mover.alter(TP, here) == ErrorCode.none  # where it is: nothing to do
    assert manager.log_manager.future_logs == {}


def test_a_move_copies_while_appends_go_on_then_swaps(manager: ReplicaManager) -> None:
    partition = manager.get_partition(TP)
    source = partition.log.parent_dir
    (target,) = [d for d in manager.log_manager.log_dirs if d != source]

    def append(count: int) -> None:
        for n in range(count):
            manager.append_records(1, [(TP, make_batch([b"record-%d" % n]))])

    async def scenario() -> None:
        append(200)
        assert manager.log_dir_mover.alter(TP, target) == ErrorCode.none
        future = manager.log_manager.get_future_log(TP)
        assert future is not None and future.parent_dir == target
        for _ in range(40):  # appends while the throttled copy goes on
            append(5)
            await asyncio.sleep(0.01)
        assert manager.log_dir_mover.moving == {TP}
        deadline = asyncio.get_running_loop().time() + 20
        while manager.log_dir_mover.completed == 0:
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.02)
        await manager.log_dir_mover.shutdown()

    before = read_all(partition.log)
    asyncio.run(scenario())
    moved = manager.get_partition(TP).log
    assert moved is manager.log_manager.get_log(TP)
    assert moved.parent_dir == target and manager.log_manager.future_logs == {}
    assert moved.log_end_offset == 400 and moved.high_watermark == 400
    assert read_all(moved)[: len(before)] == before
    assert [r.value for r in read_all(moved)] == [b"record-%d" % n for n in range(200)] + [
        b"record-%d" % n for _ in range(40) for n in range(5)
    ]
    manager.append_records(1, [(TP, make_batch([b"after"]))])
    assert read_all(moved)[-1].value == b"after"
