"""Transactional offset commits (TxnOffsetCommit) in one shard: pending until the
producer's marker, KIP-447 stable fetches, replay of records and markers, deletion and
expiry. Manual clock, an in-memory partition of real record batches; no network."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from odradek.coordinator.group.group import JoinResult, SyncResult
from odradek.coordinator.group.group_manager import (
    GroupConfig,
    JoinRequest,
    SyncRequest,
    TxnProducer,
)
from odradek.coordinator.group.loader import replay_batches
from odradek.coordinator.group.offset_manager import FetchedOffset, OffsetConfig, OffsetToCommit
from odradek.coordinator.group.shard import GroupCoordinatorShard
from odradek.protocol.errors import ErrorCode
from odradek.protocol.types import TopicPartition
from tests.unit.coordinator.fakes import ManualTime
from tests.unit.coordinator.group.fakes import OffsetsLog

RETENTION = 60_000
TP0 = TopicPartition("in", 0)
TP1 = TopicPartition("in", 1)
PID = 4000
OTHER_PID = 4001


def subscription(*topics: str) -> bytes:
    body = b"\x00\x00" + len(topics).to_bytes(4, "big")
    for topic in topics:
        body += len(topic).to_bytes(2, "big") + topic.encode()
    return body + b"\xff\xff\xff\xff"


class Harness:
    def __init__(self) -> None:
        self.time = ManualTime()
        self.log = OffsetsLog()
        self.shard = self.new_shard()

    def new_shard(self) -> GroupCoordinatorShard:
        return GroupCoordinatorShard(
            GroupConfig(initial_rebalance_delay_ms=0),
            OffsetConfig(retention_ms=RETENTION, metadata_max_bytes=16),
            self.time.clock,
            self.time,
            self.log,
        )

    def member(self, group: str = "g", instance: str | None = None) -> tuple[str, int]:
        """A Stable group of one consuming topic ``in``: (member id, generation)."""
        joined: list[JoinResult] = []
        self.shard.join_group(
            JoinRequest(
                group_id=group,
                member_id="",
                group_instance_id=instance,
                client_id="client",
                client_host="/127.0.0.1",
                protocol_type="consumer",
                protocols=(("range", subscription("in")),),
                session_timeout_ms=10_000,
                rebalance_timeout_ms=30_000,
                require_known_member_id=False,
            ),
            joined.append,
        )
        self.time.advance(0)
        (join,) = joined
        synced: list[SyncResult] = []
        self.shard.sync_group(
            SyncRequest(
                group_id=group,
                member_id=join.member_id,
                group_instance_id=instance,
                generation_id=join.generation_id,
                protocol_type="consumer",
                protocol_name="range",
                assignments={join.member_id: b"all"},
            ),
            synced.append,
        )
        assert [s.error for s in synced] == [ErrorCode.none]
        return join.member_id, join.generation_id

    def txn_commit(
        self,
        offsets: dict[TopicPartition, int],
        *,
        pid: int = PID,
        group: str = "g",
        member: str = "",
        generation: int = -1,
        instance: str | None = None,
        metadata: str = "",
    ) -> dict[TopicPartition, ErrorCode]:
        return self.shard.commit_transactional_offsets(
            group,
            producer=TxnProducer(pid, 0),
            member_id=member,
            generation_id=generation,
            group_instance_id=instance,
            offsets=[OffsetToCommit(tp, offset, -1, metadata) for tp, offset in offsets.items()],
        )

    def commit(
        self,
        offsets: dict[TopicPartition, int],
        group: str = "g",
        member: str = "",
        generation: int = -1,
    ) -> None:
        wanted = [OffsetToCommit(tp, o, -1, "") for tp, o in offsets.items()]
        errors = self.shard.commit_offsets(group, member, None, generation, wanted)
        assert set(errors.values()) == {ErrorCode.none}

    def end(self, pid: int = PID, *, commit: bool) -> None:
        """What the broker does for WriteTxnMarkers: append the marker, then tell the shard."""
        offset = self.log.marker(pid, commit=commit)
        self.shard.complete_transaction(pid, commit, offset)

    def fetched(
        self,
        wanted: Sequence[TopicPartition] | None = (TP0, TP1),
        *,
        stable: bool = False,
        group: str = "g",
    ) -> dict[TopicPartition, tuple[int | None, ErrorCode]]:
        """OffsetFetch of ``wanted`` (None: all): partition -> (offset, error)."""
        return {
            item.tp: (None if item.value is None else item.value.offset, item.error)
            for item in self.shard.fetch_committed_offsets(group, wanted, require_stable=stable)
        }

    def reloaded(self) -> GroupCoordinatorShard:
        """A fresh shard loaded from the log's bytes, as service._load does."""
        fresh = self.new_shard()
        replay_batches(fresh, bytes(self.log.data), 0)
        fresh.finish_loading()
        return fresh


