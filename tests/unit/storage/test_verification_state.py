"""Transaction verification state in a partition's producer state (KIP-890): the guard a
verification runs under, what ends it, the lowest-sequence rule and expiry."""

from __future__ import annotations

from pathlib import Path

import pytest

from odradek.storage.errors import OutOfOrderSequenceError
from odradek.storage.log import Log
from odradek.storage.verification import VerificationStateEntry

from .helpers import START_MS, Clock, partition_dir, small_config
from .test_transactions import end_txn, txn_batch

PID = 77


@pytest.fixture
def log(tmp_path: Path) -> Log:
    return Log.open(partition_dir(tmp_path), small_config(), clock=Clock())


def test_a_producer_with_its_transaction_open_needs_no_verification(log: Log) -> None:
    state = log.producer_state
    guard = state.maybe_start_verification(PID, 0, 0, START_MS)
    assert guard is not None
    assert state.verification_guard(PID) is guard
    log.append_as_leader(txn_batch([b"a"], PID, 0), 0)
    assert state.has_ongoing_transaction(PID, 0)
    assert state.verification_guard(PID) is None, "the first transactional write ends it"
    assert state.maybe_start_verification(PID, 1, 0, START_MS) is None
    # Another epoch's batch is verified again.
    assert not state.has_ongoing_transaction(PID, 1)
    assert state.maybe_start_verification(PID, 0, 1, START_MS) is not None


def test_a_marker_ends_the_verification_so_its_guard_is_stale(log: Log) -> None:
    state = log.producer_state
    log.append_as_leader(txn_batch([b"a"], PID, 0), 0)
    end_txn(log, PID, commit=False)
    first = state.maybe_start_verification(PID, 1, 0, START_MS)
    assert first is not None
    end_txn(log, PID, commit=False)  # the coordinator aborts meanwhile
    assert state.verification_guard(PID) is None
    second = state.maybe_start_verification(PID, 1, 0, START_MS)
    assert second is not None and second is not first


def test_batches_waiting_together_share_one_guard_and_the_lowest_sequence(log: Log) -> None:
    state = log.producer_state
    guard = state.maybe_start_verification(PID, 5, 0, START_MS)
    assert state.maybe_start_verification(PID, 3, 0, START_MS) is guard
    assert state.maybe_start_verification(PID, 9, 0, START_MS) is guard
    entry = state.verification_states[PID]
    assert (entry.lowest_sequence, entry.epoch) == (3, 0)
    # A higher sequence cannot overtake the lowest one waiting.
    with pytest.raises(OutOfOrderSequenceError):
        log.append_as_leader(txn_batch([b"late"], PID, 5), 0)
    assert log.log_end_offset == 0
    log.append_as_leader(txn_batch([b"first"], PID, 3), 0)
    assert state.verification_guard(PID) is None


def test_a_new_epoch_restarts_the_lowest_sequence() -> None:
    entry = VerificationStateEntry(START_MS, 7, 0)
    entry.maybe_update_lowest_sequence_and_epoch(9, 0)
    assert (entry.lowest_sequence, entry.epoch) == (7, 0)
    entry.maybe_update_lowest_sequence_and_epoch(12, 1)
    assert (entry.lowest_sequence, entry.epoch) == (12, 1)
    entry.maybe_update_lowest_sequence_and_epoch(3, 0)  # an older epoch changes nothing
    assert (entry.lowest_sequence, entry.epoch) == (12, 1)


def test_verifications_never_completed_expire_with_idle_producers(tmp_path: Path) -> None:
    clock = Clock()
    log = Log.open(
        partition_dir(tmp_path), small_config(), clock=clock, producer_id_expiration_ms=1000
    )
    state = log.producer_state
    state.maybe_start_verification(PID, 0, 0, clock())
    clock.advance(999)
    log.remove_expired_producers(clock())
    assert state.verification_guard(PID) is not None
    clock.advance(1)
    log.remove_expired_producers(clock())
    assert state.verification_guard(PID) is None
