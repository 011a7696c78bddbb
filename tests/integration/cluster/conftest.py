"""A real ZooKeeper per test module, for cluster-mode tests."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.broker import BrokerProcess, stop_all
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


class Cluster:
    """Brokers 1..n of one cluster: one ZooKeeper chroot, a data dir each."""

    def __init__(self, directory: Path, connect: str, overrides: dict[str, str]) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.connect = connect
        self.overrides = overrides
        self.brokers: dict[int, BrokerProcess] = {}

    def add(self, broker_id: int, **overrides: str) -> BrokerProcess:
        settings = {
            "zookeeper.connect": self.connect,
            "broker.id": str(broker_id),
            **self.overrides,
            **overrides,
        }
        process = BrokerProcess(self.directory / f"broker{broker_id}", settings)
        self.brokers[broker_id] = process
        return process.start()

    @property
    def bootstrap(self) -> str:
        return ",".join(b.bootstrap for b in self.brokers.values() if b.port)

    def stop(self) -> None:
        stop_all(self.brokers.values())


_chroots = itertools.count()


@pytest.fixture
def cluster_factory(tmp_path: Path, zookeeper: ZooKeeperServer) -> Iterator[Callable[..., Cluster]]:
    """``cluster_factory(n, **overrides)``: n brokers joined through ZooKeeper."""
    made: list[Cluster] = []

    def make(size: int, **overrides: str) -> Cluster:
        settings = {"zookeeper.session.timeout.ms": "6000", **overrides}
        cluster = Cluster(
            tmp_path / f"cluster{len(made)}",
            f"{zookeeper.connect}/cluster{next(_chroots)}",
            settings,
        )
        made.append(cluster)
        for broker_id in range(1, size + 1):
            cluster.add(broker_id)
        return cluster

    yield make
    for cluster in made:
        cluster.stop()
