"""End-to-end latency at a fixed rate, Odradek side by side with Tansu.

    python benchmarks/latency.py [--rounds N] [--seconds S] [--rate R] [--size B]
                                 [--broker odradek|tansu|both] [--py-spy] [--no-publish]

Each round starts each broker fresh (new temp dir, free loopback port), brokers
alternating A B A B. Against each: a small untimed warm-up, a one-partition topic, then
a consumer process (``_latency_client.py``, librdkafka) positioned at the end of the
partition and, once it is fetching, a producer process that sends ``rate`` records per
second of ``size`` bytes for ``warm-up + seconds``. The latency of a record is its
consumer receive time minus its producer send time (one machine, one monotonic clock);
the first ``--warmup`` seconds are not counted. Each cell of the report is the median of
the rounds' percentiles.

Results go to ``benchmarks/results/<stamp>-latency/``; a run with both brokers and at
least 3 rounds also writes the ``latency`` section of BENCHMARKS.md and
``benchmarks/latency.png``. ``--py-spy`` records Odradek's stacks during the measured
part (raw stacks and a summary in the results dir).
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _brokers import (
    BrokerProcess,
    Target,
    peak_rss_bytes,
    reset_peak_rss,
    tansu_binary,
    tansu_version,
)
from _report import COLOURS, NAMES, machine_description, odradek_revision
from _sections import update_section
from throughput import Quiet, create_topic, warm_up

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CLIENT = HERE / "_latency_client.py"
BROKERS = ("odradek", "tansu")
TARGET_P99_MS = 5.0

# librdkafka settings of both clients, besides bootstrap.servers: what a latency-minded
# user sets. linger.ms=0 and acks are in the client; fetch.wait.max.ms stays at its
# default (500 ms): the broker answers a parked fetch as soon as data arrives.
PRODUCER_SETTINGS: dict[str, Any] = {"socket.nagle.disable": True}
CONSUMER_SETTINGS: dict[str, Any] = {"socket.nagle.disable": True, "fetch.min.bytes": 1}


@dataclass
class Sample:
    broker: str
    round: int
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    p999_ms: float = 0.0
    max_ms: float = 0.0
    mean_ms: float = 0.0
    over_5ms: int = 0
    received: int = 0
    achieved_rate: float = 0.0
    max_schedule_lag_ms: float = 0.0
    late_sends: int = 0
    broker_cpu_s: float = 0.0
    producer_cpu_s: float = 0.0
    consumer_cpu_s: float = 0.0
    machine_cpu_s: float = 0.0
    elapsed_s: float = 0.0
    peak_rss_bytes: int | None = None
    exit_code: int | None = None
    curve: list[list[float]] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.received > 0


def spawn_client(spec: dict[str, Any]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(CLIENT), json.dumps(spec)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )


def finish(process: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    """Wait for a client and parse its last stdout line; always reaps the process."""
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": "client hung (killed)"}
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    lines = [line for line in out.strip().splitlines() if line != "ready"]
    if process.returncode != 0 or not lines:
        tail = " / ".join(err.strip().splitlines()[-3:])
        return {"error": f"client exited {process.returncode}: {tail}"}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def wait_ready(process: subprocess.Popen[str], timeout: float) -> bool:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if line.strip() == "ready":
            return True
        if not line and process.poll() is not None:
            return False
    return False


def measure(broker: BrokerProcess, args: argparse.Namespace, results_dir: Path) -> dict[str, Any]:
    topic = "latency"
    create_topic(broker.bootstrap, topic, 1)
    spy_dir = results_dir if args.py_spy and broker.name == "odradek" else None
    return run_pair(
        broker,
        topic,
        rate=args.rate,
        size=args.size,
        acks=args.acks,
        warmup_s=args.warmup,
        seconds=args.seconds,
        spy_dir=spy_dir,
    )


def run_pair(
    target: Target,
    topic: str,
    *,
    rate: float,
    size: int,
    acks: str,
    warmup_s: float,
    seconds: float,
    spy_dir: Path | None = None,
) -> dict[str, Any]:
    """A consumer at the end of partition 0 of ``topic`` and, once it fetches, a producer
    sending ``rate`` records/s for ``warmup_s + seconds``: the two clients' results merged,
    ``error`` set if either failed. ``spy_dir``: py-spy the (single) broker there."""
    count = int(rate * (warmup_s + seconds))
    spec: dict[str, Any] = {
        "bootstrap": target.bootstrap,
        "topic": topic,
        "size": size,
        "rate": rate,
        "count": count,
        "warmup": int(rate * warmup_s),
        "acks": acks,
        "broker_pids": target.pids,
    }
    consumer = spawn_client(dict(spec, mode="consume", client=CONSUMER_SETTINGS))
    producer: subprocess.Popen[str] | None = None
    spy: subprocess.Popen[bytes] | None = None
    try:
        if not wait_ready(consumer, 30):
            return {"error": "consumer not ready: " + str(finish(consumer, 5).get("error"))}
        producer = spawn_client(dict(spec, mode="produce", client=PRODUCER_SETTINGS))
        if spy_dir is not None:
            time.sleep(warmup_s)
            spy = subprocess.Popen(
                [
                    "py-spy", "record", "--pid", str(target.pids[0]), "--rate", "500",
                    "--format", "raw", "--duration", str(int(seconds)),
                    "--output", str(spy_dir / f"py-spy-{time.time_ns()}.txt"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
        produced = finish(producer, warmup_s + seconds + 60)
        consumed = finish(consumer, 60)
    finally:
        for process in (producer, consumer):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
        if spy is not None:
            try:
                spy.wait(30)
            except subprocess.TimeoutExpired:
                spy.kill()
                spy.wait()
    result = {k: v for k, v in produced.items() if k != "error"}
    result.update({k: v for k, v in consumed.items() if k != "error"})
    result["error"] = produced.get("error") or consumed.get("error")
    return result


def run_round(name: str, round_no: int, args: argparse.Namespace, results_dir: Path) -> Sample:
    sample = Sample(broker=name, round=round_no)
    log_path = results_dir / "logs" / f"{name}-round{round_no}.log"
    print(f"round {round_no}: {name}", flush=True)
    with tempfile.TemporaryDirectory(prefix=f"latency-{name}-") as work:
        broker = BrokerProcess(name, Path(work), log_path)
        try:
            if name == "tansu":
                broker.tansu = tansu_binary()
            broker.start()
            warm_error = warm_up(broker)
            if warm_error:
                print(f"  {warm_error}", flush=True)
            reset_peak_rss(broker.pid)
            args.quiet.wait()
            result = measure(broker, args, results_dir)
            for key, value in result.items():
                if hasattr(sample, key):
                    setattr(sample, key, value)
            if broker.alive():
                sample.peak_rss_bytes = peak_rss_bytes(broker.pid)
        except Exception as exc:  # a broken broker is a result, not a crash
            sample.error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        finally:
            sample.exit_code = broker.stop()
            broker.kill()
    status = sample.error or (
        f"p50 {sample.p50_ms:.2f} ms  p99 {sample.p99_ms:.2f} ms  p999 {sample.p999_ms:.2f} ms"
        f"  max {sample.max_ms:.1f} ms  rate {sample.achieved_rate:,.0f}/s"
    )
    print(f"  {status}", flush=True)
    return sample


# ----------------------------------------------------------------------------- report


def med(samples: Sequence[Sample], broker: str, key: str) -> float | None:
    values = [float(getattr(s, key)) for s in samples if s.broker == broker and s.ok]
    return statistics.median(values) if values else None


def fmt(x: float | None, digits: int = 2) -> str:
    return "FAILED" if x is None else f"{x:.{digits}f}"


def report_body(raw: dict[str, Any], samples: Sequence[Sample], plot_rel: str | None) -> str:
    brokers = raw["brokers"]
    args = raw["args"]
    date = datetime.strptime(raw["started"], "%Y%m%d-%H%M%S").strftime("%Y-%m-%d %H:%M")
    lines = [
        "## End-to-end latency",
        "",
        f"Producer send to consumer receive, {args['rate']:,.0f} records/s of "
        f"{args['size']:,} B, acks={args['acks']}, one partition. Generated by "
        "`benchmarks/latency.py`.",
        "",
        f"- Date: {date} UTC; the run took {raw['wall_s'] / 60:.1f} min",
        f"- Command: `{raw['command']}`",
        f"- Odradek: {raw['odradek_revision']}, default config, data on local disk",
        f"- Tansu: {raw['tansu_version'] or 'not run'}, in-memory storage",
        f"- {args['rounds']} round(s) per broker, alternating; {args['seconds']:.0f} s measured "
        f"per round ({int(args['rate'] * args['seconds']):,} records) after "
        f"{args['warmup']:.0f} s not measured; each cell is the median of the rounds",
        f"- {raw['quiet_note']}",
        "",
        f"Target: p99 <= {TARGET_P99_MS:.0f} ms.",
        "",
        "| Broker | p50 ms | p99 ms | p999 ms | max ms | mean ms | records over 5 ms "
        "| p99 of each round (ms) | achieved rate | broker CPU (% of a core) "
        "| clients CPU | rest of machine |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for b in brokers:
        mine = [s for s in samples if s.broker == b]
        rounds = ", ".join(fmt(s.p99_ms) if s.ok else "failed" for s in mine)
        cpu = med(samples, b, "broker_cpu_s")
        elapsed = med(samples, b, "elapsed_s")
        cpu_pct = f"{100 * cpu / elapsed:.0f}%" if cpu is not None and elapsed else "—"
        over = med(samples, b, "over_5ms")
        rate = med(samples, b, "achieved_rate")
        clients = med(samples, b, "producer_cpu_s")
        consumer = med(samples, b, "consumer_cpu_s")
        machine = med(samples, b, "machine_cpu_s")
        client_pct = rest_pct = "—"
        if elapsed and clients and consumer:
            client_pct = f"{100 * (clients + consumer) / elapsed:.0f}%"
            if machine and cpu is not None:
                rest = max(machine - cpu - clients - consumer, 0.0)
                rest_pct = f"{100 * rest / elapsed:.0f}%"
        lines.append(
            f"| {NAMES[b]} | {fmt(med(samples, b, 'p50_ms'))} | {fmt(med(samples, b, 'p99_ms'))}"
            f" | {fmt(med(samples, b, 'p999_ms'))} | {fmt(med(samples, b, 'max_ms'), 1)}"
            f" | {fmt(med(samples, b, 'mean_ms'))} | {fmt(over, 0)} | {rounds}"
            f" | {fmt(rate, 0)}/s | {cpu_pct} | {client_pct} | {rest_pct} |"
        )
    lines.append("")
    if plot_rel:
        lines += [f"![End-to-end latency percentiles, Odradek vs Tansu]({plot_rel})", ""]
    lines += ["### What this means", "", meaning(samples, brokers), "", CHANGES, ""]
    failures = [f"- {NAMES[s.broker]} round {s.round}: {s.error}" for s in samples if s.error]
    if failures:
        lines += ["Failures:", "", *failures, ""]
    lags = [s.max_schedule_lag_ms for s in samples if s.ok]
    late = [s.late_sends for s in samples if s.ok]
    lines += [
        "Method: the consumer (`assign()` at the end of the partition, no group) starts "
        "first; the producer starts once the consumer is fetching. Each record carries a "
        "sequence number and its send time (`time.monotonic_ns()` just before `produce()`); "
        "the consumer takes the time as `poll()` returns the record, checks sequence "
        "numbers (in order, none missing) and keeps the latencies after the warm-up. "
        "Percentiles are nearest-rank over every measured record. Both clients are "
        "confluent-kafka in their own processes, sharing the 2 cores with the broker. "
        f"Producer: `acks={args['acks']}`, `linger.ms=0`, no compression, idempotence off, "
        "`socket.nagle.disable=true`. Consumer: `fetch.min.bytes=1`, `fetch.wait.max.ms` "
        "left at its default of 500 ms (the broker answers a parked fetch when data "
        "arrives), `socket.nagle.disable=true`. The producer sleeps between records "
        f"(no busy loop); its worst lag behind schedule was {max(lags, default=0):.1f} ms, "
        f"with {max(late, default=0)} record(s) more than 1 ms late in the worst round.",
        "",
    ]
    return "\n".join(lines)


def meaning(samples: Sequence[Sample], brokers: Sequence[str]) -> str:
    p99 = med(samples, "odradek", "p99_ms")
    if p99 is None:
        return "Odradek failed in every round: no conclusion."
    mine = [s for s in samples if s.broker == "odradek" and s.ok]
    rounds = [s.p99_ms for s in mine]
    best = min(mine, key=lambda s: s.p99_ms)
    met = "meets" if p99 <= TARGET_P99_MS else "misses"
    cpu = med(samples, "odradek", "broker_cpu_s")
    elapsed = med(samples, "odradek", "elapsed_s")
    load = f"{100 * cpu / elapsed:.0f}%" if cpu is not None and elapsed else "?"
    text = (
        f"Odradek {met} the target: median p99 {p99:.2f} ms against {TARGET_P99_MS:.0f} ms "
        f"(rounds from {min(rounds):.2f} to {max(rounds):.2f} ms). At this rate every record "
        "is its own produce request (`linger.ms=0`) and wakes the consumer's parked fetch, "
        f"about 10,000 requests a second, and the broker's event loop is busy {load} of the "
        "time: it keeps up, but with little to spare, so the tail follows whatever else "
        "runs on the 2 cores (the clients themselves, other test suites): the best round "
        f"had p50 {best.p50_ms:.2f} ms and p99 {best.p99_ms:.2f} ms. "
    )
    if "tansu" in brokers and med(samples, "tansu", "p50_ms") is not None:
        text += (
            "Tansu's latency is in seconds here, and was 85-260 ms (p50) at 500-2,000 "
            "records/s in shorter runs while profiling: a long-polling consumer gets its "
            "records late from it at any rate, so the comparison says little beyond that."
        )
    return text


CHANGES = """### What each change bought

