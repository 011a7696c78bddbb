"""Partition reassignment (KIP-455) transitions as pure functions: growth, completion once
every target replica is in sync, cancellation, and Kafka's checks of a target."""

from __future__ import annotations

from dataclasses import replace

import pytest

from odradek.cluster.metadata import PartitionState
from odradek.cluster.reassignment import (
    InvalidReplicaAssignmentError,
    InvalidReplicationFactorError,
    NoReassignmentInProgressError,
    cancel_reassignment,
    check_target,
    complete_reassignment,
    start_reassignment,
)

LIVE = {1, 2, 3, 4, 5, 6}


def state(leader: int = 1, isr: tuple[int, ...] = (1, 2, 3)) -> PartitionState:
    return PartitionState(leader=leader, leader_epoch=7, replicas=(1, 2, 3), isr=isr)


def test_growth_puts_the_target_first_and_keeps_leader_and_isr() -> None:
    grown = start_reassignment(state(), [4, 5, 6], LIVE)
    assert grown.replicas == (4, 5, 6, 1, 2, 3)
    assert (grown.adding_replicas, grown.removing_replicas) == ((4, 5, 6), (1, 2, 3))
    assert (grown.leader, grown.leader_epoch, grown.isr) == (1, 7, (1, 2, 3))
    assert grown.target_replicas == (4, 5, 6)


def test_completion_waits_for_every_target_replica_in_the_isr() -> None:
    grown = start_reassignment(state(), [4, 5, 6], LIVE)
    assert complete_reassignment(grown, LIVE) is None
    partly = replace(grown, isr=(1, 2, 3, 4, 5))
    assert complete_reassignment(partly, LIVE) is None
    synced = replace(grown, isr=(1, 2, 3, 4, 5, 6))
    done = complete_reassignment(synced, LIVE)
    assert done is not None
    assert (done.replicas, done.isr, done.reassigning) == ((4, 5, 6), (4, 5, 6), False)
    # The leader was removed: the first live target replica in the ISR takes over.
    assert (done.leader, done.leader_epoch) == (4, 8)


def test_completion_keeps_a_leader_that_stays_and_bumps_its_epoch() -> None:
    grown = start_reassignment(state(leader=2), [2, 4], LIVE)
    synced = replace(grown, isr=(1, 2, 3, 4))
    done = complete_reassignment(synced, LIVE)
    assert done is not None
    assert (done.leader, done.leader_epoch, done.replicas, done.isr) == (2, 8, (2, 4), (2, 4))


def test_completion_waits_for_a_live_target_replica_to_lead() -> None:
    grown = start_reassignment(state(), [4], LIVE)
    synced = replace(grown, isr=(1, 4))
    assert complete_reassignment(synced, {1, 2, 3}) is None


def test_reorder_or_in_sync_shrink_completes_at_once() -> None:
    reordered = start_reassignment(state(), [3, 1, 2], LIVE)
    assert (reordered.replicas, reordered.reassigning, reordered.leader) == ((3, 1, 2), False, 1)
    shrunk = start_reassignment(state(leader=3), [1, 2], LIVE)
    assert (shrunk.replicas, shrunk.isr, shrunk.leader, shrunk.reassigning) == (
        (1, 2),
        (1, 2),
        1,
        False,
    )
    # Shrinking to a replica that is out of sync waits for it.
    waiting = start_reassignment(state(isr=(1, 3)), [1, 2], LIVE)
    assert waiting.reassigning and waiting.removing_replicas == (3,)


def test_a_new_target_replaces_an_ongoing_reassignment() -> None:
    grown = start_reassignment(state(), [4, 5, 6], LIVE)
    again = start_reassignment(grown, [1, 2, 4], LIVE)
    assert again.replicas == (1, 2, 4, 5, 6, 3)
    assert (again.adding_replicas, again.removing_replicas) == ((), (5, 6, 3))
    # Target replica 4 is not in sync yet: nothing completes.
    assert again.reassigning and complete_reassignment(again, LIVE) is None


def test_cancel_drops_the_adding_replicas_and_restores_the_original_set() -> None:
    grown = start_reassignment(state(), [4, 5, 6], LIVE)
    synced = replace(grown, isr=(1, 2, 3, 4))
    reverted = cancel_reassignment(synced, LIVE, unclean=False)
    assert (reverted.replicas, reverted.isr, reverted.leader) == ((1, 2, 3), (1, 2, 3), 1)
    assert not reverted.reassigning and reverted.leader_epoch == 8


def test_cancel_without_a_reassignment_or_needing_an_unclean_leader_is_refused() -> None:
    with pytest.raises(NoReassignmentInProgressError):
        cancel_reassignment(state(), LIVE, unclean=False)
    grown = start_reassignment(state(), [4], LIVE)
    only_new_in_sync = replace(grown, isr=(4,), leader=4)
    with pytest.raises(InvalidReplicaAssignmentError):
        cancel_reassignment(only_new_in_sync, LIVE, unclean=False)
    forced = cancel_reassignment(only_new_in_sync, LIVE, unclean=True)
    assert (forced.replicas, forced.isr, forced.leader) == ((1, 2, 3), (1,), 1)


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ([], "includes an empty replica list"),
        ([1, 9], "includes broker 9, but no such broker is registered"),
        ([2, 1, 2], "includes the broker 2 more than once"),
    ],
)
def test_bad_targets_get_kafkas_messages(target: list[int], message: str) -> None:
    with pytest.raises(InvalidReplicaAssignmentError, match=message):
        check_target(target, LIVE, 3)


def test_a_replication_factor_change_can_be_refused() -> None:
    check_target([1, 2], LIVE, 3)
    with pytest.raises(InvalidReplicationFactorError, match="changed from 3 to 2"):
        check_target([1, 2], LIVE, 3, allow_replication_factor_change=False)
