"""A ZooKeeper and several Odradek brokers on loopback, for the replication benchmark.

ZooKeeper is the test suite's (``tests/support/zookeeper.py``: Debian's package, run
standalone as ``java -cp '/usr/share/java/*' ...QuorumPeerMain zoo.cfg`` on a free port,
ready once a client session opens). Each broker is a ``_brokers.BrokerProcess`` started
with ``zookeeper.connect`` (a chroot of its own) and ``broker.id`` 1..n, so the pids we
hold are the brokers themselves and ``pids`` lists whose CPU counts as the cluster's.

``start`` returns once every broker listens and Metadata lists all of them; ``stop``
sends SIGTERM to every broker at once (each does its controlled shutdown), waits, and
stops ZooKeeper last. It is safe to call after a failed or partial start, and twice.
"""

from __future__ import annotations

import logging
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from _brokers import STOP_TIMEOUT_S, BrokerProcess, BrokerStartError, cpu_seconds
from confluent_kafka.admin import AdminClient  # type: ignore[attr-defined]

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.support.zookeeper import ZooKeeperServer, zookeeper_available

REGISTER_TIMEOUT_S = 60.0
# ZooKeeperServer probes with kazoo until the server answers: its refused connections
# are expected, not news.
logging.getLogger("kazoo").setLevel(logging.CRITICAL)


@dataclass
class Cluster:
    """``size`` brokers joined through one ZooKeeper; temp files under ``work_dir``."""

    name: str
    work_dir: Path
    log_dir: Path
    size: int = 3
    overrides: list[str] = field(default_factory=list)
    zookeeper: ZooKeeperServer | None = None
    brokers: list[BrokerProcess] = field(default_factory=list)
    ready_s: float = 0.0

    @property
    def bootstrap(self) -> str:
        return ",".join(b.bootstrap for b in self.brokers)

    @property
    def pids(self) -> list[int]:
        return [b.pid for b in self.brokers]

    @property
    def zookeeper_pid(self) -> int | None:
        zk = self.zookeeper
        return zk.process.pid if zk is not None and zk.process is not None else None

    def zookeeper_cpu_s(self) -> float:
        pid = self.zookeeper_pid
        return cpu_seconds(pid) if pid is not None else 0.0

    def alive(self) -> bool:
        return bool(self.brokers) and all(b.alive() for b in self.brokers)

    def start(self) -> Cluster:
        problem = zookeeper_available()
        if problem is not None:
            raise BrokerStartError(f"no ZooKeeper: {problem}")
        spawned = time.monotonic()
        self.zookeeper = ZooKeeperServer(self.work_dir / "zookeeper").start()
        connect = f"{self.zookeeper.connect}/odradek-bench"
        for broker_id in range(1, self.size + 1):
            broker = BrokerProcess(
                "odradek",
                self.work_dir / f"broker{broker_id}",
                self.log_dir / f"{self.name}-broker{broker_id}.log",
                overrides=[
                    f"zookeeper.connect={connect}",
                    f"broker.id={broker_id}",
                    *self.overrides,
                ],
            )
            broker.work_dir.mkdir(parents=True, exist_ok=True)
            self.brokers.append(broker)
            broker.start()
        self._wait_registered()
        self.ready_s = time.monotonic() - spawned
        return self

    def _wait_registered(self) -> None:
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        deadline = time.monotonic() + REGISTER_TIMEOUT_S
        seen = 0
        while time.monotonic() < deadline:
            meta = admin.list_topics(timeout=10)
            seen = len(meta.brokers)
            if seen == self.size and meta.controller_id > 0:
                return
            time.sleep(0.1)
        raise BrokerStartError(f"Metadata lists {seen} of {self.size} brokers after start-up")

    def stop(self) -> list[int | None]:
        """SIGTERM to every broker at once, then wait; exit codes (None: had to be killed).
        ZooKeeper stops last; its log is kept beside the brokers' logs."""
        for broker in self.brokers:
            broker.terminate()
        codes = [broker.wait_stopped(STOP_TIMEOUT_S) for broker in self.brokers]
        if self.zookeeper is not None:
            self.zookeeper.stop()
            if self.zookeeper.log_path.exists():
                self.log_dir.mkdir(parents=True, exist_ok=True)
                shutil.copy(self.zookeeper.log_path, self.log_dir / f"{self.name}-zookeeper.log")
        return codes

    def kill(self) -> None:
        for broker in self.brokers:
            broker.kill()
        if self.zookeeper is not None:
            self.zookeeper.stop()
