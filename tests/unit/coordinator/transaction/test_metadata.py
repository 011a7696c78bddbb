"""Transaction states and transitions as Kafka declares them; error codes by version."""

from __future__ import annotations

import pytest

from odradek.coordinator.transaction.errors import (
    ADD_OFFSETS_TO_TXN,
    ADD_PARTITIONS_TO_TXN,
    END_TXN,
    INIT_PRODUCER_ID,
    append_error,
    error_for_version,
)
from odradek.coordinator.transaction.metadata import (
    IllegalTransitionError,
    TransactionMetadata,
    is_epoch_exhausted,
)
from odradek.coordinator.transaction.state import TransactionState as S
from odradek.protocol.errors import ErrorCode
from odradek.protocol.types import TopicPartition

T0 = TopicPartition("t", 0)


def test_valid_previous_states_are_kafkas() -> None:
    assert {state: set(state.valid_previous_states) for state in S} == {
        S.EMPTY: {S.EMPTY, S.COMPLETE_COMMIT, S.COMPLETE_ABORT},
        S.ONGOING: {S.ONGOING, S.EMPTY, S.COMPLETE_COMMIT, S.COMPLETE_ABORT},
        S.PREPARE_COMMIT: {S.ONGOING},
        S.PREPARE_ABORT: {S.ONGOING, S.PREPARE_EPOCH_FENCE},
        S.COMPLETE_COMMIT: {S.PREPARE_COMMIT},
        S.COMPLETE_ABORT: {S.PREPARE_ABORT},
        S.DEAD: {S.EMPTY, S.COMPLETE_ABORT, S.COMPLETE_COMMIT},
        S.PREPARE_EPOCH_FENCE: {S.ONGOING},
    }
    assert [int(s) for s in S] == list(range(8))
    assert [s.kafka_name for s in S] == [
        "Empty",
        "Ongoing",
        "PrepareCommit",
        "PrepareAbort",
        "CompleteCommit",
        "CompleteAbort",
        "Dead",
        "PrepareEpochFence",
    ]
    assert S.from_kafka_name("PrepareAbort") is S.PREPARE_ABORT
    assert S.from_kafka_name("PREPARE_ABORT") is None
    assert {s for s in S if s.expiration_allowed} == {
        S.EMPTY,
        S.COMPLETE_COMMIT,
        S.COMPLETE_ABORT,
    }


def metadata(state: S = S.EMPTY, epoch: int = 0) -> TransactionMetadata:
    return TransactionMetadata(
        "id",
        producer_id=1,
        producer_epoch=epoch,
        txn_timeout_ms=1_000,
        txn_last_update_timestamp=0,
        state=state,
        partitions=() if state is S.EMPTY else (T0,),
        txn_start_timestamp=-1 if state is S.EMPTY else 0,
    )


def test_a_second_transition_while_one_is_pending_is_refused() -> None:
    meta = metadata()
    meta.prepare_add_partitions([T0], 5)
    with pytest.raises(IllegalTransitionError, match="pending"):
        meta.prepare_add_partitions([T0], 6)


@pytest.mark.parametrize("state", [S.EMPTY, S.COMPLETE_COMMIT, S.PREPARE_ABORT])
def test_commit_only_from_ongoing(state: S) -> None:
    with pytest.raises(IllegalTransitionError, match="not a valid transition"):
        metadata(state).prepare_abort_or_commit(S.PREPARE_COMMIT, 5)


def test_completing_a_transition_that_is_not_pending_is_refused() -> None:
    meta = metadata(S.ONGOING)
    transit = meta.prepare_abort_or_commit(S.PREPARE_COMMIT, 5)
    meta.pending_state = None
    with pytest.raises(IllegalTransitionError):
        meta.complete_transition(transit)


def test_fence_bumps_the_epoch_once_even_if_its_write_failed() -> None:
    meta = metadata(S.ONGOING, epoch=4)
    assert meta.prepare_fence_producer_epoch().producer_epoch == 5
    meta.pending_state = None
    meta.has_failed_epoch_fence = True
    meta.producer_epoch = 5
    assert meta.prepare_fence_producer_epoch().producer_epoch == 5


def test_epoch_limits() -> None:
    assert not is_epoch_exhausted(32765)
    assert is_epoch_exhausted(32766)
    with pytest.raises(IllegalTransitionError, match="overflow"):
        metadata(S.ONGOING, epoch=32767).prepare_fence_producer_epoch()
    with pytest.raises(IllegalTransitionError, match="no epochs left"):
        metadata(epoch=32766).prepare_increment_producer_epoch(1_000, None, 5)


@pytest.mark.parametrize(
    ("api", "first_with_producer_fenced"),
    [(INIT_PRODUCER_ID, 4), (ADD_PARTITIONS_TO_TXN, 2), (ADD_OFFSETS_TO_TXN, 2), (END_TXN, 2)],
)
def test_producer_fenced_for_old_clients(api: int, first_with_producer_fenced: int) -> None:
    for version in range(first_with_producer_fenced):
        assert error_for_version(ErrorCode.producer_fenced, api, version) is (
            ErrorCode.invalid_producer_epoch
        )
    assert error_for_version(ErrorCode.producer_fenced, api, first_with_producer_fenced) is (
        ErrorCode.producer_fenced
    )
    assert error_for_version(ErrorCode.concurrent_transactions, api, 0) is (
        ErrorCode.concurrent_transactions
    )


def test_append_errors() -> None:
    assert append_error(ErrorCode.none) is ErrorCode.none
    assert append_error(ErrorCode.not_enough_replicas) is ErrorCode.coordinator_not_available
    assert append_error(ErrorCode.not_leader_or_follower) is ErrorCode.not_coordinator
    assert append_error(ErrorCode.record_list_too_large) is ErrorCode.unknown_server_error
    assert append_error(ErrorCode.invalid_record) is ErrorCode.invalid_record
