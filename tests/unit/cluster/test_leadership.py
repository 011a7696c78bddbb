"""Kafka's offline-partition leader election, as a pure function, with dead brokers and
with replicas in a failed log dir of a live broker (reported in its registration)."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace

from odradek.cluster.brokers import LiveReplicas
from odradek.cluster.leadership import NO_LEADER, elect_offline_leader
from odradek.cluster.metadata import PartitionState, topic_id_to_base64
from odradek.cluster.zookeeper import znodes
from tests.unit.cluster.helpers import single_broker


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


# -- replicas in a failed log dir of a live broker ----------------------------------------


def test_offline_leader_replica_is_replaced_and_leaves_the_isr() -> None:
    after = elect_offline_leader(state(1, (1, 2, 3)), {1, 2, 3}, unclean=False, offline={1})
    assert after is not None
    assert (after.leader, after.leader_epoch, after.isr) == (2, 4, (2, 3))


def test_offline_follower_replica_leaves_the_isr_and_the_leader_epoch_stays() -> None:
    after = elect_offline_leader(state(1, (1, 2, 3)), {1, 2, 3}, unclean=False, offline={3})
    assert after is not None
    assert (after.leader, after.leader_epoch, after.isr) == (1, 3, (1, 2))
    assert elect_offline_leader(after, {1, 2, 3}, unclean=False, offline={3}) is None


def test_offline_replica_never_leads_while_offline() -> None:
    # The last ISR member's replica is offline: no leader, the ISR keeps it ...
    after = elect_offline_leader(state(1, (1,)), {1, 2, 3}, unclean=False, offline={1})
    assert after is not None
    assert (after.leader, after.isr) == (NO_LEADER, (1,))
    assert elect_offline_leader(after, {1, 2, 3}, unclean=False, offline={1}) is None
    # ... an unclean election takes another live replica, never the offline one ...
    unclean = elect_offline_leader(after, {1, 2, 3}, unclean=True, offline={1})
    assert unclean is not None and (unclean.leader, unclean.isr) == (2, (2,))
    # ... and once its broker is back with the dir fixed (no longer offline), it leads.
    back = elect_offline_leader(after, {1, 2, 3}, unclean=False)
    assert back is not None and back.leader == 1 and back.leader_epoch > after.leader_epoch


def test_unclean_election_skips_offline_replicas_and_dead_brokers() -> None:
    # 1 and 2 are dead, 3 is alive but its replica is offline: nobody can lead.
    after = elect_offline_leader(state(1, (1,)), {3}, unclean=True, offline={3})
    assert after is not None and (after.leader, after.isr) == (NO_LEADER, (1,))


def test_live_replicas_are_per_partition_and_per_topic_id() -> None:
    topic, recreated = uuid.uuid4(), uuid.uuid4()
    brokers = {
        1: single_broker(1),
        2: replace(single_broker(2), offline_replicas=frozenset({(topic, 0), (topic, 2)})),
        3: replace(single_broker(3), offline_replicas=frozenset({(topic, 0)})),
    }
    live = LiveReplicas.of(brokers)
    assert live.brokers == {1, 2, 3}
    assert live.offline_in(topic, 0) == {2, 3} and live.serving(topic, 0) == {1}
    assert live.serving(topic, 1) == {1, 2, 3}
    assert live.serving(topic, 2) == {1, 3}
    # A topic of the same name created again has another id: nothing of it is offline.
    assert live.serving(recreated, 0) == {1, 2, 3}


def test_offline_replicas_survive_the_registration_znode() -> None:
    topic = uuid.uuid4()
    registration = replace(
        single_broker(2, rack="r"), offline_replicas=frozenset({(topic, 0), (topic, 7)})
    )
    data = znodes.encode_broker(registration)
    assert json.loads(data)["offline_replicas"] == {topic_id_to_base64(topic): [0, 7]}
    assert znodes.decode_broker(2, data) == registration
    # Without offline replicas the znode is Kafka's, field for field.
    plain = znodes.encode_broker(single_broker(2))
    assert "offline_replicas" not in json.loads(plain)
    assert znodes.decode_broker(2, plain) == single_broker(2)