All at 5,000 records/s of 1 KiB, acks=1, on this machine, measured while profiling (short
runs, so noisier than the table above, which is the current state).

- Before (git a941cfe): broker saturated (100% of a core): every record cost a produce
  request and a woken fetch of several hundred microseconds of Python, the queue grew,
  p50 51-56 ms, p99 142-180 ms (two 8-10 s runs).
- One `send` per batch of ready responses instead of one per response part (a fetch
  response went out in four), Produce answered by a hand-written encoder instead of kio's
  generic writer (a quarter of a one-record produce request), and a parked fetch kept as
  one timer and a callback instead of a task with `wait_for`/`shield` (about eight loop
  callbacks): p50 1.5 ms, p99 10.5 ms (one 8 s run; git 9c74018).
- Frames cut straight from the received bytes, a flat produce parser (17 -> 6 us per
  request), request header and context as named tuples: median p99 of three alternating
  10 s rounds 19.4 -> 7.7 ms against the previous commit (git 7de2efe).
- A roll no longer fsyncs on the event loop (the flush runs in a worker thread, as
  Kafka schedules it). The 30 s rounds above never roll (1 GiB segments); with 8 MiB
  segments at 2,000 records/s the worst latency near each roll went from 11-33 ms to
  4-16 ms (git 74fb3ad).