def offsets_state(shard: GroupCoordinatorShard) -> Any:
    manager = shard.offsets
    return (manager.offsets, manager.pending, manager.open_transactions, set(shard.groups.groups))


NONE = ErrorCode.none
UNSTABLE = ErrorCode.unstable_offset_commit


def test_pending_offsets_are_invisible_until_the_commit_marker() -> None:
    h = Harness()
    h.commit({TP0: 5})
    assert h.txn_commit({TP0: 10, TP1: 20}) == {TP0: NONE, TP1: NONE}
    assert h.fetched() == {TP0: (5, NONE), TP1: (None, NONE)}
    assert [
        (f.tp, f.value and f.value.offset) for f in h.shard.fetch_committed_offsets("g", None)
    ] == [(TP0, 5)]
    h.end(commit=True)
    assert h.fetched() == {TP0: (10, NONE), TP1: (20, NONE)}
    assert h.fetched(stable=True) == {TP0: (10, NONE), TP1: (20, NONE)}
    assert h.shard.offsets.pending == {} and h.shard.offsets.open_transactions == {}


def test_the_offsets_go_in_one_transactional_batch_of_the_producer() -> None:
    h = Harness()
    h.commit({TP0: 5})
    h.txn_commit({TP0: 10, TP1: 20})
    h.end(commit=True)
    assert h.log.headers() == [(0, -1, False, False), (1, PID, True, False), (3, PID, True, True)]


def test_abort_drops_the_pending_offsets() -> None:
    h = Harness()
    h.commit({TP0: 5})
    h.txn_commit({TP0: 10, TP1: 20})
    h.end(commit=False)
    assert h.fetched(stable=True) == {TP0: (5, NONE), TP1: (None, NONE)}
    assert h.shard.offsets.pending == {}


def test_require_stable_reports_partitions_with_pending_offsets() -> None:
    h = Harness()
    h.commit({TP0: 5, TP1: 6})
    h.txn_commit({TP0: 10})
    assert h.fetched(stable=True) == {TP0: (None, UNSTABLE), TP1: (6, NONE)}
    assert h.fetched(stable=False) == {TP0: (5, NONE), TP1: (6, NONE)}
    # All partitions (none named): those with a committed offset, as Kafka lists them.
    h.txn_commit({TopicPartition("in", 2): 30})
    assert h.fetched(None, stable=True) == {TP0: (None, UNSTABLE), TP1: (6, NONE)}
    # Another group's pending offsets are no business of this one's.
    h.txn_commit({TP1: 99}, group="other", pid=OTHER_PID)
    assert h.fetched([TP1], stable=True) == {TP1: (6, NONE)}
    h.end(commit=True)
    assert h.fetched(stable=True) == {TP0: (10, NONE), TP1: (6, NONE)}


def test_a_later_plain_commit_wins_over_an_earlier_transactional_one() -> None:
    """Kafka keeps whichever record is later in the log, whatever the marker says."""
    h = Harness()
    h.txn_commit({TP0: 10, TP1: 20})
    h.commit({TP0: 7})  # written after the transactional records
    h.end(commit=True)
    assert h.fetched() == {TP0: (7, NONE), TP1: (20, NONE)}
    assert offsets_state(h.reloaded()) == offsets_state(h.shard)


def test_a_transactional_commit_after_a_plain_one_replaces_it() -> None:
    h = Harness()
    h.commit({TP0: 7})
    h.txn_commit({TP0: 10})
    h.end(commit=True)
    assert h.fetched([TP0]) == {TP0: (10, NONE)}


def test_two_producers_of_one_group_end_independently() -> None:
    h = Harness()
    h.txn_commit({TP0: 10}, pid=PID)
    h.txn_commit({TP1: 20}, pid=OTHER_PID)
    h.end(PID, commit=False)
    assert h.fetched(stable=True) == {TP0: (None, NONE), TP1: (None, UNSTABLE)}
    h.end(OTHER_PID, commit=True)
    assert h.fetched(stable=True) == {TP0: (None, NONE), TP1: (20, NONE)}


