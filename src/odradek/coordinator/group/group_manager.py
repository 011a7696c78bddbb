"""Classic group membership: JoinGroup, SyncGroup, Heartbeat, LeaveGroup and their timers.

Kafka's ``GroupMetadataManager`` for classic groups, as a deterministic state machine:
time comes from an injected clock, timeouts from an injected timer, and durable changes
go through an injected writer (records for ``__consumer_offsets``). JoinGroup and
SyncGroup answers may come later (when the rebalance completes), so they take a
callback instead of returning. A unit test drives all of it by advancing a fake clock.

Rebalance protocol, briefly:

1. A new member without id gets MEMBER_ID_REQUIRED and an id (KIP-394); it joins again.
2. The first join of an Empty group waits ``group.initial.rebalance.delay.ms`` (extended
   by each newcomer, up to the rebalance timeout) so a fleet starting together lands in
   one generation; later rebalances complete as soon as every member has rejoined, or
   after the rebalance timeout, dropping those that did not.
3. The new generation picks a protocol all members support (by vote), answers every
   member, and gives the leader the member list to assign.
4. SyncGroup: the leader's assignment is written to ``__consumer_offsets``, then every
   member gets its share; the group is Stable.
5. Heartbeats keep members alive for ``session.timeout.ms``; a missed session, a leave,
   or a changed subscription starts the next rebalance.

Static members (``group.instance.id``, KIP-345) keep their place across restarts: a
rejoin with the same instance id replaces the old member id (which is then fenced)
without a rebalance when nothing else changed.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from odradek.coordinator.group.group import (
    ClassicGroup,
    ClassicMember,
    GroupState,
    JoinCallback,
    JoinResult,
    SyncCallback,
    SyncResult,
)
from odradek.coordinator.group.records import (
    GroupMetadataKey,
    GroupMetadataValue,
    Key,
    MemberMetadata,
    Value,
)
from odradek.protocol.errors import ErrorCode, KafkaError

log = logging.getLogger(__name__)


class Timer(Protocol):
    """Timeouts by key; scheduling a key again replaces its previous timeout."""

    def schedule(self, key: str, delay_ms: int, callback: Callable[[], None]) -> None: ...
    def cancel(self, key: str) -> None: ...


@dataclass(frozen=True, slots=True)
class TxnProducer:
    """The transactional producer a TxnOffsetCommit writes for."""

    producer_id: int
    producer_epoch: int


class Writer(Protocol):
    """Appends (key, value) records, as one batch, to the group's ``__consumer_offsets``
    partition -- a transactional batch of ``producer`` when one is given -- and returns the
    log offset of the first record. Raises KafkaError when the write fails, and then
    nothing was written."""

    def __call__(
        self, records: list[tuple[Key, Value | None]], producer: TxnProducer | None = None, /
    ) -> int: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupConfig:
    """Kafka's ``group.*`` broker configs."""

    initial_rebalance_delay_ms: int = 3000
    min_session_timeout_ms: int = 6000
    max_session_timeout_ms: int = 1800000
    max_size: int = 2**31 - 1
    new_member_join_timeout_ms: int = 300000