- Run to run: two full runs of this script on the same broker code (git c79ce7e and
  5525a02) gave median p99 3.94 ms (rounds 7.69, 1.54, 3.94) and 5.42 ms (rounds 2.17,
  5.42, 5.55): the target sits inside the spread. The broker's CPU reads 99% at this rate
  in every run and at every code version: a consumer's fetch that finds nothing parks,
  one that finds something returns at once and the consumer asks again, so spare CPU
  turns into more, smaller fetch round trips (about 200 us of broker CPU per record).
- Profiled and ruled out: the checkpoint timers (1-2 ms every 5 s for the high
  watermarks). Garbage collection was ruled out too, wrongly: 10 s profiles saw only
  gen-0 and gen-1 collections (longest 1.8 ms), but a full collection comes every 20-40 s
  and walked every object the broker holds, modules included: 27-76 ms of stopped loop.
- Per-request value types (LogAppendInfo, FetchDataInfo, ProduceResult, ...) as named
  tuples instead of frozen dataclasses (whose `__init__` costs three times as much), a
  woken fetch reading from where the last append went (no index lookup), and a parked
  fetch's answer handed to its connection in the same call instead of through a
  Future's callback on the next loop turn: broker CPU per record 580 -> 477 us, round
  trip 837 -> 670 us (median of five alternating rounds of 3,000 records, each its own
  produce request answered and delivered to a parked fetch before the next; git 7809fb1
  against 810a6f2). The table then published predated these; runs of this script made since, while
  other work loaded the machine ("rest of machine" 36-39% of a core), gave p99 of 4 to
  59 ms for both the old and the new code, too noisy to publish.
