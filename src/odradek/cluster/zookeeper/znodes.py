"""Where cluster metadata lives in ZooKeeper, and its JSON, in Kafka's ZooKeeper layout.

Kafka's own znodes and formats are kept (``/brokers/ids/<id>``, ``/controller``,
``/controller_epoch``, ``/brokers/topics/<t>``, ``.../partitions/<p>/state``,
``/config/topics/<t>``, ``/latest_producer_id_block``, ``/cluster/id``), so the layout is
familiar to anyone who ran Kafka on ZooKeeper. One addition replaces Kafka's
LeaderAndIsr/UpdateMetadata RPCs (gone in Kafka 4): whoever changes partition states or
topic configs also writes a sequential ``/odradek/changes/change_<n>`` naming the topics
and partitions it changed, and every broker watches that one directory. One watch per
broker, not one per partition, however many partitions there are.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

from odradek.cluster.brokers import BrokerRegistration, Endpoint, parse_listener
from odradek.cluster.metadata import (
    ENTITY_TYPES,
    PartitionState,
    topic_id_from_base64,
    topic_id_to_base64,
)

CLUSTER_ID = "/cluster/id"
BROKER_IDS = "/brokers/ids"
TOPICS = "/brokers/topics"
CONTROLLER = "/controller"
CONTROLLER_EPOCH = "/controller_epoch"
TOPIC_CONFIGS = "/config/topics"
PRODUCER_ID_BLOCK = "/latest_producer_id_block"
CHANGES = "/odradek/changes"
CHANGE_PREFIX = "change_"
ENTITY_CONFIGS = "/config"
PERSISTENT_PATHS = (
    BROKER_IDS,
    TOPICS,
    TOPIC_CONFIGS,
    CHANGES,
    "/cluster",
    *(f"{ENTITY_CONFIGS}/{t}" for t in ENTITY_TYPES),
)


def broker_path(broker_id: int) -> str:
    return f"{BROKER_IDS}/{broker_id}"


def topic_path(name: str) -> str:
    return f"{TOPICS}/{name}"


def partitions_path(name: str) -> str:
    return f"{TOPICS}/{name}/partitions"


def partition_path(name: str, index: int) -> str:
    return f"{TOPICS}/{name}/partitions/{index}"


def state_path(name: str, index: int) -> str:
    return f"{TOPICS}/{name}/partitions/{index}/state"


def topic_config_path(name: str) -> str:
    return f"{TOPIC_CONFIGS}/{name}"


def entity_config_path(entity_type: str, name: str) -> str:
    """``/config/<type>/<name>``; a name with ``/`` (a user's client) is quoted into one
    znode name, so every entity of a type is one child of ``/config/<type>``."""
    return f"{ENTITY_CONFIGS}/{entity_type}/{quote(name, safe='<>')}"


def entity_name(znode: str) -> str:
    return unquote(znode)


def change_sequence(child: str) -> int:
    """The sequence number of a ``change_<n>`` child; -1 for any other name."""
    suffix = child.removeprefix(CHANGE_PREFIX)
    return int(suffix) if suffix != child and suffix.isdigit() else -1


def _dump(value: Mapping[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _load(data: bytes) -> Any:
    return json.loads(data.decode("utf-8"))


def _now_ms() -> str:
    return str(time.time_ns() // 1_000_000)


# -- brokers and controller ------------------------------------------------------------------


def encode_broker(registration: BrokerRegistration) -> bytes:
    """Kafka's version 5 registration, plus, while the broker has any, its offline
    replicas (``"offline_replicas": {"<topic id>": [partition, ...]}``, see
    ``BrokerRegistration``); Kafka's tools ignore the field."""
    first = registration.endpoint
    document: dict[str, Any] = {
        "version": 5,
        "listener_security_protocol_map": {e.name: e.name for e in registration.endpoints},
        "endpoints": [str(e) for e in registration.endpoints],
        "rack": registration.rack,
        "jmx_port": -1,
        "host": first.host,
        "port": first.port,
        "timestamp": _now_ms(),
        "features": {},
    }
    if registration.offline_replicas:
        by_topic: dict[uuid.UUID, list[int]] = {}
        for topic_id, partition in registration.offline_replicas:
            by_topic.setdefault(topic_id, []).append(partition)
        document["offline_replicas"] = {
            topic_id_to_base64(topic_id): sorted(partitions)
            for topic_id, partitions in sorted(by_topic.items())
        }
    return _dump(document)


def decode_broker(broker_id: int, data: bytes) -> BrokerRegistration:
    raw = _load(data)
    endpoints: Iterable[Endpoint] = (parse_listener(text) for text in raw.get("endpoints", []))
    offline = frozenset(
        (topic_id_from_base64(topic_id), int(partition))
        for topic_id, partitions in (raw.get("offline_replicas") or {}).items()
        for partition in partitions
    )
    return BrokerRegistration(
        broker_id=broker_id,
        endpoints=tuple(endpoints),
        rack=raw.get("rack"),
        offline_replicas=offline,
    )


def encode_controller(broker_id: int) -> bytes:
    return _dump({"version": 2, "brokerid": broker_id, "timestamp": _now_ms()})


def decode_controller(data: bytes) -> int:
    return int(_load(data)["brokerid"])


def encode_cluster_id(cluster_id: str) -> bytes:
    return _dump({"version": "1", "id": cluster_id})


def decode_cluster_id(data: bytes) -> str:
    return str(_load(data)["id"])


# -- topics ----------------------------------------------------------------------------------


def encode_assignment(
    topic_id: uuid.UUID,
    replicas: Sequence[Sequence[int]],
    adding: Mapping[int, Sequence[int]] | None = None,
    removing: Mapping[int, Sequence[int]] | None = None,
) -> bytes:
    """The topic znode: each partition's replicas and, while a reassignment is under way,
    the replicas it is adding and removing (Kafka's version 3 format, KIP-455)."""
    return _dump(
        {
            "version": 3,
            "topic_id": topic_id_to_base64(topic_id),
            "partitions": {str(index): list(r) for index, r in enumerate(replicas)},
            "adding_replicas": {str(i): list(r) for i, r in sorted((adding or {}).items()) if r},
            "removing_replicas": {
                str(i): list(r) for i, r in sorted((removing or {}).items()) if r
            },
        }
    )


@dataclass(frozen=True, slots=True)
class Assignment:
    topic_id: uuid.UUID
    replicas: tuple[tuple[int, ...], ...]
    adding: Mapping[int, tuple[int, ...]] = field(default_factory=dict)
    removing: Mapping[int, tuple[int, ...]] = field(default_factory=dict)

    def encode(self) -> bytes:
        return encode_assignment(self.topic_id, self.replicas, self.adding, self.removing)

    def of(self, index: int) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        """Replicas, adding and removing replicas of one partition."""
        return self.replicas[index], self.adding.get(index, ()), self.removing.get(index, ())


def decode_assignment(data: bytes) -> Assignment:
    raw = _load(data)
    partitions = raw["partitions"]
    replicas = tuple(tuple(partitions[str(i)]) for i in range(len(partitions)))

    def by_index(key: str) -> dict[int, tuple[int, ...]]:
        return {int(i): tuple(r) for i, r in (raw.get(key) or {}).items() if r}

    return Assignment(
        topic_id_from_base64(raw["topic_id"]),
        replicas,
        by_index("adding_replicas"),
        by_index("removing_replicas"),
    )


def encode_state(state: PartitionState, controller_epoch: int) -> bytes:
    return _dump(
        {
            "version": 1,
            "controller_epoch": controller_epoch,
            "leader": state.leader,
            "leader_epoch": state.leader_epoch,
            "isr": list(state.isr),
        }
    )


def decode_state(
    data: bytes,
    replicas: Sequence[int],
    version: int,
    adding: Sequence[int] = (),
    removing: Sequence[int] = (),
) -> PartitionState:
    """A partition state; the znode's version is the partition epoch. The replica set
    comes from the topic znode."""
    raw = _load(data)
    return PartitionState(
        leader=int(raw["leader"]),
        leader_epoch=int(raw["leader_epoch"]),
        replicas=tuple(replicas),
        isr=tuple(raw["isr"]),
        partition_epoch=version,
        adding_replicas=tuple(adding),
        removing_replicas=tuple(removing),
    )


def encode_topic_config(configs: Mapping[str, str]) -> bytes:
    return _dump({"version": 1, "config": dict(configs)})


def decode_topic_config(data: bytes) -> dict[str, str]:
    return {str(k): str(v) for k, v in _load(data).get("config", {}).items()}


# -- change notifications and producer ids ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class Change:
    """What a change notification names: a topic, and which of its partitions' states
    changed (None: the topic itself — assignment or configs — so re-read all of it); or,
    with ``entity_type``, the configs of that entity (``topic`` is then its name)."""

    topic: str
    partitions: tuple[int, ...] | None
    entity_type: str | None = None


def encode_changes(changes: Iterable[Change]) -> bytes:
    items: list[dict[str, Any]] = []
    for c in changes:
        if c.entity_type is not None:
            items.append({"entity_type": c.entity_type, "entity_name": c.topic})
        else:
            items.append(
                {
                    "topic": c.topic,
                    "partitions": None if c.partitions is None else list(c.partitions),
                }
            )
    return _dump({"version": 1, "changes": items})


def decode_changes(data: bytes) -> list[Change]:
    raw = _load(data)
    out = []
    for item in raw.get("changes", []):
        if "entity_type" in item:
            out.append(Change(str(item["entity_name"]), None, str(item["entity_type"])))
        else:
            partitions = item.get("partitions")
            out.append(Change(item["topic"], None if partitions is None else tuple(partitions)))
    return out


def encode_producer_id_block(broker_id: int, start: int, end: int) -> bytes:
    return _dump(
        {"version": 1, "broker": broker_id, "block_start": str(start), "block_end": str(end)}
    )


def decode_producer_id_block_end(data: bytes) -> int:
    return int(_load(data)["block_end"])
