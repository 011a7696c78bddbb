"""Produce and consume throughput of Odradek, side by side with Tansu.

    python benchmarks/throughput.py [--rounds N] [--quick] [--broker odradek|tansu|both]

Each round starts each broker fresh (new temp dir, free loopback port), runs every
workload against it, reads its peak RSS and stops it with SIGTERM; brokers alternate
A B A B. A workload is: create a topic, produce a fixed number of records from a
separate load-generator process (``_loadgen.py``, confluent-kafka/librdkafka), then read
the topic back with ``assign()`` from another process and check every record.

Broker CPU is utime+stime from /proc/<pid>/stat across the timed section, so the load
generator's CPU is not in it. Results go to ``benchmarks/results/<stamp>/`` (raw samples
as JSON, broker logs); a full run with both brokers also writes ``BENCHMARKS.md`` and
``benchmarks/throughput.png`` (other runs write them next to the results).

A failed start, a failed workload or a data mismatch is recorded and shown in the
report; the exit status is 1 when anything failed.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from _brokers import (
    BrokerProcess,
    Target,
    peak_rss_bytes,
    reset_peak_rss,
    tansu_binary,
    tansu_version,
)
from _report import (
    RoundInfo,
    Sample,
    Workload,
    machine_description,
    odradek_revision,
    write_report,
)
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
LOADGEN = HERE / "_loadgen.py"

BROKERS = ("odradek", "tansu")
SIZES = (100, 1024, 16 * 1024)
PARTITIONS = (1, 8)
ACKS = ("1", "all")
# Fixed record counts: 150 MB of 100 B records (client-bound), about 400 MB of 1 KiB and
# of 16 KiB records, so that each phase lasts a second or more (with 300,000 records of
# 100 B, a phase took 0.3 s on a 2-core AMD EPYC and rounds varied by 2x).
COUNTS = {100: 1_500_000, 1024: 400_000, 16 * 1024: 25_000}
QUICK = ((100, 1, "1"), (1024, 8, "1"), (1024, 1, "all"), (16 * 1024, 8, "all"))
QUICK_DIVISOR = 5
WORKLOAD_TIMEOUT_S = 120.0
QUIET_THRESHOLD_CORES = 0.3
QUIET_MAX_WAIT_S = 20.0


def workloads(quick: bool) -> list[Workload]:
    if quick:
        return [Workload(s, p, a, COUNTS[s] // QUICK_DIVISOR) for s, p, a in QUICK]
    return [Workload(s, p, a, COUNTS[s]) for s in SIZES for p in PARTITIONS for a in ACKS]


def machine_busy_s() -> float:
    """CPU seconds used by everything on the machine so far, from /proc/stat."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields)
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


@dataclass
class Quiet:
    """Before each timed phase, wait (boundedly) until the rest of the machine is idle.

    Other engineers run test suites on the same 2 cores; starting a phase while they
    are busy mostly measures them. The idle broker is part of "busy" here, which is fine:
    its idle CPU is near zero.
    """

    threshold_cores: float = QUIET_THRESHOLD_CORES
    max_wait_s: float = QUIET_MAX_WAIT_S
    window_s: float = 0.3
    waited_s: float = 0.0
    phases: int = 0
    gave_up: int = 0

    def wait(self) -> None:
        self.phases += 1
        deadline = time.monotonic() + self.max_wait_s
        while True:
            before, t0 = machine_busy_s(), time.monotonic()
            time.sleep(self.window_s)
            busy = (machine_busy_s() - before) / (time.monotonic() - t0)
            if busy < self.threshold_cores:
                return
            if time.monotonic() > deadline:
                self.gave_up += 1
                return
            self.waited_s += self.window_s

    def note(self) -> str:
        return (
            f"Before each of the {self.phases} timed phases the script waited until the rest "
            f"of the machine used under {self.threshold_cores} of a core (at most "
            f"{self.max_wait_s:.0f} s): {self.waited_s:.0f} s of waiting in all, "
            f"{self.gave_up} phase(s) started while the machine was still busy"
        )


