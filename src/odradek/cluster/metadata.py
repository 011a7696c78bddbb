"""Cluster metadata: brokers, topics, their partitions' leadership, configs, producer ids.

``MetadataStore`` is what the broker needs of cluster metadata. ``LocalStore`` serves a
single node: the node is its own controller and keeps the metadata in one JSON document,
``cluster-metadata.json`` in the first log dir, replaced atomically (write to a temporary
file, fsync, rename, fsync the directory) on every change. ``ZooKeeperStore``
(``odradek.cluster.zookeeper``) implements the same protocol for cluster mode.

Both tell their ``MetadataListener``s of every change once it is stored, whichever broker
made it, on the event loop. Not thread-safe: the broker calls a store from its event loop
only.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from odradek.cluster.brokers import BrokerRegistration
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.storage.checkpoints import write_atomically
from odradek.storage.errors import KafkaStorageError

METADATA_FILE = "cluster-metadata.json"
PRODUCER_ID_BLOCK = 1000
FORMAT_VERSION = 1


class TopicExistsError(KafkaError):
    error_code = ErrorCode.topic_already_exists


class UnknownTopicError(KafkaError):
    error_code = ErrorCode.unknown_topic_or_partition


class StaleStateError(KafkaError):
    """A conditional update lost: the partition state changed since it was read (Kafka's
    zkVersion check; AlterPartition answers INVALID_UPDATE_VERSION the same way)."""

    error_code = ErrorCode.invalid_update_version


class MetadataUnavailableError(KafkaError):
    """The metadata store cannot be reached (ZooKeeper down or the session lost)."""

    error_code = ErrorCode.request_timed_out


@dataclass(frozen=True, slots=True, kw_only=True)
class PartitionState:
    """Leadership of one partition, as Kafka's partition state znode holds it."""

    leader: int
    """-1 while no replica can lead (all of the ISR offline)."""
    leader_epoch: int = 0
    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    partition_epoch: int = 0
    """Bumped by every change of this state (the state znode's version in ZooKeeper)."""
    adding_replicas: tuple[int, ...] = ()
    """Replicas a reassignment is adding (KIP-455); they are in ``replicas`` already."""
    removing_replicas: tuple[int, ...] = ()
    """Replicas a reassignment will remove once every adding replica is in the ISR."""

    @property
    def reassigning(self) -> bool:
        return bool(self.adding_replicas or self.removing_replicas)

    @property
    def target_replicas(self) -> tuple[int, ...]:
        """The replicas once any reassignment completes (``replicas`` without the ones
        being removed)."""
        if not self.removing_replicas:
            return self.replicas
        return tuple(r for r in self.replicas if r not in self.removing_replicas)

    @property
    def preferred_leader(self) -> int:
        """The first replica: the leader that spreads leadership as assigned."""
        return self.replicas[0] if self.replicas else -1


@dataclass(frozen=True, slots=True, kw_only=True)
class TopicMetadata:
    name: str
    topic_id: uuid.UUID
    partitions: tuple[PartitionState, ...]
    configs: Mapping[str, str] = field(default_factory=dict)
    """Topic-level config overrides as strings, Kafka's names."""

    @property
    def replication_factor(self) -> int:
        return len(self.partitions[0].target_replicas) if self.partitions else 0


def topic_id_to_base64(topic_id: uuid.UUID) -> str:
    """Kafka's printable topic id: URL-safe base64 of the 16 bytes, without padding."""
    return base64.urlsafe_b64encode(topic_id.bytes).decode().rstrip("=")


def topic_id_from_base64(text: str) -> uuid.UUID:
    return uuid.UUID(bytes=base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))


def new_topic_id() -> uuid.UUID:
    """A random topic id that is not Kafka's reserved zero or metadata id."""
    while True:
        candidate = uuid.uuid4()
        # Kafka also avoids ids whose base64 form starts with '-' (awkward on command lines).
        if candidate.int > 1 and not topic_id_to_base64(candidate).startswith("-"):
            return candidate


class MetadataListener:
    """Told of metadata changes once they are stored, on the event loop; subclasses
    override what they care about (the defaults ignore the change)."""

    def topic_created(self, topic: TopicMetadata) -> None:
        pass

    def topic_deleted(self, topic: TopicMetadata) -> None:
        pass

    def partitions_added(self, topic: TopicMetadata, first_new: int) -> None:
        pass

    def topic_configs_changed(self, topic: TopicMetadata) -> None:
        pass

    def partition_states_changed(self, topic: TopicMetadata, indices: Sequence[int]) -> None:
        """Leader, leader epoch, ISR or replicas of these partitions changed."""

    def brokers_changed(self, brokers: Mapping[int, BrokerRegistration]) -> None:
        """The set of live brokers (or one's endpoints) changed."""

    def controller_changed(self, controller_id: int, is_self: bool) -> None:
        """Another broker (or this one, ``is_self``) became the controller; -1: none."""

    def session_lost(self) -> None:
        """The store's view can no longer be trusted (ZooKeeper session expired): stop
        acting on it until changes arrive again."""

    def entity_configs_changed(self, entity_type: str, name: str) -> None:
        """The configs of a non-topic entity (see ``ENTITY_TYPES``) changed."""


