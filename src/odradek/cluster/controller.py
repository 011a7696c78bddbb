"""Topic operations: validation, replica assignment, metadata changes.

Kafka's controller validates a topic change, assigns replicas and writes the metadata;
brokers learn of it from the metadata store (its listeners) and act: create or delete
their local logs. Any broker runs these operations, as the controller of Kafka's
ZooKeeper mode did on behalf of whichever broker took the request: the store's writes are
atomic and conditional, so two brokers creating one topic at once get one topic and one
TOPIC_ALREADY_EXISTS. Errors are raised as KafkaError with Kafka's code and wording.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from odradek.cluster.brokers import BrokerRegistration
from odradek.cluster.metadata import (
    MetadataStore,
    TopicExistsError,
    TopicMetadata,
    UnknownTopicError,
)
from odradek.config import BrokerConfig, ConfigError, validate_topic_configs
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.protocol.types import is_internal_topic, topic_name_problem

log = logging.getLogger(__name__)

MAX_PARTITIONS = 100_000
"""Partitions of one topic that we accept; a typo like 1e9 must not fill the disk."""
MAX_PARTITIONS_PER_BATCH = 10_000
"""Partitions one CreateTopics or CreatePartitions request may add (Kafka's controller
limit): each new partition is a log created while the request is handled."""


class PolicyViolationError(KafkaError):
    error_code = ErrorCode.policy_violation


def check_batch_size(total: int) -> None:
    """PolicyViolationError when one request would add more than the per-request limit."""
    if total > MAX_PARTITIONS_PER_BATCH:
        raise PolicyViolationError("Excessively large number of partitions per request.")


class InvalidTopicError(KafkaError):
    error_code = ErrorCode.invalid_topic_exception


class InvalidPartitionsError(KafkaError):
    error_code = ErrorCode.invalid_partitions


class InvalidReplicationFactorError(KafkaError):
    error_code = ErrorCode.invalid_replication_factor


class InvalidReplicaAssignmentError(KafkaError):
    error_code = ErrorCode.invalid_replica_assignment


class InvalidConfigError(KafkaError):
    error_code = ErrorCode.invalid_config


class TopicDeletionDisabledError(KafkaError):
    error_code = ErrorCode.topic_deletion_disabled


class Controller:
    def __init__(self, store: MetadataStore, config: BrokerConfig) -> None:
        self._store = store
        self._config = config

    def live_brokers(self) -> list[int]:
        return sorted(self._store.brokers())

    # -- topics ----------------------------------------------------------------------------

    def create_topic(
        self,
        name: str,
        num_partitions: int = -1,
        replication_factor: int = -1,
        assignment: Mapping[int, Sequence[int]] | None = None,
        configs: Mapping[str, str | None] | None = None,
        *,
        validate_only: bool = False,
    ) -> TopicMetadata | None:
        """Create a topic (or only check that it could be); the new topic's metadata."""
        self.check_topic_name(name)
        if self._store.topic(name) is not None:
            raise TopicExistsError(f"Topic '{name}' already exists.")
        self._check_collision(name)
        parsed_configs = self._parse_configs(configs or {})
        if assignment:
            if num_partitions != -1 or replication_factor != -1:
                raise KafkaError(
                    "Both numPartitions or replicationFactor and replicasAssignments were set. "
                    "Both cannot be used at the same time.",
                    ErrorCode.invalid_request,
                )
            replicas = self._check_assignment(assignment, start=0)
        else:
            partitions = (
                self._config.get("num.partitions") if num_partitions == -1 else num_partitions
            )
            factor = (
                self._config.get("default.replication.factor")
                if replication_factor == -1
                else replication_factor
            )
            if partitions <= 0:
                raise InvalidPartitionsError("Number of partitions must be larger than 0.")
            if partitions > MAX_PARTITIONS:
                raise InvalidPartitionsError(
                    f"Number of partitions {partitions} exceeds the limit of {MAX_PARTITIONS}."
                )
            replicas = self._assign(partitions, factor, start=0)
        if validate_only:
            return None
        topic = self._store.create_topic(name, replicas, parsed_configs)
        log.info("created topic %s with %d partitions", name, len(topic.partitions))
        return topic

    def delete_topic(self, name: str) -> TopicMetadata:
        if not self._config.get("delete.topic.enable"):
            raise TopicDeletionDisabledError("Topic deletion is disabled.")
        if is_internal_topic(name):
            raise KafkaError(
                f"Internal topic {name} cannot be deleted", ErrorCode.topic_authorization_failed
            )
        topic = self._store.delete_topic(name)
        log.info("deleted topic %s", name)
        return topic

    def create_partitions(
        self,
        name: str,
        count: int,
        assignment: Sequence[Sequence[int]] | None = None,
        *,
        validate_only: bool = False,
    ) -> None:
        topic = self._store.topic(name)
        if topic is None:
            raise UnknownTopicError(f"The topic '{name}' does not exist.")
        current = len(topic.partitions)
        if count < current:
            raise InvalidPartitionsError(
                f"Topic currently has {current} partitions, which is higher than the "
                f"requested {count}."
            )
        if count == current:
            raise InvalidPartitionsError(f"Topic already has {current} partitions.")
        if count > MAX_PARTITIONS:
            raise InvalidPartitionsError(
                f"Number of partitions {count} exceeds the limit of {MAX_PARTITIONS}."
            )
        added = count - current
        if assignment is not None:
            if len(assignment) != added:
                raise InvalidReplicaAssignmentError(
                    f"Increasing the number of partitions by {added} but {len(assignment)} "
                    "assignments provided."
                )
            replicas = self._check_assignment(dict(enumerate(assignment)), start=0)
        else:
            replicas = self._assign(added, topic.replication_factor, start=current)
        if validate_only:
            return
        self._store.add_partitions(name, replicas)

    def set_topic_configs(
        self, name: str, configs: Mapping[str, str | None], *, validate_only: bool = False
    ) -> None:
        """Replace a topic's config overrides (AlterConfigs, or the result of an increment)."""
        if self._store.topic(name) is None:
            raise UnknownTopicError(f"The topic '{name}' does not exist.")
        parsed = self._parse_configs(configs)
        if validate_only:
            return
        self._store.set_topic_configs(name, parsed)

    # -- validation and assignment ---------------------------------------------------------

    @staticmethod
    def check_topic_name(name: str) -> None:
        problem = topic_name_problem(name)
        if problem is not None:
            raise InvalidTopicError(problem)

    def _check_collision(self, name: str) -> None:
        """Kafka refuses names that differ from an existing one only in '.' versus '_'."""
        if "." not in name and "_" not in name:
            return
        normalized = name.replace(".", "_")
        for existing in self._store.topics():
            if existing.replace(".", "_") == normalized:
                raise InvalidTopicError(f"Topic '{name}' collides with existing topic: {existing}")

    def _parse_configs(self, configs: Mapping[str, str | None]) -> dict[str, str]:
        try:
            validate_topic_configs(configs)
        except ConfigError as exc:
            raise InvalidConfigError(str(exc)) from None
        return {key: value for key, value in configs.items() if value is not None}

    def _assign(self, partitions: int, factor: int, start: int) -> list[list[int]]:
        """Round-robin replica assignment over the live brokers, leaders spread out.

        With racks set, the brokers are first ordered alternating between racks (Kafka's
        rack-alternated list), so a partition's consecutive replicas sit on different
        racks whenever there are enough of them.
        """
        brokers = rack_alternated(self._store.brokers())
        if factor <= 0:
            raise InvalidReplicationFactorError("Replication factor must be larger than 0.")
        if factor > len(brokers):
            raise InvalidReplicationFactorError(
                f"Unable to replicate the partition {factor} time(s): The target "
                f"replication factor of {factor} cannot be reached because only "
                f"{len(brokers)} broker(s) are registered."
            )
        return [
            [brokers[(start + p + r) % len(brokers)] for r in range(factor)]
            for p in range(start, start + partitions)
        ]

    def _check_assignment(
        self, assignment: Mapping[int, Sequence[int]], start: int
    ) -> list[list[int]]:
        live = set(self._store.brokers())
        indices = sorted(assignment)
        if indices != list(range(start, start + len(indices))):
            raise InvalidReplicaAssignmentError(
                "Partitions should be a consecutive 0-based integer sequence"
            )
        sizes = {len(assignment[i]) for i in indices}
        if len(sizes) != 1 or 0 in sizes:
            raise InvalidReplicaAssignmentError(
                "All partitions should have the same number of replicas"
            )
        result = []
        for index in indices:
            replicas = list(assignment[index])
            if len(set(replicas)) != len(replicas):
                raise InvalidReplicaAssignmentError(
                    f"Duplicate replica assignment for partition {index}: {replicas}"
                )
            unknown = [r for r in replicas if r not in live]
            if unknown:
                raise InvalidReplicaAssignmentError(
                    f"Unknown broker(s) {unknown} in the assignment of partition {index}"
                )
            result.append(replicas)
        return result


def rack_alternated(brokers: Mapping[int, BrokerRegistration]) -> list[int]:
    """Broker ids ordered rack by rack in turn: racks sorted, brokers sorted within."""
    by_rack: dict[str, list[int]] = {}
    for broker_id in sorted(brokers):
        by_rack.setdefault(brokers[broker_id].rack or "", []).append(broker_id)
    if len(by_rack) <= 1:
        return sorted(brokers)
    queues = [by_rack[rack] for rack in sorted(by_rack)]
    ordered: list[int] = []
    for turn in range(max(len(queue) for queue in queues)):
        ordered.extend(queue[turn] for queue in queues if turn < len(queue))
    return ordered