def test_a_marker_ends_only_what_was_written_before_it() -> None:
    """complete_transaction comes after the marker's replication; a commit of the
    producer's next transaction written meanwhile stays pending, as a reload sees it."""
    h = Harness()
    h.txn_commit({TP0: 10})
    marker = h.log.marker(PID, commit=True)
    h.txn_commit({TP0: 11, TP1: 21})  # the next transaction, before the broker calls in
    h.shard.complete_transaction(PID, True, marker)
    assert h.fetched(stable=True) == {TP0: (None, UNSTABLE), TP1: (None, UNSTABLE)}
    assert h.fetched() == {TP0: (10, NONE), TP1: (None, NONE)}
    assert offsets_state(h.reloaded()) == offsets_state(h.shard)
    h.end(commit=True)
    assert h.fetched(stable=True) == {TP0: (11, NONE), TP1: (21, NONE)}


def test_a_marker_without_pending_offsets_changes_nothing() -> None:
    h = Harness()
    h.commit({TP0: 5})
    h.end(commit=True)
    h.end(OTHER_PID, commit=False)
    assert h.fetched() == {TP0: (5, NONE), TP1: (None, NONE)}


def test_replaying_records_and_markers_rebuilds_the_same_state() -> None:
    h = Harness()
    member, generation = h.member()
    h.commit({TP0: 1}, member=member, generation=generation)
    h.txn_commit({TP0: 10, TP1: 20}, member=member, generation=generation)
    h.txn_commit({TP1: 30}, pid=OTHER_PID, group="simple")
    h.commit({TP1: 2}, member=member, generation=generation)
    h.end(commit=True)
    h.txn_commit({TP0: 40}, pid=OTHER_PID)
    h.end(OTHER_PID, commit=False)
    h.txn_commit({TP1: 50}, member=member, generation=generation)  # still open at the end
    h.time.advance(1_000)
    h.commit({TP0: 3}, group="simple")
    live = offsets_state(h.shard)
    fresh = h.reloaded()
    assert offsets_state(fresh) == live
    assert live[1] == {PID: {"g": {TP1: [live[1][PID]["g"][TP1][0]]}}}
    assert fresh.fetch_committed_offsets("g", [TP0, TP1], require_stable=True) == [
        FetchedOffset(TP0, fresh.offsets.offsets["g"][TP0].value),
        FetchedOffset(TP1, None, UNSTABLE),
    ]
    # The transaction still open at load time ends later, as the broker tells it.
    fresh.complete_transaction(PID, True, h.log.marker(PID, commit=True))
    assert [i.value.offset for i in fresh.fetch_committed_offsets("g", [TP0, TP1]) if i.value] == [
        10,
        50,
    ]


def test_loading_from_the_middle_of_the_log_skips_earlier_records() -> None:
    h = Harness()
    h.commit({TP0: 1})
    h.commit({TP1: 2})
    fresh = h.new_shard()
    count, next_offset = replay_batches(fresh, bytes(h.log.data), 1)
    assert (count, next_offset) == (1, 2)
    assert set(fresh.offsets.offsets["g"]) == {TP1}


def test_a_group_known_only_by_pending_offsets_is_loaded_as_empty() -> None:
    h = Harness()
    h.txn_commit({TP0: 10}, group="fresh")
    fresh = h.reloaded()
    assert fresh.describe_group("fresh").state == "Empty"
    assert fresh.offsets.has_pending("fresh", TP0)


# -- validation ----------------------------------------------------------------------------


def test_unknown_group_takes_commits_without_generation_only() -> None:
    h = Harness()
    assert h.txn_commit({TP0: 1}, group="new", generation=3, member="m") == {
        TP0: ErrorCode.illegal_generation
    }
    assert h.txn_commit({TP0: 1}, group="new") == {TP0: NONE}
    assert h.shard.describe_group("new").state == "Empty"


def test_membership_is_checked_when_the_request_names_a_member() -> None:
    h = Harness()
    member, generation = h.member()
    assert h.txn_commit({TP0: 1}, member="ghost", generation=generation) == {
        TP0: ErrorCode.unknown_member_id
    }
    assert h.txn_commit({TP0: 1}, member=member, generation=generation + 1) == {
        TP0: ErrorCode.illegal_generation
    }
    assert h.txn_commit({TP0: 1}, member=member, generation=generation) == {TP0: NONE}
    # TxnOffsetCommit v0-v2 carry no member or generation: accepted in a non-empty group.
    assert h.txn_commit({TP0: 2}) == {TP0: NONE}
    assert h.shard.offsets.pending[PID]["g"][TP0][-1].value.offset == 2


