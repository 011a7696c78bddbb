"""A real ZooKeeper server (Debian's ``zookeeper`` package) for cluster tests.

Started standalone on 127.0.0.1 with a free port and a temporary data dir, as
ARCHITECTURE.md describes: ``java -cp '/usr/share/java/*' ...QuorumPeerMain zoo.cfg``.
Ready when a client session can be opened. ``stop`` kills the JVM; tests that need a
ZooKeeper outage call ``pause``/``resume`` (SIGSTOP/SIGCONT) to keep its data.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from kazoo.client import KazooClient
from kazoo.handlers.threading import KazooTimeoutError

from tests.support.broker import free_port

ZOOKEEPER_JARS = Path("/usr/share/java")
MAIN_CLASS = "org.apache.zookeeper.server.quorum.QuorumPeerMain"
START_TIMEOUT = 60.0


def zookeeper_available() -> str | None:
    """Why ZooKeeper cannot run here, or None when it can."""
    if shutil.which("java") is None:
        return "java is not installed (Debian package default-jre-headless)"
    if not (ZOOKEEPER_JARS / "zookeeper.jar").exists():
        return "ZooKeeper is not installed (Debian package zookeeper; ./scripts/test installs it)"
    return None


class ZooKeeperServer:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = directory / "zookeeper.log"

    @property
    def connect(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> ZooKeeperServer:
        problem = zookeeper_available()
        if problem is not None:
            raise RuntimeError(problem)
        data = self.directory / "data"
        data.mkdir(parents=True, exist_ok=True)
        if not self.port:
            self.port = free_port()
        config = self.directory / "zoo.cfg"
        config.write_text(
            "\n".join(
                [
                    "tickTime=500",
                    f"dataDir={data}",
                    f"clientPort={self.port}",
                    "clientPortAddress=127.0.0.1",
                    "admin.enableServer=false",
                    "minSessionTimeout=1000",
                    "maxSessionTimeout=60000",
                    "4lw.commands.whitelist=ruok,srvr",
                    "",
                ]
            )
        )
        command = [
            "java",
            "-Xmx256m",
            f"-Dzookeeper.log.dir={self.directory}",
            "-cp",
            f"{ZOOKEEPER_JARS}/*",
            MAIN_CLASS,
            str(config),
        ]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=log)
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"ZooKeeper exited with {self.process.returncode}:\n{self.log()}"
                )
            client = KazooClient(self.connect, connection_retry=None)
            try:
                client.start(timeout=1)
            except KazooTimeoutError:
                time.sleep(0.2)
                continue
            finally:
                client.stop()
                client.close()
            return
        self.stop()
        raise RuntimeError(f"ZooKeeper did not start:\n{self.log()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def restart(self) -> ZooKeeperServer:
        self.stop()
        return self.start()

    def pause(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-10000:]
        except FileNotFoundError:
            return ""
