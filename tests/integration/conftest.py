"""Fixtures that run real broker processes on loopback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.broker import BrokerProcess, stop_all


@pytest.fixture
def broker_factory(tmp_path: Path) -> Iterator[Callable[..., BrokerProcess]]:
    """Start brokers with given config overrides; all are stopped after the test."""
    started: list[BrokerProcess] = []

    def start(overrides: dict[str, str] | None = None) -> BrokerProcess:
        data_dir = tmp_path / f"broker{len(started)}"
        process = BrokerProcess(data_dir, overrides)
        started.append(process)
        return process.start()

    yield start
    stop_all(started)


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    """One broker shared by a test module (fast); tests use their own topic names."""
    process = BrokerProcess(tmp_path_factory.mktemp("shared") / "data")
    process.start()
    yield process
    code = process.stop()
    assert code == 0, f"broker did not shut down cleanly ({code}):\n{process.log()}"
