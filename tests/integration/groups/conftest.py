"""Fixtures for the consumer group tests: brokers with a short first-rebalance delay.

Kafka waits ``group.initial.rebalance.delay.ms`` (3 s) before a new group's first
generation; these tests are not about that delay, so their brokers wait 300 ms.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.broker import BrokerProcess, stop_all

GROUP_OVERRIDES = {"group.initial.rebalance.delay.ms": "300"}
TROUBLE = re.compile(r" (WARNING|ERROR|CRITICAL) |Traceback")


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    """One broker shared by a test module; tests use their own topic and group names."""
    process = BrokerProcess(tmp_path_factory.mktemp("groups") / "data", GROUP_OVERRIDES)
    process.start()
    yield process
    code = process.stop()
    assert code == 0, f"broker did not shut down cleanly ({code}):\n{process.log()}"


@pytest.fixture
def group_broker_factory(tmp_path: Path) -> Iterator[Callable[..., BrokerProcess]]:
    """Brokers of one test's own (for restarts and kill -9), all stopped afterwards."""
    started: list[BrokerProcess] = []

    def start(overrides: dict[str, str] | None = None) -> BrokerProcess:
        process = BrokerProcess(
            tmp_path / f"broker{len(started)}", {**GROUP_OVERRIDES, **(overrides or {})}
        )
        started.append(process)
        return process.start()

    yield start
    stop_all(started)


@pytest.fixture(autouse=True)
def quiet_broker_log(request: pytest.FixtureRequest) -> Iterator[None]:
    """Rebalances, expiries and bad requests are routine: the shared broker must not log
    warnings, errors or tracebacks while a test runs."""
    if "broker" not in request.fixturenames:
        yield
        return
    shared: BrokerProcess = request.getfixturevalue("broker")
    start = shared.log_path.stat().st_size
    yield
    with shared.log_path.open("rb") as log:
        log.seek(start)
        written = log.read().decode(errors="replace")
    trouble = [line for line in written.splitlines() if TROUBLE.search(line)]
    assert not trouble, "broker logged trouble during this test:\n" + "\n".join(trouble[:20])
