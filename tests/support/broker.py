"""A real ``odradek server`` process for integration tests.

Started on 127.0.0.1 with an OS-assigned port in a temporary data dir; its stderr goes to
a log file that a failing test can print. Restarts reuse the data dir and the port.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

READY = re.compile(r"listening on \S+://[^ ,]+:(\d+)")
START_TIMEOUT = 60.0


class StopTimeout(subprocess.TimeoutExpired):
    """The broker did not exit after SIGTERM (it was killed); says so with its log."""

    def __init__(self, cmd: Any, timeout: float, log: str) -> None:
        super().__init__(cmd, timeout, output=log)

    def __str__(self) -> str:
        return f"broker did not exit within {self.timeout:.0f} s of SIGTERM:\n{self.output}"


WITHOUT_HYPOTHESIS = Path(__file__).parent / "without_hypothesis"


def broker_env() -> dict[str, str]:
    """The environment a test broker starts in: this one, unbuffered, with hypothesis
    hidden. A user's broker has no hypothesis; kio registers strategies with it on import
    when it finds it, which costs each broker start about 0.3 s here, hundreds of times
    a suite."""
    path = os.pathsep.join(p for p in (str(WITHOUT_HYPOTHESIS), os.environ.get("PYTHONPATH")) if p)
    return dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=path)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class BrokerProcess:
    def __init__(self, data_dir: Path, overrides: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.overrides = dict(overrides or {})
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir.parent / f"{data_dir.name}-broker.log"
        self._starts = 0

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        listener = f"PLAINTEXT://127.0.0.1:{self.port}"
        command = [
            sys.executable,
            "-m",
            "odradek",
            "server",
            "--data-dir",
            str(self.data_dir),
            "--listeners",
            listener,
        ]
        for key, value in self.overrides.items():
            command += ["--override", f"{key}={value}"]
        return command

    def start(self) -> BrokerProcess:
        assert self.process is None or self.process.poll() is not None, "already running"
        self._starts += 1
        log = self.log_path.open("ab")
        log.write(f"\n===== start #{self._starts}: {' '.join(self.command())}\n".encode())
        log.flush()
        self.process = subprocess.Popen(self.command(), stdout=log, stderr=log, env=broker_env())
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"broker exited with {self.process.returncode}:\n{self.log()}")
            match = self._ready_line()
            if match:
                self.port = int(match)
                return self
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"broker did not become ready:\n{self.log()}")

    def _ready_line(self) -> str | None:
        text = self.log_path.read_text(errors="replace")
        section = text.rsplit("===== start #", 1)[-1]
        found = READY.search(section)
        return found.group(1) if found else None

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM and wait; the exit code."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired as exc:
            self.kill()
            raise StopTimeout(self.process.args, timeout, self.log()) from exc

    def kill(self) -> None:
        """kill -9."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def restart(self) -> BrokerProcess:
        code = self.stop()
        assert code == 0, f"broker exited with {code}:\n{self.log()}"
        return self.start()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-20000:]
        except FileNotFoundError:
            return ""

    def partition_dir(self, topic: str, partition: int) -> Path:
        return self.data_dir / f"{topic}-{partition}"


def stop_all(brokers: Iterable[BrokerProcess]) -> None:
    for broker in brokers:
        try:
            broker.stop()
        except Exception:
            broker.kill()
