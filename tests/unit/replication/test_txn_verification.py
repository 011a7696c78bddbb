"""Transaction verification on produce (KIP-890 part 1): who is asked, what each Produce
version is told, the guard against a marker racing the answer, and how questions to a
coordinator on another broker are batched."""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from kio.schema.add_partitions_to_txn.v5 import response as add_v5

from odradek.cluster.brokers import BrokerRegistration
from odradek.cluster.controller import Controller
from odradek.cluster.metadata import LocalStore
from odradek.config import BrokerConfig
from odradek.protocol.errors import ErrorCode
from odradek.protocol.record_codec import BatchSpec, NewRecord, build_batch, build_end_txn_marker
from odradek.protocol.types import TopicPartition
from odradek.replication.broker_client import BrokerConnectionError
from odradek.replication.replica_manager import ProduceResult, ReplicaManager
from odradek.replication.txn_verification import (
    NOT_ADDED_MESSAGE,
    STALE_GUARD_MESSAGE,
    TxnVerifier,
    producer_error,
    refusal,
)
from odradek.storage.log_manager import LogManager
from odradek.storage.values import AppendOrigin
from tests.unit.cluster.helpers import single_broker
from tests.unit.storage.helpers import START_MS, make_batch

T0, T1 = TopicPartition("t", 0), TopicPartition("t", 1)
TXN, PID, EPOCH = "txn", 500, 3
HERE, THERE = 1, 2


class TwoBrokers(LocalStore):
    """A single-node store that also lists broker 2 (a coordinator elsewhere)."""

    def brokers(self) -> Mapping[int, BrokerRegistration]:
        return {**super().brokers(), THERE: single_broker(THERE)}


class Coordinator:
    """The transaction coordinator's answers, here (a call) or on broker 2 (requests)."""

    def __init__(self) -> None:
        self.broker: int | None = HERE
        self.answer: dict[TopicPartition, ErrorCode] = {}
        self.default = ErrorCode.none
        self.calls: list[tuple[str, int, int, list[TopicPartition]]] = []

    def verify(
        self, txn: str, pid: int, epoch: int, partitions: Collection[TopicPartition]
    ) -> dict[TopicPartition, ErrorCode]:
        self.calls.append((txn, pid, epoch, sorted(partitions)))
        return {tp: self.answer.get(tp, self.default) for tp in partitions}


class FakeClient:
    """Broker 2: records requests, answers them from the coordinator once released."""

    def __init__(self, coordinator: Coordinator) -> None:
        self.host, self.port = "127.0.0.1", 9002
        self.coordinator = coordinator
        self.requests: list[Any] = []
        self.release = asyncio.Event()
        self.release.set()
        self.error: Exception | None = None

    async def call(self, request: Any) -> Any:
        self.requests.append(request)
        await self.release.wait()
        if self.error is not None:
            raise self.error
        results = []
        for txn in request.transactions:
            assert txn.verify_only
            partitions = [TopicPartition(t.name, int(p)) for t in txn.topics for p in t.partitions]
            errors = self.coordinator.verify(
                txn.transactional_id, txn.producer_id, txn.producer_epoch, partitions
            )
            results.append(
                add_v5.AddPartitionsToTxnResult(
                    transactional_id=txn.transactional_id,
                    topic_results=tuple(
                        add_v5.AddPartitionsToTxnTopicResult(
                            name=t.name,
                            results_by_partition=tuple(
                                add_v5.AddPartitionsToTxnPartitionResult(
                                    partition_index=p,
                                    partition_error_code=errors[TopicPartition(t.name, int(p))],
                                )
                                for p in t.partitions
                            ),
                        )
                        for t in txn.topics
                    ),
                )
            )
        return add_v5.AddPartitionsToTxnResponse(
            throttle_time=0,  # type: ignore[arg-type]
            error_code=ErrorCode.none,
            results_by_transaction=tuple(results),
        )

    def close(self) -> None:
        pass


