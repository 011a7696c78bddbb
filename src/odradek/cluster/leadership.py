"""The elected controller's duty: every partition has a live leader from its ISR.

Kafka's controller reacts to brokers going and coming (``onBrokerFailure``,
``onBrokerStartup``): a partition whose leader died gets a new leader from the live
members of its ISR, in replica order (``offlinePartitionLeaderElection``), with the
leader epoch bumped; dead brokers leave the ISRs; with no live ISR member the partition
stays offline (leader -1, the ISR keeps its last member) unless
``unclean.leader.election.enable`` allows any live replica. A partition offline for want
of a leader gets one as soon as an ISR member comes back.

A replica in a failed log dir of a live broker (the broker lists it among the offline
replicas of its registration, see ``BrokerRegistration``) is treated as a replica of a
dead broker for that partition, as Kafka's controller moves such replicas to
OfflineReplica: it leaves the ISR (unless it is the last member) and never leads. The
broker's other partitions are not touched.

Only the broker that won the controller election acts; every write is conditional on the
partition epoch it read, so it never overwrites a change it has not seen.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import replace

from odradek.cluster.brokers import BrokerRegistration, LiveReplicas
from odradek.cluster.metadata import (
    MetadataListener,
    MetadataStore,
    PartitionState,
    TopicMetadata,
)
from odradek.config import BrokerConfig
from odradek.protocol.errors import KafkaError

log = logging.getLogger(__name__)

NO_LEADER = -1


def elect_offline_leader(
    state: PartitionState, live: Collection[int], unclean: bool, offline: Collection[int] = ()
) -> PartitionState | None:
    """The state after dead brokers, and live brokers whose replica of this partition is
    ``offline`` (in a failed log dir), are taken out of the partition's leadership and
    ISR; None when nothing changes."""
    if offline:
        live = set(live).difference(offline)
    leader_alive = state.leader in live
    isr = tuple(r for r in state.isr if r in live)
    if leader_alive:
        if isr == state.isr:
            return None
        # A follower died: it leaves the ISR. As in KRaft, the leader epoch moves only
        # with the leader; the new ISR is a new partition epoch.
        return replace(state, isr=isr)
    candidates = [r for r in state.replicas if r in isr]
    if not candidates and unclean:
        candidates = [r for r in state.replicas if r in live]
        isr = tuple(candidates[:1])
    if not candidates:
        if state.leader == NO_LEADER:
            return None
        # Offline: keep the last ISR member so it can take over when it returns.
        last = state.isr[:1] if state.leader not in state.isr else (state.leader,)
        return replace(state, leader=NO_LEADER, leader_epoch=state.leader_epoch + 1, isr=last)
    return replace(state, leader=candidates[0], leader_epoch=state.leader_epoch + 1, isr=isr)


def write_transitions(
    store: MetadataStore,
    topic: TopicMetadata,
    transition: Callable[[int, PartitionState], PartitionState | None],
    what: str,
) -> dict[int, PartitionState]:
    """Apply ``transition`` (index, state) to every partition of ``topic`` and write the
    states it changes in one conditional update; the states written (none if it lost the
    race: a newer state or a newer controller won, and the change notice that follows
    brings the controller back with fresh states)."""
    changes = {
        index: changed
        for index, state in enumerate(topic.partitions)
        if (changed := transition(index, state)) is not None
    }
    if not changes:
        return {}
    try:
        store.alter_partition_states(topic.name, changes)
    except KafkaError as exc:
        log.info("%s for %s deferred: %s", what, topic.name, exc)
        return {}
    return changes


class LeadershipController(MetadataListener):
    def __init__(self, store: MetadataStore, config: BrokerConfig) -> None:
        self._store = store
        self._config = config
        self._active = False
        self._pending: set[str] | None = None
        """Topics to look at on the next loop turn (empty set: all of them)."""

    @property
    def active(self) -> bool:
        return self._active

    def controller_changed(self, controller_id: int, is_self: bool) -> None:
        self._active = is_self
        if is_self:
            self._schedule(None)

    def session_lost(self) -> None:
        self._active = False

    def brokers_changed(self, brokers: Mapping[int, BrokerRegistration]) -> None:
        if self._active:
            self._schedule(None)

    def topic_created(self, topic: TopicMetadata) -> None:
        if self._active:
            self._schedule(topic.name)

    def topic_configs_changed(self, topic: TopicMetadata) -> None:
        """Kafka's controller elects offline partitions of a topic whose
        ``unclean.leader.election.enable`` was turned on; a look costs nothing when
        no partition is offline."""
        if self._active:
            self._schedule(topic.name)

    def entity_configs_changed(self, entity_type: str, name: str) -> None:
        """A dynamic broker config may have turned ``unclean.leader.election.enable``
        on (the dynamic configs are reloaded before the next loop turn, when this runs)."""
        if self._active and entity_type == "brokers":
            self._schedule(None)

    def _schedule(self, topic: str | None) -> None:
        """Elect on the next loop turn, not inside the store's notification: a write made
        while the store is still telling its listeners of one change would reach the
        listeners after this one before the change itself does."""
        first = self._pending is None
        if first:
            self._pending = set()
        assert self._pending is not None
        if topic is None:
            self._pending.add("")
        else:
            self._pending.add(topic)
        if not first:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._run_pending()  # no loop (tests of the single node): at once
            return
        loop.call_soon(self._run_pending)

    def _run_pending(self) -> None:
        pending, self._pending = self._pending or set(), None
        if not self._active:
            return
        if "" in pending:
            self.elect_leaders()
            return
        for name in sorted(pending):
            topic = self._store.topic(name)
            if topic is not None:
                self._elect(topic)

    def elect_leaders(self) -> None:
        """Bring every partition's leadership and ISR in line with the live brokers."""
        for topic in list(self._store.topics().values()):
            self._elect(topic)

    def _elect(self, topic: TopicMetadata) -> None:
        live = LiveReplicas.of(self._store.brokers())
        if not live.brokers:
            return
        unclean = self._unclean(topic)
        changes = write_transitions(
            self._store,
            topic,
            lambda index, state: elect_offline_leader(
                state, live.brokers, unclean, live.offline_in(topic.topic_id, index)
            ),
            "leader election",
        )
        for index, state in sorted(changes.items()):
            log.info(
                "partition %s-%d: leader %d (epoch %d), isr %s",
                topic.name,
                index,
                state.leader,
                state.leader_epoch,
                list(state.isr),
            )

    def partition_states_changed(self, topic: TopicMetadata, indices: Sequence[int]) -> None:
        if not self._active:
            return
        live = LiveReplicas.of(self._store.brokers())
        for index in indices:
            serving = live.serving(topic.topic_id, index)
            state = topic.partitions[index]
            if state.leader not in serving or any(r not in serving for r in state.isr):
                self._schedule(topic.name)
                return

    def _unclean(self, topic: TopicMetadata) -> bool:
        return unclean_allowed(topic, self._config)


def unclean_allowed(topic: TopicMetadata, config: BrokerConfig) -> bool:
    """``unclean.leader.election.enable`` for this topic (its override, else the broker's)."""
    raw = topic.configs.get("unclean.leader.election.enable")
    if raw is not None:
        return raw.strip().lower() == "true"
    return bool(config.get("unclean.leader.election.enable"))
