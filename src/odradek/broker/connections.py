"""Open client connections, with Kafka's ``max.connections`` and ``max.connections.per.ip``.

A connection over either limit is closed as soon as it is accepted, and the broker logs
why. That is Kafka's behaviour for ``max.connections.per.ip`` (its acceptor closes the
socket and logs "Rejected connection from ..."); for ``max.connections`` Kafka's acceptor
instead stops accepting until a slot frees, leaving new clients waiting in the listen
backlog. Odradek refuses those too, so a client learns at once rather than timing out.
A connection's slot is freed when it closes, however it closes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from odradek.broker.connection import KafkaConnection


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a new connection is refused: the limit's config name and a sentence."""

    limit: str
    reason: str


class ConnectionRegistry:
    def __init__(self, max_connections: int, max_per_ip: int) -> None:
        self._max = max_connections
        self._max_per_ip = max_per_ip
        self._open: set[KafkaConnection] = set()
        self._per_ip: Counter[str] = Counter()

    def admit(self, connection: KafkaConnection, host: str) -> Refusal | None:
        """Register a new connection, or say why it is refused (then it is not registered)."""
        if self._per_ip[host] >= self._max_per_ip:
            return Refusal(
                "max.connections.per.ip",
                f"address already has the configured maximum of {self._max_per_ip} "
                "connections (max.connections.per.ip)",
            )
        if len(self._open) >= self._max:
            return Refusal(
                "max.connections",
                f"the broker already has the configured maximum of {self._max} connections "
                "(max.connections)",
            )
        self._open.add(connection)
        self._per_ip[host] += 1
        return None

    def remove(self, connection: KafkaConnection, host: str) -> None:
        if connection in self._open:
            self._open.discard(connection)
            self._per_ip[host] -= 1
            if self._per_ip[host] <= 0:
                del self._per_ip[host]

    def __iter__(self) -> Iterator[KafkaConnection]:
        return iter(list(self._open))

    def __len__(self) -> int:
        return len(self._open)