class Setup:
    def __init__(self, tmp_path: Path, *, enabled: bool = True) -> None:
        config = BrokerConfig({"log.dirs": str(tmp_path)})
        self.store = TwoBrokers(tmp_path, "cluster")
        self.logs = LogManager([tmp_path], clock=lambda: START_MS)
        self.manager = ReplicaManager(HERE, config, self.logs, self.store, clock=lambda: START_MS)
        self.manager.startup()
        self.store.add_listener(self.manager)
        self.store.register_broker(single_broker(HERE))
        Controller(self.store, config).create_topic("t", assignment={0: [HERE], 1: [HERE]})
        self.coordinator = Coordinator()
        self.client = FakeClient(self.coordinator)
        self.verifier = TxnVerifier(
            broker_id=HERE,
            replica_manager=self.manager,
            metadata=self.store,
            enabled=enabled,
            coordinator_of=lambda _txn: self.coordinator.broker,
            local=self.coordinator.verify,
            client_factory=lambda *_args: self.client,
        )

    def log_end(self, tp: TopicPartition) -> int:
        return self.manager.get_partition(tp).log.log_end_offset

    def open_transaction(self, tp: TopicPartition) -> bool:
        return self.manager.get_partition(tp).log.producer_state.has_ongoing_transaction(PID, EPOCH)

    def marker(self, tp: TopicPartition, *, commit: bool = False) -> None:
        data = build_end_txn_marker(
            PID, EPOCH, commit=commit, coordinator_epoch=0, timestamp=START_MS
        )
        result = self.manager.append_records(1, [(tp, bytearray(data))], AppendOrigin.COORDINATOR)
        assert result[tp].error is ErrorCode.none


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    made = Setup(tmp_path)
    yield made
    made.logs.shutdown()


def txn_batch(seq: int = 0, *, pid: int = PID, epoch: int = EPOCH) -> bytearray:
    spec = BatchSpec(producer_id=pid, producer_epoch=epoch, base_sequence=seq, transactional=True)
    return bytearray(
        build_batch([NewRecord(key=None, value=b"v%d" % seq, timestamp=START_MS)], spec)
    )


def now(outcome: Any) -> dict[TopicPartition, ProduceResult]:
    assert isinstance(outcome, dict), "expected an answer without waiting"
    return outcome


def test_errors_each_produce_version_is_told() -> None:
    abortable = ErrorCode.transaction_abortable
    assert producer_error(abortable, 3) is ErrorCode.invalid_txn_state
    assert producer_error(abortable, 10) is ErrorCode.invalid_txn_state
    assert producer_error(abortable, 11) is abortable
    assert producer_error(ErrorCode.producer_fenced, 11) is ErrorCode.invalid_producer_epoch
    assert refusal(ErrorCode.invalid_txn_state).message == NOT_ADDED_MESSAGE
    assert refusal(abortable) == ProduceResult(error=abortable)
    for error in (
        ErrorCode.concurrent_transactions,
        ErrorCode.network_exception,
        ErrorCode.coordinator_load_in_progress,
        ErrorCode.coordinator_not_available,
        ErrorCode.not_coordinator,
    ):
        result = refusal(error)
        assert result.error is ErrorCode.not_enough_replicas
        assert result.message is not None and error.name.upper() in result.message
    fenced = ErrorCode.invalid_producer_id_mapping
    assert refusal(fenced) == ProduceResult(error=fenced)


def test_ordinary_and_already_verified_traffic_asks_nobody(setup: Setup) -> None:
    idempotent = bytearray(make_batch([b"x"], producer_id=9, producer_epoch=0, base_sequence=0))
    results = now(setup.verifier.append(TXN, -1, [(T0, idempotent)], 11))
    assert results[T0].error is ErrorCode.none
    assert now(setup.verifier.append(TXN, -1, [(T0, txn_batch(0))], 11))[T0].error == 0
    assert len(setup.coordinator.calls) == 1
    # The transaction is open in T0: the next batch goes straight in.
    assert now(setup.verifier.append(TXN, -1, [(T0, txn_batch(1))], 11))[T0].error == 0
    assert len(setup.coordinator.calls) == 1
    assert setup.log_end(T0) == 3


