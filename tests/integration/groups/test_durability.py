"""Committed offsets and group state survive a broker restart (SIGTERM) and kill -9.

Two groups before the restart: one Empty with committed offsets (its consumer closed),
one with a live member that keeps polling through the restart. Afterwards: OffsetFetch
and ``committed()`` return the same offsets, the Empty group is still there, the live
member carries on in the same generation (no rejoin), and a new consumer of the Empty
group resumes exactly where the old one stopped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from confluent_kafka import ConsumerGroupState, ConsumerGroupTopicPartitions, TopicPartition

from tests.integration.groups.members import Member, generations, join, name, poll_until
from tests.support.broker import BrokerProcess
from tests.support.clients import admin, create_topic, produce_acked

PARTITIONS = 3
COUNT = 60
HALF = COUNT // 2


@pytest.fixture
def members() -> Iterator[list[Member]]:
    started: list[Member] = []
    yield started
    for member in started:
        if not member.closed:
            member.consumer.close()


def committed(bootstrap: str, group: str) -> dict[int, int]:
    request = ConsumerGroupTopicPartitions(group)
    client = admin(bootstrap)  # must outlive the future
    fetched = client.list_consumer_group_offsets([request])[group].result(timeout=30)
    return {tp.partition: tp.offset for tp in fetched.topic_partitions}


def state(bootstrap: str, group: str) -> ConsumerGroupState:
    client = admin(bootstrap)  # must outlive the future
    described = client.describe_consumer_groups([group])[group].result(timeout=30)
    found: ConsumerGroupState = described.state
    return found


def read_half_and_commit(member: Member) -> None:
    poll_until([member], lambda: len(member.records) >= HALF, timeout=30, what="half the records")
    member.consumer.commit(asynchronous=False)


def positions(member: Member) -> set[tuple[int, int]]:
    return {(partition, offset) for partition, offset, _ in member.records}


@pytest.mark.parametrize("how", ["sigterm", "kill-9"])
def test_offsets_and_groups_survive_restart(
    group_broker_factory: Callable[..., BrokerProcess], members: list[Member], how: str
) -> None:
    broker = group_broker_factory()
    topic, idle_group, live_group = name("dur"), name("dur-idle"), name("dur-live")
    create_topic(broker.bootstrap, topic, PARTITIONS)
    acked = produce_acked(broker.bootstrap, topic, COUNT, partitions=PARTITIONS)
    everything = {(r.partition, r.offset) for r in acked}

    idle = join(broker.bootstrap, idle_group, topic, "idle")
    members.append(idle)
    read_half_and_commit(idle)
    idle_offsets = committed(broker.bootstrap, idle_group)
    idle.close()
    assert sum(idle_offsets.values()) == len(idle.records)

    live = join(broker.bootstrap, live_group, topic, "live")
    members.append(live)
    read_half_and_commit(live)
    live_offsets = committed(broker.bootstrap, live_group)
    assert sum(live_offsets.values()) == len(live.records)
    member_id = live.consumer.memberid()
    generations_before = generations(broker, live_group)

    if how == "kill-9":
        broker.kill()
        broker.start()
    else:
        broker.restart()

    assert committed(broker.bootstrap, idle_group) == idle_offsets
    assert committed(broker.bootstrap, live_group) == live_offsets
    assert state(broker.bootstrap, idle_group) == ConsumerGroupState.EMPTY

    # The live member was never told to rejoin: same member id, same generation, and it
    # reads the rest once.
    poll_until([live], lambda: len(live.records) >= COUNT, timeout=30, what="the rest")
    assert sorted(positions(live)) == sorted(everything) and len(live.records) == COUNT
    assert live.consumer.memberid() == member_id
    assert generations(broker, live_group) == generations_before
    assert state(broker.bootstrap, live_group) == ConsumerGroupState.STABLE
    tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    assert {tp.partition: tp.offset for tp in live.consumer.committed(tps, timeout=10)} == {
        p: live_offsets.get(p, -1001) for p in range(PARTITIONS)
    }

    # A new consumer of the idle group starts at its committed offsets.
    resumed = join(broker.bootstrap, idle_group, topic, "resumed")
    members.append(resumed)
    poll_until([resumed], lambda: len(resumed.records) >= COUNT - HALF, timeout=30, what="the rest")
    assert positions(resumed) == everything - positions(idle)
    first = {}
    for partition, offset, _ in resumed.records:
        first.setdefault(partition, offset)
    per_partition = COUNT // PARTITIONS
    unfinished = {p: o for p, o in idle_offsets.items() if o < per_partition}
    assert {p: first[p] for p in unfinished} == unfinished
