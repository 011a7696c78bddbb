"""Profile Odradek with py-spy while the throughput benchmark's load runs against it.

    python benchmarks/profile_odradek.py [--size 1024] [--partitions 8] [--acks 1]
                                         [--count 400000] [--rate 500] [--native]

Starts a fresh Odradek, then for each phase (produce, then consume of what was produced)
runs ``py-spy record --format raw`` on the broker for exactly the duration of the
load-generator process, and prints the hottest functions: self time (the function was on
top of the stack) and inclusive time (it was anywhere on the stack), as % of the samples
in which the broker was busy (py-spy drops idle samples, e.g. waiting in epoll). With
``--svg`` each phase is run a second time under ``py-spy record`` (flame graph). Output
goes to ``benchmarks/results/profile-<stamp>/``. py-spy slows the broker down, so the
throughput printed here is not a benchmark result.
"""

from __future__ import annotations

import argparse
import linecache
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _brokers import BrokerProcess
from throughput import HERE, WORKLOAD_TIMEOUT_S, create_topic, run_worker, warm_up

# py-spy frames look like "func (path/to/file.py:123)"; native frames may lack the file.
FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
# The event loop's poll: time the broker spent waiting for sockets, not working.
POLL = "EpollSelector.select"


def short_path(path: str) -> str:
    """site-packages/kio/x.py -> kio/x.py; /work/main/src/odradek/x.py -> odradek/x.py."""
    for marker in ("site-packages/", "/src/", "/lib/python3."):
        if marker in path:
            tail = path.split(marker, 1)[1]
            return tail.split("/", 1)[1] if marker == "/lib/python3." else tail
    return path


def source_line(path: str, line: int) -> str:
    return linecache.getline(path, line).strip() if line else ""


@dataclass
class Frame:
    func: str
    path: str
    line: int

    @classmethod
    def parse(cls, text: str) -> Frame:
        found = FRAME.match(text)
        if not found:
            return cls(text, "(native)", 0)
        return cls(found["func"], found["file"], int(found["line"] or 0))

    @property
    def function(self) -> str:
        return f"{self.func} ({short_path(self.path)})"

    @property
    def location(self) -> str:
        code = source_line(self.path, self.line)
        return f"{short_path(self.path)}:{self.line} {self.func}: {code}"


@dataclass
class Profile:
    """Counts from py-spy's raw output (one line per distinct stack: ``f;g;h count``)."""

    total: int
    poll: int
    self_functions: Counter[str]
    self_lines: Counter[str]
    self_files: Counter[str]
    inclusive: Counter[str]

    @classmethod
    def from_raw(cls, text: str) -> Profile:
        total = poll = 0
        self_functions: Counter[str] = Counter()
        self_lines: Counter[str] = Counter()
        self_files: Counter[str] = Counter()
        inclusive: Counter[str] = Counter()
        for row in text.splitlines():
            stack, _, count_text = row.rpartition(" ")
            if not stack or not count_text.isdigit():
                continue
            count = int(count_text)
            frames = [Frame.parse(f) for f in stack.split(";")]
            leaf = frames[-1]
            total += count
            poll += count if leaf.func == POLL else 0
            self_functions[leaf.function] += count
            self_lines[leaf.location] += count
            self_files[short_path(leaf.path)] += count
            for function in {f.function for f in frames}:
                inclusive[function] += count
        return cls(total, poll, self_functions, self_lines, self_files, inclusive)

    def report(self, title: str, top: int) -> list[str]:
        def table(heading: str, counter: Counter[str], skip_everywhere: bool = False) -> list[str]:
            rows = [f"  -- {heading}"]
            shown = 0
            for key, n in counter.most_common():
                if skip_everywhere and n >= 0.97 * self.total:
                    continue  # main(), run_forever(), ...: on every stack, says nothing
                rows.append(f"  {100 * n / self.total:5.1f}%  {key}")
                shown += 1
                if shown == top:
                    break
            return rows

        poll = 100 * self.poll / self.total if self.total else 0.0
        lines = [
            f"== {title}: {self.total} busy samples; {poll:.0f}% of them in the event loop's "
            f"poll ({POLL}), the rest is work"
        ]
        lines += table("self time by function", self.self_functions)
        lines += table("self time by line", self.self_lines)
        lines += table("self time by file", self.self_files)
        lines += table("inclusive time by function", self.inclusive, skip_everywhere=True)
        return lines


