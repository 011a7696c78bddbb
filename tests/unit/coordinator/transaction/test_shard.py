"""The transaction coordinator shard, with a manual clock, a fake writer and fake markers:
every transition and error code, no network and no sleeping."""

from __future__ import annotations

import asyncio
import functools
import itertools
import re
from collections.abc import Callable, Coroutine
from dataclasses import replace
from typing import Any

import pytest

from odradek.cluster.metadata import MetadataUnavailableError
from odradek.coordinator.transaction.metadata import TransactionMetadata
from odradek.coordinator.transaction.records import TransactionLogKey, TransactionLogValue
from odradek.coordinator.transaction.shard import TransactionCoordinatorShard
from odradek.coordinator.transaction.state import TransactionState
from odradek.coordinator.transaction.values import (
    EndTxnResult,
    InitProducerIdResult,
    ListFilter,
    ProducerIdAndEpoch,
    TransactionConfig,
)
from odradek.protocol.errors import ErrorCode
from odradek.protocol.types import TopicPartition
from tests.unit.coordinator.transaction.fakes import FakeMarkers, FakeWriter, ManualClock, settle

TXN = "txn-1"
TIMEOUT = 60_000
COORDINATOR_EPOCH = 7
FIRST_PID = 1000
T0 = TopicPartition("t", 0)
T1 = TopicPartition("t", 1)
U0 = TopicPartition("u", 0)


