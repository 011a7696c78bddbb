"""TxnMarkerChannel: markers grouped by leader, local ones handed to the broker, the rest
sent as WriteTxnMarkers v1; retries after leadership moves, give-ups, deleted topics."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import pytest
from kio.schema.write_txn_markers.v1 import response as markers_response

from odradek.cluster.brokers import BrokerRegistration
from odradek.cluster.metadata import MetadataStore, PartitionState, TopicMetadata
from odradek.coordinator.transaction.markers import TxnMarker, TxnMarkerChannel
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.protocol.types import TopicPartition
from odradek.replication.broker_client import BrokerConnectionError
from tests.unit.cluster.helpers import single_broker
from tests.unit.coordinator.transaction.fakes import Gate

SELF = 1
A0 = TopicPartition("a", 0)
A1 = TopicPartition("a", 1)
B0 = TopicPartition("b", 0)


class FakeMetadata:
    """The two things the channel reads: live brokers and partition leaders."""

    def __init__(self, leaders: Mapping[str, list[int]], brokers: tuple[int, ...] = (1, 2, 3)):
        self.leaders = {topic: list(ids) for topic, ids in leaders.items()}
        self.live = set(brokers)

    def brokers(self) -> dict[int, BrokerRegistration]:
        return {broker: single_broker(broker) for broker in self.live}

    def topic(self, name: str) -> TopicMetadata | None:
        leaders = self.leaders.get(name)
        if leaders is None:
            return None
        return TopicMetadata(
            name=name,
            topic_id=uuid.uuid4(),
            partitions=tuple(
                PartitionState(leader=leader, replicas=(1, 2, 3), isr=(1, 2, 3))
                for leader in leaders
            ),
        )


@dataclass
class FakeBroker:
    """Answers WriteTxnMarkers with the errors it is told to, and keeps the requests."""

    errors: dict[TopicPartition, list[ErrorCode]] = field(default_factory=dict)
    requests: list[Any] = field(default_factory=list)
    gate: Gate = field(default_factory=Gate)
    broken: int = 0
    """Calls still to fail with a broken connection."""

    def answer(self, request: Any) -> Any:
        results = []
        for marker in request.markers:
            topics = []
            for topic in marker.topics:
                partitions = []
                for index in topic.partition_indexes:
                    queued = self.errors.get(TopicPartition(topic.name, int(index)), [])
                    error = queued.pop(0) if queued else ErrorCode.none
                    partitions.append(
                        markers_response.WritableTxnMarkerPartitionResult(
                            partition_index=index, error_code=error
                        )
                    )
                topics.append(
                    markers_response.WritableTxnMarkerTopicResult(
                        name=topic.name, partitions=tuple(partitions)
                    )
                )
            results.append(
                markers_response.WritableTxnMarkerResult(
                    producer_id=marker.producer_id, topics=tuple(topics)
                )
            )
        return markers_response.WriteTxnMarkersResponse(markers=tuple(results))


class FakeClient:
    def __init__(self, brokers: dict[int, FakeBroker], host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.broker = brokers[port - 9000]
        self.closed = False

    async def call(self, request: Any) -> Any:
        self.broker.requests.append(request)
        await self.broker.gate.passing()
        if self.broker.broken:
            self.broker.broken -= 1
            raise BrokerConnectionError("connection reset")
        return self.broker.answer(request)

    def close(self) -> None:
        self.closed = True


class Setup:
    def __init__(self, leaders: Mapping[str, list[int]]) -> None:
        self.metadata = FakeMetadata(leaders)
        self.brokers = {2: FakeBroker(), 3: FakeBroker()}
        self.local_calls: list[list[TxnMarker]] = []
        self.local_errors: dict[TopicPartition, list[ErrorCode]] = {}
        self.clients: list[FakeClient] = []
        self.channel = TxnMarkerChannel(
            broker_id=SELF,
            metadata=cast(MetadataStore, self.metadata),
            local=self.local,
            retry_backoff_ms=1,
            max_retry_backoff_ms=2,
            client_factory=self.client,
        )

    def client(self, host: str, port: int, client_id: str, timeout_ms: int) -> FakeClient:
        assert client_id == "broker-1-txn-markers"
        assert timeout_ms == 35_000
        made = FakeClient(self.brokers, host, port)
        self.clients.append(made)
        return made

    async def local(self, markers: list[TxnMarker]) -> dict[TopicPartition, ErrorCode]:
        self.local_calls.append(markers)
        out = {}
        for marker in markers:
            for tp in marker.partitions:
                queued = self.local_errors.get(tp, [])
                out[tp] = queued.pop(0) if queued else ErrorCode.none
        return out

    async def write(self, *partitions: TopicPartition, commit: bool = True) -> None:
        await self.channel.write_markers(5, 2, commit, 9, partitions)


def sent(broker: FakeBroker) -> list[tuple[int, int, bool, int, list[TopicPartition]]]:
    return [
        (
            int(marker.producer_id),
            int(marker.producer_epoch),
            marker.transaction_result,
            int(marker.coordinator_epoch),
            [TopicPartition(t.name, int(p)) for t in marker.topics for p in t.partition_indexes],
        )
        for request in broker.requests
        for marker in request.markers
    ]


def test_markers_go_to_each_leader() -> None:
    async def scenario() -> Setup:
        setup = Setup({"a": [1, 2], "b": [3]})
        await setup.write(A0, A1, B0, commit=False)
        await setup.channel.close()
        return setup

    setup = asyncio.run(scenario())
    assert setup.local_calls == [
        [
            TxnMarker(
                producer_id=5, producer_epoch=2, commit=False, coordinator_epoch=9, partitions=(A0,)
            )
        ]
    ]
    assert sent(setup.brokers[2]) == [(5, 2, False, 9, [A1])]
    assert sent(setup.brokers[3]) == [(5, 2, False, 9, [B0])]
    assert all(client.closed for client in setup.clients)


def test_retriable_errors_are_retried_where_the_leader_now_is() -> None:
    async def scenario() -> Setup:
        setup = Setup({"a": [2, 2]})
        setup.brokers[2].errors[A0] = [ErrorCode.not_leader_or_follower]
        setup.brokers[2].errors[A1] = [ErrorCode.not_enough_replicas]
        writing = asyncio.create_task(setup.write(A0, A1))
        while len(setup.brokers[2].requests) < 1:
            await asyncio.sleep(0)
        setup.metadata.leaders["a"][0] = 3  # leadership of a-0 moved
        await writing
        return setup

    setup = asyncio.run(scenario())
    assert sent(setup.brokers[2]) == [(5, 2, True, 9, [A0, A1]), (5, 2, True, 9, [A1])]
    assert sent(setup.brokers[3]) == [(5, 2, True, 9, [A0])]


def test_a_partition_without_leader_waits_for_one() -> None:
    async def scenario() -> Setup:
        setup = Setup({"a": [-1]})
        writing = asyncio.create_task(setup.write(A0))
        await asyncio.sleep(0.02)
        assert not writing.done()
        setup.metadata.leaders["a"][0] = 2
        await writing
        return setup

    assert sent(asyncio.run(scenario()).brokers[2]) == [(5, 2, True, 9, [A0])]


def test_a_deleted_topic_needs_no_marker() -> None:
    async def scenario() -> Setup:
        setup = Setup({"a": [2]})
        await setup.write(A0, B0, TopicPartition("a", 7))
        return setup

    setup = asyncio.run(scenario())
    assert sent(setup.brokers[2]) == [(5, 2, True, 9, [A0])]


@pytest.mark.parametrize(
    "error", [ErrorCode.invalid_producer_epoch, ErrorCode.transaction_coordinator_fenced]
)
def test_fencing_errors_give_up(error: ErrorCode) -> None:
    async def scenario() -> None:
        setup = Setup({"a": [1, 2]})
        setup.brokers[2].errors[A1] = [error]
        await setup.write(A0, A1)

    with pytest.raises(KafkaError) as raised:
        asyncio.run(scenario())
    assert raised.value.error_code is error


def test_local_errors_are_retried_and_unsupported_ones_skip_the_partition() -> None:
    async def scenario() -> Setup:
        setup = Setup({"a": [1, 1]})
        setup.local_errors[A0] = [ErrorCode.kafka_storage_error, ErrorCode.request_timed_out]
        setup.local_errors[A1] = [ErrorCode.unsupported_for_message_format]
        await setup.write(A0, A1)
        return setup

    setup = asyncio.run(scenario())
    assert [[m.partitions for m in call] for call in setup.local_calls] == [
        [(A0, A1)],
        [(A0,)],
        [(A0,)],
    ]


def test_a_broken_connection_is_retried() -> None:
    async def scenario() -> Setup:
        setup = Setup({"a": [2]})
        setup.brokers[2].broken = 2
        await setup.write(A0)
        return setup

    assert len(asyncio.run(scenario()).brokers[2].requests) == 3


def test_markers_queued_meanwhile_leave_together() -> None:
    async def scenario() -> Setup:
        setup = Setup({"a": [2, 2], "b": [2]})
        broker = setup.brokers[2]
        broker.gate.close()
        first = asyncio.create_task(setup.channel.write_markers(5, 2, True, 9, [A0]))
        while not broker.requests:
            await asyncio.sleep(0)
        others = [
            asyncio.create_task(setup.channel.write_markers(6, 0, False, 9, [A1])),
            asyncio.create_task(setup.channel.write_markers(7, 1, True, 9, [B0])),
        ]
        await asyncio.sleep(0)
        broker.gate.open()
        await asyncio.gather(first, *others)
        return setup

    setup = asyncio.run(scenario())
    assert [len(request.markers) for request in setup.brokers[2].requests] == [1, 2]
    assert sent(setup.brokers[2])[1:] == [(6, 0, False, 9, [A1]), (7, 1, True, 9, [B0])]


def test_a_cancelled_round_stops() -> None:
    async def scenario() -> Setup:
        setup = Setup({"a": [2]})
        setup.brokers[2].gate.close()
        writing = asyncio.create_task(setup.write(A0))
        while not setup.brokers[2].requests:
            await asyncio.sleep(0)
        writing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await writing
        await setup.channel.close()
        return setup

    assert len(asyncio.run(scenario()).brokers[2].requests) == 1
