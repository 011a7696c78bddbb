"""Leader elections asked for by an operator (ElectLeaders, KIP-460) or by the controller's
preferred-leader rebalance.

Two election types, as Kafka's ``ElectionType``:

- PREFERRED: the first replica becomes leader if it is alive and in the ISR (Kafka's
  ``preferredReplicaPartitionLeaderElection``). A partition already led by it gets
  ELECTION_NOT_NEEDED; one whose preferred replica cannot lead,
  PREFERRED_LEADER_NOT_AVAILABLE.
- UNCLEAN: only for a partition with no live leader: the first live ISR member, else
  the first live replica even outside the ISR, whatever
  ``unclean.leader.election.enable`` says (the operator asked for it). A partition with
  a live leader gets ELECTION_NOT_NEEDED; one with no live replica at all,
  ELIGIBLE_LEADERS_NOT_AVAILABLE.

The leader epoch is bumped, the ISR kept (an unclean leader's ISR is itself alone).
"Alive" is per partition: a live broker whose replica of the partition is in a failed
log dir (``LiveReplicas``) is not alive for it, so it is never elected.

Who elects. Kafka's ZooKeeper-mode controller answered NOT_CONTROLLER on any other
broker; Kafka 4 brokers forward the request to the controller, so a client may send it
anywhere. Here the broker that receives the request performs the election itself, against
the metadata store: every write is conditional on the partition epoch it read (a lost
race is read again and retried), so an election can never undo a change it has not seen,
and the elected controller still owns the reactions to failures (a leader that died
meanwhile is replaced by its ``LeadershipController`` as soon as the change is seen).
Clients therefore never see NOT_CONTROLLER, as with Kafka 4, and no broker-to-broker RPC
is needed.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, replace

from odradek.cluster.brokers import LiveReplicas
from odradek.cluster.leadership import NO_LEADER, elect_offline_leader
from odradek.cluster.metadata import MetadataStore, PartitionState, StaleStateError
from odradek.protocol.errors import ErrorCode, KafkaError

log = logging.getLogger(__name__)

WRITE_ATTEMPTS = 3
"""A topic's elections whose conditional write lost a race are recomputed from the fresh
state this many times in all."""


class ElectionType(enum.IntEnum):
    PREFERRED = 0
    UNCLEAN = 1


@dataclass(frozen=True, slots=True)
class ElectionResult:
    """One partition's outcome: NONE with the new leader, or Kafka's error code."""

    error: ErrorCode
    message: str | None = None
    leader: int = NO_LEADER


NOT_NEEDED = ElectionResult(ErrorCode.election_not_needed, "Leader election not needed")


def preferred_leader_election(
    state: PartitionState, live: Collection[int]
) -> PartitionState | None:
    """The state with the preferred replica leading, if it is alive (in ``live``: the
    brokers that can serve this partition) and in the ISR and not leading already; None
    otherwise."""
    preferred = state.preferred_leader
    if state.leader == preferred or preferred not in live or preferred not in state.isr:
        return None
    return replace(state, leader=preferred, leader_epoch=state.leader_epoch + 1)


def elect(
    state: PartitionState, election_type: ElectionType, live: Collection[int]
) -> tuple[PartitionState | None, ElectionResult]:
    """One partition's election: the new state (None: nothing to write) and its result.
    ``live``: the brokers that can serve this partition."""
    if election_type is ElectionType.PREFERRED:
        if state.leader == state.preferred_leader:
            return None, NOT_NEEDED
        elected = preferred_leader_election(state, live)
        if elected is None:
            return None, ElectionResult(
                ErrorCode.preferred_leader_not_available,
                f"Failed to elect leader: preferred replica {state.preferred_leader} is "
                f"{'not in the ISR' if state.preferred_leader in live else 'not alive'}",
            )
        return elected, ElectionResult(ErrorCode.none, None, elected.leader)
    if state.leader != NO_LEADER and state.leader in live:
        return None, NOT_NEEDED
    elected = elect_offline_leader(state, live, unclean=True)
    if elected is None or elected.leader == NO_LEADER:
        return elected, ElectionResult(
            ErrorCode.eligible_leaders_not_available,
            f"Failed to elect leader: none of replicas {list(state.replicas)} is alive",
        )
    return elected, ElectionResult(ErrorCode.none, None, elected.leader)


def elect_leaders(
    store: MetadataStore,
    election_type: ElectionType,
    partitions: Mapping[str, Iterable[int]],
) -> dict[tuple[str, int], ElectionResult]:
    """Run elections for ``partitions`` (topic -> partition indices) and write the new
    states, one conditional write per topic; each partition's result."""
    results: dict[tuple[str, int], ElectionResult] = {}
    for name, indices in partitions.items():
        wanted = sorted(set(indices))
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            topic = store.topic(name)
            if topic is None:
                for index in wanted:
                    results[name, index] = ElectionResult(
                        ErrorCode.unknown_topic_or_partition, "The partition does not exist."
                    )
                break
            live = LiveReplicas.of(store.brokers())
            changes: dict[int, PartitionState] = {}
            outcome: dict[int, ElectionResult] = {}
            for index in wanted:
                if not 0 <= index < len(topic.partitions):
                    outcome[index] = ElectionResult(
                        ErrorCode.unknown_topic_or_partition, "The partition does not exist."
                    )
                    continue
                elected, result = elect(
                    topic.partitions[index], election_type, live.serving(topic.topic_id, index)
                )
                outcome[index] = result
                if elected is not None and result.error is ErrorCode.none:
                    changes[index] = elected
            if changes:
                try:
                    store.alter_partition_states(name, changes)
                except StaleStateError:
                    if attempt < WRITE_ATTEMPTS:
                        continue
                    lost = ElectionResult(
                        ErrorCode.invalid_update_version,
                        "the partition state kept changing; try again",
                    )
                    outcome.update(dict.fromkeys(changes, lost))
                except KafkaError as exc:
                    outcome.update(dict.fromkeys(changes, ElectionResult(exc.error_code, str(exc))))
                else:
                    for index, state in changes.items():
                        log.info(
                            "%s election: partition %s-%d led by %d (epoch %d)",
                            election_type.name.lower(),
                            name,
                            index,
                            state.leader,
                            state.leader_epoch,
                        )
            for index, result in outcome.items():
                results[name, index] = result
            break
    return results