ENTITY_TYPES = ("brokers", "clients", "users", "ips")
"""Entities with configs besides topics, as Kafka's ``/config/<type>/<name>``: dynamic
broker configs (name: a broker id, or ``<default>`` for every broker) and client quotas
(clients, users, ips; ``<default>`` is the default entity; a user's client is named
``<user>/clients/<client>``)."""
DEFAULT_ENTITY = "<default>"


class MetadataStore(Protocol):
    """What the broker reads and changes of cluster metadata."""

    @property
    def cluster_id(self) -> str: ...
    @property
    def controller_id(self) -> int: ...
    @property
    def controller_epoch(self) -> int: ...
    def add_listener(self, listener: MetadataListener) -> None: ...
    def register_broker(self, registration: BrokerRegistration) -> None: ...
    def update_registration(self, registration: BrokerRegistration) -> None:
        """Replace this broker's registration while it stays registered (its offline
        replicas changed); listeners are told with ``brokers_changed``. Ignored while
        the broker is not registered (before it registers, after it deregisters)."""
        ...

    def brokers(self) -> Mapping[int, BrokerRegistration]: ...
    def topics(self) -> Mapping[str, TopicMetadata]: ...
    def topic(self, name: str) -> TopicMetadata | None: ...
    def topic_by_id(self, topic_id: uuid.UUID) -> TopicMetadata | None: ...
    def create_topic(
        self, name: str, assignment: list[list[int]], configs: Mapping[str, str]
    ) -> TopicMetadata: ...
    def delete_topic(self, name: str) -> TopicMetadata: ...
    def add_partitions(self, name: str, assignment: list[list[int]]) -> TopicMetadata: ...
    def set_topic_configs(self, name: str, configs: Mapping[str, str]) -> TopicMetadata: ...
    def alter_partition_states(
        self, name: str, states: Mapping[int, PartitionState]
    ) -> TopicMetadata:
        """Write new states for some partitions of a topic, all or none.

        Each new state carries the ``partition_epoch`` of the state it replaces; if any
        stored state moved on since, nothing is written and StaleStateError is raised.
        Stored states get ``partition_epoch + 1``. A state may change the replica set
        too (``replicas``, ``adding_replicas``, ``removing_replicas``: a reassignment),
        under the same condition, as Kafka's PartitionChangeRecord carries all of them.
        """
        ...

    def allocate_producer_id(self) -> int: ...

    def entity_configs(self, entity_type: str) -> Mapping[str, Mapping[str, str]]:
        """Every entity of ``entity_type`` (one of ``ENTITY_TYPES``) that has configs."""
        ...

    def set_entity_configs(self, entity_type: str, name: str, configs: Mapping[str, str]) -> None:
        """Replace an entity's configs (empty: remove the entity's entry); listeners are
        told with ``entity_configs_changed``."""
        ...


def check_entity_type(entity_type: str) -> None:
    if entity_type not in ENTITY_TYPES:
        raise ValueError(f"unknown config entity type {entity_type!r}")