- `gc.freeze()` once the broker has started (git 24a0c9f): a full collection during a
  run now takes about 2 ms. Three alternating 20 s rounds against the previous commit on
  a quiet machine: p99.9 4.2-24.9 -> 1.6-1.9 ms, max 23-45 -> 4-8 ms; p50 (0.23 ms) and
  p99 (0.44-0.58 ms) unchanged.
- Machines: the previously published p99 of 5.42 ms, and every earlier figure in this
  list, were measured on a 2-core Intel Xeon VM where the broker was 99% busy at this
  rate; on a 2-core AMD EPYC VM (2026-11-23, morning) it was about 80% busy with p99
  0.73 ms. The table above is again from a 2-core Intel Xeon VM (same model name), where
  the broker is now about 90% busy with p99 0.67 ms (0.53-0.68): the code since 5.42 ms
  (named tuples, woken fetches reading from the last append, gc.freeze) and whatever
  differs between the two Xeon VMs, which this script cannot separate.
- The same VM, hours apart: on the 2-core AMD EPYC the published p99 was 11.62 ms
  (git 37a816d, broker 96% busy, a bare Python loop step about 230 ns) in the afternoon
  and 0.9-1.1 ms for the same code late in the evening (a loop step 50-70 ns). How busy
  the host is moves this table more than any change below.
