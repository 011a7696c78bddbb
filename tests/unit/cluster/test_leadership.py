"""Kafka's offline-partition leader election, as a pure function."""

from __future__ import annotations

from odradek.cluster.leadership import NO_LEADER, elect_offline_leader
from odradek.cluster.metadata import PartitionState


def state(leader: int, isr: tuple[int, ...], epoch: int = 3) -> PartitionState:
    return PartitionState(leader=leader, leader_epoch=epoch, replicas=(1, 2, 3), isr=isr)


def test_nothing_changes_while_everyone_is_alive() -> None:
    assert elect_offline_leader(state(1, (1, 2, 3)), {1, 2, 3}, unclean=False) is None


def test_dead_follower_leaves_the_isr_and_the_leader_epoch_stays() -> None:
    after = elect_offline_leader(state(1, (1, 2, 3)), {1, 3}, unclean=False)
    assert after is not None
    assert (after.leader, after.leader_epoch, after.isr) == (1, 3, (1, 3))


def test_dead_leader_is_replaced_by_the_first_live_isr_member_in_replica_order() -> None:
    after = elect_offline_leader(state(1, (3, 1, 2)), {2, 3}, unclean=False)
    assert after is not None
    assert (after.leader, after.leader_epoch, after.isr) == (2, 4, (3, 2))


def test_no_live_isr_member_leaves_the_partition_offline_keeping_the_last_leader() -> None:
    after = elect_offline_leader(state(1, (1,)), {2, 3}, unclean=False)
    assert after is not None
    assert (after.leader, after.isr) == (NO_LEADER, (1,))
    # Nothing more to do until a member of the ISR returns ...
    assert elect_offline_leader(after, {2, 3}, unclean=False) is None
    # ... and then it leads again, with a newer epoch.
    back = elect_offline_leader(after, {1, 2, 3}, unclean=False)
    assert back is not None and back.leader == 1 and back.leader_epoch > after.leader_epoch


def test_unclean_election_takes_any_live_replica() -> None:
    after = elect_offline_leader(state(1, (1,)), {3}, unclean=True)
    assert after is not None
    assert (after.leader, after.isr) == (3, (3,))
