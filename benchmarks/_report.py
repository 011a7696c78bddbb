"""Samples, medians, the markdown report and the plot for ``benchmarks/throughput.py``.

Units: MB is 10^6 bytes of record values (keys, headers and framing are not counted),
GB is 10^9 bytes. CPU seconds are utime+stime of the broker process over the timed part
of a workload. A cell is the median over the rounds in which the workload succeeded.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from _sections import update_section

NAMES = {"odradek": "Odradek", "tansu": "Tansu"}
COLOURS = {"odradek": "#3b6ea8", "tansu": "#d9822b"}


def size_label(size: int) -> str:
    return f"{size // 1024} KiB" if size >= 1024 and size % 1024 == 0 else f"{size} B"


@dataclass(frozen=True)
class Workload:
    size: int
    partitions: int
    acks: str
    count: int

    @property
    def key(self) -> str:
        return f"{self.size}b-p{self.partitions}-acks{self.acks}"

    @property
    def label(self) -> str:
        return f"{size_label(self.size)} · {self.partitions}p · acks={self.acks}"


@dataclass
class Sample:
    """One phase (produce or consume) of one workload against one broker in one round."""

    broker: str
    round: int
    phase: str
    size: int
    partitions: int
    acks: str
    records: int
    bytes: int
    elapsed_s: float
    broker_cpu_s: float
    client_cpu_s: float
    machine_cpu_s: float
    error: str | None
    broker_cpu_each_s: list[float] = field(default_factory=list)
    """Per broker process when the target is a cluster (their sum is ``broker_cpu_s``)."""
    broker_instructions: float = 0.0
    """User and kernel instructions of the broker processes (``perf stat``); 0: not counted."""

    @property
    def key(self) -> tuple[str, int, str, str]:
        return (
            self.broker,
            self.round,
            self.phase,
            f"{self.size}b-p{self.partitions}-acks{self.acks}",
        )

    @property
    def row(self) -> Row:
        acks = self.acks if self.phase == "produce" else ""
        return Row(self.phase, self.size, self.partitions, acks)

    @property
    def label(self) -> str:
        return f"{size_label(self.size)} · {self.partitions}p · acks={self.acks}"

    @property
    def ok(self) -> bool:
        return self.error is None and self.elapsed_s > 0 and self.bytes > 0

    @property
    def mb_s(self) -> float:
        return self.bytes / 1e6 / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def msgs_s(self) -> float:
        return self.records / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def cpu_s_per_gb(self) -> float:
        return self.broker_cpu_s / (self.bytes / 1e9) if self.bytes else 0.0

    @property
    def instructions_per_byte(self) -> float:
        return self.broker_instructions / self.bytes if self.bytes else 0.0

    @property
    def broker_cpu_pct(self) -> float:
        return 100 * self.broker_cpu_s / self.elapsed_s

    @property
    def client_cpu_pct(self) -> float:
        return 100 * self.client_cpu_s / self.elapsed_s

    @property
    def other_cpu_pct(self) -> float:
        """Everything else on the machine: other engineers' tests, the kernel, this script."""
        other = self.machine_cpu_s - self.broker_cpu_s - self.client_cpu_s
        return 100 * max(other, 0.0) / self.elapsed_s


@dataclass
class RoundInfo:
    broker: str
    round: int
    loadavg_at_start: float
    ready_s: float | None = None  # spawn to accepting connections
    startup_peak_rss_bytes: int | None = None  # VmHWM after start-up and warm-up
    peak_rss_bytes: int | None = None  # VmHWM over the workloads (reset after warm-up)
    exit_code: int | None = None
    error: str | None = None


@dataclass(frozen=True, order=True)
class Row:
    """A table row: a produce workload, or a consume workload (acks does not matter there,
    so both topics of a size and partition count are read back and pooled)."""

    phase: str
    size: int
    partitions: int
    acks: str

    @property
    def label(self) -> str:
        base = f"{self.phase} {size_label(self.size)} · {self.partitions}p"
        return f"{base} · acks={self.acks}" if self.acks else base


def ordered_rows(samples: Sequence[Sample]) -> list[Row]:
    seen: dict[Row, None] = {}
    for phase in ("produce", "consume"):
        for s in samples:
            if s.phase == phase:
                seen.setdefault(s.row)
    return list(seen)


