"""Fixtures for the transaction tests: one broker per module with quick housekeeping.

The coordinator looks for transactions past their timeout every
``transaction.abort.timed.out.transaction.cleanup.interval.ms`` (Kafka: 10 s); these
brokers look every 500 ms so an abandoned transaction is aborted within a second of its
timeout. New groups start at once (no 3 s first-rebalance delay).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.broker import BrokerProcess, stop_all

TXN_OVERRIDES = {
    "transaction.abort.timed.out.transaction.cleanup.interval.ms": "500",
    "group.initial.rebalance.delay.ms": "0",
}


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    process = BrokerProcess(tmp_path_factory.mktemp("txn") / "data", TXN_OVERRIDES)
    process.start()
    yield process
    code = process.stop()
    assert code == 0, f"broker did not shut down cleanly ({code}):\n{process.log()}"


@pytest.fixture
def txn_broker_factory(tmp_path: Path) -> Iterator[Callable[..., BrokerProcess]]:
    """Brokers of one test's own (restarts, kill -9), all stopped afterwards."""
    started: list[BrokerProcess] = []

    def start(overrides: dict[str, str] | None = None) -> BrokerProcess:
        process = BrokerProcess(
            tmp_path / f"broker{len(started)}", {**TXN_OVERRIDES, **(overrides or {})}
        )
        started.append(process)
        return process.start()

    yield start
    stop_all(started)