@dataclass
class Run:
    """Everything one invocation measured."""

    started: str
    command: str
    rounds: int
    quick: bool
    brokers: tuple[str, ...]
    workloads: list[Workload]
    samples: list[Sample] = field(default_factory=list)
    round_info: list[RoundInfo] = field(default_factory=list)
    tansu_version: str = ""
    quiet: Quiet = field(default_factory=Quiet)


def run_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one load-generator process; its JSON result, or an ``error`` saying why not."""
    process = subprocess.Popen(
        [sys.executable, str(LOADGEN), json.dumps(spec)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        out, err = process.communicate(timeout=spec["timeout_s"] + 60)
    except subprocess.TimeoutExpired:
        return {"error": "load generator hung (killed)"}
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    lines = out.strip().splitlines()
    if process.returncode != 0 or not lines:
        tail = err.strip().splitlines()[-3:]
        return {"error": f"load generator exited {process.returncode}: {' / '.join(tail)}"}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def create_topic(
    bootstrap: str,
    topic: str,
    partitions: int,
    *,
    replication_factor: int = 1,
    config: dict[str, str] | None = None,
) -> None:
    """Create a topic and wait until every partition has a leader and a full ISR."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    new = NewTopic(topic, partitions, replication_factor, config=config or {})
    futures = admin.create_topics([new], operation_timeout=30)
    futures[topic].result(timeout=30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        meta = admin.list_topics(topic, timeout=10).topics.get(topic)
        if (
            meta is not None
            and meta.error is None
            and len(meta.partitions) == partitions
            and all(
                p.leader >= 0 and len(p.isrs) == replication_factor
                for p in meta.partitions.values()
            )
        ):
            return
        time.sleep(0.1)
    raise RuntimeError(f"topic {topic} has no leaders or no full ISR after 30 s")


def warm_up(broker: Target, *, replication_factor: int = 1) -> str | None:
    """A small untimed produce and read-back, so that lazy imports, first-request costs and
    connection set-up are paid before the first measured workload; an error, if any."""
    try:
        create_topic(broker.bootstrap, "bench-warm-up", 1, replication_factor=replication_factor)
    except Exception as exc:
        return f"warm-up: create topic: {type(exc).__name__}: {exc}"
    spec: dict[str, Any] = {
        "mode": "produce",
        "bootstrap": broker.bootstrap,
        "topic": "bench-warm-up",
        "partitions": 1,
        "size": 1024,
        "count": 5000,
        "acks": "all",
        "broker_pids": broker.pids,
        "timeout_s": 60.0,
        "expected": {},
    }
    produced = run_worker(spec)
    if produced.get("error") or "delivered" not in produced:
        return f"warm-up: produce: {produced.get('error')}"
    consumed = run_worker(dict(spec, mode="consume", expected=produced["delivered"]))
    return f"warm-up: consume: {consumed['error']}" if consumed.get("error") else None


def sample(broker: str, round_no: int, phase: str, w: Workload, result: dict[str, Any]) -> Sample:
    return Sample(
        broker=broker,
        round=round_no,
        phase=phase,
        size=w.size,
        partitions=w.partitions,
        acks=w.acks,
        records=int(result.get("records", 0)),
        bytes=int(result.get("bytes", 0)),
        elapsed_s=float(result.get("elapsed_s", 0.0)),
        broker_cpu_s=float(result.get("broker_cpu_s", 0.0)),
        client_cpu_s=float(result.get("client_cpu_s", 0.0)),
        machine_cpu_s=float(result.get("machine_cpu_s", 0.0)),
        error=result.get("error"),
        broker_cpu_each_s=[float(x) for x in result.get("broker_cpu_each_s", [])],
    )


def run_workload(
    broker: Target,
    round_no: int,
    w: Workload,
    quiet: Quiet,
    *,
    label: str | None = None,
    replication_factor: int = 1,
    topic_config: dict[str, str] | None = None,
) -> list[Sample]:
    """Produce ``w`` into a new topic and read it back; samples named ``label`` (default:
    the broker's name)."""
    name = label or broker.name
    if not broker.alive():
        error = "broker exited"
        return [sample(name, round_no, ph, w, {"error": error}) for ph in ("produce", "consume")]
    topic = f"bench-{w.key}"
    try:
        create_topic(
            broker.bootstrap,
            topic,
            w.partitions,
            replication_factor=replication_factor,
            config=topic_config,
        )
    except Exception as exc:
        error = f"create topic: {type(exc).__name__}: {exc}"
        return [sample(name, round_no, ph, w, {"error": error}) for ph in ("produce", "consume")]
    spec: dict[str, Any] = {
        "mode": "produce",
        "bootstrap": broker.bootstrap,
        "topic": topic,
        "partitions": w.partitions,
        "size": w.size,
        "count": w.count,
        "acks": w.acks,
        "broker_pids": broker.pids,
        "timeout_s": WORKLOAD_TIMEOUT_S,
        "expected": {},
    }
    quiet.wait()
    produced = run_worker(spec)
    out = [sample(name, round_no, "produce", w, produced)]
    if "delivered" not in produced:
        out.append(sample(name, round_no, "consume", w, {"error": "nothing produced"}))
        return out
    quiet.wait()
    consumed = run_worker(dict(spec, mode="consume", expected=produced["delivered"]))
    out.append(sample(name, round_no, "consume", w, consumed))
    return out


def run_round(name: str, round_no: int, run: Run, results_dir: Path) -> None:
    load = Path("/proc/loadavg").read_text().split()[0]
    info = RoundInfo(broker=name, round=round_no, loadavg_at_start=float(load))
    log_path = results_dir / "logs" / f"{name}-round{round_no}.log"
    print(f"round {round_no}: {name} (load {load})", flush=True)
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as work:
        broker = BrokerProcess(name, Path(work), log_path)
        started = False
        try:
            if name == "tansu":
                broker.tansu = tansu_binary()
            broker.start()
            started = True
            info.ready_s = broker.ready_s
            warm_error = warm_up(broker)
            if warm_error:
                print(f"  {warm_error}", flush=True)
            # Peak RSS of start-up and warm-up, then from here on: the workloads' own peak.
            info.startup_peak_rss_bytes = peak_rss_bytes(broker.pid)
            if not reset_peak_rss(broker.pid):
                info.startup_peak_rss_bytes = None
            for w in run.workloads:
                for s in run_workload(broker, round_no, w, run.quiet):
                    run.samples.append(s)
                    status = s.error or f"{s.mb_s:8.1f} MB/s  cpu {s.broker_cpu_s:5.2f}s"
                    print(f"  {s.phase:8} {w.label:22} {status}", flush=True)
            if broker.alive():
                info.peak_rss_bytes = peak_rss_bytes(broker.pid)
        except Exception as exc:  # a broken broker is a result, not a crash
            info.error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            print(f"  {name} failed: {info.error}", flush=True)
        finally:
            info.exit_code = broker.stop()
            broker.kill()
    if started and info.exit_code != 0:
        how = "killed after SIGTERM timeout" if info.exit_code is None else f"exit {info.exit_code}"
        info.error = info.error or f"did not stop cleanly ({how})"
    done = {s.key for s in run.samples}
    for w in run.workloads:  # a broker that never started: its workloads failed too
        for phase in ("produce", "consume"):
            if (name, round_no, phase, w.key) not in done:
                error = info.error or "not run"
                run.samples.append(sample(name, round_no, phase, w, {"error": error}))
    run.round_info.append(info)


def _raise_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds per broker (default 3)")
    parser.add_argument("--quick", action="store_true", help="4 workloads, 1/5 of the records")
    parser.add_argument("--broker", choices=(*BROKERS, "both"), default="both")
    parser.add_argument(
        "--results-dir",
        type=Path,
        default=HERE / "results",
        help="where raw results and logs go (default benchmarks/results)",
    )
    parser.add_argument(
        "--max-quiet-wait",
        type=float,
        default=QUIET_MAX_WAIT_S,
        help="seconds to wait for the rest of the machine to go idle before each phase",
    )
    parser.add_argument(
        "--no-publish",
        action="store_true",
        help="never write BENCHMARKS.md / benchmarks/throughput.png in the repo",
    )
    parser.add_argument(
        "--from-results",
        type=Path,
        metavar="RESULTS_JSON",
        help="only rewrite the report (and plot) from an earlier run's results.json",
    )
    args = parser.parse_args(argv)
    if args.from_results:
        return report_only(args.from_results)
    signal.signal(signal.SIGTERM, _raise_on_sigterm)

    brokers = BROKERS if args.broker == "both" else (args.broker,)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    results_dir = args.results_dir / stamp
    results_dir.mkdir(parents=True, exist_ok=True)
    command = " ".join(["python benchmarks/throughput.py", *(argv or sys.argv[1:])])
    run = Run(stamp, command, args.rounds, args.quick, brokers, workloads(args.quick))
    run.quiet.max_wait_s = args.max_quiet_wait
    if "tansu" in brokers:
        try:
            run.tansu_version = tansu_version(tansu_binary())
        except Exception as exc:
            run.tansu_version = f"unavailable: {exc}"

    started = time.monotonic()
    for round_no in range(1, args.rounds + 1):
        for name in brokers:
            run_round(name, round_no, run, results_dir)
    print(f"done in {time.monotonic() - started:.0f}s", flush=True)

    raw: dict[str, Any] = {
        "started": run.started,
        "command": run.command,
        "brokers": list(brokers),
        "quick": args.quick,
        "machine": machine_description(),
        "odradek_revision": odradek_revision(),
        "tansu_version": run.tansu_version,
        "wall_s": time.monotonic() - started,
        "quiet_note": run.quiet.note(),
        "workloads": [asdict(w) for w in run.workloads],
        "rounds": [asdict(r) for r in run.round_info],
        "samples": [asdict(s) for s in run.samples],
    }
    (results_dir / "results.json").write_text(json.dumps(raw, indent=1) + "\n")
    publish = not args.quick and args.broker == "both" and not args.no_publish
    markdown = REPO / "BENCHMARKS.md" if publish else results_dir / "BENCHMARKS.md"
    plot = HERE / "throughput.png" if publish else results_dir / "throughput.png"
    report_from_raw(raw, markdown, plot)
    print(f"results: {results_dir}\nreport:  {markdown}\nplot:    {plot}", flush=True)
    failures = [s for s in run.samples if s.error]
    for s in failures:
        print(f"FAILED {s.broker} round {s.round} {s.phase} {s.label}: {s.error}", flush=True)
    return 1 if failures else 0


def report_from_raw(raw: dict[str, Any], markdown: Path, plot: Path) -> None:
    """Write BENCHMARKS.md and the plot from a run's results.json contents."""
    write_report(
        markdown,
        plot,
        samples=[Sample(**s) for s in raw["samples"]],
        rounds=[RoundInfo(**r) for r in raw["rounds"]],
        brokers=tuple(raw["brokers"]),
        command=raw["command"],
        started=raw["started"],
        machine=raw["machine"],
        odradek_revision=raw["odradek_revision"],
        tansu_version=raw["tansu_version"],
        wall_s=raw["wall_s"],
        workloads=[Workload(**w) for w in raw["workloads"]],
        quiet_note=raw["quiet_note"],
    )


def report_only(results: Path) -> int:
    """--from-results: rewrite the report of an earlier run, next to the repo's copy."""
    raw = json.loads(results.read_text())
    publish = not raw["quick"] and len(raw["brokers"]) == 2
    markdown = REPO / "BENCHMARKS.md" if publish else results.parent / "BENCHMARKS.md"
    plot = HERE / "throughput.png" if publish else results.parent / "throughput.png"
    report_from_raw(raw, markdown, plot)
    print(f"report: {markdown}\nplot:   {plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
