"""The controller's automatic preferred-leader rebalance (``auto.leader.rebalance.enable``).

After failures, leadership piles up on the brokers that stayed; the preferred (first)
replicas spread it as assigned. Kafka's controller checks every
``leader.imbalance.check.interval.seconds`` (the first time 5 s after it takes over), and
for each broker counts the partitions it is the preferred replica of but does not lead:
when that share exceeds ``leader.imbalance.per.broker.percentage``, each of those
partitions whose preferred replica is alive and in the ISR gets a preferred election
(``checkAndTriggerAutoLeaderRebalance``). Nothing moves while a reassignment is under
way, as in Kafka. A preferred replica in a failed log dir is not alive for its partition
(``LiveReplicas``), so leadership never moves to it.

Only the elected controller runs the check; its writes are the conditional writes of
``election.elect_leaders``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping

from odradek.cluster.brokers import LiveReplicas
from odradek.cluster.election import ElectionType, elect_leaders, preferred_leader_election
from odradek.cluster.metadata import MetadataListener, MetadataStore, TopicMetadata
from odradek.config import BrokerConfig
from odradek.protocol.errors import ErrorCode

log = logging.getLogger(__name__)

FIRST_CHECK_SECONDS = 5.0
"""Kafka schedules the first check this long after the controller takes over."""


def rebalance_candidates(
    topics: Iterable[TopicMetadata], live: LiveReplicas, percentage: int
) -> dict[str, list[int]]:
    """Partitions (topic -> indices) that a rebalance moves to their preferred replica."""
    by_preferred: dict[int, list[tuple[str, int]]] = defaultdict(list)
    states = {}
    topic_ids = {}
    for topic in topics:
        topic_ids[topic.name] = topic.topic_id
        for index, state in enumerate(topic.partitions):
            if state.reassigning:
                return {}
            if state.replicas:
                by_preferred[state.preferred_leader].append((topic.name, index))
                states[topic.name, index] = state
    candidates: dict[str, list[int]] = defaultdict(list)
    for broker, partitions in sorted(by_preferred.items()):
        not_led = [tp for tp in partitions if states[tp].leader != broker]
        if len(not_led) / len(partitions) <= percentage / 100:
            continue
        for name, index in not_led:
            serving = live.serving(topic_ids[name], index)
            if preferred_leader_election(states[name, index], serving) is not None:
                candidates[name].append(index)
    return dict(candidates)


class LeaderRebalancer(MetadataListener):
    """Runs the imbalance check on a timer while this broker is the controller."""

    def __init__(self, store: MetadataStore, config: BrokerConfig) -> None:
        self._store = store
        self._enabled = bool(config.get("auto.leader.rebalance.enable"))
        self._interval = float(config.get("leader.imbalance.check.interval.seconds"))
        self._percentage = int(config.get("leader.imbalance.per.broker.percentage"))
        self._timer: asyncio.TimerHandle | None = None

    def controller_changed(self, controller_id: int, is_self: bool) -> None:
        self._cancel()
        if is_self and self._enabled:
            self._schedule(min(FIRST_CHECK_SECONDS, self._interval))

    def session_lost(self) -> None:
        self._cancel()

    def close(self) -> None:
        self._cancel()

    def _schedule(self, delay: float) -> None:
        self._timer = asyncio.get_running_loop().call_later(delay, self._tick)

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _tick(self) -> None:
        self._timer = None
        try:
            self.check()
        except Exception:
            log.exception("leader imbalance check failed")
        self._schedule(self._interval)

    def check(self) -> Mapping[tuple[str, int], ErrorCode]:
        """One imbalance check and the elections it triggers; their results."""
        candidates = rebalance_candidates(
            self._store.topics().values(), LiveReplicas.of(self._store.brokers()), self._percentage
        )
        if not candidates:
            return {}
        results = elect_leaders(self._store, ElectionType.PREFERRED, candidates)
        moved = sum(1 for r in results.values() if r.error is ErrorCode.none)
        log.info("leader imbalance: moved %d partitions to their preferred replica", moved)
        return {tp: r.error for tp, r in results.items()}
