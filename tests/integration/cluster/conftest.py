"""A real ZooKeeper per test module, for cluster-mode tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.zookeeper import ZooKeeperServer, zookeeper_available


@pytest.fixture(scope="module")
def zookeeper(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZooKeeperServer]:
    problem = zookeeper_available()
    if problem is not None:
        pytest.fail(f"cluster tests need ZooKeeper: {problem}")
    server = ZooKeeperServer(tmp_path_factory.mktemp("zookeeper"))
    server.start()
    try:
        yield server
    finally:
        server.stop()
