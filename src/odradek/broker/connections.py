"""Open client connections, with Kafka's ``max.connections`` and ``max.connections.per.ip``."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from odradek.broker.connection import KafkaConnection


class ConnectionRegistry:
    def __init__(self, max_connections: int, max_per_ip: int) -> None:
        self._max = max_connections
        self._max_per_ip = max_per_ip
        self._open: set[KafkaConnection] = set()
        self._per_ip: Counter[str] = Counter()

    def admit(self, connection: KafkaConnection, host: str) -> str | None:
        """Register a new connection, or say why it is refused (then it is not registered)."""
        if len(self._open) >= self._max:
            return f"max.connections ({self._max}) reached"
        if self._per_ip[host] >= self._max_per_ip:
            return f"max.connections.per.ip ({self._max_per_ip}) reached for {host}"
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