@pytest.mark.parametrize(
    ("version", "expected", "message"),
    [
        (9, ErrorCode.invalid_txn_state, NOT_ADDED_MESSAGE),
        (10, ErrorCode.invalid_txn_state, NOT_ADDED_MESSAGE),
        (11, ErrorCode.transaction_abortable, None),
    ],
)
def test_a_partition_not_in_the_transaction_is_refused(
    setup: Setup, version: int, expected: ErrorCode, message: str | None
) -> None:
    setup.coordinator.answer = {T1: ErrorCode.transaction_abortable}
    results = now(setup.verifier.append(TXN, -1, [(T0, txn_batch()), (T1, txn_batch())], version))
    assert results[T0].error is ErrorCode.none
    assert (results[T1].error, results[T1].message) == (expected, message)
    assert setup.coordinator.calls == [(TXN, PID, EPOCH, [T0, T1])]
    assert setup.log_end(T1) == 0
    assert not setup.open_transaction(T1)
    assert setup.manager.get_partition(T1).log.first_unstable_offset is None


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (ErrorCode.concurrent_transactions, ErrorCode.not_enough_replicas),
        (ErrorCode.not_coordinator, ErrorCode.not_enough_replicas),
        (ErrorCode.producer_fenced, ErrorCode.invalid_producer_epoch),
        (ErrorCode.invalid_producer_id_mapping, ErrorCode.invalid_producer_id_mapping),
    ],
)
def test_coordinator_errors(setup: Setup, answer: ErrorCode, expected: ErrorCode) -> None:
    setup.coordinator.default = answer
    results = now(setup.verifier.append(TXN, -1, [(T0, txn_batch())], 9))
    assert results[T0].error is expected
    assert setup.log_end(T0) == 0


def test_no_coordinator_yet_is_retriable(setup: Setup) -> None:
    setup.coordinator.broker = None
    result = now(setup.verifier.append(TXN, -1, [(T0, txn_batch())], 11))[T0]
    assert result.error is ErrorCode.not_enough_replicas
    assert result.message is not None and "COORDINATOR_NOT_AVAILABLE" in result.message
    assert setup.log_end(T0) == 0


def test_two_producers_in_one_request(setup: Setup) -> None:
    entries = [
        (T0, txn_batch()),
        (T1, txn_batch(pid=PID + 1)),
        (TopicPartition("t", 0), txn_batch()),
    ]
    results = now(setup.verifier.append(TXN, -1, entries, 11))
    assert {r.error for r in results.values()} == {ErrorCode.invalid_producer_id_mapping}
    assert setup.coordinator.calls == []
    assert setup.log_end(T0) == setup.log_end(T1) == 0


def test_a_follower_answers_without_asking(setup: Setup) -> None:
    partition = setup.manager.get_partition(T0)
    partition.update_state(partition.state.__class__(**{**_fields(partition.state), "leader": 7}))
    results = now(setup.verifier.append(TXN, -1, [(T0, txn_batch())], 11))
    assert results[T0].error is ErrorCode.not_leader_or_follower
    assert setup.coordinator.calls == []


def _fields(state: Any) -> dict[str, Any]:
    return {name: getattr(state, name) for name in state.__dataclass_fields__}


def test_disabled_appends_without_asking(tmp_path: Path) -> None:
    setup = Setup(tmp_path, enabled=False)
    try:
        setup.coordinator.default = ErrorCode.transaction_abortable
        assert now(setup.verifier.append(TXN, -1, [(T0, txn_batch())], 11))[T0].error == 0
        assert setup.coordinator.calls == []
        assert setup.open_transaction(T0), "what verification is there to prevent"
    finally:
        setup.logs.shutdown()


def test_remote_coordinator_is_asked_and_the_batch_waits(setup: Setup) -> None:
    setup.coordinator.broker = THERE

    async def scenario() -> dict[TopicPartition, ProduceResult]:
        pending = setup.verifier.append(TXN, -1, [(T0, txn_batch()), (T1, txn_batch())], 11)
        assert not isinstance(pending, dict)
        return await pending

    setup.coordinator.answer = {T1: ErrorCode.transaction_abortable}
    results = asyncio.run(scenario())
    assert results[T0].error is ErrorCode.none
    assert results[T1].error is ErrorCode.transaction_abortable
    (request,) = setup.client.requests
    (txn,) = request.transactions
    assert (txn.transactional_id, txn.producer_id, txn.producer_epoch) == (TXN, PID, EPOCH)
    assert setup.open_transaction(T0) and not setup.open_transaction(T1)


