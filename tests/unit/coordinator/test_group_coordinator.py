"""The classic group state machine, driven by a manual clock: no network, no sleeping."""

from __future__ import annotations

from typing import Any

import pytest

from odradek.coordinator.group.group import JoinResult, SyncResult
from odradek.coordinator.group.group_manager import GroupConfig, JoinRequest, SyncRequest
from odradek.coordinator.group.offset_manager import OffsetConfig, OffsetToCommit
from odradek.coordinator.group.records import (
    GroupMetadataKey,
    GroupMetadataValue,
    OffsetCommitKey,
    partition_for,
)
from odradek.coordinator.group.shard import GroupCoordinatorShard
from odradek.protocol.errors import ErrorCode
from odradek.protocol.types import TopicPartition
from tests.unit.coordinator.fakes import ManualTime, RecordingWriter

SESSION = 10_000
REBALANCE = 30_000
DELAY = 3_000


def subscription(*topics: str) -> bytes:
    body = b"\x00\x00" + len(topics).to_bytes(4, "big")
    for topic in topics:
        body += len(topic).to_bytes(2, "big") + topic.encode()
    return body + b"\xff\xff\xff\xff"


class Harness:
    def __init__(self, **config: Any) -> None:
        self.time = ManualTime()
        self.writer = RecordingWriter()
        self.shard = GroupCoordinatorShard(
            GroupConfig(initial_rebalance_delay_ms=DELAY, **config),
            OffsetConfig(retention_ms=60_000),
            self.time.clock,
            self.time,
            self.writer,
        )

    def join(
        self,
        member_id: str = "",
        *,
        group: str = "g",
        instance: str | None = None,
        protocols: tuple[tuple[str, bytes], ...] = (("range", subscription("t")),),
        session: int = SESSION,
    ) -> list[JoinResult]:
        answers: list[JoinResult] = []
        self.shard.join_group(
            JoinRequest(
                group_id=group,
                member_id=member_id,
                group_instance_id=instance,
                client_id="client",
                client_host="/127.0.0.1",
                protocol_type="consumer",
                protocols=protocols,
                session_timeout_ms=session,
                rebalance_timeout_ms=REBALANCE,
                require_known_member_id=True,
            ),
            answers.append,
        )
        return answers

    def join_new(self, **kwargs: Any) -> tuple[str, list[JoinResult]]:
        """KIP-394: the first join gets an id, the second waits for the rebalance."""
        (first,) = self.join(**kwargs)
        assert first.error is ErrorCode.member_id_required
        return first.member_id, self.join(first.member_id, **kwargs)

    def sync(
        self,
        member_id: str,
        generation: int,
        assignments: dict[str, bytes] | None = None,
        group: str = "g",
        instance: str | None = None,
    ) -> list[SyncResult]:
        answers: list[SyncResult] = []
        self.shard.sync_group(
            SyncRequest(
                group_id=group,
                member_id=member_id,
                group_instance_id=instance,
                generation_id=generation,
                protocol_type="consumer",
                protocol_name="range",
                assignments=assignments or {},
            ),
            answers.append,
        )
        return answers

    def heartbeat(self, member_id: str, generation: int, instance: str | None = None) -> ErrorCode:
        return self.shard.heartbeat("g", member_id, instance, generation)

    def state(self, group: str = "g") -> str:
        return self.shard.describe_group(group).state

    def stable_group_of_one(self) -> tuple[str, int]:
        member, waiting = self.join_new()
        assert waiting == []
        self.time.advance(DELAY)
        (joined,) = waiting
        assert joined.error is ErrorCode.none and joined.leader == member
        (synced,) = self.sync(member, joined.generation_id, {member: b"all"})
        assert synced.assignment == b"all"
        return member, joined.generation_id


def test_first_member_waits_the_initial_delay_then_leads() -> None:
    h = Harness()
    member, waiting = h.join_new()
    assert h.state() == "PreparingRebalance"
    h.time.advance(DELAY - 1)
    assert waiting == []
    h.time.advance(1)
    (joined,) = waiting
    assert (joined.generation_id, joined.leader, joined.protocol_name) == (1, member, "range")
    assert [m[0] for m in joined.members] == [member]
    assert h.state() == "CompletingRebalance"
    (synced,) = h.sync(member, 1, {member: b"p0"})
    assert (synced.error, synced.assignment) == (ErrorCode.none, b"p0")
    assert h.state() == "Stable"
    assert h.heartbeat(member, 1) is ErrorCode.none


