"""Preferred and unclean elections (ElectLeaders) and the controller's imbalance check,
as pure functions over partition states."""

from __future__ import annotations

import uuid

from odradek.cluster.brokers import LiveReplicas
from odradek.cluster.election import ElectionType, elect, preferred_leader_election
from odradek.cluster.leader_rebalance import rebalance_candidates
from odradek.cluster.metadata import PartitionState, TopicMetadata
from odradek.protocol.errors import ErrorCode


def state(
    leader: int, isr: tuple[int, ...], replicas: tuple[int, ...] = (1, 2, 3), epoch: int = 4
) -> PartitionState:
    return PartitionState(leader=leader, leader_epoch=epoch, replicas=replicas, isr=isr)


def topic(name: str, *partitions: PartitionState) -> TopicMetadata:
    return TopicMetadata(name=name, topic_id=uuid.uuid4(), partitions=partitions)


def alive(*brokers: int) -> LiveReplicas:
    """Live brokers, no replica offline."""
    return LiveReplicas(frozenset(brokers), {})


def test_preferred_replica_leads_again_with_a_new_epoch_and_the_same_isr() -> None:
    elected, result = elect(state(2, (2, 3, 1)), ElectionType.PREFERRED, {1, 2, 3})
    assert result.error is ErrorCode.none and result.leader == 1
    assert elected is not None
    assert (elected.leader, elected.leader_epoch, elected.isr) == (1, 5, (2, 3, 1))


def test_preferred_election_is_not_needed_when_the_preferred_replica_leads() -> None:
    elected, result = elect(state(1, (1, 2, 3)), ElectionType.PREFERRED, {1, 2, 3})
    assert (elected, result.error) == (None, ErrorCode.election_not_needed)


def test_preferred_replica_out_of_the_isr_or_dead_cannot_lead() -> None:
    _, out_of_sync = elect(state(2, (2, 3)), ElectionType.PREFERRED, {1, 2, 3})
    _, dead = elect(state(2, (2, 3, 1)), ElectionType.PREFERRED, {2, 3})
    assert out_of_sync.error is ErrorCode.preferred_leader_not_available
    assert dead.error is ErrorCode.preferred_leader_not_available
    assert preferred_leader_election(state(2, (2, 3)), {1, 2, 3}) is None


def test_unclean_election_only_for_partitions_without_a_live_leader() -> None:
    _, healthy = elect(state(2, (2,)), ElectionType.UNCLEAN, {1, 2, 3})
    assert healthy.error is ErrorCode.election_not_needed
    # The ISR's only member is dead: any live replica may lead, the ISR is itself.
    elected, result = elect(state(-1, (1,)), ElectionType.UNCLEAN, {3})
    assert result.error is ErrorCode.none and elected is not None
    assert (elected.leader, elected.isr) == (3, (3,))
    # A live ISR member is still preferred to an out-of-sync replica.
    elected, _ = elect(state(1, (3, 1)), ElectionType.UNCLEAN, {2, 3})
    assert elected is not None and elected.leader == 3


def test_unclean_election_with_no_live_replica_fails() -> None:
    elected, result = elect(state(-1, (3,), replicas=(3,)), ElectionType.UNCLEAN, {1, 2})
    assert result.error is ErrorCode.eligible_leaders_not_available
    assert elected is None or elected.leader == -1


def test_imbalance_above_the_percentage_moves_only_what_can_move() -> None:
    topics = [
        topic(
            "t",
            state(2, (1, 2, 3), replicas=(1, 2, 3)),  # preferred 1, led by 2: movable
            state(2, (2, 3), replicas=(1, 2, 3)),  # preferred 1 out of the ISR: stays
            state(2, (1, 2, 3), replicas=(2, 3, 1)),  # led by its preferred replica
            state(3, (3, 1, 2), replicas=(3, 1, 2)),
        )
    ]
    assert rebalance_candidates(topics, alive(1, 2, 3), 10) == {"t": [0]}
    # Broker 1 prefers 2 partitions and leads none: 100% is not above 100%.
    assert rebalance_candidates(topics, alive(1, 2, 3), 100) == {}
    # A dead preferred replica is no candidate, nor one in a failed log dir.
    assert rebalance_candidates(topics, alive(2, 3), 10) == {}
    (only,) = topics
    offline = LiveReplicas(frozenset({1, 2, 3}), {(only.topic_id, 0): frozenset({1})})
    assert rebalance_candidates(topics, offline, 10) == {}


def test_imbalance_at_or_below_the_percentage_moves_nothing() -> None:
    balanced_enough = [
        topic("a", *[state(1, (1, 2), replicas=(1, 2)) for _ in range(9)]),
        topic("b", state(2, (1, 2), replicas=(1, 2))),
    ]
    # Broker 1 leads 9 of its 10 preferred partitions: 10% is not above 10%.
    assert rebalance_candidates(balanced_enough, alive(1, 2), 10) == {}
    assert rebalance_candidates(balanced_enough, alive(1, 2), 9) == {"b": [0]}


def test_no_rebalance_while_a_reassignment_is_under_way() -> None:
    moving = PartitionState(
        leader=2,
        replicas=(1, 2, 3),
        isr=(1, 2),
        adding_replicas=(3,),
        removing_replicas=(),
    )
    topics = [topic("t", state(2, (1, 2, 3))), topic("m", moving)]
    assert rebalance_candidates(topics, alive(1, 2, 3), 10) == {}
