"""GroupCoordinator answers a request that wrote to ``__consumer_offsets`` only once the
partition's ISR has the write (the high watermark passed it), as Kafka's coordinator
runtime holds a write's response until its records are committed: OffsetCommit,
SyncGroup's assignment, DeleteGroups, OffsetDelete. Errors go out at once; on a single
node (the high watermark at the log end) so does everything. A new leader epoch keeps
the loaded groups. Stub partition, manual timer: no broker, no network, no sleeping."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from odradek.coordinator.group.group import JoinResult, SyncResult
from odradek.coordinator.group.group_manager import JoinRequest, SyncRequest
from odradek.coordinator.group.offset_manager import OffsetToCommit
from odradek.coordinator.group.service import GroupCoordinator
from odradek.protocol.errors import ErrorCode
from odradek.protocol.types import TopicPartition
from tests.unit.coordinator.fakes import ManualTime
from tests.unit.coordinator.group.stubs import (
    OFFSETS_TP,
    StubPartition,
    StubReplicaManager,
    coordinator,
)

TP = TopicPartition("in", 0)
DELAY = 3000  # group.initial.rebalance.delay.ms's default


class Broker:
    """A coordinator leading the one partition, its timer moved by hand."""

    def __init__(self, *, single_node: bool = False) -> None:
        self.partition = StubPartition(OFFSETS_TP, single_node=single_node)
        self.coord: GroupCoordinator = coordinator(self.partition)
        self.time = ManualTime()
        self.coord.timer = cast(Any, self.time)
        self.coord.became_leader(cast(Any, self.partition))
        self.replication = cast(StubReplicaManager, self.coord.replica_manager)

    def hold(self) -> None:
        """From now on, writes wait for the ISR until ``release``."""
        self.replication.hold = True

    def commit(
        self, group: str, offset: int, generation: int = -1, member: str = ""
    ) -> list[dict[TopicPartition, ErrorCode]]:
        answers: list[dict[TopicPartition, ErrorCode]] = []
        self.coord.commit_offsets(
            group,
            [OffsetToCommit(TP, offset, -1, "")],
            answers.append,
            member_id=member,
            instance_id=None,
            generation_id=generation,
        )
        return answers

    def join(self, member_id: str = "") -> list[JoinResult]:
        answers: list[JoinResult] = []
        self.coord.join_group(
            JoinRequest(
                group_id="g",
                member_id=member_id,
                group_instance_id=None,
                client_id="c",
                client_host="/127.0.0.1",
                protocol_type="consumer",
                protocols=(("range", b""),),
                session_timeout_ms=10_000,
                rebalance_timeout_ms=30_000,
                require_known_member_id=False,
            ),
            answers.append,
        )
        return answers

    def sync(self, member_id: str, generation: int, assignment: bytes) -> list[SyncResult]:
        answers: list[SyncResult] = []
        self.coord.sync_group(
            SyncRequest(
                group_id="g",
                member_id=member_id,
                group_instance_id=None,
                generation_id=generation,
                protocol_type="consumer",
                protocol_name="range",
                assignments={member_id: assignment},
            ),
            answers.append,
        )
        return answers


async def turn() -> None:
    """Let the loop run the callbacks of completed futures."""
    for _ in range(3):
        await asyncio.sleep(0)


def test_offset_commit_is_answered_once_the_isr_has_it() -> None:
    async def scenario() -> None:
        broker = Broker()
        broker.hold()
        answers = broker.commit("g", 42)
        await turn()
        assert answers == []  # written and applied, not yet acknowledged
        assert broker.replication.awaited == [1]  # the log end after the write
        broker.replication.release()
        await turn()
        assert answers == [{TP: ErrorCode.none}]

    asyncio.run(scenario())


def test_a_failed_replication_is_the_commit_error() -> None:
    async def scenario() -> list[list[dict[TopicPartition, ErrorCode]]]:
        broker = Broker()
        broker.hold()
        outcomes = []
        for error in (ErrorCode.request_timed_out, ErrorCode.not_leader_or_follower):
            answers = broker.commit("g", 1)
            broker.replication.release(error)
            await turn()
            outcomes.append(answers)
        return outcomes

    assert asyncio.run(scenario()) == [
        [{TP: ErrorCode.coordinator_not_available}],  # the client retries
        [{TP: ErrorCode.not_coordinator}],  # the client finds the new coordinator
    ]


def test_errors_and_single_node_answers_go_out_at_once() -> None:
    async def scenario() -> None:
        broker = Broker()
        broker.hold()
        # Refused before writing: nothing to wait for.
        assert broker.commit("g", 1, generation=5, member="m") == [
            {TP: ErrorCode.illegal_generation}
        ]
        assert broker.replication.awaited == []
        single = Broker(single_node=True)
        single.hold()
        assert single.commit("g", 1) == [{TP: ErrorCode.none}]
        assert single.replication.awaited == []  # the high watermark was at the log end

    asyncio.run(scenario())


def _joined(broker: Broker) -> list[JoinResult]:
    """One member joins ``g`` and the initial rebalance delay passes."""
    answers = broker.join()
    broker.time.advance(DELAY)
    assert [a.error for a in answers] == [ErrorCode.none]
    return answers


def test_sync_group_assignment_is_answered_once_the_isr_has_it() -> None:
    async def scenario() -> None:
        broker = Broker()
        (joined,) = _joined(broker)
        broker.hold()
        synced = broker.sync(joined.member_id, joined.generation_id, b"all of it")
        await turn()
        assert synced == []
        assert broker.coord.shard_for("g").describe_group("g").state == "Stable"
        broker.replication.release()
        await turn()
        assert [(s.error, s.assignment) for s in synced] == [(ErrorCode.none, b"all of it")]

    asyncio.run(scenario())


def test_sync_group_gets_the_replication_error() -> None:
    async def scenario() -> list[SyncResult]:
        broker = Broker()
        (joined,) = _joined(broker)
        broker.hold()
        synced = broker.sync(joined.member_id, joined.generation_id, b"x")
        broker.replication.release(ErrorCode.request_timed_out)
        await turn()
        return synced

    assert asyncio.run(scenario()) == [SyncResult(ErrorCode.coordinator_not_available)]


def test_delete_groups_is_answered_once_the_isr_has_the_tombstones() -> None:
    async def scenario() -> None:
        broker = Broker()
        broker.commit("a", 1)
        broker.commit("b", 1)
        broker.hold()
        answers: list[list[ErrorCode]] = []
        broker.coord.delete_groups(["a", "unknown", "b", "a"], answers.append)
        await turn()
        assert answers == []
        broker.replication.release()
        await turn()
        assert answers == [
            [
                ErrorCode.none,
                ErrorCode.group_id_not_found,
                ErrorCode.none,
                ErrorCode.group_id_not_found,  # already deleted by the first
            ]
        ]
        broker.coord.delete_groups(["unknown"], answers.append)  # nothing written
        assert answers[-1] == [ErrorCode.group_id_not_found]

    asyncio.run(scenario())


def test_offset_delete_is_answered_once_the_isr_has_the_tombstones() -> None:
    async def scenario() -> None:
        broker = Broker()
        broker.commit("g", 1)
        broker.hold()
        answers: list[tuple[ErrorCode, dict[TopicPartition, ErrorCode]]] = []
        broker.coord.delete_offsets("g", [TP], answers.append)
        await turn()
        assert answers == []
        broker.replication.release(ErrorCode.request_timed_out)
        await turn()
        assert answers == [(ErrorCode.coordinator_not_available, {})]
        broker.coord.delete_offsets("unknown", [TP], answers.append)
        assert answers[-1] == (ErrorCode.group_id_not_found, {})

    asyncio.run(scenario())


def test_a_new_leader_epoch_keeps_the_loaded_groups() -> None:
    """Led on at a new epoch, the coordinator keeps its shard: a member waiting in
    JoinGroup is not told NOT_COORDINATOR, and nothing is loaded again."""
    broker = Broker()
    answers = broker.join()
    shard = broker.coord.shards[0]
    broker.coord.became_leader(cast(Any, broker.partition))  # the epoch bumped
    assert broker.coord.shards[0] is shard
    broker.time.advance(DELAY)
    assert [a.error for a in answers] == [ErrorCode.none]