def test_newcomers_extend_the_initial_delay_up_to_the_rebalance_timeout() -> None:
    h = Harness()
    _, first = h.join_new()
    h.time.advance(DELAY - 100)
    _, second = h.join_new()
    h.time.advance(100)
    assert first == [] and second == [], "a newcomer extends the initial delay"
    h.time.advance(DELAY)
    assert first[0].generation_id == second[0].generation_id == 1


def test_second_member_triggers_a_rebalance_that_completes_when_all_rejoin() -> None:
    h = Harness()
    leader, generation = h.stable_group_of_one()
    newcomer, newcomer_join = h.join_new()
    assert h.heartbeat(leader, generation) is ErrorCode.rebalance_in_progress
    assert newcomer_join == []
    leader_join = h.join(leader)
    # Not the initial rebalance: no delay, complete as soon as everyone rejoined.
    assert leader_join[0].generation_id == newcomer_join[0].generation_id == generation + 1
    assert len(leader_join[0].members) == 2 and newcomer_join[0].members == ()
    follower_sync = h.sync(newcomer, generation + 1)
    assert follower_sync == [], "followers wait for the leader's assignment"
    h.sync(leader, generation + 1, {leader: b"a", newcomer: b"b"})
    assert follower_sync[0].assignment == b"b"