def values(
    samples: Sequence[Sample], broker: str, row: Row, metric: Callable[[Sample], float]
) -> list[float]:
    return [metric(s) for s in samples if s.broker == broker and s.row == row and s.ok]


def median(xs: Sequence[float]) -> float | None:
    return statistics.median(xs) if xs else None


def fmt(x: float | None, digits: int = 1) -> str:
    if x is None:
        return "FAILED"
    if x >= 10_000:
        return f"{x:,.0f}"
    return f"{x:.{digits}f}"


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a is not None and b and b > 0 else "—"


def geomean(xs: Sequence[float]) -> float | None:
    xs = [x for x in xs if x > 0]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else None


@dataclass
class Cell:
    """Median of the successful rounds; marks partial failures with (ok/total)."""

    value: float | None
    ok: int
    total: int

    def text(self, digits: int = 1) -> str:
        partial = self.total and 0 < self.ok < self.total
        mark = f" ({self.ok}/{self.total})" if partial else ""
        return fmt(self.value, digits) + mark


def cell(
    samples: Sequence[Sample], broker: str, row: Row, metric: Callable[[Sample], float]
) -> Cell:
    mine = [s for s in samples if s.broker == broker and s.row == row]
    good = [metric(s) for s in mine if s.ok]
    return Cell(median(good), len(good), len(mine))


# ----------------------------------------------------------------------------- machine


def machine_description() -> list[str]:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        mem_kib = 0
    import confluent_kafka  # noqa: PLC0415

    version = confluent_kafka.version()  # a str, or (str, int) in older releases
    client = str(version[0] if isinstance(version, tuple) else version)
    return [
        f"Machine: {os.cpu_count()} cores ({model}), {mem_kib / 1024**2:.1f} GiB RAM, "
        f"Linux {platform.release()}",
        f"Python {platform.python_version()}, confluent-kafka {client} "
        f"(librdkafka {confluent_kafka.libversion()[0]})",
    ]


def odradek_revision() -> str:
    repo = Path(__file__).resolve().parent.parent
    try:
        rev = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no", "src"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown revision"
    return f"git {rev}" + (" with uncommitted changes under src/" if dirty else "")


# ----------------------------------------------------------------------------- markdown


def results_table(samples: Sequence[Sample], brokers: Sequence[str]) -> list[str]:
    rows = ordered_rows(samples)
    both = len(brokers) == 2
    head = ["Workload"]
    for name in ("MB/s", "msgs/s", "broker CPU s/GB"):
        head += [f"{NAMES[b]} {name}" for b in brokers]
        if both and name != "msgs/s":
            head.append("O/T")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        line = [row.label]
        for metric, digits in (
            (lambda s: s.mb_s, 1),
            (lambda s: s.msgs_s, 0),
            (lambda s: s.cpu_s_per_gb, 2),
        ):
            cells = [cell(samples, b, row, metric) for b in brokers]
            line += [c.text(digits) for c in cells]
            if both and digits != 0:
                line.append(ratio(cells[0].value, cells[1].value))
        lines.append("| " + " | ".join(line) + " |")
    return lines


