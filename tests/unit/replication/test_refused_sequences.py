"""An idempotent batch pipelined behind one this broker refused without writing it (not
the leader yet, too small an ISR) gets the same retriable refusal, not
OUT_OF_ORDER_SEQUENCE_NUMBER, even if the broker could append it by then: librdkafka
answers that error by bumping its producer epoch, which can duplicate another
partition's records (confluentinc/librdkafka#4953). Other gaps stay out of order."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from odradek.cluster.metadata import LocalStore
from odradek.config import BrokerConfig
from odradek.protocol.errors import ErrorCode
from odradek.protocol.types import TopicPartition
from odradek.replication import refused_sequences
from odradek.replication.replica_manager import ReplicaManager
from odradek.storage.log_manager import LogManager
from tests.unit.cluster.helpers import single_broker
from tests.unit.storage.helpers import Clock, make_batch

TP = TopicPartition("t", 0)
PID = 42


class Broker:
    def __init__(self, tmp_path: Path, configs: dict[str, str]) -> None:
        self.clock = Clock()
        self.store = LocalStore(tmp_path, "cluster")
        self.logs = LogManager([tmp_path], clock=self.clock)
        config = BrokerConfig({"log.dirs": str(tmp_path)})
        self.manager = ReplicaManager(1, config, self.logs, self.store, clock=self.clock)
        self.manager.startup()
        self.store.add_listener(self.manager)
        self.store.register_broker(single_broker(1))
        self.store.create_topic("t", [[2, 1]], configs)  # led by broker 2: a follower here

    def lead(self, leader: int, isr: tuple[int, ...] = (1, 2)) -> None:
        topic = self.store.topic("t")
        assert topic is not None
        state = topic.partitions[0]
        self.store.alter_partition_states(
            "t",
            {0: replace(state, leader=leader, leader_epoch=state.leader_epoch + 1, isr=isr)},
        )

    def produce(self, seq: int, count: int = 2, *, epoch: int = 0, acks: int = 1) -> ErrorCode:
        batch = make_batch(
            [b"s%d" % (seq + i) for i in range(count)],
            producer_id=PID,
            producer_epoch=epoch,
            base_sequence=seq,
        )
        result = self.manager.append_records(acks, [(TP, bytearray(batch))])[TP]
        return result.error


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    broker = Broker(tmp_path, {"min.insync.replicas": "2"})
    try:
        yield broker
    finally:
        broker.logs.shutdown()


def test_successors_of_a_batch_refused_before_leadership_arrived(broker: Broker) -> None:
    broker.lead(1)
    assert broker.produce(0) is ErrorCode.none
    broker.lead(2)
    # R1 reaches this broker before it learns that it leads again; R2 and R3 were sent
    # behind it and arrive after: Kafka would answer them OUT_OF_ORDER_SEQUENCE_NUMBER.
    assert broker.produce(2) is ErrorCode.not_leader_or_follower
    broker.lead(1)
    assert broker.produce(4) is ErrorCode.not_leader_or_follower
    assert broker.produce(6) is ErrorCode.not_leader_or_follower
    # The producer retries them in order, under the same epoch.
    assert [broker.produce(seq) for seq in (2, 4, 6)] == [ErrorCode.none] * 3
    assert broker.produce(4) is ErrorCode.none  # a duplicate, answered as written
    assert broker.manager.get_partition(TP).log.log_end_offset == 8


def test_a_gap_that_does_not_follow_a_refusal_is_out_of_order(broker: Broker) -> None:
    broker.lead(1)
    assert broker.produce(0) is ErrorCode.none
    assert broker.produce(4) is ErrorCode.out_of_order_sequence_number
    broker.lead(2)
    assert broker.produce(2) is ErrorCode.not_leader_or_follower
    broker.lead(1)
    assert broker.produce(8) is ErrorCode.out_of_order_sequence_number  # not right after
    assert broker.produce(4, epoch=1) is ErrorCode.out_of_order_sequence_number  # new epoch
    broker.clock.advance(refused_sequences.REMEMBERED_MS + 1)
    assert broker.produce(4) is ErrorCode.out_of_order_sequence_number  # forgotten


def test_successors_of_a_batch_refused_for_too_small_an_isr(broker: Broker) -> None:
    broker.lead(1, isr=(1,))
    assert broker.produce(0) is ErrorCode.none
    assert broker.produce(2, acks=-1) is ErrorCode.not_enough_replicas
    broker.lead(1, isr=(1, 2))
    assert broker.produce(4, acks=-1) is ErrorCode.not_enough_replicas
    assert broker.produce(2, acks=-1) is ErrorCode.none
    assert broker.produce(4, acks=-1) is ErrorCode.none


def test_non_idempotent_and_malformed_refusals_are_not_remembered(broker: Broker) -> None:
    plain = bytearray(make_batch([b"x"]))
    result = broker.manager.append_records(1, [(TP, plain)])[TP]
    assert result.error is ErrorCode.not_leader_or_follower
    result = broker.manager.append_records(1, [(TP, bytearray(b"\xff" * 70))])[TP]
    assert result.error is ErrorCode.not_leader_or_follower
    assert broker.manager._refused_sequences._refused == {}
