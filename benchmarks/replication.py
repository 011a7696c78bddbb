"""What replication costs: 3 brokers with RF 3 against 1 broker with RF 1, acks=all.

    python benchmarks/replication.py [--rounds N] [--quick] [--no-publish]

Two set-ups of Odradek on this one machine, alternating round by round (A B A B ...),
each started fresh in a temp dir on free loopback ports and stopped at the end of its
round (also on Ctrl-C or SIGTERM):

- ``single``: one broker (no ZooKeeper), topics with replication factor 1;
- ``rf3``: a real ZooKeeper (``_cluster.py``) and three brokers, topics with replication
  factor 3 and ``min.insync.replicas=2``.

Against each, with acks=all throughout: produce a fixed number of records (1 KiB and
100 B; 1 and 8 partitions) from a separate librdkafka process and read them back from
another, checking every record (``throughput.run_workload``); then end-to-end latency
(producer send to consumer receive) at fixed rates of 1 KiB records on one partition
(``latency.run_pair``). Broker CPU is utime+stime of every broker process (the three
brokers summed for ``rf3``) across the timed part, sampled by the load generators.

Results go to ``benchmarks/results/<stamp>-replication/`` (raw samples, broker and
ZooKeeper logs); a full run of at least 3 rounds writes the ``replication`` section of
BENCHMARKS.md. The exit status is 1 when anything failed.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _brokers import BrokerProcess, peak_rss_bytes, reset_peak_rss
from _cluster import Cluster
from _report import (
    Row,
    Sample,
    Workload,
    cell,
    fmt,
    geomean,
    machine_description,
    median,
    odradek_revision,
    ordered_rows,
    ratio,
    size_label,
    values,
)
from _sections import update_section
from latency import Sample as LatencySampleBase
from latency import run_pair
from throughput import QUIET_MAX_WAIT_S, Quiet, create_topic, run_workload, warm_up

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SECTION = "replication"

CONFIGS = ("single", "rf3")
TITLES = {"single": "1 broker, RF 1", "rf3": "3 brokers, RF 3"}
REPLICATION_FACTOR = {"single": 1, "rf3": 3}
TOPIC_CONFIG: dict[str, dict[str, str]] = {"single": {}, "rf3": {"min.insync.replicas": "2"}}
ACKS = "all"

SIZES = (1024, 100)
PARTITIONS = (1, 8)
# About 200 MB of 1 KiB records and 30 MB of 100 B records (client-bound, as in
# throughput.py): each phase lasts a few seconds even on the single broker.
COUNTS = {1024: 200_000, 100: 300_000}
QUICK = ((1024, 8), (100, 1))
QUICK_DIVISOR = 10

LATENCY_SIZE = 1024
RATES = (1000.0, 5000.0)
LATENCY_SECONDS = 20.0
LATENCY_WARMUP_S = 3.0
QUICK_RATES = (1000.0,)
QUICK_LATENCY_SECONDS = 3.0
QUICK_LATENCY_WARMUP_S = 1.0


def workloads(quick: bool) -> list[Workload]:
    if quick:
        return [Workload(s, p, ACKS, COUNTS[s] // QUICK_DIVISOR) for s, p in QUICK]
    return [Workload(s, p, ACKS, COUNTS[s]) for s in SIZES for p in PARTITIONS]


@dataclass
class LatencySample(LatencySampleBase):
    """One fixed-rate run; ``broker`` is the set-up (``single`` or ``rf3``)."""

    rate: float = 0.0
    broker_cpu_each_s: list[float] = field(default_factory=list)


@dataclass
class RoundRecord:
    config: str
    round: int
    loadavg_at_start: float
    ready_s: float | None = None  # spawn (ZooKeeper first) to every broker registered
    peak_rss_bytes: list[int] = field(default_factory=list)  # per broker, over the workloads
    exit_codes: list[int | None] = field(default_factory=list)  # None: killed after SIGTERM
    workloads_s: float = 0.0
    zookeeper_cpu_s: float | None = None  # over the workloads
    error: str | None = None


@dataclass
class Settings:
    rounds: int
    quick: bool
    workloads: list[Workload]
    rates: tuple[float, ...]
    latency_seconds: float
    latency_warmup_s: float
    quiet: Quiet


# ----------------------------------------------------------------------------- running


def start_target(config: str, work: Path, log_dir: Path, round_no: int) -> BrokerProcess | Cluster:
    if config == "single":
        broker = BrokerProcess("odradek", work, log_dir / f"single-round{round_no}.log")
        return broker.start()
    return Cluster(f"rf3-round{round_no}", work, log_dir).start()


def stop_target(target: BrokerProcess | Cluster | None) -> list[int | None]:
    if target is None:
        return []
    try:
        codes = target.stop()
    except BaseException:
        target.kill()
        raise
    return codes if isinstance(codes, list) else [codes]


def measure_latency(
    target: BrokerProcess | Cluster, config: str, round_no: int, rate: float, s: Settings
) -> LatencySample:
    sample = LatencySample(broker=config, round=round_no, rate=rate)
    topic = f"latency-{rate:.0f}"
    try:
        create_topic(
            target.bootstrap,
            topic,
            1,
            replication_factor=REPLICATION_FACTOR[config],
            config=TOPIC_CONFIG[config],
        )
        s.quiet.wait()
        result = run_pair(
            target,
            topic,
            rate=rate,
            size=LATENCY_SIZE,
            acks=ACKS,
            warmup_s=s.latency_warmup_s,
            seconds=s.latency_seconds,
        )
    except Exception as exc:
        result = {"error": f"{type(exc).__name__}: {exc}"}
    for key, value in result.items():
        if hasattr(sample, key):
            setattr(sample, key, value)
    return sample


def run_round(
    config: str,
    round_no: int,
    s: Settings,
    results_dir: Path,
    *,
    samples: list[Sample],
    latencies: list[LatencySample],
) -> RoundRecord:
    """One set-up's round: start, warm up, every workload, stop; the samples are appended
    to ``samples`` and ``latencies`` (failed ones too)."""
    load = Path("/proc/loadavg").read_text().split()[0]
    record = RoundRecord(config, round_no, float(load))
    print(f"round {round_no}: {TITLES[config]} (load {load})", flush=True)
    rf = REPLICATION_FACTOR[config]
    target: BrokerProcess | Cluster | None = None
    done: set[tuple[str, int, str, str]] = set()
    with tempfile.TemporaryDirectory(prefix=f"replication-{config}-") as work:
        try:
            spawned = time.monotonic()
            target = start_target(config, Path(work), results_dir / "logs", round_no)
            record.ready_s = time.monotonic() - spawned
            warm_error = warm_up(target, replication_factor=rf)
            if warm_error:
                print(f"  {warm_error}", flush=True)
            for pid in target.pids:
                reset_peak_rss(pid)
            zk0 = target.zookeeper_cpu_s() if isinstance(target, Cluster) else None
            began = time.monotonic()
            for w in s.workloads:
                for sample in run_workload(
                    target,
                    round_no,
                    w,
                    s.quiet,
                    label=config,
                    replication_factor=rf,
                    topic_config=TOPIC_CONFIG[config],
                ):
                    samples.append(sample)
                    done.add(sample.key)
                    status = sample.error or (
                        f"{sample.mb_s:7.1f} MB/s  brokers' cpu {sample.broker_cpu_s:5.2f}s"
                    )
                    print(f"  {sample.phase:8} {w.label:22} {status}", flush=True)
            for rate in s.rates:
                lat = measure_latency(target, config, round_no, rate, s)
                latencies.append(lat)
                status = lat.error or (
                    f"p50 {lat.p50_ms:.2f} ms  p99 {lat.p99_ms:.2f} ms  p999 {lat.p999_ms:.2f} ms"
                    f"  max {lat.max_ms:.1f} ms  rate {lat.achieved_rate:,.0f}/s"
                )
                print(f"  latency  {rate:,.0f}/s {'':13} {status}", flush=True)
            record.workloads_s = time.monotonic() - began
            if isinstance(target, Cluster) and zk0 is not None:
                record.zookeeper_cpu_s = target.zookeeper_cpu_s() - zk0
            if target.alive():
                record.peak_rss_bytes = [peak_rss_bytes(pid) for pid in target.pids]
        except Exception as exc:  # a broken set-up is a result, not a crash
            first = str(exc).splitlines()[0] if str(exc) else ""
            record.error = f"{type(exc).__name__}: {first}"
            print(f"  {config} failed: {record.error}", flush=True)
        finally:
            record.exit_codes = stop_target(target)
    if target is not None and any(code != 0 for code in record.exit_codes):
        record.error = record.error or f"did not stop cleanly (exit codes {record.exit_codes})"
    for w in s.workloads:  # what never ran failed too
        for phase in ("produce", "consume"):
            key = (config, round_no, phase, f"{w.size}b-p{w.partitions}-acks{w.acks}")
            if key not in done:
                samples.append(not_run(config, round_no, phase, w, record.error))
    ran = {lat.rate for lat in latencies if lat.broker == config and lat.round == round_no}
    for rate in s.rates:
        if rate not in ran:
            error = record.error or "not run"
            latencies.append(LatencySample(broker=config, round=round_no, rate=rate, error=error))
    return record


def not_run(config: str, round_no: int, phase: str, w: Workload, error: str | None) -> Sample:
    return Sample(
        broker=config,
        round=round_no,
        phase=phase,
        size=w.size,
        partitions=w.partitions,
        acks=w.acks,
        records=0,
        bytes=0,
        elapsed_s=0.0,
        broker_cpu_s=0.0,
        client_cpu_s=0.0,
        machine_cpu_s=0.0,
        error=error or "not run",
    )


def zookeeper_version() -> str:
    try:
        out = subprocess.run(
            ["dpkg-query", "-W", "-f", "${Version}", "zookeeper"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"Debian zookeeper {out.stdout.strip()}" if out.stdout.strip() else "unknown"


# ----------------------------------------------------------------------------- report


def latency_med(
    latencies: Sequence[LatencySample], config: str, rate: float, key: str
) -> float | None:
    return median(
        [
            float(getattr(s, key))
            for s in latencies
            if s.broker == config and s.rate == rate and s.ok
        ]
    )


def cpu_split(samples: Sequence[Sample], row: Row) -> str:
    """The rf3 brokers' shares of the CPU, busiest first (median over rounds of each rank)."""
    shares: list[list[float]] = []
    for s in samples:
        if s.broker == "rf3" and s.row == row and s.ok and s.broker_cpu_s > 0:
            each = sorted(s.broker_cpu_each_s, reverse=True)
            shares.append([100 * x / s.broker_cpu_s for x in each])
    if not shares or any(len(x) != len(shares[0]) for x in shares):
        return "—"
    ranks = zip(*shares, strict=True)
    return " / ".join(f"{median(list(rank)) or 0:.0f}%" for rank in ranks)