def instructions_table(samples: Sequence[Sample], brokers: Sequence[str]) -> list[str]:
    """Broker instructions per byte of record values; empty when perf counted nothing."""
    if not any(s.broker_instructions for s in samples):
        return []
    both = len(brokers) == 2
    head = ["Workload", *(NAMES[b] for b in brokers), *(["O/T"] if both else [])]
    lines = [
        "### Broker instructions per byte moved (perf)",
        "",
        INSTRUCTIONS_NOTE,
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    per_byte = [s for s in samples if s.broker_instructions]
    for row in ordered_rows(samples):
        cells = [cell(per_byte, b, row, lambda s: s.instructions_per_byte) for b in brokers]
        line = [row.label, *(c.text(1) for c in cells)]
        if both:
            line.append(ratio(cells[0].value, cells[1].value))
        lines.append("| " + " | ".join(line).replace("FAILED", "—") + " |")
    return [*lines, ""]


INSTRUCTIONS_NOTE = (
    "User and kernel instructions the broker retired during the phase (`perf stat -p`), "
    "per byte of record values; median of the rounds. On a shared virtual machine the CPU "
    "seconds that the same work takes vary by up to 2x from round to round (steal, a busy "
    "sibling hyperthread), while this count barely moves: it says which broker did less "
    "work. It is not a time: an instruction of Tansu's and one of Odradek's need not cost "
    "the same, and a memory copy done with `rep movs` (the kernel's copy of written data "
    "into the page cache, say) counts as few instructions however many bytes it moves."
)


def cpu_table(samples: Sequence[Sample], brokers: Sequence[str]) -> list[str]:
    head = ["Workload"]
    head += [f"{NAMES[b]} broker" for b in brokers]
    head += [f"load gen ({NAMES[b]} run)" for b in brokers]
    head += [f"rest of machine ({NAMES[b]} run)" for b in brokers]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in ordered_rows(samples):
        line = [row.label]
        for metric in (
            lambda s: s.broker_cpu_pct,
            lambda s: s.client_cpu_pct,
            lambda s: s.other_cpu_pct,
        ):
            line += [fmt(median(values(samples, b, row, metric)), 0) + "%" for b in brokers]
        lines.append("| " + " | ".join(line).replace("FAILED%", "—") + " |")
    return lines


def memory_table(rounds: Sequence[RoundInfo], brokers: Sequence[str]) -> list[str]:
    lines = [
        "| Broker | peak RSS during the workloads (median) | max | peak RSS of start-up "
        "and warm-up (median) | start-up to ready (median) | clean stops | load avg at start |",
        "|---|---|---|---|---|---|---|",
    ]
    for b in brokers:
        mine = [r for r in rounds if r.broker == b]
        peaks = [r.peak_rss_bytes / 1e6 for r in mine if r.peak_rss_bytes]
        start = [r.startup_peak_rss_bytes / 1e6 for r in mine if r.startup_peak_rss_bytes]
        ready = [r.ready_s for r in mine if r.ready_s]
        clean = sum(1 for r in mine if r.exit_code == 0)
        loads = ", ".join(f"{r.loadavg_at_start:.1f}" for r in mine)
        lines.append(
            f"| {NAMES[b]} | {fmt(median(peaks), 0)} MB | {fmt(max(peaks, default=None), 0)} MB"
            f" | {fmt(median(start), 0)} MB | {fmt(median(ready), 2)} s"
            f" | {clean}/{len(mine)} | {loads} |"
        )
    return lines


def startup_note(rounds: Sequence[RoundInfo]) -> list[str]:
    """Explain Odradek's start-up peak when it dwarfs its working set (seen in a venv with
    the test extras: kio registers hypothesis strategies at import)."""
    mine = [r for r in rounds if r.broker == "odradek"]
    start = median([r.startup_peak_rss_bytes for r in mine if r.startup_peak_rss_bytes])
    work = median([r.peak_rss_bytes for r in mine if r.peak_rss_bytes])
    if not start or not work or start < 2 * work:
        return []
    return [
        "Odradek's start-up peak is far above its working set. In this environment (the "
        "dev venv, with the `test` extra) `hypothesis` is importable, so kio registers a "
        "hypothesis strategy for each of its phantom types at import, and hypothesis "
        "builds its Unicode tables in `./.hypothesis` under the broker's (fresh) working "
        "directory: about 2.5 s of start-up and 200 MB of peak RSS, gone when hypothesis "
        "is not importable.",
        "",
    ]


def failure_lines(samples: Sequence[Sample], rounds: Sequence[RoundInfo]) -> list[str]:
    out = [f"- {NAMES[r.broker]} round {r.round}: {r.error}" for r in rounds if r.error]
    out += [
        f"- {NAMES[s.broker]} round {s.round}, {s.phase} {s.label}: {s.error}"
        for s in samples
        if s.error
    ]
    return out or ["None: every record produced was read back, in order and intact."]


def summary(samples: Sequence[Sample], rounds: Sequence[RoundInfo], brokers: Sequence[str]) -> str:
    if len(brokers) != 2:
        return "Only one broker was measured, so there is no comparison in this run."
    parts = []
    for phase in ("produce", "consume"):
        ratios, cpu = [], []
        for row in ordered_rows(samples):
            if row.phase != phase:
                continue
            a, b = (median(values(samples, x, row, lambda s: s.mb_s)) for x in brokers)
            if a and b:
                ratios.append((a / b, row))
            a, b = (median(values(samples, x, row, lambda s: s.cpu_s_per_gb)) for x in brokers)
            if a and b:
                cpu.append(a / b)
        if not ratios:
            parts.append(f"No {phase} workload succeeded on both brokers.")
            continue
        g = geomean([r for r, _ in ratios]) or 0.0
        lo, hi = min(ratios), max(ratios)
        g_cpu = geomean(cpu)
        cpu_text = (
            f"; per GB moved it spends {g_cpu:.2f}x Tansu's broker CPU (geometric mean)"
            if g_cpu
            else ""
        )
        parts.append(
            f"**{phase.capitalize()}:** Odradek reaches {g:.2f}x Tansu's throughput "
            f"(geometric mean over {len(ratios)} workloads; from {lo[0]:.2f}x on "
            f"{lo[1].label} to {hi[0]:.2f}x on {hi[1].label}){cpu_text}."
        )
    peaks = {
        b: median([r.peak_rss_bytes / 1e6 for r in rounds if r.broker == b and r.peak_rss_bytes])
        for b in brokers
    }
    if all(peaks.values()):
        parts.append(
            f"Peak RSS during the workloads: Odradek {peaks['odradek']:.0f} MB, Tansu "
            f"{peaks['tansu']:.0f} MB (Tansu keeps every record of the round in memory; "
            "Odradek's data lives in the page cache, which is not in its RSS)."
        )
    return " ".join(parts)


ONE_CLIENT = """\
The client is one Python process driving librdkafka, and for 100 B records it is the
bottleneck for both brokers (see the load-generator column), so those rows compare
clients more than brokers; the 1 KiB and 16 KiB rows are where the brokers differ."""

SEVERAL_CLIENTS = """\
A Python process calling librdkafka's produce() per record tops out near a million
100 B records a second whatever the broker, so each phase runs {n} load-generator
processes at once: they can use every core, and a broker's cost per record decides how
much of the machine is left to its clients. Small records measure that; the larger ones
measure the brokers' data paths."""

CAVEATS = """\
Read the ratios with the set-up in mind. Tansu stores records in memory; Odradek appends
them to Kafka-format segment files (page cache, no fsync per write: Kafka's default), so
Odradek does strictly more work per record. The broker, its load generators and anything
else running share 2 cores. {clients} On a single node acks=all and acks=1 wait for the
same replica, so their difference is the cost of the acks=all path (purgatory) alone.
Other processes may share the machine (see the "rest of machine" column and the load
averages): treat differences under about 15% as noise, and trust CPU s/GB most, as
contention disturbs it least."""

CHANGES = """\
### What each change bought

Changes to the broker and to the benchmark, each on the machine it names.

- Two load-generator processes per phase (`--load-generators`, 2026-11-23). With one,
  both brokers sat at about a million 100 B records a second, held there by the one
  Python client (111-134% of a core while Odradek's broker used 7-19% and Tansu's
  29-47%): 100 B rows were 0.92-1.00x (produce) and 0.95-0.99x (consume) on a 2-core
  AMD EPYC. With two, the same rows (1 and 8 partitions) were 1.11-1.55x and
  1.07-1.20x on a 2-core Intel Xeon (git 60050ff).
- Warming the memory a produce phase will take (`warm_memory`, 2026-11-23, Intel Xeon). Unwarmed,
  the last produce workload of each round (16 KiB · 8p · acks=all) was 0.91-0.92x at
  2.2 Odradek CPU s/GB in two full runs, against medians of 0.90-1.17 in the other
  16 KiB rows; ten
  successive 400 MB phases on one broker went from 0.39 to 0.73-1.05 broker CPU seconds
  each once about 2 GB had been written, and stayed at 0.37-0.44 with the page cache
  warmed before each phase. Anonymous memory warmed alone did not help: page-cache
  folios come from other free blocks.
- A cheaper leader append per partition batch (git 92c633c, 2026-11-23). At 64
  partitions a produce request carries many small batches, and the broker pays per
  batch, not per byte: at 0.97x, produce 100 B · 64p was the one row under Tansu on the
  Intel Xeon. Appending one 20-record 100 B batch to each of 64 partitions in process
  (`ReplicaManager.append_records`) took 149.8k user instructions per batch before and
  116.9k after (-22%, counted by perf). In the broker under produce 100 B · 64p · acks=1
  from two load generators, all its instructions divided by the partition batches in
  the segment files went from 302-306k to 270-271k per batch (-11%, three alternating
  runs each). Not yet measured side by side with Tansu on a quiet machine:
  the 2-core AMD EPYC of that session ran Python 4-8x slower than usual and a broker's CPU
  seconds for the same phase varied by up to 2x between rounds. Its full run (3 rounds,
  not published) had produce 100 B · 64p at 1.03x (acks=1) and 1.75x (acks=all), with
  0.88x and 0.54x Tansu's CPU per GB, but produce 100 B · 1p · acks=1 at 0.88x and
  100 B · 8p · acks=1 at 0.96x, where one Odradek round ran at half the speed of
  another.
- Broker instructions per byte (`perf stat`, 2026-11-23): a measure of work that the
  machine's speed of the moment hardly changes, added because of that run.
- A cheaper produce request (git f67b3d0, dff1cb6, 276904b; 2026-11-23, 2-core AMD
  EPYC). librdkafka puts one partition in each produce request (confluentinc/librdkafka
  issue 1700), so at 64 partitions every partition batch is a whole request, and the
  broker pays the request's own costs once per batch: header, parser, response,
  framing, and the named tuples made on the way (perf counts about 500 instructions for
  a Python call and about 3,000 for a named tuple built the usual way). Replaying
  librdkafka 2.16's own 70-record 100 B produce requests through the connection in
  process: 256.7k -> 187.2k user instructions and 142-157 -> 113-133 us per request. In
  the broker under produce 100 B · 64p · acks=1: 270k -> 191k instructions per
  partition batch (-29%). Throughput did not visibly follow on that machine: over ten
  alternating pairs of runs the median was 24.5 MB/s against 24.8 MB/s before, slower in
  7 pairs and faster in 3 (Tansu: 14.2 MB/s over five), with the machine's speed moving
  up to 2x between pairs. The
  load generators mostly answered with smaller batches (librdkafka makes one produce
  request per turn of its broker thread, which, left more of the 2 cores, turns
  sooner: 46-76 records per batch against 53-82), so part of what the broker saved
  per request came back as more requests. Produce 100 B · 1p and 1 KiB · 8p (two
  pairs each): 31.5-43.4 against 32.6-38.6 MB/s, and 200.8-252.5 against
  194.7-198.5 MB/s. In the full run of these changes on that machine (git 6843e2b, the
  table above, published from its results with `--from-results`), produce 100 B · 64p
  was 1.15x (acks=1) and 1.66x (acks=all) Tansu at 0.78x and 0.40x its CPU per GB,
  against 1.03x and 1.75x at 0.88x and 0.54x in the run of git 92c633c there; every
  row was at or above 1.0x and at or under 1.0x Tansu's CPU per GB.
- Per-section machines in BENCHMARKS.md (2026-11-23): each script now replaces only its
  own section's line of the machine list at the top, so a section measured on another
  machine keeps saying which one.
- The consumer's fetch path (git 51bf33b, 25e02b3): a hand-written Fetch request parser,
  reads at the log end without helper calls or the storage guard's forwarding, and
  parked fetches on one expiry heap. Made for the latency table (a consumer at the log
  end sends a fetch per record); a fetch here carries hundreds of kilobytes, so its
  fixed cost hardly shows. The table above (git 2ad2599, the same AMD EPYC VM in the
  evening, when a bare Python loop step took 50-70 ns against about 230 ns in the
  afternoon) has higher throughput for both brokers in every row; consume CPU per GB
  0.62-1.05 s against 0.92-1.77 in the afternoon's run. Produce 100 B · 64p · acks=1
  read 0.99x Tansu (36.1 against 36.5 MB/s) at 0.75x its CPU per GB: the broker used
  about 57% of a core there, so the two load generators, not the broker, set the pace;
  the produce path did not change (1.15x in the afternoon's run)."""

METHOD = """\
- Each round starts each broker fresh (new temp dir, free loopback port), in the order
  Odradek, Tansu, Odradek, Tansu, ...; after its workloads the broker gets SIGTERM and
  must exit 0 within 20 s.
- {memory}
- After start-up an untimed warm-up (5,000 records produced and read back) pays for lazy
  imports and first requests.
- Per workload: create a topic (replication factor 1), produce a fixed number of records
  ({counts}), round-robin over
  the partitions, from {producers} running confluent-kafka (`linger.ms=5`,
  `batch.size=1000000`, `compression.type=none`, idempotence off, delivery reports for
  errors only); the clock stops when `flush()` has every acknowledgement. Then
  {consumers} the topic back with `assign()` from offset 0 (no consumer group) and the
  clock stops at the last record. Every value is compared with what was sent, offsets
  must run 0, 1, 2, ... in each partition, and counts per partition must equal the
  acknowledged ones; anything else is reported as a failure, not as a number.
- Load generators of a phase connect first and start their clocks together; the phase
  lasts from the first start to the last finish, and its records and bytes are the sum
  over its load generators.
- Broker CPU: utime+stime from `/proc/<pid>/stat`, sampled by the load generators just
  before and just after the timed section. CPU s/GB = broker CPU seconds per 10^9 bytes
  of record values moved. Peak RSS: `VmHWM` from `/proc/<pid>/status` at the end of the
  round; it is reset (`/proc/<pid>/clear_refs`) after start-up and warm-up, so it covers
  the round's workloads, and the start-up peak is reported separately.
- Consume rows pool the read-back of both the acks=1 and the acks=all topic, so they
  have twice as many samples as produce rows.
- Raw samples and broker logs: `benchmarks/results/<stamp>/` (not committed)."""


def clients_note(load_generators: int) -> str:
    if load_generators == 1:
        return ONE_CLIENT
    return SEVERAL_CLIENTS.format(n=load_generators)


def memory_note(warm_memory: bool) -> str:
    if not warm_memory:
        return "Memory was not warmed before the produce phases (`--no-warm-memory`)."
    return (
        "Before each produce phase the script writes as many bytes as the phase's records "
        "will take (values plus a quarter) to a temporary file in the brokers' temp dir "
        "and to fresh anonymous memory, and frees both (`warm_memory`). On this virtual "
        "machine a first write to memory the host does not back (it takes back what the "
        "guest frees: virtio-balloon free page reporting) costs about 3.5 s per GB against "
        "0.6 s. Both brokers put every byte they receive into fresh memory (Odradek the "
        "page cache, Tansu its heap); unwarmed, Odradek's produce CPU per GB tripled from "
        "about 2 GB into a round, all of it in the kernel's copy into the page cache."
    )


def unwrap(text: str) -> str:
    """Source text wrapped for the code, as markdown with one line per paragraph or item."""
    out: list[str] = []
    for line in text.splitlines():
        if out and out[-1] and line and not line.startswith("- "):
            out[-1] += " " + line.strip()
        else:
            out.append(line)
    return "\n".join(out)


def load_generator_words(load_generators: int) -> dict[str, str]:
    """How METHOD names the processes of a phase."""
    if load_generators == 1:
        return {"producers": "a separate process", "consumers": "another process reads"}
    n = load_generators
    return {
        "producers": f"{n} separate processes at once (each a 1/{n} share of the records)",
        "consumers": f"{n} other processes each read",
    }


def write_report(
    markdown: Path,
    plot: Path,
    *,
    samples: Sequence[Sample],
    rounds: Sequence[RoundInfo],
    brokers: Sequence[str],
    command: str,
    started: str,
    machine: Sequence[str],
    odradek_revision: str,
    tansu_version: str,
    wall_s: float,
    workloads: Sequence[Workload],
    quiet_note: str = "",
    load_generators: int = 1,
    warm_memory: bool = False,
) -> None:
    plot_ok = write_plot(plot, samples, brokers)
    date = datetime.strptime(started, "%Y%m%d-%H%M%S").strftime("%Y-%m-%d %H:%M")
    per_size = {w.size: w.count for w in workloads}
    counts = "; ".join(f"{size_label(k)}: {v:,}" for k, v in sorted(per_size.items()))
    n_rounds = max((r.round for r in rounds), default=0)
    lines = [
        "## Throughput",
        "",
        "Produce and consume throughput of Odradek side by side with Tansu, driven by "
        "librdkafka. Generated by `benchmarks/throughput.py`.",
        "",
        f"- Date: {date} UTC; the run took {wall_s / 60:.1f} min",
        f"- Command: `{command}` (needs `pip install -e '.[bench]'`)",
        f"- Odradek: {odradek_revision}, default config, data on local disk",
        f"- Tansu: {tansu_version or 'not run'}, `tansu broker` with its default in-memory "
        "storage (`memory://tansu/`)",
        f"- {n_rounds} round(s) per broker; each cell is the median of the rounds "
        '("(2/3)" marks a workload that failed in some rounds)',
        *([f"- {quiet_note}"] if quiet_note else []),
        "",
        "### Results",
        "",
        "MB = 10^6 bytes of record values. O/T = Odradek / Tansu: above 1 Odradek is faster "
        "(MB/s) or spends more CPU per GB (CPU s/GB).",
        "",
        *results_table(samples, brokers),
        "",
    ]
    if plot_ok:
        rel = os.path.relpath(plot, markdown.parent)
        lines += [f"![Throughput and CPU per GB, Odradek vs Tansu]({rel})", ""]
    lines += [
        "### What this means",
        "",
        summary(samples, rounds, brokers),
        "",
        unwrap(CAVEATS.format(clients=clients_note(load_generators))),
        "",
        unwrap(CHANGES),
        "",
        *instructions_table(samples, brokers),
        "### CPU use during the timed section (median, % of one core)",
        "",
        *cpu_table(samples, brokers),
        "",
        "### Memory and shutdown",
        "",
        *memory_table(rounds, brokers),
        "",
        *startup_note(rounds),
        "### Failures and data checks",
        "",
        *failure_lines(samples, rounds),
        "",
        "### Method",
        "",
        unwrap(
            METHOD.format(
                counts=counts,
                memory=memory_note(warm_memory),
                **load_generator_words(load_generators),
            )
        ),
        "",
        "### Profiling",
        "",
        "`python benchmarks/profile_odradek.py --svg` runs the 1 KiB, 8-partition, acks=1 "
        "workload and its read-back against Odradek under py-spy and prints the hottest "
        "functions and lines (flame graphs and raw stacks in `benchmarks/results/`).",
        "",
    ]
    update_section(markdown, "throughput", "\n".join(lines), machine=list(machine))


# ----------------------------------------------------------------------------- plot


def write_plot(path: Path, samples: Sequence[Sample], brokers: Sequence[str]) -> bool:
    """Three panels: produce MB/s, consume MB/s, broker CPU s/GB; bars are medians, whiskers
    span the rounds. False when matplotlib is missing or nothing succeeded."""
    try:
        import matplotlib  # noqa: PLC0415

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError:
        return False
    rows = ordered_rows(samples)
    if not any(s.ok for s in samples):
        return False
    produce = [r for r in rows if r.phase == "produce"]
    consume = [r for r in rows if r.phase == "consume"]
    panels: list[tuple[str, list[Row], Callable[[Sample], float]]] = [
        ("Produce throughput (MB/s, higher is better)", produce, lambda s: s.mb_s),
        ("Consume throughput (MB/s, higher is better)", consume, lambda s: s.mb_s),
        ("Broker CPU seconds per GB moved (lower is better)", rows, lambda s: s.cpu_s_per_gb),
    ]
    # Wide enough for every bar of the busiest panel (27 rows with 1, 8 and 64 partitions).
    inches = max(13.0, 0.6 * len(rows))
    fig, axes = plt.subplots(len(panels), 1, figsize=(inches, 14), constrained_layout=True)
    width = 0.8 / len(brokers)
    for ax, (title, panel_rows, metric) in zip(axes, panels, strict=True):
        xs = range(len(panel_rows))
        for i, broker in enumerate(brokers):
            meds, lows, highs = [], [], []
            for row in panel_rows:
                vals = values(samples, broker, row, metric)
                m = median(vals) or 0.0
                meds.append(m)
                lows.append(m - min(vals, default=0.0))
                highs.append(max(vals, default=0.0) - m)
            offsets = [x + (i - (len(brokers) - 1) / 2) * width for x in xs]
            ax.bar(
                offsets,
                meds,
                width,
                label=NAMES[broker],
                color=COLOURS[broker],
                yerr=[lows, highs],
                capsize=2,
                error_kw={"linewidth": 0.8},
            )
        ax.set_title(title, fontsize=11, loc="left")
        ax.set_xticks(list(xs))
        # The first two panels name the phase in their title; the third mixes both.
        mixed = len({r.phase for r in panel_rows}) > 1
        labels = [r.label if mixed else r.label.split(" ", 1)[1] for r in panel_rows]
        ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=8)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=9)
    fig.suptitle("Odradek vs Tansu, librdkafka load, median of rounds (whiskers: min-max)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