def test_static_member_ids_are_fenced() -> None:
    h = Harness()
    member, generation = h.member(instance="i-1")
    assert h.txn_commit({TP0: 1}, member="old", generation=generation, instance="i-1") == {
        TP0: ErrorCode.fenced_instance_id
    }
    assert h.txn_commit({TP0: 1}, member=member, generation=generation, instance="i-2") == {
        TP0: ErrorCode.unknown_member_id
    }
    assert h.txn_commit({TP0: 1}, member=member, generation=generation, instance="i-1") == {
        TP0: NONE
    }


def test_a_transactional_commit_is_not_held_to_the_rebalance() -> None:
    h = Harness()
    member, generation = h.member()
    h.shard.join_group(
        JoinRequest(
            group_id="g",
            member_id="",
            group_instance_id=None,
            client_id="client",
            client_host="/127.0.0.1",
            protocol_type="consumer",
            protocols=(("range", subscription("in")),),
            session_timeout_ms=10_000,
            rebalance_timeout_ms=30_000,
            require_known_member_id=False,
        ),
        lambda _: None,
    )
    assert h.shard.describe_group("g").state == "PreparingRebalance"
    assert h.txn_commit({TP0: 1}, member=member, generation=generation) == {TP0: NONE}


def test_metadata_too_large_refuses_that_partition_only() -> None:
    h = Harness()
    errors = h.shard.commit_transactional_offsets(
        "g",
        producer=TxnProducer(PID, 0),
        member_id="",
        generation_id=-1,
        group_instance_id=None,
        offsets=[OffsetToCommit(TP0, 1, -1, "x" * 17), OffsetToCommit(TP1, 2, -1, "ok")],
    )
    assert errors == {TP0: ErrorCode.offset_metadata_too_large, TP1: NONE}
    assert h.shard.offsets.partitions("g") == {TP1}


def test_a_failed_write_is_reported_and_leaves_nothing_pending() -> None:
    h = Harness()
    h.log.fail_with = ErrorCode.not_leader_or_follower
    assert h.txn_commit({TP0: 1}) == {TP0: ErrorCode.not_coordinator}
    h.log.fail_with = ErrorCode.invalid_producer_epoch
    assert h.txn_commit({TP0: 1}) == {TP0: ErrorCode.invalid_producer_epoch}
    assert h.shard.offsets.pending == {} and h.log.data == b""


# -- deletion and expiry -------------------------------------------------------------------


def test_deleting_the_group_drops_pending_offsets_for_good() -> None:
    h = Harness()
    h.commit({TP0: 5})
    h.txn_commit({TP0: 10, TP1: 20})
    assert h.shard.delete_group("g") is NONE
    assert h.shard.offsets.pending == {} and h.shard.offsets.open_transactions == {}
    h.end(commit=True)
    assert h.fetched(stable=True) == {TP0: (None, NONE), TP1: (None, NONE)}
    # One tombstone per partition, pending-only partitions included.
    assert offsets_state(h.reloaded()) == offsets_state(h.shard) == ({}, {}, {}, set())


def test_offset_delete_of_a_partition_with_pending_offsets() -> None:
    h = Harness()
    h.txn_commit({TP0: 10, TP1: 20})
    top, errors = h.shard.delete_offsets("g", [TP1])
    assert (top, errors) == (NONE, {TP1: NONE})
    h.end(commit=True)
    assert h.fetched() == {TP0: (10, NONE), TP1: (None, NONE)}
    assert offsets_state(h.reloaded()) == offsets_state(h.shard)


def test_pending_offsets_hold_back_expiry_of_the_partition_and_the_group() -> None:
    h = Harness()
    h.commit({TP0: 5, TP1: 6})
    h.txn_commit({TP0: 10})
    h.time.advance(RETENTION)
    assert h.shard.cleanup_expired_offsets(h.time.now) == 1  # TP1 only
    assert h.fetched() == {TP0: (5, NONE), TP1: (None, NONE)}
    assert h.shard.describe_group("g").state == "Empty"
    h.end(commit=False)
    assert h.shard.cleanup_expired_offsets(h.time.now) == 1
    assert h.shard.describe_group("g").error is ErrorCode.group_id_not_found


def test_an_empty_group_with_only_an_open_transaction_is_kept() -> None:
    h = Harness()
    h.txn_commit({TP0: 10})
    h.time.advance(RETENTION * 2)
    assert h.shard.cleanup_expired_offsets(h.time.now) == 0
    h.end(commit=True)
    assert h.fetched([TP0]) == {TP0: (10, NONE)}


def test_unload_forgets_pending_offsets() -> None:
    h = Harness()
    h.txn_commit({TP0: 10})
    h.shard.unload()
    assert offsets_state(h.shard) == ({}, {}, {}, set())
