"""Partition reassignment (KIP-455): AlterPartitionReassignments and its completion.

A reassignment moves a partition to a target replica list in three steps, as Kafka does:

1. Growth, written by whichever broker takes the request: the replicas become the
   target followed by the current replicas not in it, ``adding_replicas`` the target
   replicas not yet replicas, ``removing_replicas`` the current ones not in the target.
   Leader and ISR stay. Brokers that see themselves among the replicas start hosting the
   partition and fetch it as followers; the leader adds them to the ISR once caught up.
2. Completion, by the elected controller (``ReassignmentController``) as soon as every
   target replica is in the ISR (Kafka's ZooKeeper-mode rule; the switch never happens
   with a target replica still copying): the replicas become the target, the removed
   replicas leave the ISR, leadership moves to the first live target replica in the ISR
   if the leader is being removed, and the leader epoch is bumped (Kafka's step B3) so
   nothing from a removed replica is taken any more. Removed brokers stop hosting the
   partition and delete its log when they see the new state.
3. Cancellation (null replicas): the replicas being added leave the replica set and the
   ISR, the original replicas stay; cancelling with nothing under way answers
   NO_REASSIGNMENT_IN_PROGRESS. A revert that would leave no ISR member needs
   ``unclean.leader.election.enable``, as in Kafka.

A request whose target needs no new replica (a reorder, or dropping replicas that are
all in sync) completes in the growth write. A new request for a partition under
reassignment replaces its target, counting from the current (grown) replica set, as
KRaft does.

"Live" is per partition (``LiveReplicas``): a live broker whose replica of the partition
is in a failed log dir is left out, so a reassignment never hands it the leadership;
completion waits for a target replica that is offline, as for one on a dead broker.

The state lives in the partition state (``adding_replicas``/``removing_replicas``; in
ZooKeeper, the topic znode's fields of those names), so a new controller finishes what
the old one started: on taking over it looks at every partition under reassignment.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace

from odradek.cluster.brokers import BrokerRegistration, LiveReplicas
from odradek.cluster.leadership import NO_LEADER, unclean_allowed, write_transitions
from odradek.cluster.metadata import (
    MetadataListener,
    MetadataStore,
    PartitionState,
    TopicMetadata,
    UnknownTopicError,
)
from odradek.config import BrokerConfig
from odradek.protocol.errors import ErrorCode, KafkaError

log = logging.getLogger(__name__)


class InvalidReplicaAssignmentError(KafkaError):
    error_code = ErrorCode.invalid_replica_assignment


class InvalidReplicationFactorError(KafkaError):
    error_code = ErrorCode.invalid_replication_factor


class NoReassignmentInProgressError(KafkaError):
    error_code = ErrorCode.no_reassignment_in_progress


# -- the transitions (pure) --------------------------------------------------------------------


def check_target(
    target: Sequence[int],
    registered: Collection[int],
    current_factor: int,
    allow_replication_factor_change: bool = True,
) -> None:
    """Kafka's checks of a manual assignment, with its messages."""
    if not target:
        raise InvalidReplicaAssignmentError(
            "The manual partition assignment includes an empty replica list."
        )
    seen: set[int] = set()
    for broker in sorted(target):
        if broker not in registered:
            raise InvalidReplicaAssignmentError(
                f"The manual partition assignment includes broker {broker}, but no such "
                "broker is registered."
            )
        if broker in seen:
            raise InvalidReplicaAssignmentError(
                f"The manual partition assignment includes the broker {broker} more than once."
            )
        seen.add(broker)
    if not allow_replication_factor_change and len(target) != current_factor:
        raise InvalidReplicationFactorError(
            f"The replication factor is changed from {current_factor} to {len(target)}"
        )


def start_reassignment(
    state: PartitionState, target: Sequence[int], live: Collection[int]
) -> PartitionState:
    """The grown state for ``target`` (completed at once when no replica must be added
    and the target is in sync). ``live``: the brokers that can serve this partition."""
    target = tuple(target)
    current = state.replicas
    adding = tuple(r for r in target if r not in current)
    removing = tuple(r for r in current if r not in target)
    grown = replace(
        state,
        replicas=target + removing,
        adding_replicas=adding,
        removing_replicas=removing,
    )
    if not grown.reassigning:
        return grown
    return complete_reassignment(grown, live) or grown


def complete_reassignment(state: PartitionState, live: Collection[int]) -> PartitionState | None:
    """The final state once every target replica is in the ISR and one of them can lead;
    None while the reassignment must wait."""
    if not state.reassigning:
        return None
    target = state.target_replicas
    if not set(target) <= set(state.isr):
        return None
    isr = tuple(r for r in state.isr if r in target)
    leader = state.leader
    if leader not in target or leader not in live:
        candidates = [r for r in target if r in isr and r in live]
        if not candidates:
            return None
        leader = candidates[0]
    return replace(
        state,
        leader=leader,
        leader_epoch=state.leader_epoch + 1,
        replicas=target,
        isr=isr,
        adding_replicas=(),
        removing_replicas=(),
    )