- A hand-written Fetch request parser (kio's generic reader took about 12 us of a
  one-partition fetch, the new one 4-6 us), reads at the log end without the storage
  guard's argument forwarding, helper calls or generators, and parked fetches on one
  expiry heap under one loop timer instead of a `TimerHandle` each (a fetch woken by an
  append never expires, so each also cost a cancel): replayed librdkafka fetches, user
  instructions each, answered at once 183k -> 136k, parked then woken 280k -> 201k; with
  one produce request and one fetch per record (1,000 records/s), broker instructions per
  record 685k -> 600k. Three alternating 20 s rounds against git 8d95764 on a quiet
  machine: p50 0.37-0.45 -> 0.30-0.32 ms, p99 0.91-1.06 -> 0.89-0.94 ms; the broker reads
  96-99% busy in both, its spare time going to more, smaller fetch round trips (git
  25e02b3).
- Not done: uvloop was tried again: its transports are not `asyncio.Transport`
  subclasses (the connection asserted they were), and past that, consumers stalled on it
  (uvloop has no `loop.sendfile`, which the slow path of a large fetch response uses),
  so it needs its own send path first; in a short comparison it used about 12% less
  broker CPU. At 1,000 records/s the broker spends about 600k instructions per record, of
  which the replayed produce and fetch paths are about 380k: the rest is the event loop,
  its transports and the sends (py-spy: `socket.send` alone is 14% of the busy time)."""


def write_plot(path: Path, samples: Sequence[Sample], brokers: Sequence[str]) -> bool:
    """Latency against percentile on a 'nines' axis (50, 90, 99, 99.9, 99.99), one line
    per round; False when matplotlib is missing or nothing succeeded."""
    try:
        import matplotlib  # noqa: PLC0415

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError:
        return False
    if not any(s.ok and s.curve for s in samples):
        return False

    def nines(p: float) -> float:
        return -math.log10(max(1 - p / 100, 1e-5))

    fig, ax = plt.subplots(figsize=(9, 5), constrained_layout=True)
    for broker in brokers:
        first = True
        for s in samples:
            if s.broker != broker or not s.ok:
                continue
            points = [(p, ms) for p, ms in s.curve if 50 <= p < 100]
            ax.plot(
                [nines(p) for p, _ in points],
                [ms for _, ms in points],
                color=COLOURS[broker],
                alpha=0.8,
                linewidth=1.2,
                label=NAMES[broker] if first else None,
            )
            first = False
    ticks = [50, 90, 99, 99.9, 99.99]
    ax.set_xticks([nines(p) for p in ticks])
    ax.set_xticklabels([f"p{p:g}" for p in ticks])
    ax.axhline(TARGET_P99_MS, color="grey", linestyle=":", linewidth=1)
    ax.set_yscale("log")
    ax.set_ylabel("end-to-end latency (ms, log scale)")
    ax.set_title("End-to-end latency by percentile, one line per round (lower is better)")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write_report(raw: dict[str, Any], markdown: Path, plot: Path) -> None:
    samples = [Sample(**s) for s in raw["samples"]]
    plotted = write_plot(plot, samples, raw["brokers"])
    rel = str(plot.relative_to(markdown.parent)) if plotted else None
    body = report_body(raw, samples, rel)
    update_section(markdown, "latency", body, machine=raw["machine"])


def _raise_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=30.0, help="measured seconds per round")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds not measured")
    parser.add_argument("--rate", type=float, default=5000.0, help="records per second")
    parser.add_argument("--size", type=int, default=1024, help="record value bytes")
    parser.add_argument("--acks", default="1")
    parser.add_argument("--broker", choices=(*BROKERS, "both"), default="both")
    parser.add_argument("--py-spy", action="store_true", help="profile Odradek while measuring")
    parser.add_argument("--max-quiet-wait", type=float, default=20.0)
    parser.add_argument("--results-dir", type=Path, default=HERE / "results")
    parser.add_argument("--no-publish", action="store_true")
    parser.add_argument("--from-results", type=Path, metavar="RESULTS_JSON")
    args = parser.parse_args(argv)
    if args.from_results:
        raw = json.loads(args.from_results.read_text())
        write_report(raw, REPO / "BENCHMARKS.md", HERE / "latency.png")
        return 0
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    brokers = BROKERS if args.broker == "both" else (args.broker,)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    results_dir = args.results_dir / f"{stamp}-latency"
    results_dir.mkdir(parents=True, exist_ok=True)
    args.quiet = Quiet(max_wait_s=args.max_quiet_wait)
    started = time.monotonic()
    samples = []
    for round_no in range(1, args.rounds + 1):
        for name in brokers:
            samples.append(run_round(name, round_no, args, results_dir))
    raw: dict[str, Any] = {
        "started": stamp,
        "command": " ".join(["python benchmarks/latency.py", *(argv or sys.argv[1:])]),
        "brokers": list(brokers),
        "args": {
            k: v for k, v in vars(args).items() if k in ("rounds", "seconds", "warmup", "rate")
        }
        | {"size": args.size, "acks": args.acks},
        "machine": machine_description(),
        "odradek_revision": odradek_revision(),
        "tansu_version": tansu_version(tansu_binary()) if "tansu" in brokers else "",
        "wall_s": time.monotonic() - started,
        "quiet_note": args.quiet.note(),
        "samples": [asdict(s) for s in samples],
    }
    (results_dir / "results.json").write_text(json.dumps(raw, indent=1) + "\n")
    publish = len(brokers) == 2 and args.rounds >= 3 and not args.no_publish
    markdown = REPO / "BENCHMARKS.md" if publish else results_dir / "BENCHMARKS.md"
    plot = HERE / "latency.png" if publish else results_dir / "latency.png"
    write_report(raw, markdown, plot)
    print(f"results: {results_dir}\nreport:  {markdown}", flush=True)
    return 1 if any(s.error for s in samples) else 0


if __name__ == "__main__":
    sys.exit(main())