class LocalStore:
    """Single-node metadata kept in one atomically replaced JSON file."""

    def __init__(self, directory: Path, cluster_id: str) -> None:
        self._path = directory / METADATA_FILE
        self._cluster_id = cluster_id
        self._topics: dict[str, TopicMetadata] = {}
        self._by_id: dict[uuid.UUID, TopicMetadata] = {}
        self._json: dict[str, str] = {}
        """Each topic's line of the file, encoded once when the topic changes."""
        self._next_producer_id = 0
        self._producer_id_limit = 0
        self._broker: BrokerRegistration | None = None
        self._listeners: list[MetadataListener] = []
        self._entities: dict[str, dict[str, dict[str, str]]] = {t: {} for t in ENTITY_TYPES}
        self._load()

    # -- reads -----------------------------------------------------------------------------

    @property
    def cluster_id(self) -> str:
        return self._cluster_id

    @property
    def controller_id(self) -> int:
        """A single node is its own controller."""
        return self._broker.broker_id if self._broker is not None else -1

    @property
    def controller_epoch(self) -> int:
        return 1

    def add_listener(self, listener: MetadataListener) -> None:
        self._listeners.append(listener)

    def register_broker(self, registration: BrokerRegistration) -> None:
        self._broker = registration
        for listener in self._listeners:
            listener.brokers_changed(self.brokers())
            listener.controller_changed(registration.broker_id, True)

    def update_registration(self, registration: BrokerRegistration) -> None:
        """In memory only, as the registration itself: the node's next start registers
        with what it finds then."""
        if self._broker is None or registration == self._broker:
            return
        self._broker = registration
        for listener in self._listeners:
            listener.brokers_changed(self.brokers())

    def brokers(self) -> Mapping[int, BrokerRegistration]:
        return {self._broker.broker_id: self._broker} if self._broker is not None else {}

    def topics(self) -> Mapping[str, TopicMetadata]:
        return self._topics

    def topic(self, name: str) -> TopicMetadata | None:
        return self._topics.get(name)

    def topic_by_id(self, topic_id: uuid.UUID) -> TopicMetadata | None:
        return self._by_id.get(topic_id)

    # -- changes ---------------------------------------------------------------------------

    def create_topic(
        self, name: str, assignment: list[list[int]], configs: Mapping[str, str]
    ) -> TopicMetadata:
        if name in self._topics:
            raise TopicExistsError(f"Topic '{name}' already exists.")
        topic = TopicMetadata(
            name=name,
            topic_id=new_topic_id(),
            partitions=tuple(_initial_state(replicas) for replicas in assignment),
            configs=dict(configs),
        )
        self._put(topic)
        self._save_or_undo(lambda: self._forget(topic))
        for listener in self._listeners:
            listener.topic_created(topic)
        return topic

    def delete_topic(self, name: str) -> TopicMetadata:
        topic = self._require(name)
        del self._topics[name]
        del self._by_id[topic.topic_id]
        del self._json[name]
        self._save_or_undo(lambda: self._put(topic))
        for listener in self._listeners:
            listener.topic_deleted(topic)
        return topic

    def add_partitions(self, name: str, assignment: list[list[int]]) -> TopicMetadata:
        topic = self._require(name)
        updated = replace(
            topic,
            partitions=topic.partitions + tuple(_initial_state(r) for r in assignment),
        )
        self._put(updated)
        self._save_or_undo(lambda: self._put(topic))
        for listener in self._listeners:
            listener.partitions_added(updated, len(topic.partitions))
        return updated

    def set_topic_configs(self, name: str, configs: Mapping[str, str]) -> TopicMetadata:
        topic = self._require(name)
        updated = replace(topic, configs=dict(configs))
        self._put(updated)
        self._save_or_undo(lambda: self._put(topic))
        for listener in self._listeners:
            listener.topic_configs_changed(updated)
        return updated

    def alter_partition_states(
        self, name: str, states: Mapping[int, PartitionState]
    ) -> TopicMetadata:
        topic = self._require(name)
        partitions = list(topic.partitions)
        for index, state in states.items():
            check_partition_update(topic, index, state)
            partitions[index] = replace(state, partition_epoch=state.partition_epoch + 1)
        updated = replace(topic, partitions=tuple(partitions))
        self._put(updated)
        self._save_or_undo(lambda: self._put(topic))
        for listener in self._listeners:
            listener.partition_states_changed(updated, sorted(states))
        return updated

    def allocate_producer_id(self) -> int:
        """Next producer id; blocks of ids are persisted ahead so none is ever reused."""
        if self._next_producer_id >= self._producer_id_limit:
            limit = self._producer_id_limit
            self._producer_id_limit = self._next_producer_id + PRODUCER_ID_BLOCK
            self._save_or_undo(lambda: setattr(self, "_producer_id_limit", limit))
        producer_id = self._next_producer_id
        self._next_producer_id += 1
        return producer_id

    def entity_configs(self, entity_type: str) -> Mapping[str, Mapping[str, str]]:
        check_entity_type(entity_type)
        return self._entities[entity_type]

    def set_entity_configs(self, entity_type: str, name: str, configs: Mapping[str, str]) -> None:
        check_entity_type(entity_type)
        entities = self._entities[entity_type]
        old = entities.get(name)
        if configs:
            entities[name] = dict(configs)
        else:
            entities.pop(name, None)

        def undo() -> None:
            if old is None:
                entities.pop(name, None)
            else:
                entities[name] = old

        self._save_or_undo(undo)
        for listener in self._listeners:
            listener.entity_configs_changed(entity_type, name)

    # -- persistence -----------------------------------------------------------------------

    def _require(self, name: str) -> TopicMetadata:
        topic = self._topics.get(name)
        if topic is None:
            raise UnknownTopicError(f"Topic '{name}' does not exist.")
        return topic

    def _put(self, topic: TopicMetadata) -> None:
        self._topics[topic.name] = topic
        self._by_id[topic.topic_id] = topic
        self._json[topic.name] = json.dumps(_topic_to_json(topic), separators=(",", ":"))

    def _forget(self, topic: TopicMetadata) -> None:
        del self._topics[topic.name], self._by_id[topic.topic_id], self._json[topic.name]

    def _save_or_undo(self, undo: Callable[[], object]) -> None:
        """Save; if the file cannot be written (KafkaStorageError: a full or failed
        disk), ``undo`` the change in memory first, so that what is served never runs
        ahead of the file and the caller can answer with the error."""
        try:
            self._save()
        except KafkaStorageError:
            undo()
            raise

    def _load(self) -> None:
        try:
            document = json.loads(self._path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            raise RuntimeError(
                f"cannot read cluster metadata {self._path}: {exc}; "
                "restore it from a backup or move it away to start with no topics"
            ) from exc
        self._cluster_id = document.get("cluster_id", self._cluster_id)
        # Ids up to the persisted limit may have been handed out before a crash.
        self._next_producer_id = int(document.get("producer_id_limit", 0))
        self._producer_id_limit = self._next_producer_id
        for raw in document.get("topics", []):
            self._put(_topic_from_json(raw))
        for entity_type, entities in document.get("entity_configs", {}).items():
            if entity_type in self._entities:
                self._entities[entity_type] = {
                    str(name): {str(k): str(v) for k, v in configs.items()}
                    for name, configs in entities.items()
                }

    def _save(self) -> None:
        """The whole document, one topic per line; only changed topics are re-encoded,
        so creating topic after topic does not re-encode all earlier ones each time (with
        10,000 partitions that was most of the time spent creating them)."""
        head = json.dumps(
            {
                "version": FORMAT_VERSION,
                "cluster_id": self._cluster_id,
                "producer_id_limit": self._producer_id_limit,
                "entity_configs": {t: e for t, e in self._entities.items() if e},
            }
        )
        topics = ",\n".join(self._json.values())
        text = f'{head[:-1]}, "topics": [\n{topics}\n]}}\n'
        write_atomically(str(self._path), text.encode())


def check_partition_update(topic: TopicMetadata, index: int, state: PartitionState) -> None:
    """StaleStateError unless ``state`` replaces the stored state of partition ``index``."""
    if not 0 <= index < len(topic.partitions):
        raise UnknownTopicError(f"Partition {topic.name}-{index} does not exist.")
    stored = topic.partitions[index].partition_epoch
    if state.partition_epoch != stored:
        raise StaleStateError(
            f"partition {topic.name}-{index} is at partition epoch {stored}, "
            f"the update was based on {state.partition_epoch}"
        )


def _initial_state(replicas: list[int]) -> PartitionState:
    return PartitionState(leader=replicas[0], replicas=tuple(replicas), isr=tuple(replicas))


def _topic_to_json(topic: TopicMetadata) -> dict[str, Any]:
    return {
        "name": topic.name,
        "topic_id": str(topic.topic_id),
        "configs": dict(topic.configs),
        "partitions": [
            {
                "leader": p.leader,
                "leader_epoch": p.leader_epoch,
                "replicas": list(p.replicas),
                "isr": list(p.isr),
                "partition_epoch": p.partition_epoch,
                **_reassignment_to_json(p),
            }
            for p in topic.partitions
        ],
    }


def _reassignment_to_json(state: PartitionState) -> dict[str, list[int]]:
    """Only while a reassignment is under way, so the usual line stays short."""
    if not state.reassigning:
        return {}
    return {
        "adding_replicas": list(state.adding_replicas),
        "removing_replicas": list(state.removing_replicas),
    }


def _topic_from_json(raw: Mapping[str, Any]) -> TopicMetadata:
    return TopicMetadata(
        name=raw["name"],
        topic_id=uuid.UUID(raw["topic_id"]),
        configs=dict(raw.get("configs", {})),
        partitions=tuple(
            PartitionState(
                leader=p["leader"],
                leader_epoch=p.get("leader_epoch", 0),
                replicas=tuple(p["replicas"]),
                isr=tuple(p["isr"]),
                partition_epoch=p.get("partition_epoch", 0),
                adding_replicas=tuple(p.get("adding_replicas", ())),
                removing_replicas=tuple(p.get("removing_replicas", ())),
            )
            for p in raw["partitions"]
        ),
    )