def cancel_reassignment(
    state: PartitionState, live: Collection[int], *, unclean: bool, name: str = ""
) -> PartitionState:
    """The state with the reassignment reverted (Kafka's PartitionReassignmentRevert)."""
    if not state.reassigning:
        raise NoReassignmentInProgressError(
            f"No ongoing reassignment for partition {name}." if name else ""
        )
    adding = set(state.adding_replicas)
    replicas = tuple(r for r in state.replicas if r not in adding)
    isr = tuple(r for r in state.isr if r not in adding)
    if not isr:
        if not unclean:
            raise InvalidReplicaAssignmentError(
                f"Unable to revert partition assignment for {name} because it would "
                "require an unclean leader election."
            )
        isr = tuple(r for r in replicas if r in live)[:1]
    candidates = [r for r in replicas if r in isr and r in live]
    if state.leader in candidates:
        leader = state.leader
    else:
        leader = candidates[0] if candidates else NO_LEADER
    return replace(
        state,
        leader=leader,
        leader_epoch=state.leader_epoch + 1,
        replicas=replicas,
        isr=isr,
        adding_replicas=(),
        removing_replicas=(),
    )


# -- requests ------------------------------------------------------------------------------


def alter_reassignment(
    store: MetadataStore,
    config: BrokerConfig,
    name: str,
    index: int,
    target: Sequence[int] | None,
    *,
    allow_replication_factor_change: bool = True,
) -> PartitionState:
    """Start, replace (``target``) or cancel (None) one partition's reassignment; the
    state written. KafkaError with Kafka's code when the request is refused."""
    topic = store.topic(name)
    if topic is None:
        raise UnknownTopicError(f"Unable to find topic {name}")
    if not 0 <= index < len(topic.partitions):
        raise UnknownTopicError(f"Unable to find partition {name}:{index}")
    state = topic.partitions[index]
    registered = store.brokers()
    live = LiveReplicas.of(registered).serving(topic.topic_id, index)
    if target is None:
        new = cancel_reassignment(
            state, live, unclean=unclean_allowed(topic, config), name=f"{name}:{index}"
        )
    else:
        check_target(
            target, registered, len(state.target_replicas), allow_replication_factor_change
        )
        new = start_reassignment(state, target, live)
        if new == state:
            return state
    store.alter_partition_states(name, {index: new})
    log.info(
        "partition %s-%d: %s; replicas %s, adding %s, removing %s",
        name,
        index,
        "reassignment cancelled" if target is None else f"reassigning to {list(target)}",
        list(new.replicas),
        list(new.adding_replicas),
        list(new.removing_replicas),
    )
    return new


def ongoing_reassignments(
    store: MetadataStore, wanted: Mapping[str, Sequence[int]] | None
) -> dict[str, dict[int, PartitionState]]:
    """Partitions under reassignment (all, or among ``wanted``: unknown names skipped,
    as Kafka does)."""
    found: dict[str, dict[int, PartitionState]] = {}
    topics = store.topics()
    names = sorted(topics) if wanted is None else list(wanted)
    for name in names:
        topic = topics.get(name)
        if topic is None:
            continue
        indices = range(len(topic.partitions)) if wanted is None else wanted[name]
        for index in indices:
            if 0 <= index < len(topic.partitions) and topic.partitions[index].reassigning:
                found.setdefault(name, {})[index] = topic.partitions[index]
    return found


# -- the controller's part -------------------------------------------------------------------


class ReassignmentController(MetadataListener):
    """Completes reassignments on the elected controller.

    Reacts to partition state changes (the ISR growing), to brokers coming and going (a
    target replica that can lead came back), and to becoming controller (a predecessor's
    reassignments). Work runs in a callback soon after the change rather than inside
    the store's notification, so that the write it makes does not interleave with the
    other listeners' handling of the change that caused it.
    """

    def __init__(self, store: MetadataStore) -> None:
        self._store = store
        self._active = False
        self._pending: set[str] = set()
        self._scheduled = False

    def controller_changed(self, controller_id: int, is_self: bool) -> None:
        self._active = is_self
        if is_self:
            self._check(self._store.topics())

    def session_lost(self) -> None:
        self._active = False

    def brokers_changed(self, brokers: Mapping[int, BrokerRegistration]) -> None:
        if self._active:
            self._check(self._store.topics())

    def partition_states_changed(self, topic: TopicMetadata, indices: Sequence[int]) -> None:
        if self._active and any(topic.partitions[i].reassigning for i in indices):
            self._check([topic.name])

    def _check(self, names: Collection[str]) -> None:
        self._pending.update(names)
        if not self._scheduled and self._pending:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._complete_pending)

    def _complete_pending(self) -> None:
        self._scheduled = False
        names, self._pending = self._pending, set()
        if not self._active:
            return
        live = LiveReplicas.of(self._store.brokers())
        for name in sorted(names):
            topic = self._store.topic(name)
            if topic is not None:
                self.complete(topic, live)

    def complete(self, topic: TopicMetadata, live: LiveReplicas) -> None:
        changes = write_transitions(
            self._store,
            topic,
            lambda index, state: complete_reassignment(state, live.serving(topic.topic_id, index)),
            "completing reassignments",
        )
        for index, state in sorted(changes.items()):
            log.info(
                "partition %s-%d: reassignment completed; replicas %s, leader %d (epoch %d)",
                topic.name,
                index,
                list(state.replicas),
                state.leader,
                state.leader_epoch,
            )
