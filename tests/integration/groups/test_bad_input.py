"""Group requests that Kafka refuses get Kafka's error codes, sent as raw kio requests.

A member is joined by hand (JoinGroup twice for KIP-394, then SyncGroup), and then
requests with an unknown member, a stale generation or a foreign protocol are sent.
"""

from __future__ import annotations

import datetime
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from kio.schema.errors import ErrorCode
from kio.schema.find_coordinator.v2.request import FindCoordinatorRequest
from kio.schema.heartbeat.v3.request import HeartbeatRequest
from kio.schema.join_group.v5.request import JoinGroupRequest, JoinGroupRequestProtocol
from kio.schema.offset_commit.v7.request import (
    OffsetCommitRequest,
    OffsetCommitRequestPartition,
    OffsetCommitRequestTopic,
)
from kio.schema.sync_group.v3.request import SyncGroupRequest, SyncGroupRequestAssignment
from kio.static.primitive import i8, i32, i64

from tests.integration.groups.members import name
from tests.support.broker import BrokerProcess
from tests.support.clients import create_topic
from tests.support.wire import WireClient

SESSION = datetime.timedelta(seconds=6)
REBALANCE = datetime.timedelta(seconds=10)


def subscription(topic: str) -> bytes:
    """A ConsumerProtocolSubscription v0: version, [topics], user data (null)."""
    encoded = topic.encode()
    return (
        b"\x00\x00" + b"\x00\x00\x00\x01" + len(encoded).to_bytes(2, "big") + encoded + b"\xff" * 4
    )


@dataclass
class Joined:
    member_id: str
    generation: int
    leader: str


def join(
    wire: WireClient,
    group: str,
    topic: str,
    *,
    member_id: str = "",
    protocol_type: str = "consumer",
    protocol: str = "range",
    session: datetime.timedelta = SESSION,
) -> Any:
    return wire.call(
        JoinGroupRequest(
            group_id=group,
            session_timeout=session,
            rebalance_timeout=REBALANCE,
            member_id=member_id,
            group_instance_id=None,
            protocol_type=protocol_type,
            protocols=(JoinGroupRequestProtocol(name=protocol, metadata=subscription(topic)),),
        )
    )


def join_member(wire: WireClient, group: str, topic: str) -> Joined:
    first = join(wire, group, topic)
    assert first.error_code == ErrorCode.member_id_required
    joined = join(wire, group, topic, member_id=first.member_id)
    assert joined.error_code == ErrorCode.none
    return Joined(joined.member_id, int(joined.generation_id), joined.leader)


def sync(wire: WireClient, group: str, joined: Joined, generation: int | None = None) -> Any:
    assignments = ()
    if joined.leader == joined.member_id:
        assignments = (SyncGroupRequestAssignment(member_id=joined.member_id, assignment=b""),)
    return wire.call(
        SyncGroupRequest(
            group_id=group,
            generation_id=i32(joined.generation if generation is None else generation),
            member_id=joined.member_id,
            group_instance_id=None,
            assignments=assignments,
        )
    )


def heartbeat(wire: WireClient, group: str, member_id: str, generation: int) -> ErrorCode:
    response = wire.call(
        HeartbeatRequest(
            group_id=group,
            generation_id=i32(generation),
            member_id=member_id,
            group_instance_id=None,
        )
    )
    code: ErrorCode = response.error_code
    return code


def commit(wire: WireClient, group: str, topic: str, member_id: str, generation: int) -> ErrorCode:
    response = wire.call(
        OffsetCommitRequest(
            group_id=group,
            generation_id_or_member_epoch=i32(generation),
            member_id=member_id,
            group_instance_id=None,
            topics=(
                OffsetCommitRequestTopic(
                    name=topic,
                    partitions=(
                        OffsetCommitRequestPartition(
                            partition_index=i32(0),
                            committed_offset=i64(1),
                            committed_leader_epoch=i32(-1),
                            committed_metadata=None,
                        ),
                    ),
                ),
            ),
        )
    )
    (partition,) = response.topics[0].partitions
    code: ErrorCode = partition.error_code
    return code


def setup(broker: BrokerProcess, prefix: str) -> tuple[str, str]:
    topic, group = name(prefix), name(f"{prefix}-g")
    create_topic(broker.bootstrap, topic, 1)
    with WireClient(broker.bootstrap) as wire:
        found = wire.call(FindCoordinatorRequest(key=group, key_type=i8(0)))
        assert found.error_code == ErrorCode.none
    return topic, group


def test_unknown_member_stale_generation_and_foreign_protocol(broker: BrokerProcess) -> None:
    topic, group = setup(broker, "bad")
    with WireClient(broker.bootstrap) as wire, WireClient(broker.bootstrap) as other:
        member = join_member(wire, group, topic)
        assert member.generation == 1 and member.leader == member.member_id
        assert sync(wire, group, member).error_code == ErrorCode.none

        assert heartbeat(wire, group, member.member_id, 1) == ErrorCode.none
        assert heartbeat(wire, group, "no-such-member", 1) == ErrorCode.unknown_member_id
        assert heartbeat(wire, group, member.member_id, 0) == ErrorCode.illegal_generation

        assert commit(wire, group, topic, member.member_id, 1) == ErrorCode.none
        assert commit(wire, group, topic, member.member_id, 0) == ErrorCode.illegal_generation
        assert commit(wire, group, topic, "no-such-member", 1) == ErrorCode.unknown_member_id
        assert sync(wire, group, member, generation=7).error_code == ErrorCode.illegal_generation

        # Another protocol type, or no protocol in common, cannot join this group.
        foreign = join(other, group, topic, protocol_type="connect")
        assert foreign.error_code == ErrorCode.inconsistent_group_protocol
        disjoint = join(other, group, topic, protocol="roundrobin")
        assert disjoint.error_code == ErrorCode.inconsistent_group_protocol
        short = join(other, group, topic, session=datetime.timedelta(seconds=1))
        assert short.error_code == ErrorCode.invalid_session_timeout
        # None of that disturbed the member.
        assert heartbeat(wire, group, member.member_id, 1) == ErrorCode.none


def test_rebalance_in_progress_answers(broker: BrokerProcess) -> None:
    topic, group = setup(broker, "rebal")
    with (
        WireClient(broker.bootstrap) as first_wire,
        WireClient(broker.bootstrap) as second_wire,
        ThreadPoolExecutor(2) as pool,
    ):
        first = join_member(first_wire, group, topic)
        assert sync(first_wire, group, first).error_code == ErrorCode.none

        # A second member joins: its JoinGroup waits until the first rejoins.
        second_join = pool.submit(join_member, second_wire, group, topic)
        deadline = datetime.datetime.now() + datetime.timedelta(seconds=10)
        while heartbeat(first_wire, group, first.member_id, 1) != ErrorCode.rebalance_in_progress:
            assert datetime.datetime.now() < deadline, "the group never started to rebalance"
        # Preparing a rebalance, the current generation may still commit (as Kafka allows).
        assert commit(first_wire, group, topic, first.member_id, 1) == ErrorCode.none

        rejoin = join(first_wire, group, topic, member_id=first.member_id)
        assert rejoin.error_code == ErrorCode.none and rejoin.generation_id == 2
        second = second_join.result(timeout=10)
        assert second.generation == 2
        # Completing the rebalance (the leader has not synced): commits must wait.
        assert commit(second_wire, group, topic, second.member_id, 2) == (
            ErrorCode.rebalance_in_progress
        )
