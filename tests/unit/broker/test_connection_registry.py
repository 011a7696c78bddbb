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
