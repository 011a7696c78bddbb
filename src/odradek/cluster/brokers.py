"""Brokers as the cluster knows them: listeners, endpoints and registrations."""

from __future__ import annotations

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


@dataclass(frozen=True, slots=True, kw_only=True)
class BrokerRegistration:
    """A live broker: what ``/brokers/ids/<id>`` holds in ZooKeeper mode."""

    broker_id: int
    endpoints: tuple[Endpoint, ...]
    rack: str | None = None

    @property
    def endpoint(self) -> Endpoint:
        """The endpoint clients are given (the first advertised listener)."""
        return self.endpoints[0]
