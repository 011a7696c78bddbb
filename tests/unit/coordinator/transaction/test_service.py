"""The transaction coordinator over a real single-node replica manager: the topic created
on first use, records written to and loaded back from ``__transaction_state``, markers
for partitions led here handed to the local writer."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from odradek.cluster.controller import Controller
from odradek.cluster.metadata import LocalStore
from odradek.config import BrokerConfig
from odradek.coordinator.group.service import OFFSETS_TOPIC
from odradek.coordinator.internal_topics import read_records
from odradek.coordinator.transaction.markers import TxnMarker
from odradek.coordinator.transaction.records import decode_key, decode_value
from odradek.coordinator.transaction.service import (
    TRANSACTION_STATE_TOPIC,
    TransactionCoordinator,
    setting,
)
from odradek.coordinator.transaction.values import InitProducerIdResult
from odradek.protocol.errors import ErrorCode
from odradek.protocol.types import TopicPartition
from odradek.replication.replica_manager import ReplicaManager
from odradek.storage.log_manager import LogManager
from tests.unit.cluster.helpers import single_broker

NOW = 1_700_000_000_000
TXN = "orders-copier"
D0 = TopicPartition("data", 0)
D1 = TopicPartition("data", 1)


class Node:
    def __init__(self, directory: Path) -> None:
        self.config = BrokerConfig(
            {"log.dirs": str(directory), "transaction.state.log.num.partitions": "3"}
        )
        self.now = NOW
        self.store = LocalStore(directory, "cluster")
        self.logs = LogManager([directory], clock=self.clock)
        self.replica_manager = ReplicaManager(1, self.config, self.logs, self.store, self.clock)
        self.replica_manager.startup()
        self.store.add_listener(self.replica_manager)
        self.store.register_broker(single_broker(1))
        self.controller = Controller(self.store, self.config)
        self.markers: list[TxnMarker] = []
        self.coordinator = TransactionCoordinator(
            self.config,
            metadata=self.store,
            controller=self.controller,
            replica_manager=self.replica_manager,
            clock=self.clock,
            live_brokers=self.controller.live_brokers,
            producer_ids=self.store.allocate_producer_id,
            offsets_partition_of=len,
            local_markers=self.local_markers,
        )

    def clock(self) -> int:
        return self.now

    async def local_markers(self, markers: list[TxnMarker]) -> dict[TopicPartition, ErrorCode]:
        self.markers.extend(markers)
        return {tp: ErrorCode.none for marker in markers for tp in marker.partitions}

    def state_partition(self) -> TopicPartition:
        return TopicPartition(TRANSACTION_STATE_TOPIC, self.coordinator.partition_of(TXN))

    def written(self) -> list[str]:
        partition = self.replica_manager.get_partition(self.state_partition())
        out = []
        for _, key, value in read_records(partition.log):
            assert key is not None
            assert decode_key(key).transactional_id == TXN
            decoded = decode_value(value)
            out.append("-" if decoded is None else decoded.state.kafka_name)
        return out


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    made = Node(tmp_path)
    yield made
    made.logs.shutdown()


def test_first_lookup_creates_the_topic_with_kafkas_configs(node: Node) -> None:
    async def scenario() -> None:
        assert node.coordinator.coordinator_of(TXN) == 1
        topic = node.store.topic(TRANSACTION_STATE_TOPIC)
        assert topic is not None and len(topic.partitions) == 3
        assert topic.replication_factor == 1, "capped by the live brokers"
        assert dict(topic.configs) == {
            "cleanup.policy": "compact",
            "compression.type": "uncompressed",
            "segment.bytes": "104857600",
            "min.insync.replicas": "1",
            "unclean.leader.election.enable": "false",
        }
        assert sorted(node.coordinator.shards) == [0, 1, 2], "this broker leads them all"
        await node.coordinator.shutdown()

    asyncio.run(scenario())


def test_requests_before_the_topic_exists_are_not_coordinator(node: Node) -> None:
    async def scenario() -> None:
        result = await node.coordinator.init_producer_id(TXN, 60_000)
        assert result.error is ErrorCode.not_coordinator
        await node.coordinator.shutdown()

    asyncio.run(scenario())


def test_a_transaction_end_to_end_and_reloaded(node: Node) -> None:
    coordinator = node.coordinator

    async def scenario() -> None:
        node.controller.create_topic("data", 2, 1)
        coordinator.coordinator_of(TXN)
        result = await coordinator.init_producer_id(TXN, 60_000)
        assert result.error is ErrorCode.none and result.producer_epoch == 0
        pid = result.producer_id
        assert await coordinator.add_partitions_to_txn(TXN, pid, 0, [D0, D1]) == {
            D0: ErrorCode.none,
            D1: ErrorCode.none,
        }
        assert await coordinator.add_offsets_to_txn(TXN, pid, 0, "group") is ErrorCode.none
        offsets = TopicPartition(OFFSETS_TOPIC, len("group"))
        assert coordinator.describe_transactions([TXN])[0].partitions == (offsets, D0, D1)
        ended = await coordinator.end_txn(TXN, pid, 0, commit=True)
        assert ended.error is ErrorCode.none
        shard = coordinator.shard_for(TXN)
        await shard.wait_idle()
        [marker] = node.markers
        assert marker.commit and (marker.producer_id, marker.producer_epoch) == (pid, 0)
        assert set(marker.partitions) == {D0, D1}, "the offsets partition's topic does not exist"
        state_partition = node.replica_manager.get_partition(node.state_partition())
        assert marker.coordinator_epoch == state_partition.leader_epoch
        assert node.written() == ["Empty", "Ongoing", "Ongoing", "PrepareCommit", "CompleteCommit"]
        assert state_partition.log.high_watermark == state_partition.log.log_end_offset

        # Leadership moves away and back: the state is loaded from the log.
        coordinator.resigned(state_partition.tp)
        assert (await coordinator.init_producer_id(TXN, 60_000)).error is ErrorCode.not_coordinator
        coordinator.became_leader(state_partition)
        [description] = coordinator.describe_transactions([TXN])
        assert (description.state, description.producer_id) == ("CompleteCommit", pid)
        assert await coordinator.init_producer_id(TXN, 60_000) == InitProducerIdResult(
            ErrorCode.none, pid, 1
        )
        await coordinator.shutdown()

    asyncio.run(scenario())


def test_a_prepared_transaction_is_completed_after_loading(node: Node) -> None:
    coordinator = node.coordinator

    async def scenario() -> None:
        node.controller.create_topic("data", 2, 1)
        coordinator.coordinator_of(TXN)
        pid = (await coordinator.init_producer_id(TXN, 60_000)).producer_id
        await coordinator.add_partitions_to_txn(TXN, pid, 0, [D0])
        shard = coordinator.shard_for(TXN)
        # The markers never get written by this coordinator: it loses the partition.
        blocked = asyncio.Event()

        async def stuck(markers: list[TxnMarker]) -> dict[TopicPartition, ErrorCode]:
            await blocked.wait()
            return {}

        channel = coordinator._channel
        assert channel is not None
        channel.local = stuck
        assert (await coordinator.end_txn(TXN, pid, 0, commit=False)).error is ErrorCode.none
        partition = node.replica_manager.get_partition(node.state_partition())
        coordinator.resigned(partition.tp)
        await asyncio.sleep(0)
        assert shard.transactions == {}
        channel.local = node.local_markers
        coordinator.became_leader(partition)
        await coordinator.shard_for(TXN).wait_idle()
        assert [m.partitions for m in node.markers] == [(D0,)]
        assert node.written()[-2:] == ["PrepareAbort", "CompleteAbort"]
        await coordinator.shutdown()

    asyncio.run(scenario())


def test_add_partitions_with_rejected_partitions_adds_none(node: Node) -> None:
    async def scenario() -> None:
        answer = await node.coordinator.add_partitions_to_txn(
            TXN, 1, 0, [D0, D1], rejected={D1: ErrorCode.unknown_topic_or_partition}
        )
        assert answer == {
            D0: ErrorCode.operation_not_attempted,
            D1: ErrorCode.unknown_topic_or_partition,
        }
        await node.coordinator.shutdown()

    asyncio.run(scenario())


def test_init_producer_id_validation(node: Node) -> None:
    async def scenario() -> None:
        coordinator = node.coordinator
        coordinator.coordinator_of(TXN)
        assert (await coordinator.init_producer_id(TXN, 60_000, 5, -1)).error is (
            ErrorCode.invalid_request
        )
        assert (await coordinator.init_producer_id(TXN, 60_000, -1, 3)).error is (
            ErrorCode.invalid_request
        )
        assert (await coordinator.init_producer_id("", 60_000)).error is ErrorCode.invalid_request
        assert (await coordinator.init_producer_id(TXN, 900_001)).error is (
            ErrorCode.invalid_transaction_timeout
        )
        await coordinator.shutdown()

    asyncio.run(scenario())


def test_list_and_describe(node: Node) -> None:
    async def scenario() -> None:
        coordinator = node.coordinator
        coordinator.coordinator_of(TXN)
        for name in ("a", "b", "c"):
            await coordinator.init_producer_id(name, 60_000)
        listed = coordinator.list_transactions()
        assert listed.error is ErrorCode.none
        assert sorted(t.transactional_id for t in listed.transactions) == ["a", "b", "c"]
        only_unknown = coordinator.list_transactions(states=["Bogus"])
        assert only_unknown.transactions == () and only_unknown.unknown_state_filters == ("Bogus",)
        mixed = coordinator.list_transactions(states=["Empty", "Bogus"], pattern="[ab]")
        assert sorted(t.transactional_id for t in mixed.transactions) == ["a", "b"]
        assert mixed.unknown_state_filters == ("Bogus",)
        assert coordinator.list_transactions(pattern="(").error is (
            ErrorCode.invalid_regular_expression
        )
        described = coordinator.describe_transactions(["a", "", "zzz"])
        assert [d.error for d in described] == [
            ErrorCode.none,
            ErrorCode.invalid_request,
            ErrorCode.transactional_id_not_found,
        ]
        await coordinator.shutdown()
        assert coordinator.list_transactions().error is ErrorCode.coordinator_not_available
        assert coordinator.describe_transactions(["a"])[0].error is (
            ErrorCode.coordinator_not_available
        )

    asyncio.run(scenario())


def test_periodic_jobs_abort_timed_out_transactions(tmp_path: Path) -> None:
    node = Node(tmp_path)
    node.config.values["transaction.abort.timed.out.transaction.cleanup.interval.ms"] = 10

    async def scenario() -> None:
        coordinator = node.coordinator
        node.controller.create_topic("data", 2, 1)
        coordinator.coordinator_of(TXN)
        coordinator.start()
        pid = (await coordinator.init_producer_id(TXN, 1_000)).producer_id
        await coordinator.add_partitions_to_txn(TXN, pid, 0, [D0])
        node.now += 1_001
        for _ in range(200):
            if node.written()[-1:] == ["CompleteAbort"]:
                break
            await asyncio.sleep(0.01)
        assert node.written()[-2:] == ["PrepareAbort", "CompleteAbort"]
        assert [(m.producer_epoch, m.commit) for m in node.markers] == [(1, False)]
        await coordinator.shutdown()

    try:
        asyncio.run(scenario())
    finally:
        node.logs.shutdown()


def test_settings_fall_back_to_kafkas_defaults() -> None:
    config = BrokerConfig({"request.timeout.ms": "1234"})
    assert setting(config, "request.timeout.ms") == 1234
    assert setting(BrokerConfig(), "request.timeout.ms") == 30_000
    assert setting(BrokerConfig(), "transaction.max.timeout.ms") == 900_000


def test_a_new_leader_epoch_is_the_new_coordinator_epoch(node: Node) -> None:
    """A reassignment bumps the leader epoch of the partition and keeps it led here: the
    coordinator reloads at the new epoch (Kafka's onElection) and writes markers with
    it; the open transaction carries on."""
    coordinator = node.coordinator

    async def scenario() -> None:
        node.controller.create_topic("data", 2, 1)
        coordinator.coordinator_of(TXN)
        pid = (await coordinator.init_producer_id(TXN, 60_000)).producer_id
        await coordinator.add_partitions_to_txn(TXN, pid, 0, [D0])
        tp = node.state_partition()
        topic = node.store.topic(TRANSACTION_STATE_TOPIC)
        assert topic is not None
        state = topic.partitions[tp.partition]
        node.store.alter_partition_states(
            TRANSACTION_STATE_TOPIC,
            {tp.partition: replace(state, leader_epoch=state.leader_epoch + 1)},
        )
        shard = coordinator.shard_for(TXN)
        assert shard.coordinator_epoch == state.leader_epoch + 1
        assert (await coordinator.end_txn(TXN, pid, 0, commit=True)).error is ErrorCode.none
        await shard.wait_idle()
        [marker] = node.markers
        assert marker.coordinator_epoch == state.leader_epoch + 1
        await coordinator.shutdown()

    asyncio.run(scenario())
