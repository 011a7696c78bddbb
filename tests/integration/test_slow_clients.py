"""Slow, churning and surplus clients cannot make the broker hold memory or descriptors
without bound (``tests.robustness.slow_clients``, which ``python -m tests.fuzz.report``
also runs)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.robustness.slow_clients import (
    LIMITS_CONFIG,
    STALL_RSS_BOUND_KIB,
    connection_churn,
    connection_limits,
    raise_fd_limit,
    stalled_consumers,
)
from tests.support.broker import BrokerProcess

Factory = Callable[..., BrokerProcess]

MIB = 1024  # KiB


def test_consumers_that_stop_reading_leave_broker_memory_flat(broker_factory: Factory) -> None:
    """Connections pipelining Fetch requests for a 16 MiB topic without reading a byte,
    while a producer goes on: the broker stops reading from them (Kafka mutes such a
    channel), so its resident memory grows by at most ``STALL_RSS_BOUND_KIB`` (a write
    buffer or two per connection) and not at all once those are full; a broker that
    kept reading would hold the responses of tens of thousands of requests."""
    broker = broker_factory()
    run = stalled_consumers(broker, seconds=10)
    assert run.response_bytes_requested > 100 * STALL_RSS_BOUND_KIB * 1024
    assert run.records_acked_during > 0, "the producer stalled too"
    assert run.fresh_client == "answered"
    assert run.rss_growth_kib <= STALL_RSS_BOUND_KIB, run.samples
    settled = [rss for t, rss, _fds in run.samples if t >= 2.5]
    assert settled[-1] - settled[0] <= 4 * MIB, f"memory still growing: {run.samples}"
    assert run.fds_peak <= run.fds_before + run.connections + 2
    assert run.fds_after <= run.fds_before, "a reset connection was not closed"
    assert run.log_errors == []


def test_thousand_connections_opened_and_dropped_leak_nothing(broker_factory: Factory) -> None:
    """Five rounds of 1,000 connections at once (a third answered ApiVersions, a third
    half a frame, a third silent), dropped with RST or FIN: the broker's descriptors come
    back to the baseline after every round, and its memory stops growing."""
    if not raise_fd_limit(2048):
        pytest.skip("the descriptor limit is below 2048 and cannot be raised")
    broker = broker_factory()
    run = connection_churn(broker, rounds=5, connections=1000)
    assert run.unanswered == 0
    assert run.answered == 5 * 334
    assert run.fds_peak >= run.fds_baseline + 900, "the connections were not open at once"
    assert run.fds_after == [run.fds_baseline] * 5
    assert run.rss_after_kib[-1] - run.rss_baseline_kib <= 8 * MIB, run.rss_after_kib
    assert run.rss_after_kib[-1] - run.rss_after_kib[1] <= 2 * MIB, run.rss_after_kib


def test_connection_limits_refuse_clearly_and_free_up(broker_factory: Factory) -> None:
    """``max.connections.per.ip=3``, ``max.connections=5``: the connection over either
    limit is closed at once, with a log line naming the limit; a closed connection frees
    its slot."""
    broker = broker_factory(LIMITS_CONFIG)
    run = connection_limits(broker)
    assert run.not_admitted == []
    assert run.not_refused == []
    assert run.admitted == 3 + 2 + 1 + 5
    assert run.refused == 3
    assert run.slowest_refusal < 1.0
    per_ip = [line for line in run.log_lines if "(max.connections.per.ip)" in line]
    broker_wide = [line for line in run.log_lines if "(max.connections)" in line]
    assert len(per_ip) == 1 and "Rejected connection from 127.0.0.1:" in per_ip[0]
    assert "address already has the configured maximum of 3 connections" in per_ip[0]
    assert len(broker_wide) == 2 and "Rejected connection from 127.0.0.2:" in broker_wide[0]
    assert "Rejected connection from 127.0.0.3:" in broker_wide[1]
    assert "the broker already has the configured maximum of 5 connections" in broker_wide[0]