def record(
    pid: int, output: Path, fmt: str, *, rate: int, native: bool, spec: dict[str, Any]
) -> tuple[dict[str, Any], str]:
    """Run one load-generator phase with py-spy sampling the broker for its duration."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    command = [py_spy, "record", "--pid", str(pid), "--rate", str(rate), "--format", fmt]
    command += ["--full-filenames", "-o", str(output)]
    if native:
        command.append("--native")
    spy = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(1.0)  # let py-spy attach before the load starts
        result = run_worker(spec)
    finally:
        spy.send_signal(signal.SIGINT)
        try:
            out, _ = spy.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            spy.kill()
            out, _ = spy.communicate()
    return result, out.strip().splitlines()[-1] if out.strip() else ""


def profile_phases(
    broker: BrokerProcess, topic: str, fmt: str, args: argparse.Namespace, out_dir: Path
) -> list[str]:
    """Produce into a new topic, then read it back, each under py-spy; the report lines."""
    create_topic(broker.bootstrap, topic, args.partitions)
    spec: dict[str, Any] = {
        "mode": "produce",
        "bootstrap": broker.bootstrap,
        "topic": topic,
        "partitions": args.partitions,
        "size": args.size,
        "count": args.count,
        "acks": args.acks,
        "broker_pids": broker.pids,
        "timeout_s": WORKLOAD_TIMEOUT_S,
        "expected": {},
    }
    report: list[str] = []
    for phase in ("produce", "consume"):
        output = out_dir / f"{phase}.{'txt' if fmt == 'raw' else 'svg'}"
        result, spy_line = record(
            broker.pid, output, fmt, rate=args.rate, native=args.native, spec=spec
        )
        elapsed = max(float(result.get("elapsed_s", 0.0)), 1e-9)
        status = result.get("error") or f"{result.get('bytes', 0) / 1e6 / elapsed:.1f} MB/s"
        print(f"{phase} ({fmt}): {status} under py-spy; {spy_line}", flush=True)
        if fmt == "raw" and output.exists():
            busy = 100 * float(result.get("broker_cpu_s", 0.0)) / elapsed
            report += ["", f"broker CPU during {phase}: {busy:.0f}% of one core"]
            report += Profile.from_raw(output.read_text()).report(phase, args.top)
        spec = dict(spec, mode="consume", expected=result.get("delivered", {}))
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--acks", default="1")
    parser.add_argument("--count", type=int, default=400_000)
    parser.add_argument("--rate", type=int, default=500, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--native", action="store_true", help="include C-extension frames")
    parser.add_argument("--svg", action="store_true", help="also write flame graphs")
    args = parser.parse_args(argv)

    out_dir = HERE / "results" / f"profile-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    out_dir.mkdir(parents=True, exist_ok=True)
    report: list[str] = [
        f"workload: {args.size} B records, {args.partitions} partitions, acks={args.acks}, "
        f"{args.count} records; py-spy at {args.rate} Hz{' --native' if args.native else ''}"
    ]
    with tempfile.TemporaryDirectory(prefix="profile-odradek-") as work:
        broker = BrokerProcess("odradek", Path(work), out_dir / "odradek.log")
        try:
            broker.start()
            warm_up(broker)  # lazy imports and first-request costs stay out of the profile
            for n, fmt in enumerate(["raw", "flamegraph"] if args.svg else ["raw"]):
                report += profile_phases(broker, f"profile-{n}", fmt, args, out_dir)
        finally:
            broker.stop()
            broker.kill()
    text = "\n".join(report) + "\n"
    (out_dir / "hotspots.txt").write_text(text)
    print(text)
    print(f"output: {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