def throughput_table(samples: Sequence[Sample]) -> list[str]:
    a, b = (TITLES[c] for c in CONFIGS)
    lines = [
        f"| Workload | {a} MB/s | {b} MB/s | RF 3 / RF 1 | {a} msgs/s | {b} msgs/s "
        f"| {a} broker CPU s/GB | {b} brokers' CPU s/GB (sum of 3) | RF 3 / RF 1 "
        "| RF 3 CPU by broker, busiest first |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    metrics: tuple[tuple[Callable[[Sample], float], int, bool], ...] = (
        (lambda x: x.mb_s, 1, True),
        (lambda x: x.msgs_s, 0, False),
        (lambda x: x.cpu_s_per_gb, 2, True),
    )
    for row in ordered_rows(samples):
        label = row.label if row.phase == "produce" else f"read back {row.label.split(' ', 1)[1]}"
        line = [label]
        for metric, digits, with_ratio in metrics:
            cells = [cell(samples, c, row, metric) for c in CONFIGS]
            line += [c.text(digits) for c in cells]
            if with_ratio:
                line.append(ratio(cells[1].value, cells[0].value))
        line.append(cpu_split(samples, row))
        lines.append("| " + " | ".join(line) + " |")
    return lines


def latency_table(latencies: Sequence[LatencySample], rates: Sequence[float]) -> list[str]:
    lines = [
        "| Rate (1 KiB records) | Set-up | p50 ms | p99 ms | p999 ms | max ms "
        "| p99 RF 3 / RF 1 | p99 of each round (ms) | achieved rate "
        "| brokers' CPU (% of a core, summed) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for rate in rates:
        base = latency_med(latencies, "single", rate, "p99_ms")
        for config in CONFIGS:
            mine = [s for s in latencies if s.broker == config and s.rate == rate]
            rounds = ", ".join(fmt(s.p99_ms, 2) if s.ok else "failed" for s in mine)
            p99 = latency_med(latencies, config, rate, "p99_ms")
            cpu = latency_med(latencies, config, rate, "broker_cpu_s")
            elapsed = latency_med(latencies, config, rate, "elapsed_s")
            load = f"{100 * cpu / elapsed:.0f}%" if cpu is not None and elapsed else "—"
            achieved = latency_med(latencies, config, rate, "achieved_rate")
            lines.append(
                f"| {rate:,.0f}/s | {TITLES[config]}"
                f" | {fmt(latency_med(latencies, config, rate, 'p50_ms'), 2)}"
                f" | {fmt(p99, 2)} | {fmt(latency_med(latencies, config, rate, 'p999_ms'), 2)}"
                f" | {fmt(latency_med(latencies, config, rate, 'max_ms'), 1)}"
                f" | {ratio(p99, base) if config == 'rf3' else ''} | {rounds}"
                f" | {fmt(achieved, 0)}/s | {load} |"
            )
    return lines


def rounds_table(rounds: Sequence[RoundRecord]) -> list[str]:
    lines = [
        "| Set-up | start to ready (median) | peak RSS per broker during the workloads "
        "(median, largest broker) | clean stops | ZooKeeper CPU during the workloads "
        "| load avg at start |",
        "|---|---|---|---|---|---|",
    ]
    for config in CONFIGS:
        mine = [r for r in rounds if r.config == config]
        ready = median([r.ready_s for r in mine if r.ready_s])
        rss = median([max(r.peak_rss_bytes) / 1e6 for r in mine if r.peak_rss_bytes])
        clean = sum(1 for r in mine if r.exit_codes and all(c == 0 for c in r.exit_codes))
        zk = [
            100 * r.zookeeper_cpu_s / r.workloads_s
            for r in mine
            if r.zookeeper_cpu_s is not None and r.workloads_s
        ]
        zk_text = f"{median(zk):.1f}% of a core" if zk else "—"
        loads = ", ".join(f"{r.loadavg_at_start:.1f}" for r in mine)
        lines.append(
            f"| {TITLES[config]} | {fmt(ready, 1)} s | {fmt(rss, 0)} MB | {clean}/{len(mine)}"
            f" | {zk_text} | {loads} |"
        )
    return lines


def meaning(
    samples: Sequence[Sample], latencies: Sequence[LatencySample], rates: Sequence[float]
) -> str:
    produce = [r for r in ordered_rows(samples) if r.phase == "produce"]
    speed, cost = [], []
    for row in produce:
        one, three = (median(values(samples, c, row, lambda x: x.mb_s)) for c in CONFIGS)
        if one and three:
            speed.append((three / one, row))
        one, three = (median(values(samples, c, row, lambda x: x.cpu_s_per_gb)) for c in CONFIGS)
        if one and three:
            cost.append(three / one)
    if not speed:
        return "No produce workload succeeded in both set-ups: no conclusion."
    lo, hi = min(speed), max(speed)
    parts = [
        f"**Throughput:** with three replicas and acks=all, produce reaches "
        f"{geomean([r for r, _ in speed]) or 0:.2f}x the single broker's throughput "
        f"(geometric mean over {len(speed)} workloads; from {lo[0]:.2f}x on "
        f"{lo[1].label} to {hi[0]:.2f}x on {hi[1].label}), and the three brokers together "
        f"spend {geomean(cost) or 0:.2f}x the CPU per GB of the single broker."
    ]
    lat = []
    for rate in rates:
        one, three = (latency_med(latencies, c, rate, "p99_ms") for c in CONFIGS)
        p50 = [latency_med(latencies, c, rate, "p50_ms") for c in CONFIGS]
        if one and three and p50[0] is not None and p50[1] is not None:
            lat.append(
                f"at {rate:,.0f} records/s p99 {one:.2f} -> {three:.2f} ms "
                f"(p50 {p50[0]:.2f} -> {p50[1]:.2f} ms)"
            )
    if lat:
        parts.append(
            "**Latency** (single broker -> three replicas): "
            + "; ".join(lat)
            + ". With acks=all the leader answers a produce only once both followers have "
            "fetched the batch and the high watermark has moved past it, and a consumer "
            "only sees records below the high watermark, so every record's trip includes "
            "a follower fetch round trip."
        )
    saturated = [
        rate
        for rate in rates
        if (latency_med(latencies, "rf3", rate, "p50_ms") or 0) > SATURATED_P50_MS
    ]
    if saturated:
        parts.append(
            "At "
            + " and ".join(f"{rate:,.0f}" for rate in saturated)
            + " records/s the cluster does not keep up: with `linger.ms=0` every record is "
            "its own produce request and wakes both followers' fetches, brokers and clients "
            "together need more than the machine's two cores, records queue and "
            "latency grows through the run (p50 above "
            f"{SATURATED_P50_MS:.0f} ms); the figures there measure the queue, not a "
            "replication round trip."
        )
    return " ".join(parts)


SATURATED_P50_MS = 100.0

WHERE_THE_CPU_GOES = """### Where the CPU goes

Measured by hand with py-spy (git 17853b1, 400,000 x 1 KiB records to one partition, RF
3, about 95 MB/s): each follower spends about as much CPU as the leader, where a perfect
follower would cost one append. The largest item in a follower's active samples
(about a third) is asyncio's `StreamReader` buffering the 1 MiB fetch responses
(`feed_data` and `readexactly` copying them) in the broker-to-broker client
(`replication/broker_client.py`); the segment write comes next (about 16%), then
response decoding and CRC checks. The leader's largest item is its own segment write
(about 21%), then serving the followers' fetches (sendfile). At low rates (200-1,000
records/s, `linger.ms=0`) the cost is per request instead: each record is a produce
request, two follower fetches woken and answered, two more follower fetches parked, and
the consumer's fetch; at 200 records/s the leader was already busy about 60% of a core
(about 3 ms of leader CPU per record). The followers' fetch client reading frames into a
preallocated buffer (as the broker's own connections do) is the obvious next lever."""


CAVEATS = """\
Read these numbers as what replication costs **on one 2-core machine**, not as what a
three-machine cluster would do. The three brokers, ZooKeeper, the load generator and the
consumer share the same two cores (and the same disk and page cache), so the cluster
cannot use more CPU than the single broker had: every byte is written three times and
read twice more by the followers' fetches, and all of that comes out of the same
budget. On real hardware each broker has its own machine and replication costs mostly
network and latency, so the throughput ratio here is a floor, not an estimate. The CPU
s/GB column is the fairest figure: total broker work per GB acknowledged, whatever the
machine; replication that cost only its appends would be about 3x (one leader append
plus two follower fetch-and-appends), and the gap to that is overhead (see below). Peak
RSS per broker is higher in the cluster (see the set-ups table); not investigated yet,
the followers' 1 MiB fetch responses buffered in Python are one suspect. Other
processes may share the machine (see the load averages): treat differences under about
15% as noise."""

METHOD = """\
- Each round starts each set-up fresh (temp dirs, free loopback ports), in the order
  single broker, cluster, single broker, cluster, ...; at the end of its round every
  broker gets SIGTERM (the cluster's all at once, each doing its controlled shutdown)
  and must exit 0 within 20 s, then ZooKeeper is stopped.
- Cluster: Debian's ZooKeeper, standalone, then brokers 1-3 started one after the other
  with `zookeeper.connect` and `broker.id`; ready when Metadata lists all three and a
  controller. Broker configs are the defaults (`replica.fetch.wait.max.ms=500`,
  `replica.lag.time.max.ms=30000`, ...).
- An untimed warm-up (5,000 records produced and read back, on a topic replicated like
  the measured ones) pays for lazy imports, first requests and the followers' first
  fetches.
- Throughput, per workload: create a topic (RF 1, or RF 3 with `min.insync.replicas=2`;
  the script waits until every partition has a leader and a full ISR), produce
  {counts} records round-robin over the partitions from a separate confluent-kafka
  process (`acks=all`, `linger.ms=5`, `batch.size=1000000`, no compression, idempotence
  off, delivery reports for errors only); the clock stops when `flush()` has every
  acknowledgement. Then another process reads the topic back with `assign()` from offset
  0 and every record is checked: value, offsets 0, 1, 2, ... with no gap, and counts per
  partition equal to the acknowledged ones. A lost or duplicated acknowledged record
  is a failure, not a number. Read-back rows are reported too; consumers read from the
  leaders only.
- Latency: a consumer at the end of a new one-partition topic, then a producer sending
  1 KiB records at a fixed rate with `acks=all`, `linger.ms=0`, `socket.nagle.disable`
  ({seconds:.0f} s measured after {warmup:.0f} s not measured); a record's latency is its
  consumer receive time minus its send time (one machine, one monotonic clock),
  nearest-rank percentiles per round, median of the rounds (see the latency section for
  the clients' settings).
- Broker CPU: utime+stime from `/proc/<pid>/stat` of each broker, sampled by the client
  processes just before and just after the timed part, summed over the cluster's three
  brokers. CPU s/GB = broker CPU seconds per 10^9 bytes of record values acknowledged
  (read back, for the read-back rows). ZooKeeper's CPU is not in it (see the table
  above). "RF 3 CPU by broker" shows each broker's share, busiest first: with one
  partition the busiest is the leader.
- Before each timed phase the script waits (boundedly) until the rest of the machine is
  nearly idle.
- Raw samples and logs: `benchmarks/results/<stamp>-replication/` (not committed)."""


def failure_lines(
    samples: Sequence[Sample], latencies: Sequence[LatencySample], rounds: Sequence[RoundRecord]
) -> list[str]:
    out = [f"- {TITLES[r.config]} round {r.round}: {r.error}" for r in rounds if r.error]
    out += [
        f"- {TITLES[s.broker]} round {s.round}, {s.phase} {s.label}: {s.error}"
        for s in samples
        if s.error
    ]
    out += [
        f"- {TITLES[s.broker]} round {s.round}, latency at {s.rate:,.0f}/s: {s.error}"
        for s in latencies
        if s.error
    ]
    return out or [
        "None: every acknowledged record was read back once, in order and intact, in both "
        "set-ups and every round."
    ]


def report_body(raw: dict[str, Any]) -> str:
    samples = [Sample(**s) for s in raw["samples"]]
    latencies = [LatencySample(**s) for s in raw["latency"]]
    rounds = [RoundRecord(**r) for r in raw["rounds"]]
    rates = [float(r) for r in raw["rates"]]
    workloads_ = [Workload(**w) for w in raw["workloads"]]
    date = datetime.strptime(raw["started"], "%Y%m%d-%H%M%S").strftime("%Y-%m-%d %H:%M")
    per_size = {w.size: w.count for w in workloads_}
    counts = " or ".join(f"{v:,} x {size_label(k)}" for k, v in sorted(per_size.items()))
    n_rounds = max((r.round for r in rounds), default=0)
    lines = [
        "## Replication",
        "",
        "What replication costs: Odradek as a three-broker cluster with replication factor "
        "3 (`min.insync.replicas=2`) against a single Odradek broker with replication "
        "factor 1, both with acks=all, in the same run on the same machine. Generated by "
        "`benchmarks/replication.py`.",
        "",
        f"- Date: {date} UTC; the run took {raw['wall_s'] / 60:.1f} min",
        f"- Command: `{raw['command']}` (needs `pip install -e '.[bench]'` and Debian's "
        "`zookeeper` package)",
        f"- Odradek: {raw['odradek_revision']}, default config, data on local disk; "
        f"ZooKeeper: {raw['zookeeper_version']}, standalone",
        f"- {n_rounds} round(s) per set-up, alternating; each cell is the median of the "
        'rounds ("(2/3)" marks a workload that failed in some rounds)',
        f"- {raw['quiet_note']}",
        "",
        "### Produce throughput, acks=all",
        "",
        "MB = 10^6 bytes of record values. RF 3 / RF 1: below 1 the cluster is slower "
        "(MB/s); above 1 it spends more CPU per GB (s/GB).",
        "",
        *throughput_table(samples),
        "",
        "### End-to-end latency at a fixed rate, acks=all",
        "",
        *latency_table(latencies, rates),
        "",
        "### What this means",
        "",
        meaning(samples, latencies, rates),
        "",
        CAVEATS,
        "",
        WHERE_THE_CPU_GOES,
        "",
        "### Set-ups",
        "",
        *rounds_table(rounds),
        "",
        "### Failures and data checks",
        "",
        *failure_lines(samples, latencies, rounds),
        "",
        "### Method",
        "",
        METHOD.format(
            counts=counts, seconds=raw["latency_seconds"], warmup=raw["latency_warmup_s"]
        ),
        "",
    ]
    return "\n".join(lines)


def write_report(raw: dict[str, Any], markdown: Path) -> None:
    update_section(markdown, SECTION, report_body(raw), machine=raw["machine"])


# ----------------------------------------------------------------------------- main


def _raise_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds per set-up (default 3)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"2 workloads with 1/{QUICK_DIVISOR} of the records, one short latency run",
    )
    parser.add_argument("--max-quiet-wait", type=float, default=QUIET_MAX_WAIT_S)
    parser.add_argument("--results-dir", type=Path, default=HERE / "results")
    parser.add_argument(
        "--no-publish", action="store_true", help="never write BENCHMARKS.md in the repo"
    )
    parser.add_argument(
        "--from-results",
        type=Path,
        metavar="RESULTS_JSON",
        help="only rewrite the report from an earlier run's results.json",
    )
    args = parser.parse_args(argv)
    if args.from_results:
        raw = json.loads(args.from_results.read_text())
        write_report(raw, REPO / "BENCHMARKS.md")
        return 0
    signal.signal(signal.SIGTERM, _raise_on_sigterm)

    settings = Settings(
        rounds=args.rounds,
        quick=args.quick,
        workloads=workloads(args.quick),
        rates=QUICK_RATES if args.quick else RATES,
        latency_seconds=QUICK_LATENCY_SECONDS if args.quick else LATENCY_SECONDS,
        latency_warmup_s=QUICK_LATENCY_WARMUP_S if args.quick else LATENCY_WARMUP_S,
        quiet=Quiet(max_wait_s=args.max_quiet_wait),
    )
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    results_dir = args.results_dir / f"{stamp}-replication"
    results_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    samples: list[Sample] = []
    latencies: list[LatencySample] = []
    rounds: list[RoundRecord] = []
    try:
        for round_no in range(1, args.rounds + 1):
            for config in CONFIGS:
                record = run_round(
                    config, round_no, settings, results_dir, samples=samples, latencies=latencies
                )
                rounds.append(record)
    except KeyboardInterrupt:  # run_round stopped its brokers and ZooKeeper on the way out
        print("interrupted: every broker and ZooKeeper stopped, no report written", flush=True)
        return 130
    print(f"done in {time.monotonic() - started:.0f}s", flush=True)

    raw: dict[str, Any] = {
        "started": stamp,
        "command": " ".join(["python benchmarks/replication.py", *(argv or sys.argv[1:])]),
        "quick": args.quick,
        "machine": machine_description(),
        "odradek_revision": odradek_revision(),
        "zookeeper_version": zookeeper_version(),
        "wall_s": time.monotonic() - started,
        "quiet_note": settings.quiet.note(),
        "rates": list(settings.rates),
        "latency_seconds": settings.latency_seconds,
        "latency_warmup_s": settings.latency_warmup_s,
        "workloads": [asdict(w) for w in settings.workloads],
        "rounds": [asdict(r) for r in rounds],
        "samples": [asdict(s) for s in samples],
        "latency": [asdict(s) for s in latencies],
    }
    (results_dir / "results.json").write_text(json.dumps(raw, indent=1) + "\n")
    publish = not args.quick and args.rounds >= 3 and not args.no_publish
    markdown = REPO / "BENCHMARKS.md" if publish else results_dir / "BENCHMARKS.md"
    write_report(raw, markdown)
    print(f"results: {results_dir}\nreport:  {markdown}", flush=True)
    failed = [r for r in rounds if r.error]
    failed_samples = [s for s in samples if s.error]
    failed_latency = [s for s in latencies if s.error]
    for line in failure_lines(failed_samples, failed_latency, failed):
        if failed or failed_samples or failed_latency:
            print(f"FAILED {line[2:]}", flush=True)
    return 1 if failed or failed_samples or failed_latency else 0


if __name__ == "__main__":
    sys.exit(main())
