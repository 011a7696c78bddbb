"""Open client connections, with Kafka's ``max.connections`` and ``max.connections.per.ip``.

A connection over either limit is closed as soon as it is accepted, and the broker logs
why. That is Kafka's behaviour for ``max.connections.per.ip`` (its acceptor closes the
socket and logs "Rejected connection from ..."); for ``max.connections`` Kafka's acceptor
instead stops accepting until a slot frees, leaving new clients waiting in the listen
backlog. Odradek refuses those too, so a client learns at once rather than timing out.
A connection's slot is freed when it closes, however it closes.

Idle connections (``connections.max.idle.ms``, Kafka's ``Selector`` idle expiry): a
connection from which no bytes have arrived and to which no response has been sent for
longer than that is closed, whatever state its framing is in (nothing sent, or half a
frame). Kafka updates a connection's last-active time on every read or write readiness
and, once per poll, closes the least recently active connection if it is past the limit;
a negative value disables expiry. Here a connection only raises its ``active`` flag (one
attribute store on the hot path, no clock read, no timer); one periodic sweep over the
registry (``expire_idle``, every ``sweep_interval_ms``) turns the flags into quiet-since
times and closes every connection quiet for longer than the limit, so a connection is
closed between the limit and the limit plus one sweep interval after it fell silent,
never before. Kafka does not look at requests in flight (the waits its clients allow
are shorter than the default ten minutes); here a connection with a request still being
handled (a parked long-poll Fetch, an acks=all Produce waiting for the ISR, a JoinGroup
waiting for the rebalance, a large response being sent with sendfile) is never idle,
whatever the limit: the wait is the broker's, not the client's. Responses that are ready
but stuck because the client stopped reading do not count: such a connection is idle.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from odradek.broker.connection import KafkaConnection

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a new connection is refused: the limit's config name and a sentence."""

    limit: str
    reason: str


class ConnectionRegistry:
    def __init__(self, max_connections: int, max_per_ip: int, max_idle_ms: int = -1) -> None:
        self._max = max_connections
        self._max_per_ip = max_per_ip
        self._max_idle = max_idle_ms / 1000 if max_idle_ms >= 0 else None
        self._open: set[KafkaConnection] = set()
        self._per_ip: Counter[str] = Counter()

    def set_limits(self, max_connections: int, max_per_ip: int) -> None:
        """New limits from a dynamic config change; as Kafka's ConnectionQuotas, they
        apply to new connections and close none of those already open."""
        self._max = max_connections
        self._max_per_ip = max_per_ip

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

    @property
    def sweep_interval_ms(self) -> int | None:
        """How often ``expire_idle`` should run: a tenth of ``connections.max.idle.ms``
        (10 ms to 10 s), or None when idle connections are never closed."""
        if self._max_idle is None:
            return None
        return min(max(int(self._max_idle * 100), 10), 10_000)

    def expire_idle(self, now: float) -> int:
        """Close the connections quiet for longer than ``connections.max.idle.ms`` at
        ``now`` (``time.monotonic()``); returns how many were closed."""
        max_idle = self._max_idle
        if max_idle is None:
            return 0
        expired = []
        for connection in self._open:
            if connection.active or connection.handling:
                connection.active = False
                connection.quiet_since = now
            elif now - connection.quiet_since > max_idle:
                expired.append(connection)
        for connection in expired:
            log.debug(
                "closing connection from %s: idle for more than %d ms (connections.max.idle.ms)",
                connection.peer,
                max_idle * 1000,
            )
            connection.expire()
        return len(expired)

    def __iter__(self) -> Iterator[KafkaConnection]:
        return iter(list(self._open))

    def __len__(self) -> int:
        return len(self._open)