@dataclass(frozen=True, slots=True, kw_only=True)
class JoinRequest:
    group_id: str
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    protocol_type: str
    protocols: tuple[tuple[str, bytes], ...]
    session_timeout_ms: int
    rebalance_timeout_ms: int
    require_known_member_id: bool
    """JoinGroup v4+: a new member must first be given an id (KIP-394)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncRequest:
    group_id: str
    member_id: str
    group_instance_id: str | None
    generation_id: int
    protocol_type: str | None
    protocol_name: str | None
    assignments: dict[str, bytes]


def coordinator_error(exc: KafkaError) -> ErrorCode:
    """How a failed ``__consumer_offsets`` write is reported (Kafka's mapping)."""
    return coordinator_error_code(exc.error_code)


def coordinator_error_code(code: ErrorCode) -> ErrorCode:
    """``coordinator_error`` for a bare error code."""
    if code in (
        ErrorCode.unknown_topic_or_partition,
        ErrorCode.not_enough_replicas,
        ErrorCode.not_enough_replicas_after_append,
        ErrorCode.request_timed_out,
    ):
        return ErrorCode.coordinator_not_available
    if code in (ErrorCode.not_leader_or_follower, ErrorCode.kafka_storage_error):
        return ErrorCode.not_coordinator
    if code in (ErrorCode.message_too_large, ErrorCode.record_list_too_large):
        return ErrorCode.unknown_server_error
    return code


class GroupMetadataManager:
    def __init__(
        self, config: GroupConfig, clock: Callable[[], int], timer: Timer, writer: Writer
    ) -> None:
        self.config = config
        self.clock = clock
        self.timer = timer
        self.writer = writer
        self.groups: dict[str, ClassicGroup] = {}

    # -- JoinGroup -------------------------------------------------------------------------

    def join_group(self, request: JoinRequest, respond: JoinCallback) -> None:
        if not request.group_id:
            respond(JoinResult(ErrorCode.invalid_group_id, request.member_id))
            return
        if not (
            self.config.min_session_timeout_ms
            <= request.session_timeout_ms
            <= self.config.max_session_timeout_ms
        ):
            respond(JoinResult(ErrorCode.invalid_session_timeout, request.member_id))
            return
        is_unknown = request.member_id == ""
        group = self.groups.get(request.group_id)
        if group is None:
            if not is_unknown:
                respond(JoinResult(ErrorCode.unknown_member_id, request.member_id))
                return
            group = ClassicGroup(group_id=request.group_id, state_timestamp=self.clock())
            self.groups[request.group_id] = group
        if group.is_in(GroupState.DEAD):
            # Deleted meanwhile (or its partition moved): the client looks it up again.
            respond(JoinResult(ErrorCode.coordinator_not_available, request.member_id))
            return
        if not group.supports_protocols(request.protocol_type, (n for n, _ in request.protocols)):
            respond(JoinResult(ErrorCode.inconsistent_group_protocol, request.member_id))
            return
        if is_unknown:
            self._join_new_member(group, request, respond)
        else:
            self._join_existing_member(group, request, respond)

    def _join_new_member(
        self, group: ClassicGroup, request: JoinRequest, respond: JoinCallback
    ) -> None:
        if not self._accepts_new_member(group):
            respond(JoinResult(ErrorCode.group_max_size_reached))
            return
        member_id = f"{request.client_id}-{uuid.uuid4()}"
        instance_id = request.group_instance_id
        if instance_id is not None:
            existing = group.static_member_id(instance_id)
            if existing is not None:
                self._replace_static_member(group, request, existing, member_id, respond)
            else:
                self._add_member_then_rebalance(group, request, member_id, respond)
            return
        if request.require_known_member_id:
            group.pending_members.add(member_id)
            self.timer.schedule(
                _pending_key(group, member_id),
                request.session_timeout_ms,
                lambda: self._expire_pending_member(group, member_id),
            )
            respond(JoinResult(ErrorCode.member_id_required, member_id))
            return
        self._add_member_then_rebalance(group, request, member_id, respond)

    def _accepts_new_member(self, group: ClassicGroup) -> bool:
        return len(group.members) + len(group.pending_members) < self.config.max_size

    def _join_existing_member(
        self, group: ClassicGroup, request: JoinRequest, respond: JoinCallback
    ) -> None:
        member_id = request.member_id
        if member_id in group.pending_members:
            group.pending_members.discard(member_id)
            self.timer.cancel(_pending_key(group, member_id))
            self._add_member_then_rebalance(group, request, member_id, respond)
            return
        error = self._validate_member(group, member_id, request.group_instance_id)
        if error is not None:
            respond(JoinResult(error, member_id))
            return
        member = group.members[member_id]
        if group.is_in(GroupState.PREPARING_REBALANCE):
            self._update_member(group, member, request, respond)
            self._maybe_complete_join(group)
        elif group.is_in(GroupState.COMPLETING_REBALANCE):
            if member.matches(request.protocols):
                # The member missed our join answer: send it again.
                respond(self._join_result(group, member))
            else:
                self._update_member(group, member, request, respond)
                self._prepare_rebalance(group, f"member {member_id} changed its protocols")
        elif group.is_in(GroupState.STABLE):
            if group.leader_id == member_id or not member.matches(request.protocols):
                self._update_member(group, member, request, respond)
                self._prepare_rebalance(group, f"leader or protocols of {member_id} changed")
            else:
                respond(self._join_result(group, member))
        else:
            respond(JoinResult(ErrorCode.unknown_member_id, member_id))

    def _add_member_then_rebalance(
        self, group: ClassicGroup, request: JoinRequest, member_id: str, respond: JoinCallback
    ) -> None:
        member = ClassicMember(
            member_id=member_id,
            group_instance_id=request.group_instance_id,
            client_id=request.client_id,
            client_host=request.client_host,
            rebalance_timeout_ms=request.rebalance_timeout_ms,
            session_timeout_ms=request.session_timeout_ms,
            protocol_type=request.protocol_type,
            protocols=request.protocols,
            is_new=True,
        )
        if group.is_in(GroupState.PREPARING_REBALANCE) and group.generation_id == 0:
            group.new_member_added = True
        group.add(member, respond)
        # Until the join completes, a new member is only kept for the new-member timeout.
        self._schedule_session_expiry(group, member, self.config.new_member_join_timeout_ms)
        self._maybe_prepare_rebalance_or_complete_join(group, f"member {member_id} joined")

    def _update_member(
        self,
        group: ClassicGroup,
        member: ClassicMember,
        request: JoinRequest,
        respond: JoinCallback,
    ) -> None:
        member.protocols = request.protocols
        member.rebalance_timeout_ms = request.rebalance_timeout_ms
        member.session_timeout_ms = request.session_timeout_ms
        member.client_id = request.client_id
        member.client_host = request.client_host
        if member.awaiting_join is not None and member.awaiting_join is not respond:
            # A repeated join (the client gave up waiting) replaces the earlier one; the
            # earlier request still needs an answer, and a retriable one harms nobody.
            member.awaiting_join(JoinResult(ErrorCode.rebalance_in_progress, member.member_id))
        group.set_awaiting_join(member, respond)

    def _replace_static_member(
        self,
        group: ClassicGroup,
        request: JoinRequest,
        old_id: str,
        new_id: str,
        respond: JoinCallback,
    ) -> None:
        """A static member came back with a new member id: fence the old one (KIP-345)."""
        old = group.members[old_id]
        if old.awaiting_join is not None:
            old.awaiting_join(JoinResult(ErrorCode.fenced_instance_id, old_id))
            group.set_awaiting_join(old, None)
        if old.awaiting_sync is not None:
            old.awaiting_sync(SyncResult(ErrorCode.fenced_instance_id))
            old.awaiting_sync = None
        self.timer.cancel(_session_key(group, old_id))
        protocols_changed = not old.matches(request.protocols)
        member = group.replace_static_member(request.group_instance_id or "", old_id, new_id)
        member.client_id = request.client_id
        member.client_host = request.client_host
        member.session_timeout_ms = request.session_timeout_ms
        member.rebalance_timeout_ms = request.rebalance_timeout_ms
        if group.is_in(GroupState.STABLE) and not protocols_changed:
            try:
                self._store_group(group)
            except KafkaError as exc:
                # Undo: the old member id stays, the rejoining client retries.
                group.replace_static_member(request.group_instance_id or "", new_id, old_id)
                respond(JoinResult(coordinator_error(exc), ""))
                return
            self._schedule_session_expiry(group, member, member.session_timeout_ms)
            result = self._join_result(group, member)
            # The leader keeps its assignment; v9 clients are told not to recompute it.
            respond(
                JoinResult(
                    ErrorCode.none,
                    new_id,
                    group.generation_id,
                    group.protocol_type,
                    group.protocol_name,
                    group.leader_id or "",
                    skip_assignment=group.leader_id == new_id,
                    members=result.members,
                )
            )
            return
        member.protocols = request.protocols
        group.set_awaiting_join(member, respond)
        self._schedule_session_expiry(group, member, member.session_timeout_ms)
        if group.is_in(GroupState.PREPARING_REBALANCE):
            self._maybe_complete_join(group)
        else:
            self._prepare_rebalance(group, f"static member {request.group_instance_id} rejoined")

    # -- rebalance -------------------------------------------------------------------------

    def _maybe_prepare_rebalance_or_complete_join(self, group: ClassicGroup, reason: str) -> None:
        if group.can_rebalance():
            self._prepare_rebalance(group, reason)
        else:
            self._maybe_complete_join(group)

    def _prepare_rebalance(self, group: ClassicGroup, reason: str) -> None:
        if group.is_in(GroupState.COMPLETING_REBALANCE):
            self._fail_pending_syncs(group, ErrorCode.rebalance_in_progress)
        self.timer.cancel(_sync_key(group))
        initial = group.is_in(GroupState.EMPTY)
        group.transition(GroupState.PREPARING_REBALANCE, self.clock())
        log.info(
            "group %s preparing to rebalance (generation %d): %s",
            group.group_id,
            group.generation_id,
            reason,
        )
        if initial:
            delay = self.config.initial_rebalance_delay_ms
            remaining = max(self._rebalance_timeout(group) - delay, 0)
            self.timer.schedule(
                _join_key(group), delay, lambda: self._initial_join_elapsed(group, delay, remaining)
            )
        else:
            self.timer.schedule(
                _join_key(group), self._rebalance_timeout(group), lambda: self._complete_join(group)
            )
            # Everyone may already be in (the last member just left): finish at once.
            self._maybe_complete_join(group)

    def _initial_join_elapsed(self, group: ClassicGroup, delay: int, remaining: int) -> None:
        """Kafka's InitialDelayedJoin: newcomers extend the wait, up to the rebalance timeout."""
        if group.new_member_added and remaining > 0:
            group.new_member_added = False
            next_delay = min(delay, remaining)
            next_remaining = max(remaining - delay, 0)
            self.timer.schedule(
                _join_key(group),
                next_delay,
                lambda: self._initial_join_elapsed(group, next_delay, next_remaining),
            )
        else:
            self._complete_join(group)

    def _rebalance_timeout(self, group: ClassicGroup) -> int:
        return max((m.rebalance_timeout_ms for m in group.members.values()), default=0)

    def _maybe_complete_join(self, group: ClassicGroup) -> None:
        if (
            group.is_in(GroupState.PREPARING_REBALANCE)
            and group.has_all_members_joined()
            and group.previous_state is not GroupState.EMPTY
        ):
            self._complete_join(group)

    def _complete_join(self, group: ClassicGroup) -> None:
        if not group.is_in(GroupState.PREPARING_REBALANCE):
            return
        self.timer.cancel(_join_key(group))
        for member in list(group.members.values()):
            if member.awaiting_join is None:
                # Did not rejoin within the rebalance timeout: out of the group.
                self._remove_member(group, member, "did not rejoin in time")
        now = self.clock()
        group.init_next_generation(now)
        if group.is_in(GroupState.EMPTY):
            log.info("group %s is empty at generation %d", group.group_id, group.generation_id)
            try:
                self._store_group(group)
            except KafkaError as exc:
                log.warning("cannot store empty group %s: %s", group.group_id, exc)
            return
        log.info(
            "group %s generation %d with %d members, protocol %s",
            group.group_id,
            group.generation_id,
            len(group.members),
            group.protocol_name,
        )
        for member in group.members.values():
            callback = member.awaiting_join
            group.set_awaiting_join(member, None)
            member.is_new = False
            self._schedule_session_expiry(group, member, member.session_timeout_ms)
            if callback is not None:
                callback(self._join_result(group, member))
        generation = group.generation_id
        self.timer.schedule(
            _sync_key(group),
            self._rebalance_timeout(group),
            lambda: self._sync_expired(group, generation),
        )

    def _join_result(self, group: ClassicGroup, member: ClassicMember) -> JoinResult:
        members: tuple[tuple[str, str | None, bytes], ...] = ()
        protocol = group.protocol_name
        if group.leader_id == member.member_id and protocol is not None:
            members = tuple(
                (m.member_id, m.group_instance_id, m.metadata(protocol))
                for m in group.members.values()
            )
        return JoinResult(
            ErrorCode.none,
            member.member_id,
            group.generation_id,
            group.protocol_type,
            protocol,
            group.leader_id or "",
            members=members,
        )

    def _sync_expired(self, group: ClassicGroup, generation: int) -> None:
        """Members that never sent SyncGroup for this generation are removed (Kafka's
        pending-sync timeout), and the group rebalances without them."""
        if group.generation_id != generation or not group.is_in(
            GroupState.COMPLETING_REBALANCE, GroupState.STABLE
        ):
            return
        laggards = [group.members[m] for m in group.pending_sync if m in group.members]
        if not laggards:
            return
        for member in laggards:
            self._remove_member(group, member, "did not sync in time")
        self._prepare_rebalance(group, "members failed to sync")

    # -- SyncGroup -------------------------------------------------------------------------

    def sync_group(self, request: SyncRequest, respond: SyncCallback) -> None:
        group = self.groups.get(request.group_id)
        if group is None or group.is_in(GroupState.DEAD):
            respond(SyncResult(ErrorCode.unknown_member_id))
            return
        error = self._validate_member(group, request.member_id, request.group_instance_id)
        if error is not None:
            respond(SyncResult(error))
            return
        if request.generation_id != group.generation_id:
            respond(SyncResult(ErrorCode.illegal_generation))
            return
        if (request.protocol_type is not None and request.protocol_type != group.protocol_type) or (
            request.protocol_name is not None and request.protocol_name != group.protocol_name
        ):
            respond(SyncResult(ErrorCode.inconsistent_group_protocol))
            return
        member = group.members[request.member_id]
        if group.is_in(GroupState.PREPARING_REBALANCE):
            respond(SyncResult(ErrorCode.rebalance_in_progress))
        elif group.is_in(GroupState.COMPLETING_REBALANCE):
            member.awaiting_sync = respond
            group.pending_sync.discard(member.member_id)
            self._schedule_session_expiry(group, member, member.session_timeout_ms)
            if group.leader_id == member.member_id:
                self._complete_sync(group, request.assignments)
        elif group.is_in(GroupState.STABLE):
            group.pending_sync.discard(member.member_id)
            self._schedule_session_expiry(group, member, member.session_timeout_ms)
            respond(
                SyncResult(
                    ErrorCode.none, group.protocol_type, group.protocol_name, member.assignment
                )
            )
        else:
            respond(SyncResult(ErrorCode.unknown_member_id))

    def _complete_sync(self, group: ClassicGroup, assignments: dict[str, bytes]) -> None:
        for member in group.members.values():
            member.assignment = assignments.get(member.member_id, b"")
        try:
            self._store_group(group)
        except KafkaError as exc:
            self._fail_pending_syncs(group, coordinator_error(exc))
            self._prepare_rebalance(group, "storing the assignment failed")
            return
        group.transition(GroupState.STABLE, self.clock())
        for member in group.members.values():
            callback = member.awaiting_sync
            member.awaiting_sync = None
            if callback is not None:
                callback(
                    SyncResult(
                        ErrorCode.none, group.protocol_type, group.protocol_name, member.assignment
                    )
                )

    def _fail_pending_syncs(self, group: ClassicGroup, error: ErrorCode) -> None:
        for member in group.members.values():
            member.assignment = b""
            callback = member.awaiting_sync
            member.awaiting_sync = None
            if callback is not None:
                callback(SyncResult(error))

    # -- Heartbeat and LeaveGroup ----------------------------------------------------------

    def heartbeat(
        self, group_id: str, member_id: str, instance_id: str | None, generation_id: int
    ) -> ErrorCode:
        group = self.groups.get(group_id)
        if group is None or group.is_in(GroupState.DEAD):
            return ErrorCode.unknown_member_id
        error = self._validate_member(group, member_id, instance_id)
        if error is not None:
            return error
        if generation_id != group.generation_id:
            return ErrorCode.illegal_generation
        member = group.members[member_id]
        if group.is_in(GroupState.EMPTY):
            return ErrorCode.unknown_member_id
        self._schedule_session_expiry(group, member, member.session_timeout_ms)
        if group.is_in(GroupState.PREPARING_REBALANCE):
            return ErrorCode.rebalance_in_progress
        return ErrorCode.none

    def leave_group(
        self, group_id: str, leaving: list[tuple[str, str | None]]
    ) -> tuple[ErrorCode, list[ErrorCode]]:
        """Remove members ``(member id, instance id)``; (request error, error per member)."""
        group = self.groups.get(group_id)
        if group is None or group.is_in(GroupState.DEAD):
            return ErrorCode.unknown_member_id, [ErrorCode.unknown_member_id for _ in leaving]
        errors = []
        for given_id, instance_id in leaving:
            member_id = given_id
            if instance_id is not None:
                known = group.static_member_id(instance_id)
                if known is None:
                    errors.append(ErrorCode.unknown_member_id)
                    continue
                if given_id and given_id != known:
                    errors.append(ErrorCode.fenced_instance_id)
                    continue
                member_id = known
            if member_id in group.pending_members:
                group.pending_members.discard(member_id)
                self.timer.cancel(_pending_key(group, member_id))
                self._maybe_complete_join(group)
                errors.append(ErrorCode.none)
                continue
            member = group.members.get(member_id)
            if member is None:
                errors.append(ErrorCode.unknown_member_id)
                continue
            self._remove_member_and_rebalance(group, member, "left the group")
            errors.append(ErrorCode.none)
        return ErrorCode.none, errors

    def _validate_member(
        self, group: ClassicGroup, member_id: str, instance_id: str | None
    ) -> ErrorCode | None:
        if instance_id is not None:
            known = group.static_member_id(instance_id)
            if known is None:
                return ErrorCode.unknown_member_id
            if known != member_id:
                return ErrorCode.fenced_instance_id
        if member_id not in group.members:
            return ErrorCode.unknown_member_id
        return None

    # -- session expiry and removal --------------------------------------------------------

    def _schedule_session_expiry(
        self, group: ClassicGroup, member: ClassicMember, timeout_ms: int
    ) -> None:
        member_id = member.member_id
        self.timer.schedule(
            _session_key(group, member_id),
            timeout_ms,
            lambda: self._session_expired(group, member_id),
        )

    def _session_expired(self, group: ClassicGroup, member_id: str) -> None:
        member = group.members.get(member_id)
        if member is None or group.is_in(GroupState.DEAD):
            return
        if not member.is_new and (
            member.awaiting_join is not None or member.awaiting_sync is not None
        ):
            # Kafka's hasSatisfiedHeartbeat: a member parked in JoinGroup or SyncGroup
            # cannot heartbeat; the rebalance timeout bounds its wait, not its session.
            self._schedule_session_expiry(group, member, member.session_timeout_ms)
            return
        log.info("group %s: member %s session expired", group.group_id, member_id)
        self._remove_member_and_rebalance(group, member, "session timeout expired")

    def _expire_pending_member(self, group: ClassicGroup, member_id: str) -> None:
        if member_id in group.pending_members:
            group.pending_members.discard(member_id)
            self._maybe_complete_join(group)

    def _remove_member(self, group: ClassicGroup, member: ClassicMember, reason: str) -> None:
        log.info("group %s: removing member %s (%s)", group.group_id, member.member_id, reason)
        if member.awaiting_join is not None:
            member.awaiting_join(JoinResult(ErrorCode.unknown_member_id, member.member_id))
        if member.awaiting_sync is not None:
            member.awaiting_sync(SyncResult(ErrorCode.unknown_member_id))
            member.awaiting_sync = None
        self.timer.cancel(_session_key(group, member.member_id))
        group.remove(member.member_id)

    def _remove_member_and_rebalance(
        self, group: ClassicGroup, member: ClassicMember, reason: str
    ) -> None:
        self._remove_member(group, member, reason)
        if group.is_in(GroupState.PREPARING_REBALANCE):
            self._maybe_complete_join(group)
        elif group.is_in(GroupState.STABLE, GroupState.COMPLETING_REBALANCE):
            self._prepare_rebalance(group, f"member {member.member_id} {reason}")

    # -- persistence -----------------------------------------------------------------------

    def _store_group(self, group: ClassicGroup) -> None:
        self.writer([(GroupMetadataKey(group.group_id), group_record(group))])

    def replay(self, group_id: str, value: GroupMetadataValue | None) -> None:
        """Apply a group metadata record read back from ``__consumer_offsets``."""
        if value is None:
            self.groups.pop(group_id, None)
            return
        group = ClassicGroup(
            group_id=group_id,
            generation_id=value.generation,
            protocol_type=value.protocol_type or None,
            protocol_name=value.protocol,
            leader_id=value.leader,
            state_timestamp=value.current_state_timestamp,
        )
        for stored in value.members:
            member = ClassicMember(
                member_id=stored.member_id,
                group_instance_id=stored.group_instance_id,
                client_id=stored.client_id,
                client_host=stored.client_host,
                rebalance_timeout_ms=stored.rebalance_timeout,
                session_timeout_ms=stored.session_timeout,
                protocol_type=value.protocol_type,
                protocols=((value.protocol or "", stored.subscription),),
                assignment=stored.assignment,
            )
            group.add(member, None)
        group.leader_id = value.leader if value.leader in group.members else group.leader_id
        group.state = GroupState.STABLE if group.members else GroupState.EMPTY
        self.groups[group_id] = group

    def activate_loaded_groups(self) -> None:
        """After loading: members must heartbeat within their session or be expired."""
        for group in self.groups.values():
            for member in group.members.values():
                self._schedule_session_expiry(group, member, member.session_timeout_ms)

    def delete(self, group: ClassicGroup) -> None:
        """Forget a group (DeleteGroups, or expiry of an empty group's last offsets)."""
        group.state = GroupState.DEAD
        self.timer.cancel(_join_key(group))
        self.timer.cancel(_sync_key(group))
        self.groups.pop(group.group_id, None)

    def unload(self) -> None:
        """The partition moved away: answer waiting members NOT_COORDINATOR, stop timers."""
        for group in self.groups.values():
            for member in group.members.values():
                if member.awaiting_join is not None:
                    member.awaiting_join(JoinResult(ErrorCode.not_coordinator, member.member_id))
                if member.awaiting_sync is not None:
                    member.awaiting_sync(SyncResult(ErrorCode.not_coordinator))
                self.timer.cancel(_session_key(group, member.member_id))
            self.timer.cancel(_join_key(group))
            self.timer.cancel(_sync_key(group))
            group.state = GroupState.DEAD
        self.groups.clear()


def group_record(group: ClassicGroup) -> GroupMetadataValue:
    protocol = group.protocol_name
    return GroupMetadataValue(
        protocol_type=group.protocol_type or "",
        generation=group.generation_id,
        protocol=protocol,
        leader=group.leader_id if group.members else None,
        current_state_timestamp=group.state_timestamp,
        members=tuple(
            MemberMetadata(
                member_id=m.member_id,
                group_instance_id=m.group_instance_id,
                client_id=m.client_id,
                client_host=m.client_host,
                rebalance_timeout=m.rebalance_timeout_ms,
                session_timeout=m.session_timeout_ms,
                subscription=m.metadata(protocol) if protocol is not None else b"",
                assignment=m.assignment,
            )
            for m in group.members.values()
        ),
    )


def _session_key(group: ClassicGroup, member_id: str) -> str:
    return f"session:{group.group_id}:{member_id}"


def _pending_key(group: ClassicGroup, member_id: str) -> str:
    return f"pending:{group.group_id}:{member_id}"


def _join_key(group: ClassicGroup) -> str:
    return f"join:{group.group_id}"


def _sync_key(group: ClassicGroup) -> str:
    return f"sync:{group.group_id}"