def test_a_yes_that_arrives_after_a_marker_is_refused(setup: Setup) -> None:
    """The coordinator's answer is about the transaction a marker just ended: the batch
    would open a transaction it does not know of."""
    setup.coordinator.broker = THERE
    setup.client.release.clear()

    async def scenario() -> ProduceResult:
        pending = setup.verifier.append(TXN, -1, [(T0, txn_batch())], 11)
        assert not isinstance(pending, dict)
        task = asyncio.ensure_future(pending)
        await asyncio.sleep(0)
        setup.marker(T0)  # the coordinator aborts meanwhile
        setup.client.release.set()
        return (await task)[T0]

    result = asyncio.run(scenario())
    assert (result.error, result.message) == (ErrorCode.invalid_txn_state, STALE_GUARD_MESSAGE)
    assert setup.log_end(T0) == 1, "only the marker"
    assert not setup.open_transaction(T0)


def test_questions_asked_during_a_request_leave_together(setup: Setup) -> None:
    setup.coordinator.broker = THERE
    setup.client.release.clear()

    async def scenario() -> list[dict[TopicPartition, ProduceResult]]:
        first = setup.verifier.append("a", -1, [(T0, txn_batch(pid=1))], 11)
        await asyncio.sleep(0)  # the first request is in flight
        later = [
            setup.verifier.append("b", -1, [(T0, txn_batch(pid=2))], 11),
            setup.verifier.append("c", -1, [(T0, txn_batch(pid=3))], 11),
            setup.verifier.append("c", -1, [(T1, txn_batch(pid=3))], 11),
        ]
        await asyncio.sleep(0)
        assert len(setup.client.requests) == 1
        setup.client.release.set()
        return list(await asyncio.gather(*(f for f in [first, *later] if not isinstance(f, dict))))

    results = asyncio.run(scenario())
    assert [r[tp].error for r, tp in zip(results, [T0, T0, T0, T1], strict=True)] == [0, 0, 0, 0]
    first, second = setup.client.requests
    assert [t.transactional_id for t in first.transactions] == ["a"]
    by_id = {t.transactional_id: t for t in second.transactions}
    assert sorted(by_id) == ["b", "c"]
    assert sorted((t.name, list(t.partitions)) for t in by_id["c"].topics) == [("t", [0, 1])]


def test_an_older_epoch_waiting_is_fenced_by_a_newer_one(setup: Setup) -> None:
    setup.coordinator.broker = THERE
    setup.client.release.clear()

    async def scenario() -> tuple[ProduceResult, ProduceResult]:
        blocker = setup.verifier.append("other", -1, [(T1, txn_batch(pid=9))], 11)
        await asyncio.sleep(0)
        old = setup.verifier.append(TXN, -1, [(T0, txn_batch(epoch=EPOCH))], 11)
        new = setup.verifier.append(TXN, -1, [(T0, txn_batch(epoch=EPOCH + 1))], 11)
        setup.client.release.set()
        assert not isinstance(old, dict) and not isinstance(new, dict)
        assert not isinstance(blocker, dict)
        await blocker
        return (await old)[T0], (await new)[T0]

    old, new = asyncio.run(scenario())
    assert old.error is ErrorCode.invalid_producer_epoch
    assert new.error is ErrorCode.none


def test_a_broken_connection_is_retriable(setup: Setup) -> None:
    setup.coordinator.broker = THERE
    setup.client.error = BrokerConnectionError("gone")

    async def scenario() -> ProduceResult:
        pending = setup.verifier.append(TXN, -1, [(T0, txn_batch())], 11)
        assert not isinstance(pending, dict)
        return (await pending)[T0]

    result = asyncio.run(scenario())
    assert result.error is ErrorCode.not_enough_replicas
    assert result.message is not None and "NETWORK_EXCEPTION" in result.message
    assert setup.log_end(T0) == 0
