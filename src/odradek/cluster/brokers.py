"""Brokers as the cluster knows them: listeners, endpoints and registrations, and which
replicas each live broker can serve."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from odradek.config import ConfigError


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A listener: its name (security protocol for now), host and port."""

    name: str
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.name}://{host}:{self.port}"


def parse_listener(text: str) -> Endpoint:
    """``NAME://host:port`` as Kafka writes listeners; ConfigError with the fix if not."""
    name, sep, rest = text.strip().partition("://")
    host, colon, port = rest.rpartition(":")
    if not sep or not colon or not port.isdigit() or not name:
        raise ConfigError(
            f"listener {text!r} is not NAME://host:port (e.g. PLAINTEXT://127.0.0.1:9092)"
        )
    if name.upper() != "PLAINTEXT":
        raise ConfigError(f"listener {text!r}: only PLAINTEXT listeners are supported so far")
    host = host.strip("[]")
    port_number = int(port)
    if not 0 <= port_number <= 65535:
        raise ConfigError(f"listener {text!r}: port must be between 0 and 65535")
    return Endpoint(name.upper(), host, port_number)


ReplicaKey = tuple[uuid.UUID, int]
"""One partition's replica on a broker: its topic id and partition index."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BrokerRegistration:
    """A live broker: what ``/brokers/ids/<id>`` holds in ZooKeeper mode.

    ``offline_replicas`` is how a failed log dir reaches the controller: the replicas
    this broker hosts but cannot serve (in a failed log dir, or not created at start-up
    because a dir was offline), by topic id, so a topic deleted and created again under
    the same name is never taken for the old one. They are part of the registration,
    not a znode of their own, because the registration has exactly the lifetime the
    report needs:

    - it is made afresh by every start of the broker from the dirs it finds then, so a
      dir still offline at a restart is reported again and one fixed by the restart is
      no longer reported, with nothing left to clear; a broker that dies takes its
      report with it (its replicas then count as dead anyway);
    - a new ZooKeeper session registers again with the latest report;
    - liveness and offline replicas are read together, in the one directory every
      broker (so any future controller) already reads and watches: a broker is never
      seen alive without its offline replicas.

    KRaft does the same (the broker registration lists log dirs, heartbeats the offline
    ones). Kafka's ZooKeeper mode only wrote ``/log_dir_event_notification`` ("broker N
    lost a dir") and learned the replicas from LeaderAndIsr answers, an RPC Odradek does
    not have.
    """

    broker_id: int
    endpoints: tuple[Endpoint, ...]
    rack: str | None = None
    offline_replicas: frozenset[ReplicaKey] = frozenset()

    @property
    def endpoint(self) -> Endpoint:
        """The endpoint clients are given (the first advertised listener)."""
        return self.endpoints[0]


@dataclass(frozen=True, slots=True)
class LiveReplicas:
    """Which brokers can serve a partition: the live (registered) ones, but for each
    partition not those that reported their replica of it offline. The controller
    treats an offline replica as one of a dead broker: it leaves the ISR and never
    leads."""

    brokers: frozenset[int]
    offline: Mapping[ReplicaKey, frozenset[int]]

    @classmethod
    def of(cls, registrations: Mapping[int, BrokerRegistration]) -> LiveReplicas:
        offline: dict[ReplicaKey, set[int]] = {}
        for broker_id, registration in registrations.items():
            for key in registration.offline_replicas:
                offline.setdefault(key, set()).add(broker_id)
        return cls(frozenset(registrations), {key: frozenset(ids) for key, ids in offline.items()})

    def offline_in(self, topic_id: uuid.UUID, partition: int) -> frozenset[int]:
        """Live brokers whose replica of this partition is offline."""
        return self.offline.get((topic_id, partition), frozenset())

    def serving(self, topic_id: uuid.UUID, partition: int) -> frozenset[int]:
        """Live brokers whose replica of this partition (if they have one) can serve."""
        offline = self.offline.get((topic_id, partition))
        return self.brokers - offline if offline else self.brokers
