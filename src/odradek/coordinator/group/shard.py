"""All groups of one ``__consumer_offsets`` partition (Kafka's ``GroupCoordinatorShard``).

Routes requests to the membership and offset managers, validates offset commits (plain
and transactional) against group membership, and rebuilds both from the partition's
records (``replay``, and ``complete_transaction`` for transaction markers). Every input
(clock, timer, writer) is injected, so the shard is tested without a network.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from odradek.coordinator.group.group import ClassicGroup, GroupState, JoinCallback, SyncCallback
from odradek.coordinator.group.group_manager import (
    GroupConfig,
    GroupMetadataManager,
    JoinRequest,
    SyncRequest,
    Timer,
    TxnProducer,
    Writer,
    coordinator_error,
)
from odradek.coordinator.group.offset_manager import (
    FetchedOffset,
    OffsetConfig,
    OffsetMetadataManager,
    OffsetToCommit,
)
from odradek.coordinator.group.records import (
    GroupMetadataKey,
    GroupMetadataValue,
    Key,
    OffsetCommitKey,
    OffsetCommitValue,
    Value,
)
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.protocol.records import NO_PRODUCER_ID
from odradek.protocol.types import TopicPartition

log = logging.getLogger(__name__)

CONSUMER_PROTOCOL_TYPE = "consumer"


@dataclass(frozen=True, slots=True)
class GroupListing:
    group_id: str
    protocol_type: str
    state: str


@dataclass(frozen=True, slots=True)
class MemberDescription:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    metadata: bytes
    assignment: bytes


@dataclass(frozen=True, slots=True)
class GroupDescription:
    error: ErrorCode
    group_id: str
    state: str
    protocol_type: str
    protocol: str
    members: tuple[MemberDescription, ...]


class GroupCoordinatorShard:
    def __init__(
        self,
        group_config: GroupConfig,
        offset_config: OffsetConfig,
        clock: Callable[[], int],
        timer: Timer,
        writer: Writer,
    ) -> None:
        self.clock = clock
        self.writer = writer
        self.groups = GroupMetadataManager(group_config, clock, timer, writer)
        self.offsets = OffsetMetadataManager(offset_config, clock, writer)

    # -- membership ------------------------------------------------------------------------

    def join_group(self, request: JoinRequest, respond: JoinCallback) -> None:
        self.groups.join_group(request, respond)

    def sync_group(self, request: SyncRequest, respond: SyncCallback) -> None:
        self.groups.sync_group(request, respond)

    def heartbeat(
        self, group_id: str, member_id: str, instance_id: str | None, generation_id: int
    ) -> ErrorCode:
        return self.groups.heartbeat(group_id, member_id, instance_id, generation_id)

    def leave_group(
        self, group_id: str, leaving: list[tuple[str, str | None]]
    ) -> tuple[ErrorCode, list[ErrorCode]]:
        return self.groups.leave_group(group_id, leaving)

    # -- offsets ---------------------------------------------------------------------------

    def commit_offsets(
        self,
        group_id: str,
        member_id: str,
        instance_id: str | None,
        generation_id: int,
        wanted: list[OffsetToCommit],
    ) -> dict[TopicPartition, ErrorCode]:
        """OffsetCommit: membership checks as Kafka's classic groups, then write."""
        error = self._validate_commit(
            group_id, member_id, instance_id, generation_id, transactional=False
        )
        if error is not None:
            return {item.tp: error for item in wanted}
        try:
            return self.offsets.commit(group_id, wanted)
        except KafkaError as exc:
            code = coordinator_error(exc)
            return {item.tp: code for item in wanted}

    def commit_transactional_offsets(
        self,
        group_id: str,
        *,
        producer: TxnProducer,
        member_id: str,
        generation_id: int,
        group_instance_id: str | None,
        offsets: list[OffsetToCommit],
    ) -> dict[TopicPartition, ErrorCode]:
        """TxnOffsetCommit: the offsets are written in one transactional batch of
        ``producer`` and stay pending until ``complete_transaction`` for it."""
        error = self._validate_commit(
            group_id, member_id, group_instance_id, generation_id, transactional=True
        )
        if error is not None:
            return {item.tp: error for item in offsets}
        try:
            return self.offsets.commit(group_id, offsets, producer)
        except KafkaError as exc:
            code = coordinator_error(exc)
            return {item.tp: code for item in offsets}

    def _validate_commit(
        self,
        group_id: str,
        member_id: str,
        instance_id: str | None,
        generation_id: int,
        *,
        transactional: bool,
    ) -> ErrorCode | None:
        """Kafka's ``ClassicGroup.validateOffsetCommit``. A transactional commit is not
        held to the group's state (the producer's transaction decides), and one without
        member, generation or instance id (TxnOffsetCommit v0-v2) is accepted."""
        group = self.groups.groups.get(group_id)
        if group is None:
            if generation_id < 0:
                # A simple consumer or admin tool storing offsets: the group appears, empty.
                self.groups.groups[group_id] = ClassicGroup(
                    group_id=group_id, state_timestamp=self.clock()
                )
                return None
            return ErrorCode.illegal_generation
        if group.is_in(GroupState.DEAD):
            return ErrorCode.coordinator_not_available
        if generation_id < 0 and group.is_in(GroupState.EMPTY):
            return None
        if generation_id >= 0 or member_id or instance_id is not None:
            if instance_id is not None:
                known = group.static_member_id(instance_id)
                if known is None:
                    return ErrorCode.unknown_member_id
                if known != member_id:
                    return ErrorCode.fenced_instance_id
            if member_id not in group.members:
                return ErrorCode.unknown_member_id
            if generation_id != group.generation_id:
                return ErrorCode.illegal_generation
        elif not transactional:
            # No member and no generation: only an empty group takes plain commits.
            return ErrorCode.unknown_member_id
        if not transactional and group.is_in(GroupState.COMPLETING_REBALANCE):
            return ErrorCode.rebalance_in_progress
        return None

    def complete_transaction(
        self, producer_id: int, commit: bool, marker_offset: int | None = None
    ) -> None:
        """A commit or abort marker of ``producer_id`` is in the partition (at
        ``marker_offset`` if known): its pending offsets become committed, or go."""
        self.offsets.replay_end_transaction(producer_id, commit, marker_offset)

    def fetch_committed_offsets(
        self,
        group_id: str,
        wanted: Iterable[TopicPartition] | None,
        *,
        require_stable: bool = False,
    ) -> list[FetchedOffset]:
        """OffsetFetch: committed offsets of ``wanted`` (None: all the group has); with
        ``require_stable`` (v7+, KIP-447) a partition with a pending transactional offset
        is UNSTABLE_OFFSET_COMMIT, so the consumer retries until the transaction ends."""
        return self.offsets.fetch(group_id, wanted, require_stable=require_stable)

    def delete_offsets(
        self, group_id: str, partitions: list[TopicPartition]
    ) -> tuple[ErrorCode, dict[TopicPartition, ErrorCode]]:
        """OffsetDelete: only for partitions of topics the group does not consume."""
        group = self.groups.groups.get(group_id)
        if group is None or group.is_in(GroupState.DEAD):
            return ErrorCode.group_id_not_found, {}
        if not group.is_empty and group.protocol_type != CONSUMER_PROTOCOL_TYPE:
            return ErrorCode.non_empty_group, {}
        subscribed = (group.subscribed_topics() or set()) if not group.is_empty else set()
        errors: dict[TopicPartition, ErrorCode] = {}
        deletable = []
        for tp in partitions:
            if tp.topic in subscribed:
                errors[tp] = ErrorCode.group_subscribed_to_topic
            else:
                errors[tp] = ErrorCode.none
                deletable.append(tp)
        records = self.offsets.tombstones(group_id, deletable)
        if records:
            try:
                self._write_and_replay(records)
            except KafkaError as exc:
                return coordinator_error(exc), {}
        return ErrorCode.none, errors

    # -- groups ----------------------------------------------------------------------------

    def list_groups(self) -> list[GroupListing]:
        return [
            GroupListing(group.group_id, group.protocol_type or "", group.state.value)
            for group in self.groups.groups.values()
        ]

    def describe_group(self, group_id: str) -> GroupDescription:
        group = self.groups.groups.get(group_id)
        if group is None:
            return GroupDescription(ErrorCode.group_id_not_found, group_id, "Dead", "", "", ())
        protocol = group.protocol_name or ""
        stable = group.is_in(GroupState.STABLE)
        members = tuple(
            MemberDescription(
                m.member_id,
                m.group_instance_id,
                m.client_id,
                m.client_host,
                m.metadata(protocol) if protocol and stable else b"",
                m.assignment if stable else b"",
            )
            for m in group.members.values()
        )
        return GroupDescription(
            ErrorCode.none,
            group_id,
            group.state.value,
            group.protocol_type or "",
            protocol if stable else "",
            members,
        )

    def delete_group(self, group_id: str) -> ErrorCode:
        group = self.groups.groups.get(group_id)
        if group is None or group.is_in(GroupState.DEAD):
            return ErrorCode.group_id_not_found
        if not group.is_in(GroupState.EMPTY):
            return ErrorCode.non_empty_group
        records = [*self.offsets.tombstones(group_id), (GroupMetadataKey(group_id), None)]
        try:
            self._write_and_replay(records)
        except KafkaError as exc:
            return coordinator_error(exc)
        self.groups.delete(group)
        return ErrorCode.none

    def cleanup_expired_offsets(self, now: int) -> int:
        """Delete expired offsets, and empty groups left with none; the offsets removed."""
        removed = 0
        for group_id in sorted(self.offsets.groups_with_offsets() | set(self.groups.groups)):
            group = self.groups.groups.get(group_id)
            expired = self.offsets.expired(group, group_id, now)
            records = self.offsets.tombstones(group_id, expired)
            # A group with an open transaction stays (Kafka keeps it for the transaction).
            drop_group = (
                group is not None
                and group.is_in(GroupState.EMPTY)
                and not self.offsets.has_open_transactions(group_id)
                and not (set(self.offsets.offsets.get(group_id, {})) - set(expired))
            )
            if drop_group:
                records.append((GroupMetadataKey(group_id), None))
            if not records:
                continue
            try:
                self._write_and_replay(records)
            except KafkaError as exc:
                log.warning("cannot expire offsets of group %s: %s", group_id, exc)
                continue
            removed += len(expired)
            if drop_group and group is not None:
                self.groups.delete(group)
                log.info("group %s removed: empty with no offsets left", group_id)
        return removed

    # -- records ---------------------------------------------------------------------------

    def _write_and_replay(self, records: list[tuple[Key, Value | None]]) -> None:
        first = self.writer(records)
        for index, (key, value) in enumerate(records):
            if isinstance(key, OffsetCommitKey):
                assert value is None or isinstance(value, OffsetCommitValue)
                self.offsets.replay(key, value, first + index)

    def replay(
        self,
        key: Key,
        value: Value | None,
        offset: int,
        producer_id: int = NO_PRODUCER_ID,
    ) -> None:
        """Apply one record read from the partition at ``offset`` (loading, in log
        order); ``producer_id`` is that of its batch when the batch is transactional."""
        if isinstance(key, OffsetCommitKey):
            assert value is None or isinstance(value, OffsetCommitValue)
            self.offsets.replay(key, value, offset, producer_id)
        else:
            assert value is None or isinstance(value, GroupMetadataValue)
            self.groups.replay(key.group, value)

    def finish_loading(self) -> None:
        """After replay: groups known only by their offsets (committed, or pending in a
        transaction still open) appear as Empty groups; pending offsets stay pending."""
        for group_id in sorted(self.offsets.groups_with_offsets()):
            if group_id not in self.groups.groups:
                self.groups.groups[group_id] = ClassicGroup(group_id=group_id)
        self.groups.activate_loaded_groups()

    def unload(self) -> None:
        self.groups.unload()
        self.offsets.clear()