def run_async(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    @functools.wraps(test)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        asyncio.run(test(*args, **kwargs))

    return wrapper


class Harness:
    def __init__(self, **config: Any) -> None:
        self.clock = ManualClock()
        self.writer = FakeWriter()
        self.markers = FakeMarkers()
        self.producer_ids = itertools.count(FIRST_PID)
        self.sleeps: list[float] = []
        self.shard = self.new_shard(**config)

    def new_shard(self, **config: Any) -> TransactionCoordinatorShard:
        return TransactionCoordinatorShard(
            partition=3,
            coordinator_epoch=COORDINATOR_EPOCH,
            config=TransactionConfig(**config),
            clock=self.clock,
            writer=self.writer,
            markers=self.markers,
            producer_ids=lambda: next(self.producer_ids),
            sleep=self.sleep,
        )

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await asyncio.sleep(0)

    def meta(self, transactional_id: str = TXN) -> TransactionMetadata:
        return self.shard.transactions[transactional_id]

    async def init(
        self,
        transactional_id: str = TXN,
        timeout: int = TIMEOUT,
        expected: ProducerIdAndEpoch | None = None,
    ) -> InitProducerIdResult:
        return await self.shard.init_producer_id(transactional_id, timeout, expected)

    async def begin(self, *partitions: TopicPartition, transactional_id: str = TXN) -> None:
        """InitProducerId then AddPartitionsToTxn: an Ongoing transaction."""
        result = await self.init(transactional_id)
        assert result.error is ErrorCode.none
        added = await self.shard.add_partitions(
            transactional_id, result.producer_id, result.producer_epoch, partitions or (T0,)
        )
        assert added is ErrorCode.none

    async def add(self, *partitions: TopicPartition, epoch: int | None = None) -> ErrorCode:
        meta = self.meta()
        return await self.shard.add_partitions(
            TXN, meta.producer_id, meta.producer_epoch if epoch is None else epoch, partitions
        )

    async def end(self, *, commit: bool, epoch: int | None = None) -> EndTxnResult:
        meta = self.meta()
        return await self.shard.end_transaction(
            TXN, meta.producer_id, meta.producer_epoch if epoch is None else epoch, commit=commit
        )


# -- InitProducerId ------------------------------------------------------------------------


@run_async
async def test_new_transactional_id_gets_a_producer_id_at_epoch_0() -> None:
    h = Harness()
    result = await h.init()
    assert result == InitProducerIdResult(ErrorCode.none, FIRST_PID, 0)
    meta = h.meta()
    assert meta.state is TransactionState.EMPTY and meta.pending_state is None
    assert meta.txn_timeout_ms == TIMEOUT
    [(key, value)] = h.writer.decoded()
    assert key == TransactionLogKey(TXN)
    assert value == TransactionLogValue(
        producer_id=FIRST_PID,
        producer_epoch=0,
        transaction_timeout_ms=TIMEOUT,
        state=TransactionState.EMPTY,
        last_update_timestamp_ms=h.clock.now,
        start_timestamp_ms=-1,
    )
    assert h.writer.timeouts == [TIMEOUT], "a transition waits for its ISR up to the txn timeout"


@run_async
async def test_init_again_bumps_the_epoch_and_keeps_the_producer_id() -> None:
    h = Harness()
    await h.init()
    assert await h.init(timeout=5_000) == InitProducerIdResult(ErrorCode.none, FIRST_PID, 1)
    assert h.meta().txn_timeout_ms == 5_000
    assert h.meta().last_producer_epoch == -1


@pytest.mark.parametrize("timeout", [0, -1, 900_001])
@run_async
async def test_init_refuses_a_timeout_out_of_range(timeout: int) -> None:
    h = Harness()
    assert (await h.init(timeout=timeout)).error is ErrorCode.invalid_transaction_timeout
    assert (await h.init(timeout=900_000)).error is ErrorCode.none


@run_async
async def test_init_refuses_an_empty_transactional_id() -> None:
    h = Harness()
    assert (await h.init("")).error is ErrorCode.invalid_request
    assert h.writer.records == []


@run_async
async def test_init_on_an_ongoing_transaction_fences_and_aborts_it() -> None:
    h = Harness()
    await h.begin(T0, T1)
    old = h.meta().producer_epoch
    result = await h.init()
    assert result.error is ErrorCode.concurrent_transactions, "the new producer retries"
    assert h.meta().producer_epoch == old + 1
    assert h.writer.states()[-1] == "PrepareAbort"
    assert h.writer.decoded()[-1][1].producer_epoch == old + 1  # type: ignore[union-attr]
    await h.shard.wait_idle()
    assert h.markers.calls == [(FIRST_PID, old + 1, False, COORDINATOR_EPOCH, frozenset({T0, T1}))]
    assert h.writer.states()[-2:] == ["PrepareAbort", "CompleteAbort"]
    # The fenced producer is told so; the new one gets the next epoch on its retry.
    assert await h.add(T0, epoch=old) is ErrorCode.producer_fenced
    assert await h.init() == InitProducerIdResult(ErrorCode.none, FIRST_PID, old + 2)


@run_async
async def test_init_while_a_transaction_is_being_completed_is_concurrent() -> None:
    h = Harness()
    await h.begin()
    h.markers.gate.close()
    assert (await h.end(commit=True)).error is ErrorCode.none
    await settle()
    assert h.meta().state is TransactionState.PREPARE_COMMIT
    assert (await h.init()).error is ErrorCode.concurrent_transactions
    h.markers.gate.open()
    await h.shard.wait_idle()
    assert (await h.init()).error is ErrorCode.none


@run_async
async def test_exhausted_epoch_rotates_the_producer_id() -> None:
    h = Harness()
    await h.init()
    h.meta().producer_epoch = 32766  # Short.MaxValue - 1: exhausted
    assert await h.init() == InitProducerIdResult(ErrorCode.none, FIRST_PID + 1, 0)
    meta = h.meta()
    assert meta.previous_producer_id == FIRST_PID
    assert meta.last_producer_epoch == -1, "a new producer: no last epoch recorded"


@run_async
async def test_kip_360_bump_with_an_exhausted_epoch_keeps_the_last_epoch_for_retries() -> None:
    h = Harness()
    await h.init()
    h.meta().producer_epoch = 32766
    expected = ProducerIdAndEpoch(FIRST_PID, 32766)
    assert await h.init(expected=expected) == InitProducerIdResult(ErrorCode.none, FIRST_PID + 1, 0)
    assert h.meta().last_producer_epoch == 32766
    # The answer was lost; the producer asks again with what it had: the same answer.
    assert await h.init(expected=expected) == InitProducerIdResult(ErrorCode.none, FIRST_PID + 1, 0)


@run_async
async def test_kip_360_epoch_checks() -> None:
    h = Harness()
    await h.init()
    assert await h.init(expected=ProducerIdAndEpoch(FIRST_PID, 0)) == InitProducerIdResult(
        ErrorCode.none, FIRST_PID, 1
    )
    assert h.meta().last_producer_epoch == 0
    # A retry of that bump (its answer lost) gets the same epoch, not another bump.
    assert await h.init(expected=ProducerIdAndEpoch(FIRST_PID, 0)) == InitProducerIdResult(
        ErrorCode.none, FIRST_PID, 1
    )
    # Another producer id, or an epoch neither current nor last: fenced.
    assert (await h.init(expected=ProducerIdAndEpoch(FIRST_PID + 50, 1))).error is (
        ErrorCode.producer_fenced
    )
    await h.init()  # a new instance: epoch 2, last epoch forgotten
    assert (await h.init(expected=ProducerIdAndEpoch(FIRST_PID, 0))).error is (
        ErrorCode.producer_fenced
    )
    assert h.meta().pending_state is None


@run_async
async def test_kip_360_on_a_new_id_takes_the_new_producer_id() -> None:
    h = Harness()
    result = await h.init(expected=ProducerIdAndEpoch(77, 4))
    assert result == InitProducerIdResult(ErrorCode.none, FIRST_PID, 0)


@run_async
async def test_producer_id_allocation_failure_is_retriable() -> None:
    h = Harness()

    def broken() -> int:
        raise MetadataUnavailableError("ZooKeeper is away")

    h.shard.producer_ids = broken
    assert (await h.init()).error is ErrorCode.coordinator_not_available
    assert TXN not in h.shard.transactions


# -- AddPartitionsToTxn / AddOffsetsToTxn --------------------------------------------------


@run_async
async def test_add_partitions_starts_a_transaction() -> None:
    h = Harness()
    await h.init()
    started = h.clock.now
    assert await h.add(T0) is ErrorCode.none
    meta = h.meta()
    assert meta.state is TransactionState.ONGOING
    assert meta.partitions == {T0}
    assert meta.txn_start_timestamp == started
    h.clock.advance(500)
    assert await h.add(T1, U0) is ErrorCode.none
    assert meta.partitions == {T0, T1, U0}
    assert meta.txn_start_timestamp == started, "the transaction started with its first partition"
    assert meta.txn_last_update_timestamp == started + 500
    assert h.writer.states() == ["Empty", "Ongoing", "Ongoing"]
    value = h.writer.decoded()[-1][1]
    assert value is not None and value.partitions == {T0, T1, U0}


@run_async
async def test_adding_partitions_already_in_writes_nothing() -> None:
    h = Harness()
    await h.begin(T0, T1)
    written = len(h.writer.records)
    assert await h.add(T1) is ErrorCode.none
    assert len(h.writer.records) == written


@run_async
async def test_add_partitions_checks_the_producer() -> None:
    h = Harness()
    assert await h.shard.add_partitions(TXN, 1, 0, [T0]) is ErrorCode.invalid_producer_id_mapping
    await h.init()
    assert await h.shard.add_partitions(TXN, 999, 0, [T0]) is ErrorCode.invalid_producer_id_mapping
    assert await h.add(T0, epoch=5) is ErrorCode.producer_fenced
    assert await h.shard.add_partitions("", FIRST_PID, 0, [T0]) is ErrorCode.invalid_request


@run_async
async def test_add_partitions_after_a_completed_transaction_starts_the_next() -> None:
    h = Harness()
    await h.begin(T0)
    await h.end(commit=True)
    await h.shard.wait_idle()
    assert h.meta().state is TransactionState.COMPLETE_COMMIT
    h.clock.advance(1_000)
    assert await h.add(T1) is ErrorCode.none
    assert h.meta().partitions == {T1}
    assert h.meta().txn_start_timestamp == h.clock.now


@run_async
async def test_add_partitions_while_preparing_is_concurrent() -> None:
    h = Harness()
    await h.begin(T0)
    h.markers.gate.close()
    await h.end(commit=True)
    assert await h.add(T1) is ErrorCode.concurrent_transactions
    h.markers.gate.open()
    await h.shard.wait_idle()


@run_async
async def test_verify_partitions() -> None:
    h = Harness()
    await h.begin(T0)
    pid, epoch = h.meta().producer_id, h.meta().producer_epoch
    assert h.shard.verify_partitions(TXN, pid, epoch, [T0, T1]) == {
        T0: ErrorCode.none,
        T1: ErrorCode.transaction_abortable,
    }
    assert h.shard.verify_partitions(TXN, pid, epoch + 1, [T0]) == {T0: ErrorCode.producer_fenced}
    assert h.shard.verify_partitions(TXN, pid + 1, epoch, [T0]) == {
        T0: ErrorCode.invalid_producer_id_mapping
    }
    assert h.shard.verify_partitions("other", pid, epoch, [T0]) == {
        T0: ErrorCode.invalid_producer_id_mapping
    }
    assert len(h.writer.records) == 2, "verification writes nothing"


# -- EndTxn --------------------------------------------------------------------------------


@pytest.mark.parametrize("commit", [True, False])
@run_async
async def test_end_writes_prepare_answers_then_markers_then_complete(commit: bool) -> None:
    h = Harness()
    await h.begin(T0, U0)
    h.markers.gate.close()
    result = await h.end(commit=commit)
    assert result == EndTxnResult(ErrorCode.none, FIRST_PID, 0)
    outcome = "Commit" if commit else "Abort"
    prepare, complete = f"Prepare{outcome}", f"Complete{outcome}"
    # Answered once Prepare* is written; the markers are still on their way.
    assert h.writer.states()[-1] == prepare
    await settle()
    assert h.markers.calls == [(FIRST_PID, 0, commit, COORDINATOR_EPOCH, frozenset({T0, U0}))]
    meta = h.meta()
    assert meta.state.kafka_name == prepare and meta.pending_state is not None
    h.markers.gate.open()
    await h.shard.wait_idle()
    assert h.writer.states()[-1] == complete
    assert meta.state.kafka_name == complete
    assert meta.partitions == set() and meta.pending_state is None
    last = h.writer.decoded()[-1][1]
    assert last is not None and last.partitions == frozenset()
    assert last.start_timestamp_ms == meta.txn_start_timestamp != -1


@run_async
async def test_end_retried_after_completion_gets_the_same_answer() -> None:
    h = Harness()
    await h.begin()
    await h.end(commit=True)
    await h.shard.wait_idle()
    written = len(h.writer.records)
    assert await h.end(commit=True) == EndTxnResult(ErrorCode.none, FIRST_PID, 0)
    assert (await h.end(commit=False)).error is ErrorCode.invalid_txn_state
    assert len(h.writer.records) == written


@run_async
async def test_end_without_a_transaction_is_an_invalid_state() -> None:
    h = Harness()
    await h.init()
    assert (await h.end(commit=True)).error is ErrorCode.invalid_txn_state
    assert (await h.end(commit=False)).error is ErrorCode.invalid_txn_state


@run_async
async def test_end_while_markers_are_being_written_is_concurrent() -> None:
    h = Harness()
    await h.begin()
    h.markers.gate.close()
    await h.end(commit=True)
    assert (await h.end(commit=True)).error is ErrorCode.concurrent_transactions
    assert (await h.end(commit=False)).error is ErrorCode.concurrent_transactions
    h.markers.gate.open()
    await h.shard.wait_idle()


@run_async
async def test_end_in_a_prepared_state_without_pending_work() -> None:
    """Loaded PrepareCommit before its completion is resumed: the same result is
    CONCURRENT_TRANSACTIONS, the other INVALID_TXN_STATE."""
    h = Harness()
    h.shard.replay(TransactionLogKey(TXN), prepared_value(TransactionState.PREPARE_COMMIT))
    assert (await h.end(commit=True)).error is ErrorCode.concurrent_transactions
    assert (await h.end(commit=False)).error is ErrorCode.invalid_txn_state


@run_async
async def test_end_checks_the_producer() -> None:
    h = Harness()
    assert (await h.shard.end_transaction(TXN, 1, 0, commit=True)).error is (
        ErrorCode.invalid_producer_id_mapping
    )
    await h.begin()
    assert (await h.shard.end_transaction(TXN, 5, 0, commit=True)).error is (
        ErrorCode.invalid_producer_id_mapping
    )
    assert (await h.end(commit=True, epoch=1)).error is ErrorCode.producer_fenced
    assert (await h.end(commit=True, epoch=-1)).error is ErrorCode.producer_fenced
    assert h.meta().state is TransactionState.ONGOING


# -- pending writes ------------------------------------------------------------------------


@run_async
async def test_requests_during_a_pending_write_are_concurrent() -> None:
    h = Harness()
    await h.init()
    h.writer.gate.close()
    adding = asyncio.create_task(h.add(T0))
    await settle()
    assert h.meta().pending_state is TransactionState.ONGOING
    assert await h.add(T1) is ErrorCode.concurrent_transactions
    assert (await h.init()).error is ErrorCode.concurrent_transactions
    assert (await h.end(commit=True)).error is ErrorCode.concurrent_transactions
    h.writer.gate.open()
    assert await adding is ErrorCode.none
    assert h.meta().partitions == {T0}


@run_async
async def test_init_pending_write_blocks_a_second_init() -> None:
    h = Harness()
    h.writer.gate.close()
    first = asyncio.create_task(h.init())
    await settle()
    assert (await h.init()).error is ErrorCode.concurrent_transactions
    h.writer.gate.open()
    assert (await first).error is ErrorCode.none
    assert h.meta().producer_epoch == 0


@pytest.mark.parametrize(
    ("append_error", "answer"),
    [
        (ErrorCode.not_enough_replicas, ErrorCode.coordinator_not_available),
        (ErrorCode.not_enough_replicas_after_append, ErrorCode.coordinator_not_available),
        (ErrorCode.request_timed_out, ErrorCode.coordinator_not_available),
        (ErrorCode.unknown_topic_or_partition, ErrorCode.coordinator_not_available),
        (ErrorCode.not_leader_or_follower, ErrorCode.not_coordinator),
        (ErrorCode.kafka_storage_error, ErrorCode.not_coordinator),
        (ErrorCode.message_too_large, ErrorCode.unknown_server_error),
    ],
)
@run_async
async def test_a_failed_write_answers_kafkas_error_and_leaves_no_pending_state(
    append_error: ErrorCode, answer: ErrorCode
) -> None:
    h = Harness()
    await h.init()
    h.writer.failures = [append_error]
    assert await h.add(T0) is answer
    meta = h.meta()
    assert meta.pending_state is None and meta.state is TransactionState.EMPTY
    assert meta.partitions == set()
    assert await h.add(T0) is ErrorCode.none, "the retry goes through"


@run_async
async def test_a_failed_first_init_leaves_an_id_that_works_next_time() -> None:
    h = Harness()
    h.writer.failures = [ErrorCode.not_enough_replicas]
    assert (await h.init()).error is ErrorCode.coordinator_not_available
    assert h.meta().producer_epoch == -1
    assert await h.init() == InitProducerIdResult(ErrorCode.none, FIRST_PID, 0)


@run_async
async def test_unload_during_a_write_answers_not_coordinator() -> None:
    h = Harness()
    await h.init()
    h.writer.gate.close()
    adding = asyncio.create_task(h.add(T0))
    await settle()
    h.shard.unload()
    h.writer.gate.open()
    assert await adding is ErrorCode.not_coordinator
    assert (await h.init()).error is ErrorCode.not_coordinator


@run_async
async def test_unload_cancels_the_marker_round() -> None:
    h = Harness()
    await h.begin()
    h.markers.gate.close()
    await h.end(commit=True)
    await settle()
    tasks = h.shard.unload()
    assert len(tasks) == 1
    await asyncio.wait(tasks)
    assert all(task.cancelled() for task in tasks)
    assert h.writer.states()[-1] == "PrepareCommit", "the next coordinator completes it"


@run_async
async def test_completion_write_is_retried_while_the_coordinator_is_unavailable() -> None:
    h = Harness(retry_backoff_ms=250)
    await h.begin()
    h.markers.gate.close()
    await h.end(commit=True)
    h.writer.failures = [ErrorCode.not_enough_replicas, ErrorCode.request_timed_out]
    h.markers.gate.open()
    await settle()
    await h.shard.wait_idle()
    assert h.writer.states()[-1] == "CompleteCommit"
    assert h.sleeps == [0.25, 0.25]
    assert h.meta().state is TransactionState.COMPLETE_COMMIT


@run_async
async def test_completion_write_failing_otherwise_is_dropped() -> None:
    h = Harness()
    await h.begin()
    h.markers.gate.close()
    await h.end(commit=True)
    h.writer.failures = [ErrorCode.not_leader_or_follower]
    h.markers.gate.open()
    await h.shard.wait_idle()
    assert h.writer.states()[-1] == "PrepareCommit"
    assert h.meta().pending_state is None


@run_async
async def test_markers_given_up_leave_the_transaction_prepared() -> None:
    h = Harness()
    await h.begin()
    h.markers.fail_with = ErrorCode.transaction_coordinator_fenced
    await h.end(commit=True)
    await h.shard.wait_idle()
    assert h.meta().state is TransactionState.PREPARE_COMMIT
    assert (await h.init()).error is ErrorCode.concurrent_transactions


# -- timeouts ------------------------------------------------------------------------------


@run_async
async def test_a_transaction_past_its_timeout_is_fenced_and_aborted() -> None:
    h = Harness()
    await h.init(timeout=1_000)
    await h.add(T0)
    h.clock.advance(1_000)
    assert h.shard.abort_timed_out_transactions() == [], "start + timeout must be passed"
    h.clock.advance(1)
    assert h.shard.abort_timed_out_transactions() == [TXN]
    await h.shard.wait_idle()
    assert h.writer.states()[-2:] == ["PrepareAbort", "CompleteAbort"]
    assert h.markers.calls == [(FIRST_PID, 1, False, COORDINATOR_EPOCH, frozenset({T0}))]
    meta = h.meta()
    assert meta.state is TransactionState.COMPLETE_ABORT and meta.producer_epoch == 1
    # The coordinator's own abort carries the cluster's transaction version, as Kafka's.
    prepare = h.writer.decoded()[-2][1]
    assert prepare is not None and prepare.client_transaction_version == 1
    # The producer of epoch 0 is fenced.
    assert (await h.end(commit=True, epoch=0)).error is ErrorCode.producer_fenced
    assert await h.add(T1, epoch=0) is ErrorCode.producer_fenced
    assert h.shard.abort_timed_out_transactions() == []


@run_async
async def test_timed_out_abort_skips_transactions_with_pending_work() -> None:
    h = Harness()
    await h.init(timeout=1_000)
    h.writer.gate.close()
    adding = asyncio.create_task(h.add(T0))
    await settle()
    h.clock.advance(5_000)
    assert h.shard.abort_timed_out_transactions() == []
    h.writer.gate.open()
    await adding


@run_async
async def test_a_failed_epoch_fence_is_not_bumped_twice() -> None:
    h = Harness()
    await h.init(timeout=1_000)
    await h.add(T0)
    h.clock.advance(2_000)
    h.writer.failures = [ErrorCode.not_enough_replicas]
    h.shard.abort_timed_out_transactions()
    await h.shard.wait_idle()
    meta = h.meta()
    assert meta.state is TransactionState.ONGOING and meta.pending_state is None
    assert meta.producer_epoch == 1 and meta.has_failed_epoch_fence
    h.shard.abort_timed_out_transactions()
    await h.shard.wait_idle()
    assert meta.state is TransactionState.COMPLETE_ABORT
    assert meta.producer_epoch == 1, "the epoch of the failed fence, reused"
    assert not meta.has_failed_epoch_fence


# -- expiry --------------------------------------------------------------------------------


@run_async
async def test_idle_transactional_ids_expire_with_a_tombstone() -> None:
    h = Harness(transactional_id_expiration_ms=10_000)
    await h.init("idle")
    await h.begin(T0, transactional_id="busy")
    await h.init("done")
    await h.shard.add_partitions("done", FIRST_PID + 2, 0, [T1])
    await h.shard.end_transaction("done", FIRST_PID + 2, 0, commit=False)
    await h.shard.wait_idle()
    h.clock.advance(9_999)
    assert await h.shard.remove_expired_transactional_ids() == []
    h.clock.advance(1)
    assert sorted(await h.shard.remove_expired_transactional_ids()) == ["done", "idle"]
    assert set(h.shard.transactions) == {"busy"}, "an ongoing transaction never expires"
    tombstones = [key.transactional_id for key, value in h.writer.decoded() if value is None]
    assert sorted(tombstones) == ["done", "idle"]
    assert h.writer.timeouts[-1] == 30_000
    assert h.shard.describe("idle").error is ErrorCode.transactional_id_not_found


@run_async
async def test_expiry_write_failure_keeps_the_ids() -> None:
    h = Harness(transactional_id_expiration_ms=10)
    await h.init()
    h.clock.advance(100)
    h.writer.failures = [ErrorCode.not_enough_replicas]
    assert await h.shard.remove_expired_transactional_ids() == []
    assert h.meta().pending_state is None
    assert await h.shard.remove_expired_transactional_ids() == [TXN]


@run_async
async def test_tombstones_are_written_in_batches_below_the_size_limit() -> None:
    h = Harness(transactional_id_expiration_ms=10, max_batch_bytes=1_000)
    for index in range(40):
        await h.init(f"transactional-id-{index:03}")
    written = len(h.writer.records)
    calls: list[int] = []
    inner = h.writer.__call__

    async def counting(records: Any, timeout_ms: int) -> None:
        calls.append(len(records))
        await inner(records, timeout_ms)

    h.shard.writer = counting
    h.clock.advance(100)
    assert len(await h.shard.remove_expired_transactional_ids()) == 40
    assert len(calls) > 1 and sum(calls) == 40
    assert all(count * (18 + 32) + 61 <= 1_000 for count in calls)
    assert len(h.writer.records) == written + 40


# -- loading -------------------------------------------------------------------------------


def prepared_value(state: TransactionState) -> TransactionLogValue:
    return TransactionLogValue(
        producer_id=42,
        producer_epoch=3,
        transaction_timeout_ms=TIMEOUT,
        state=state,
        partitions=frozenset({T0, U0}),
        last_update_timestamp_ms=5,
        start_timestamp_ms=4,
    )


@run_async
async def test_replaying_the_written_records_reproduces_the_state() -> None:
    h = Harness(transactional_id_expiration_ms=50_000)
    await h.begin(T0, T1, transactional_id="a")
    await h.init("b")
    await h.shard.add_partitions("b", FIRST_PID + 1, 0, [U0])
    await h.shard.end_transaction("b", FIRST_PID + 1, 0, commit=True)
    await h.init("c")
    await h.shard.wait_idle()
    h.clock.advance(60_000)
    await h.init("d")
    assert sorted(await h.shard.remove_expired_transactional_ids()) == ["b", "c"]

    loaded = h.new_shard()
    for key, value in h.writer.decoded():
        loaded.replay(key, value)
    assert set(loaded.transactions) == set(h.shard.transactions) == {"a", "d"}
    for transactional_id, meta in h.shard.transactions.items():
        # The last epoch and previous producer id are not stored (nor are they in Kafka).
        assert loaded.transactions[transactional_id].as_transit() == replace(
            meta.as_transit(), last_producer_epoch=-1, previous_producer_id=-1
        )


@pytest.mark.parametrize("commit", [True, False])
@run_async
async def test_loading_completes_prepared_transactions(commit: bool) -> None:
    h = Harness()
    state = TransactionState.PREPARE_COMMIT if commit else TransactionState.PREPARE_ABORT
    h.shard.replay(TransactionLogKey("x"), prepared_value(TransactionState.ONGOING))
    h.shard.replay(TransactionLogKey(TXN), prepared_value(state))
    h.shard.replay(TransactionLogKey("gone"), prepared_value(TransactionState.COMPLETE_ABORT))
    h.shard.replay(TransactionLogKey("gone"), None)
    assert h.shard.finish_loading() == [TXN]
    assert (await h.init()).error is ErrorCode.concurrent_transactions
    await h.shard.wait_idle()
    assert h.markers.calls == [(42, 3, commit, COORDINATOR_EPOCH, frozenset({T0, U0}))]
    assert h.writer.states() == ["CompleteCommit" if commit else "CompleteAbort"]
    assert h.meta().state is (
        TransactionState.COMPLETE_COMMIT if commit else TransactionState.COMPLETE_ABORT
    )
    assert set(h.shard.transactions) == {"x", TXN}


@run_async
async def test_a_loaded_ongoing_transaction_times_out_from_its_start() -> None:
    h = Harness()
    value = prepared_value(TransactionState.ONGOING)
    h.shard.replay(TransactionLogKey(TXN), value)
    h.clock.now = value.start_timestamp_ms + TIMEOUT + 1
    assert h.shard.abort_timed_out_transactions() == [TXN]
    await h.shard.wait_idle()
    assert h.markers.calls == [(42, 4, False, COORDINATOR_EPOCH, frozenset({T0, U0}))]


# -- admin ---------------------------------------------------------------------------------


@run_async
async def test_describe() -> None:
    h = Harness()
    await h.begin(U0, T1, T0)
    description = h.shard.describe(TXN)
    assert description.error is ErrorCode.none
    assert description.state == "Ongoing"
    assert description.producer_id == FIRST_PID and description.producer_epoch == 0
    assert description.timeout_ms == TIMEOUT
    assert description.start_timestamp == h.meta().txn_start_timestamp
    assert description.partitions == (T0, T1, U0)
    assert h.shard.describe("nope").error is ErrorCode.transactional_id_not_found
    assert h.shard.describe("").error is ErrorCode.invalid_request


@run_async
async def test_list_filters() -> None:
    h = Harness()
    await h.init("empty")
    h.clock.advance(10)
    await h.begin(T0, transactional_id="old")
    h.clock.advance(5_000)
    await h.begin(T1, transactional_id="young")

    def listed(**filters: Any) -> list[str]:
        return sorted(t.transactional_id for t in h.shard.list_transactions(ListFilter(**filters)))

    assert listed() == ["empty", "old", "young"]
    assert listed(states=frozenset({TransactionState.ONGOING})) == ["old", "young"]
    assert listed(producer_ids=frozenset({FIRST_PID})) == ["empty"]
    assert listed(duration_ms=1_000) == ["empty", "old"], "Empty has no start: -1"
    assert listed(pattern=re.compile("o.*")) == ["old"]
    [listing] = [t for t in h.shard.list_transactions(ListFilter()) if t.transactional_id == "old"]
    assert (listing.producer_id, listing.state) == (FIRST_PID + 1, "Ongoing")
