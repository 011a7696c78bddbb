"""Produce and consume throughput of Odradek, side by side with Tansu.

    python benchmarks/throughput.py [--rounds N] [--quick] [--broker odradek|tansu|both]
                                    [--load-generators N] [--no-warm-memory]

Each round starts each broker fresh (new temp dir, free loopback port), runs every
workload against it, reads its peak RSS and stops it with SIGTERM; brokers alternate
A B A B. A workload is: create a topic, warm the memory its records will take
(``warm_memory``), produce a fixed number of records from load-generator processes
(``_loadgen.py``, confluent-kafka/librdkafka; two by default, sharing the records and
started together), then read the topic back with ``assign()`` from as many other
processes, each reading every record, and check every record.

Broker CPU is utime+stime from /proc/<pid>/stat across the timed section, so the load
generators' CPU is not in it. Results go to ``benchmarks/results/<stamp>/`` (raw samples
as JSON, broker logs); a full run with both brokers also writes ``BENCHMARKS.md`` and
``benchmarks/throughput.png`` (other runs write them next to the results).

A failed start, a failed workload or a data mismatch is recorded and shown in the
report; the exit status is 1 when anything failed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import mmap
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import IO, Any

from _brokers import (
    BrokerProcess,
    InstructionCounter,
    Target,
    machine_busy_s,
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
PARTITIONS = (1, 8, 64)
ACKS = ("1", "all")
# Fixed record counts: 150 MB of 100 B records, about 400 MB of 1 KiB and
# of 16 KiB records, so that each phase lasts a second or more (with 300,000 records of
# 100 B, a phase took 0.3 s on a 2-core AMD EPYC and rounds varied by 2x).
COUNTS = {100: 1_500_000, 1024: 400_000, 16 * 1024: 25_000}
QUICK = ((100, 1, "1"), (1024, 8, "1"), (1024, 1, "all"), (16 * 1024, 8, "all"))
QUICK_DIVISOR = 5
WORKLOAD_TIMEOUT_S = 120.0
# Load-generator processes per phase. One Python process calling produce() per record
# tops out near a million 100 B records a second whatever the broker, so with one the
# 100 B rows compared clients; two keep both cores busy, and then what a broker costs
# per record decides how much of the machine is left for its clients.
LOAD_GENERATORS = 2
QUIET_THRESHOLD_CORES = 0.3
QUIET_MAX_WAIT_S = 20.0


def workloads(quick: bool) -> list[Workload]:
    if quick:
        return [Workload(s, p, a, COUNTS[s] // QUICK_DIVISOR) for s, p, a in QUICK]
    return [Workload(s, p, a, COUNTS[s]) for s in SIZES for p in PARTITIONS for a in ACKS]


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
    load_generators: int = LOAD_GENERATORS
    warm_memory: bool = True


def warm_memory(nbytes: int) -> float:
    """Put ``nbytes`` into fresh page cache (a temporary file, deleted before it is written
    back) and into fresh anonymous memory, then free both; the seconds it took.

    On a virtual machine whose host backs guest memory lazily and takes back what the
    guest frees (virtio-balloon free page reporting, in 2 MB blocks), the first write to
    a page the host does not back costs about 3.5 s per GB here, against 0.6 s for one
    it does. Both brokers put every byte they receive into fresh memory: Odradek into the
    page cache, whose large folios come from exactly such blocks, Tansu into its heap.
    Unwarmed, Odradek's produce CPU per GB tripled from about 2 GB into a round, all of
    it in the kernel's copy into the page cache. Written and freed just before a produce
    phase, the memory is warm when the phase's records land in it.
    """
    available = int(
        next(
            line.split()[1]
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemAvailable:")
        )
    )
    nbytes = min(nbytes, available * 1024 // 4)
    chunk = 1 << 24
    nbytes -= nbytes % chunk
    if nbytes <= 0:
        return 0.0
    ones = b"\x01" * chunk
    started = time.monotonic()
    with tempfile.TemporaryFile(buffering=0) as cache:  # the default temp dir: the brokers'
        for _ in range(0, nbytes, chunk):
            cache.write(ones)
    with mmap.mmap(-1, nbytes) as memory:
        for offset in range(0, nbytes, chunk):
            memory[offset : offset + chunk] = ones
    return time.monotonic() - started


def phase_bytes(w: Workload) -> int:
    """What producing ``w`` leaves in a broker's memory: every record value, plus a quarter
    for framing and overhead (Tansu's peak RSS was 4.15 GB for 3.8 GB of values)."""
    return w.count * w.size * 5 // 4


def run_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one load-generator process; its JSON result, or an ``error`` saying why not."""
    return run_workers(spec, 1)


def run_workers(spec: dict[str, Any], count: int) -> dict[str, Any]:
    """Run ``count`` load-generator processes of one phase, started together, as one result.

    Producers share ``spec["count"]`` records between them; consumers each read the whole
    topic, as consumers of as many consumer groups would. Every worker connects first and
    waits; the clock of each starts when all are ready.
    """
    shares = [spec["count"] // count + (i < spec["count"] % count) for i in range(count)]
    specs = [dict(spec, index=i, count=shares[i]) for i in range(count)]
    with contextlib.ExitStack() as stack:
        # stderr goes to files: a chatty worker must not block on a full pipe while the
        # parent waits for another one.
        stderrs = [stack.enter_context(tempfile.TemporaryFile("w+")) for _ in specs]
        processes = [
            subprocess.Popen(
                [sys.executable, str(LOADGEN), json.dumps(one)],
                stdout=subprocess.PIPE,
                stderr=stderr,
                stdin=subprocess.PIPE,
                text=True,
            )
            for one, stderr in zip(specs, stderrs, strict=True)
        ]
        stack.callback(_reap, processes)
        ready_by = time.monotonic() + READY_TIMEOUT_S
        early = [_wait_ready(p, deadline=ready_by) for p in processes]
        counter = InstructionCounter.start(spec["broker_pids"])
        if counter is not None:
            stack.callback(counter.close)
        for process in processes:  # go (communicate() closes stdin later)
            with contextlib.suppress(OSError):
                process.stdin.write("go\n")  # type: ignore[union-attr]
                process.stdin.flush()  # type: ignore[union-attr]
        results = [
            line or _finish(process, stderr, spec["timeout_s"] + 60)
            for process, stderr, line in zip(processes, stderrs, early, strict=True)
        ]
        instructions = counter.stop() if counter is not None else None
    combined = combine([_parse(r) for r in results])
    if instructions is not None:
        combined["broker_instructions"] = instructions
    return combined


READY_TIMEOUT_S = 60.0


def _reap(processes: list[subprocess.Popen[str]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()


def _wait_ready(process: subprocess.Popen[str], *, deadline: float) -> str:
    """Wait for a worker's ``ready`` line: "" once it is ready, else what it printed
    instead (a result: it failed before it was ready) or an error."""
    stdout = process.stdout
    assert stdout is not None
    while time.monotonic() < deadline:
        readable, _, _ = select.select([stdout], [], [], 0.5)
        if readable:
            line = stdout.readline()
            if line.strip() == "ready":
                return ""
            if line:
                return line
            return json.dumps({"error": f"load generator exited {process.wait()} before ready"})
    return json.dumps({"error": f"load generator not ready after {READY_TIMEOUT_S:.0f} s"})


def _finish(process: subprocess.Popen[str], stderr: IO[str], timeout_s: float) -> str:
    try:
        out, _ = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return json.dumps({"error": "load generator hung (killed)"})
    lines = out.strip().splitlines()
    if process.returncode != 0 or not lines:
        stderr.seek(0)
        tail = stderr.read().strip().splitlines()[-3:]
        return json.dumps(
            {"error": f"load generator exited {process.returncode}: {' / '.join(tail)}"}
        )
    return lines[-1]


def _parse(line: str) -> dict[str, Any]:
    try:
        result: dict[str, Any] = json.loads(line)
    except json.JSONDecodeError:
        return {"error": f"load generator printed {line[:200]!r}"}
    return result


def combine(results: list[dict[str, Any]]) -> dict[str, Any]:
    """One result for a phase run by several workers: records and bytes add up, the phase
    lasts from the first worker's start to the last one's end, and the brokers' and the
    machine's CPU are read across that same span."""
    if len(results) == 1:
        return results[0]
    errors = [r["error"] for r in results if r.get("error")]
    windows = [r["window"] for r in results if "window" in r]
    out: dict[str, Any] = {
        "records": sum(int(r.get("records", 0)) for r in results),
        "bytes": sum(int(r.get("bytes", 0)) for r in results),
        "client_cpu_s": sum(float(r.get("client_cpu_s", 0.0)) for r in results),
        "error": f"{len(errors)} of {len(results)} load generators failed: {errors[0]}"
        if errors
        else None,
    }
    if len(windows) == len(results):
        first = min(windows, key=lambda w: w["t0"])
        last = max(windows, key=lambda w: w["t1"])
        each = [b - a for a, b in zip(first["brokers0"], last["brokers1"], strict=True)]
        out |= {
            "elapsed_s": last["t1"] - first["t0"],
            "broker_cpu_s": sum(each),
            "broker_cpu_each_s": each,
            "machine_cpu_s": last["machine1"] - first["machine0"],
        }
    if all("delivered" in r for r in results):
        delivered: Counter[str] = Counter()
        for r in results:
            delivered.update(r["delivered"])
        out["delivered"] = dict(delivered)
    return out


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
        broker_instructions=float(result.get("broker_instructions", 0.0)),
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
    load_generators: int = 1,
    warm: bool = False,
) -> list[Sample]:
    """Produce ``w`` into a new topic and read it back, each phase from ``load_generators``
    processes, after warming the memory the records will take if ``warm``; samples named
    ``label`` (default: the broker's name)."""
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
    if warm:
        warm_memory(phase_bytes(w))
    quiet.wait()
    produced = run_workers(spec, load_generators)
    out = [sample(name, round_no, "produce", w, produced)]
    if "delivered" not in produced:
        out.append(sample(name, round_no, "consume", w, {"error": "nothing produced"}))
        return out
    quiet.wait()
    consumed = run_workers(
        dict(spec, mode="consume", expected=produced["delivered"]), load_generators
    )
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
                for s in run_workload(
                    broker,
                    round_no,
                    w,
                    run.quiet,
                    load_generators=run.load_generators,
                    warm=run.warm_memory,
                ):
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
        "--load-generators",
        type=int,
        default=LOAD_GENERATORS,
        metavar="N",
        help=f"load-generator processes per phase (default {LOAD_GENERATORS})",
    )
    parser.add_argument(
        "--no-warm-memory",
        action="store_true",
        help="do not write to and free fresh memory before each produce phase",
    )
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
    if args.load_generators < 1:
        parser.error("--load-generators must be 1 or more")
    if args.from_results:
        return report_only(args.from_results, publish=not args.no_publish)
    signal.signal(signal.SIGTERM, _raise_on_sigterm)

    brokers = BROKERS if args.broker == "both" else (args.broker,)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    results_dir = args.results_dir / stamp
    results_dir.mkdir(parents=True, exist_ok=True)
    command = " ".join(["python benchmarks/throughput.py", *(argv or sys.argv[1:])])
    run = Run(stamp, command, args.rounds, args.quick, brokers, workloads(args.quick))
    run.quiet.max_wait_s = args.max_quiet_wait
    run.load_generators = args.load_generators
    run.warm_memory = not args.no_warm_memory
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
        "load_generators": run.load_generators,
        "warm_memory": run.warm_memory,
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
        load_generators=raw.get("load_generators", 1),
        warm_memory=raw.get("warm_memory", False),
    )


def report_only(results: Path, *, publish: bool = True) -> int:
    """--from-results: rewrite the report of an earlier run: in the repo if the run was
    a full one of both brokers and ``publish`` (no --no-publish), else next to it."""
    raw = json.loads(results.read_text())
    publish = publish and not raw["quick"] and len(raw["brokers"]) == 2
    markdown = REPO / "BENCHMARKS.md" if publish else results.parent / "BENCHMARKS.md"
    plot = HERE / "throughput.png" if publish else results.parent / "throughput.png"
    report_from_raw(raw, markdown, plot)
    print(f"report: {markdown}\nplot:   {plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
