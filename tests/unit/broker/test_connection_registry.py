"""``max.connections`` and ``max.connections.per.ip`` bookkeeping (the broker's side of
``tests/integration/test_slow_clients.py``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from odradek.broker.connections import ConnectionRegistry

if TYPE_CHECKING:
    from odradek.broker.connection import KafkaConnection


def _connection() -> KafkaConnection:
    return cast("KafkaConnection", object())


def test_per_address_limit_names_itself_and_frees_on_remove() -> None:
    registry = ConnectionRegistry(max_connections=10, max_per_ip=2)
    first, second = _connection(), _connection()
    assert registry.admit(first, "10.0.0.1") is None
    assert registry.admit(second, "10.0.0.1") is None
    refusal = registry.admit(_connection(), "10.0.0.1")
    assert refusal is not None and refusal.limit == "max.connections.per.ip"
    assert "configured maximum of 2 connections" in refusal.reason
    assert registry.admit(_connection(), "10.0.0.2") is None  # other addresses unaffected
    registry.remove(first, "10.0.0.1")
    assert registry.admit(_connection(), "10.0.0.1") is None
    assert len(registry) == 3


def test_broker_wide_limit_and_refused_connections_are_not_counted() -> None:
    registry = ConnectionRegistry(max_connections=2, max_per_ip=5)
    kept = [_connection(), _connection()]
    for n, connection in enumerate(kept):
        assert registry.admit(connection, f"10.0.0.{n}") is None
    refused = _connection()
    refusal = registry.admit(refused, "10.0.0.9")
    assert refusal is not None and refusal.limit == "max.connections"
    assert "the broker already has the configured maximum of 2" in refusal.reason
    registry.remove(refused, "10.0.0.9")  # connection_lost of a refused connection: no-op
    assert len(registry) == 2
    registry.remove(kept[0], "10.0.0.0")
    assert registry.admit(_connection(), "10.0.0.9") is None


class _Quiet:
    """What ``expire_idle`` reads and calls on a connection."""

    def __init__(self, handling: bool = False) -> None:
        self.active = True
        self.quiet_since = 0.0
        self.handling = handling
        self.peer = "10.0.0.1:5000"
        self.expired = 0

    def expire(self) -> None:
        self.expired += 1


def test_idle_connections_close_after_the_limit_never_before() -> None:
    registry = ConnectionRegistry(max_connections=10, max_per_ip=10, max_idle_ms=1000)
    assert registry.sweep_interval_ms == 100
    quiet, chatty, waiting = _Quiet(), _Quiet(), _Quiet(handling=True)
    for connection in (quiet, chatty, waiting):
        assert registry.admit(cast("KafkaConnection", connection), "10.0.0.1") is None
    assert registry.expire_idle(100.0) == 0  # the first sweep sees every new one active
    for now in (100.25, 100.5, 101.0):  # quiet for exactly the limit: not yet
        chatty.active = True
        assert registry.expire_idle(now) == 0
    chatty.active = True
    assert registry.expire_idle(101.25) == 1
    assert (quiet.expired, chatty.expired, waiting.expired) == (1, 0, 0)
    assert (chatty.quiet_since, waiting.quiet_since) == (101.25, 101.25)
    registry.remove(cast("KafkaConnection", quiet), "10.0.0.1")  # its connection_lost
    waiting.handling = False  # its answer went out: quiet from the sweep that saw it busy
    assert registry.expire_idle(102.25) == 0
    assert registry.expire_idle(102.5) == 2  # waiting, and chatty (silent since 101.25)
    assert (quiet.expired, chatty.expired, waiting.expired) == (1, 1, 1)


def test_a_negative_idle_limit_disables_expiry() -> None:
    registry = ConnectionRegistry(max_connections=10, max_per_ip=10, max_idle_ms=-1)
    assert registry.sweep_interval_ms is None
    connection = _Quiet()
    connection.active = False
    assert registry.admit(cast("KafkaConnection", connection), "10.0.0.1") is None
    assert registry.expire_idle(1e9) == 0 and connection.expired == 0
    default = ConnectionRegistry(max_connections=10, max_per_ip=10, max_idle_ms=600_000)
    assert default.sweep_interval_ms == 10_000