def test_session_expiry_removes_a_silent_member_and_rebalances() -> None:
    h = Harness()
    leader, generation = h.stable_group_of_one()
    other, other_join = h.join_new()
    h.join(leader)
    generation = other_join[0].generation_id
    h.sync(other, generation)
    h.sync(leader, generation, {leader: b"a", other: b"b"})
    for _ in range(3):
        h.time.advance(SESSION // 2)
        assert h.heartbeat(leader, generation) in (ErrorCode.none, ErrorCode.rebalance_in_progress)
    # `other` never heartbeated: it expired and the group is rebalancing without it.
    assert h.heartbeat(other, generation) is ErrorCode.unknown_member_id
    assert h.heartbeat(leader, generation) is ErrorCode.rebalance_in_progress
    (rejoined,) = h.join(leader)
    assert rejoined.generation_id == generation + 1 and len(rejoined.members) == 1


def stable_group_of_two(h: Harness) -> tuple[str, str, int]:
    leader, _ = h.stable_group_of_one()
    follower, follower_join = h.join_new()
    h.join(leader)
    generation = follower_join[0].generation_id
    h.sync(follower, generation)
    h.sync(leader, generation, {leader: b"a", follower: b"b"})
    assert h.state() == "Stable"
    return leader, follower, generation


def test_a_member_waiting_in_join_is_not_expired_by_its_session() -> None:
    """Kafka: members awaiting join or sync satisfy their heartbeats; the rebalance
    timeout, not the session timeout, bounds how long they wait for the others."""
    h = Harness()
    prompt, slow, generation = stable_group_of_two(h)
    _, newcomer_join = h.join_new()
    prompt_join = h.join(prompt)
    # `slow` heartbeats (so it stays) but takes 1.5 sessions to rejoin; `prompt` waits.
    for _ in range(3):
        h.time.advance(SESSION // 2)
        assert h.heartbeat(slow, generation) is ErrorCode.rebalance_in_progress
    assert prompt_join == [], "the prompt member was answered while the group rebalances"
    slow_join = h.join(slow)
    answers = prompt_join + slow_join + newcomer_join
    assert [a.error for a in answers] == [ErrorCode.none] * 3
    assert {a.generation_id for a in answers} == {generation + 1}
    assert len(prompt_join[0].members) == 3


def test_a_member_waiting_in_sync_is_not_expired_by_its_session() -> None:
    h = Harness()
    leader, follower, generation = stable_group_of_two(h)
    h.join(leader)  # the leader rejoins (say, metadata changed): everyone must
    (joined,) = h.join(follower)
    generation = joined.generation_id
    follower_sync = h.sync(follower, generation)
    # The leader takes 1.5 sessions to assign, heartbeating meanwhile (as clients do).
    for _ in range(3):
        h.time.advance(SESSION // 2)
        assert h.heartbeat(leader, generation) is ErrorCode.none
    assert follower_sync == []
    h.sync(leader, generation, {leader: b"a", follower: b"b"})
    assert [(r.error, r.assignment) for r in follower_sync] == [(ErrorCode.none, b"b")]
    assert h.heartbeat(follower, generation) is ErrorCode.none


def test_rebalance_timeout_drops_members_that_do_not_rejoin() -> None:
    h = Harness()
    leader, generation = h.stable_group_of_one()
    _, newcomer_join = h.join_new(session=REBALANCE * 2)
    h.time.advance(REBALANCE)
    (result,) = newcomer_join
    assert result.generation_id == generation + 1
    assert len(result.members) == 1, "the old leader did not rejoin and was dropped"
    assert h.heartbeat(leader, generation) is ErrorCode.unknown_member_id


def test_leave_group_rebalances_the_rest() -> None:
    h = Harness()
    leader, _ = h.stable_group_of_one()
    top, errors = h.shard.leave_group("g", [(leader, None), ("ghost", None)])
    assert top is ErrorCode.none
    assert errors == [ErrorCode.none, ErrorCode.unknown_member_id]
    assert h.state() == "Empty"
    assert h.shard.describe_group("g").members == ()


def test_static_member_rejoins_without_rebalance_and_fences_its_old_id() -> None:
    h = Harness()
    waiting = h.join(instance="i-1")
    assert waiting == [], "static members get no MEMBER_ID_REQUIRED round"
    h.time.advance(DELAY)
    old_id = waiting[0].member_id
    h.sync(old_id, 1, {old_id: b"mine"}, instance="i-1")
    assert h.state() == "Stable"
    (again,) = h.join(instance="i-1")
    assert again.error is ErrorCode.none
    assert again.generation_id == 1, "no new generation: no rebalance"
    assert again.member_id != old_id
    assert h.state() == "Stable"
    assert h.heartbeat(old_id, 1, instance="i-1") is ErrorCode.fenced_instance_id
    (synced,) = h.sync(again.member_id, 1, instance="i-1")
    assert synced.assignment == b"mine"


def test_wrong_protocol_type_or_no_common_protocol_is_inconsistent() -> None:
    h = Harness()
    h.stable_group_of_one()
    (answer,) = h.join(protocols=(("roundrobin", b""),))
    assert answer.error is ErrorCode.inconsistent_group_protocol


def test_join_errors() -> None:
    h = Harness()
    assert h.join("someone")[0].error is ErrorCode.unknown_member_id
    assert h.join(session=1000)[0].error is ErrorCode.invalid_session_timeout
    assert h.join(group="")[0].error is ErrorCode.invalid_group_id
    capped = Harness(max_size=1)
    capped.stable_group_of_one()
    assert capped.join()[0].error is ErrorCode.group_max_size_reached


def test_sync_and_heartbeat_errors() -> None:
    h = Harness()
    member, generation = h.stable_group_of_one()
    assert h.sync(member, generation + 5)[0].error is ErrorCode.illegal_generation
    assert h.sync("nobody", generation)[0].error is ErrorCode.unknown_member_id
    assert h.heartbeat(member, generation + 1) is ErrorCode.illegal_generation
    assert h.shard.heartbeat("other-group", member, None, 1) is ErrorCode.unknown_member_id


def commit(
    h: Harness, member: str, generation: int, offset: int, *, metadata: str = "m", group: str = "g"
) -> ErrorCode:
    tp = TopicPartition("t", 0)
    errors = h.shard.commit_offsets(
        group, member, None, generation, [OffsetToCommit(tp, offset, 3, metadata)]
    )
    return errors[tp]


def test_offset_commit_rules() -> None:
    h = Harness()
    member, generation = h.stable_group_of_one()
    assert commit(h, member, generation, 10) is ErrorCode.none
    assert commit(h, member, generation + 1, 11) is ErrorCode.illegal_generation
    assert commit(h, "stranger", generation, 11) is ErrorCode.unknown_member_id
    assert commit(h, "", -1, 11) is ErrorCode.unknown_member_id, "non-empty group"
    assert (
        commit(h, member, generation, 12, metadata="x" * 5000)
        is ErrorCode.offset_metadata_too_large
    )
    (fetched,) = h.shard.fetch_committed_offsets("g", None)
    tp, value = fetched.tp, fetched.value
    assert (tp, value.offset if value else None, value.metadata if value else None) == (
        TopicPartition("t", 0),
        10,
        "m",
    )
    # A simple consumer (no membership) may commit to a group nobody is in.
    assert commit(h, "", -1, 7, group="simple") is ErrorCode.none
    assert h.shard.describe_group("simple").state == "Empty"


def test_commit_during_completing_rebalance_is_rebalance_in_progress() -> None:
    h = Harness()
    member, waiting = h.join_new()
    h.time.advance(DELAY)
    generation = waiting[0].generation_id
    assert h.state() == "CompletingRebalance"
    assert commit(h, member, generation, 1) is ErrorCode.rebalance_in_progress


def test_failed_write_is_reported_and_nothing_applied() -> None:
    h = Harness()
    member, generation = h.stable_group_of_one()
    h.writer.fail_with = ErrorCode.not_leader_or_follower
    assert commit(h, member, generation, 5) is ErrorCode.not_coordinator
    assert h.shard.fetch_committed_offsets("g", [TopicPartition("t", 0)])[0].value is None


def test_replaying_the_records_rebuilds_groups_and_offsets() -> None:
    h = Harness()
    member, generation = h.stable_group_of_one()
    commit(h, member, generation, 42)
    fresh = Harness()
    for offset, (key, value) in enumerate(h.writer.decoded()):
        fresh.shard.replay(key, value, offset)
    fresh.shard.finish_loading()
    assert fresh.state() == "Stable"
    assert fresh.shard.fetch_committed_offsets("g", None)[0].value.offset == 42  # type: ignore[union-attr]
    assert fresh.heartbeat(member, generation) is ErrorCode.none
    fresh.time.advance(SESSION + 1)
    assert fresh.state() == "Empty", "loaded members still have to heartbeat"


def test_records_use_kafkas_key_and_value_types() -> None:
    h = Harness()
    member, generation = h.stable_group_of_one()
    commit(h, member, generation, 1)
    kinds = [type(key) for key, _ in h.writer.decoded()]
    assert GroupMetadataKey in kinds and OffsetCommitKey in kinds
    group_value = next(v for k, v in h.writer.decoded() if isinstance(k, GroupMetadataKey))
    assert isinstance(group_value, GroupMetadataValue)
    assert group_value.members[0].assignment == b"all"


def test_empty_group_offsets_expire_after_retention_then_the_group_goes() -> None:
    h = Harness()
    member, generation = h.stable_group_of_one()
    commit(h, member, generation, 1)
    h.shard.leave_group("g", [(member, None)])
    assert h.shard.cleanup_expired_offsets(h.time.now) == 0
    h.time.advance(60_000)
    assert h.shard.cleanup_expired_offsets(h.time.now) == 1
    assert h.shard.describe_group("g").error is ErrorCode.group_id_not_found


def test_delete_group_only_when_empty() -> None:
    h = Harness()
    member, _ = h.stable_group_of_one()
    assert h.shard.delete_group("g") is ErrorCode.non_empty_group
    h.shard.leave_group("g", [(member, None)])
    assert h.shard.delete_group("g") is ErrorCode.none
    assert h.shard.delete_group("g") is ErrorCode.group_id_not_found


def test_offset_delete_refuses_subscribed_topics() -> None:
    h = Harness()
    member, generation = h.stable_group_of_one()
    commit(h, member, generation, 1)
    error, per_partition = h.shard.delete_offsets("g", [TopicPartition("t", 0)])
    assert error is ErrorCode.none
    assert per_partition[TopicPartition("t", 0)] is ErrorCode.group_subscribed_to_topic


@pytest.mark.parametrize(
    ("group", "partitions", "expected"),
    [("my-group", 50, 36), ("", 50, 0), ("test", 50, 48), ("grüße-€", 50, 0), ("𝄞x", 50, 34)],
)
def test_partition_for_matches_java_string_hash(group: str, partitions: int, expected: int) -> None:
    assert partition_for(group, partitions) == expected
