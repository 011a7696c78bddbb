"""The crash-safety, disk-fault, slow-client and soak campaigns for ``python -m
tests.fuzz.report``: run them with the report's seed (the tests run the same functions,
smaller), and render their figures as Markdown."""

from __future__ import annotations

import logging
import os
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from odradek.protocol.errors import ErrorCode
from tests.robustness.crash import (
    KILL9_BROKER_CONFIG,
    CrashRun,
    corrupt_log_rounds,
    kill9_produce_rounds,
    torn_tail_cuts,
)
from tests.robustness.disk_faults import LEAVE_KIB, TMPFS_KIB, DiskFaultRuns, run_disk_faults
from tests.robustness.slow_clients import (
    LIMITS_CONFIG,
    STALL_RSS_BOUND_KIB,
    ChurnRun,
    LimitRun,
    StalledRun,
    connection_churn,
    connection_limits,
    raise_fd_limit,
    stalled_consumers,
)
from tests.robustness.soak import (
    FD_SLACK,
    RSS_SLACK_KIB,
    RSS_TOLERANCE,
    SOAK_BROKER_CONFIG,
    SoakRun,
    run_soak,
)
from tests.support.broker import BrokerProcess

SOAK_COMMAND = "ODRADEK_SOAK_SECONDS=1800 pytest -m slow tests/integration/test_soak.py -rP"


@dataclass
class Figures:
    crash: list[CrashRun]
    stalled: StalledRun
    churn: ChurnRun
    limits: LimitRun
    soak: SoakRun | None
    kill9_rounds: int
    churn_rounds: int
    disk: DiskFaultRuns


def _broker(scratch: str, name: str, overrides: dict[str, str] | None = None) -> BrokerProcess:
    return BrokerProcess(Path(scratch) / name, overrides).start()


def run_all(seed: int, *, quick: bool, soak_seconds: float) -> Figures:
    """Every campaign once; ``quick`` shortens the kill -9 loop, the stall and the churn."""
    logging.getLogger("odradek").setLevel(logging.ERROR)  # recovery warns on every cut
    kill9_rounds = 5 if quick else 20
    churn_rounds = 3 if quick else 10
    with tempfile.TemporaryDirectory() as scratch:
        crash = [
            corrupt_log_rounds(os.path.join(scratch, "crash-0"), seed),
            corrupt_log_rounds(os.path.join(scratch, "clean-0"), seed, clean_shutdown=True),
            torn_tail_cuts(os.path.join(_tmpfs() or scratch, f"torn-{os.getpid()}-0"), seed),
        ]
        broker = _broker(scratch, "kill9", KILL9_BROKER_CONFIG)
        try:
            crash.append(kill9_produce_rounds(broker, seed, rounds=kill9_rounds))
        finally:
            broker.stop()
        _progress(crash)
        disk = run_disk_faults(Path(scratch))
        print(f"disk faults: {_disk_progress(disk)}", file=sys.stderr)
        broker = _broker(scratch, "stalled")
        try:
            stalled = stalled_consumers(broker, seconds=8 if quick else 20, seed=seed)
        finally:
            broker.stop()
        print(f"stalled consumers: RSS +{stalled.rss_growth_kib} KiB", file=sys.stderr)
        raise_fd_limit(2048)
        broker = _broker(scratch, "churn")
        try:
            churn = connection_churn(broker, rounds=churn_rounds, connections=1000)
        finally:
            broker.stop()
        print(f"churn: descriptors {churn.fds_baseline} -> {churn.fds_after}", file=sys.stderr)
        broker = _broker(scratch, "limits", LIMITS_CONFIG)
        try:
            limits = connection_limits(broker)
        finally:
            broker.stop()
        soak = None
        if soak_seconds > 0:
            broker = _broker(scratch, "soak", SOAK_BROKER_CONFIG)
            try:
                soak = run_soak(broker, soak_seconds, seed=seed)
            finally:
                broker.stop()
            print(f"soak: {soak.summary()}", file=sys.stderr)
    return Figures(crash, stalled, churn, limits, soak, kill9_rounds, churn_rounds, disk)


def _tmpfs() -> str | None:
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None


def _progress(crash: list[CrashRun]) -> None:
    for run in crash:
        print(
            f"{run.name}: {run.rounds} rounds, {run.records_lost} of {run.records_written} "
            f"lost, {len(run.failures)} failures",
            file=sys.stderr,
        )


def _disk_progress(disk: DiskFaultRuns) -> str:
    runs = {"full": disk.full, "offline": disk.offline, "only": disk.only}
    return ", ".join(
        f"{name}: {disk.not_run[name] if run is None else f'{len(run.failures)} failures'}"
        for name, run in runs.items()
    )


def _mib(kib: float) -> str:
    return f"{kib / 1024:,.1f} MiB"


def summary_rows(figures: Figures) -> list[str]:
    crash = figures.crash
    stalled, churn, limits = figures.stalled, figures.churn, figures.limits
    lost = sum(r.records_lost for r in crash)
    written = sum(r.records_written for r in crash)
    broken = sum(len(r.failures) for r in crash)
    rows = [
        f"| Records lost (crash safety) | {lost} of {written:,} that had to survive, over "
        f"{sum(r.rounds for r in crash):,} crashes, corruptions and cuts; {broken} broken "
        "promises |",
        f"| Broker RSS growth while consumers stall and a producer goes on | "
        f"{_mib(stalled.rss_growth_kib)} over {stalled.seconds:.0f} s (bound "
        f"{_mib(STALL_RSS_BOUND_KIB)}), against {stalled.response_bytes_requested / 2**30:,.0f} "
        "GiB of responses requested |",
        f"| Broker descriptors / RSS after {figures.churn_rounds} x 1,000 connections dropped | "
        f"{_churn_fds(churn)} / {_mib(churn.rss_after_kib[-1] - churn.rss_baseline_kib)} "
        "above the warm baseline |",
        f"| Connections over `max.connections(.per.ip)` | {limits.refused} refused "
        f"(closed within {limits.slowest_refusal * 1000:.0f} ms), "
        f"{len(limits.not_refused)} let through, {len(limits.not_admitted)} wrongly refused |",
    ]
    rows += _disk_summary_rows(figures.disk)
    soak = figures.soak
    if soak is not None:
        second, last = soak.rss_medians_kib
        rows.append(
            f"| Soak ({soak.seconds / 60:.0f} min mixed load) | RSS median {_mib(second)} -> "
            f"{_mib(last)}, {soak.lost} of {soak.acknowledged:,} acknowledged records lost, "
            f"{len(soak.problems())} problems |"
        )
    return rows


def _disk_summary_rows(disk: DiskFaultRuns) -> list[str]:
    rows = []
    full = disk.full
    if full is None:
        rows.append(f"| Full log dir (tmpfs) | {disk.not_run['full']} |")
    else:
        rows.append(
            f"| Full log dir (tmpfs) | {full.acknowledged_before_full:,} records acknowledged "
            f"before ENOSPC, then {_codes(full.errors_while_full)}; acknowledged records "
            f"damaged: {sum(full.damaged.values())} (read back while full, after freeing "
            "space, after a restart); produce served again after freeing space: "
            f"{_yes(full.served_after_freeing)}; {len(full.failures)} broken promises |"
        )
    offline = disk.offline
    if offline is None:
        rows.append(f"| Failed log dir (ext4 turned read-only) | {disk.not_run['offline']} |")
    else:
        answered = sum(code == 56 for _, code in offline.offline_answers)
        rows.append(
            f"| Failed log dir (ext4 turned read-only) | offline partition: {answered} of "
            f"{len(offline.offline_answers)} requests answered KAFKA_STORAGE_ERROR (56); "
            f"healthy partition still serving: {_yes(offline.healthy_intact)}; clean exit: "
            f"{_yes(offline.alive and offline.exit_code == 0)}; {len(offline.failures)} "
            "broken promises |"
        )
    return rows


def _yes(value: bool) -> str:
    return "yes" if value else "**no**"


def _codes(codes: list[int]) -> str:
    return ", ".join(_code(code) for code in codes) or "no answer"


def _code(code: int) -> str:
    """An error code with Kafka's name for it: ``56 (KAFKA_STORAGE_ERROR)``."""
    try:
        return f"{code} ({ErrorCode(code).name.upper()})"
    except ValueError:
        return str(code)


def _churn_fds(churn: ChurnRun) -> str:
    after = sorted(set(churn.fds_after))
    if after == [churn.fds_baseline]:
        return f"back to {churn.fds_baseline} after every round"
    return f"baseline {churn.fds_baseline}, after the rounds {churn.fds_after}"


def sections(figures: Figures) -> list[str]:
    return [
        *_crash_section(figures),
        *_disk_section(figures.disk),
        *_slow_section(figures),
        *_soak_section(figures.soak),
    ]


def _crash_section(figures: Figures) -> list[str]:
    lines = [
        "## Crash safety",
        "",
        "`tests/robustness/crash.py` (the same functions run smaller in",
        "`tests/unit/storage/test_recovery.py` and `tests/integration/test_crash_loops.py`):",
        "",
        "- garbage appended: Kafka's LogLoaderTest.testCorruptLog. Each round writes 50-99",
        "  records to a log of 1,000-byte segments, appends 1-1,024 random bytes to the active",
        "  segment's `.log` and `.index`, reopens (after a crash: recovery from offset 50;",
        "  after a clean shutdown: only the active segment's tail is checked), and compares",
        "  every record (offset, key, value, timestamp, headers); then appends and recovers",
        "  again from offset 0;",
        "- last batch truncated: a ~1.6 KB last batch cut at 1,000 distinct random byte",
        "  positions, each time from the same files; the log must end exactly at the batch",
        "  before, every segment file byte for byte as written up to there;",
        f"- kill -9: a broker with `log.flush.interval.messages=1` (topic `flush.messages=1`) "
        f"is SIGKILLed {figures.kill9_rounds} times at a random moment while an idempotent "
        "acks=all confluent-kafka producer sends keyed, numbered records to 3 partitions, and",
        "  restarted; then every acknowledged (partition, offset) must hold its key and value,",
        "  and no acknowledged key may be in the log twice.",
        "",
        "Records that had to survive are counted once per round (a record kept through",
        "1,000 cuts counts 1,000 times).",
        "",
        "| Campaign | Rounds | Records that had to survive | Lost | Broken promises | Time |",
        "|---|---|---|---|---|---|",
    ]
    for run in figures.crash:
        lines.append(
            f"| {run.name} | {run.rounds:,} | {run.records_written:,} | {run.records_lost} | "
            f"{len(run.failures)} | {run.seconds:.1f} s |"
        )
    for run in figures.crash:
        if run.notes:
            details = ", ".join(f"{k} {v:,}" for k, v in run.notes.items())
            lines += ["", f"{run.name}: {details}."]
        if run.failures:
            lines += ["", f"{run.name}, broken promises:", ""]
            lines += [f"- {failure}" for failure in run.failures[:20]]
    return [*lines, ""]


def _disk_section(disk: DiskFaultRuns) -> list[str]:
    lines = [
        "## Disk faults",
        "",
        "`tests/robustness/disk_faults.py` (the same functions run by",
        "`tests/integration/test_disk_faults.py`), against a broker process on real file",
        "systems (`tests/support/mounts.py`, which needs root to mount).",
        "",
        "### Full log dir",
        "",
        f"The log dir is a {TMPFS_KIB // 1024} MiB tmpfs; a topic with 64 KiB segments is "
        f"created, another file fills the disk but {LEAVE_KIB} KiB, and one-record batches of "
        "4 KB are produced (acks=1) until one is refused. Then the filler is deleted, produce "
        "goes on (raw, then 100 records from confluent-kafka), a consumer reads everything, "
        "and the broker is stopped and restarted.",
        "",
    ]
    full = disk.full
    if full is None:
        lines += [disk.not_run["full"], ""]
    else:
        lines += [
            "| Measure | Value |",
            "|---|---|",
            f"| Records acknowledged before ENOSPC | {full.acknowledged_before_full:,} |",
            f"| The refused produce, and one more while still full | "
            f"{_codes(full.errors_while_full)} |",
            f"| Partition online (leader, no error in Metadata) while full | "
            f"{_yes(full.online_while_full)} |",
            *(
                f"| Acknowledged records damaged {when} | {count} |"
                for when, count in full.damaged.items()
            ),
            f"| Produce served again after freeing space, no restart | "
            f"{_yes(full.served_after_freeing)} ({full.acknowledged_after_freeing} records "
            "acknowledged) |",
            f"| Exit code / tracebacks in the broker log | {full.exit_code} / {full.log_errors} |",
            f"| Time | {full.seconds:.1f} s |",
            "",
            *_failures(full.failures),
        ]
    lines += [
        "### Failed log dir",
        "",
        "A broker with two log dirs, the second an ext4 image on a loop device mounted with",
        "`errors=remount-ro`; a topic of two partitions (one per dir) gets 20 records each,",
        "then the kernel's `trigger_fs_error` makes the ext4 fail, as after an I/O error:",
        "it turns read-only under the running broker.",
        "",
    ]
    offline = disk.offline
    if offline is None:
        lines += [disk.not_run["offline"], ""]
    else:
        lines += [
            "| Measure | Value |",
            "|---|---|",
            *(
                f"| Offline partition: {what} | {_code(code)} |"
                for what, code in offline.offline_answers
            ),
            *(
                f"| Metadata after the failure, partition {n} | error {_code(error)}, leader "
                f"{leader}, offline replicas {offline_replicas} |"
                for n, (error, leader, offline_replicas) in enumerate(offline.metadata)
            ),
            f"| Healthy partition: records acknowledged, all read back (and after a restart "
            f"without the failed dir) | {offline.healthy_acknowledged} / "
            f"{_yes(offline.healthy_intact)} |",
            f"| Topic created after the failure: records acknowledged | "
            f"{offline.new_topic_acknowledged} |",
            f"| Broker still running / exit code / tracebacks | {_yes(offline.alive)} / "
            f"{offline.exit_code} / {offline.log_errors} |",
            f"| Time | {offline.seconds:.1f} s |",
            "",
            *_failures(offline.failures),
        ]
    lines += [
        "### The only log dir failing",
        "",
        "Kafka halts when its last log dir fails; this broker keeps answering. Answers",
        "after its single (ext4) log dir turned read-only:",
        "",
    ]
    only = disk.only
    if only is None:
        lines += [disk.not_run["only"], ""]
    else:
        lines += [
            "| Request | Error code |",
            "|---|---|",
            *(f"| {what} | {_code(code)} |" for what, code in only.answers),
            "",
            f"Exit code {only.exit_code}, tracebacks in the log {only.log_errors}.",
            "",
            *_failures(only.failures),
        ]
    return lines


def _failures(failures: list[str]) -> list[str]:
    if not failures:
        return []
    return ["Broken promises:", "", *(f"- {failure}" for failure in failures), ""]


def _slow_section(figures: Figures) -> list[str]:
    stalled, churn, limits = figures.stalled, figures.churn, figures.limits
    settled = [rss for t, rss, _fds in stalled.samples if t >= 2.5]
    lines = [
        "## Slow clients",
        "",
        "`tests/robustness/slow_clients.py` (run smaller by `tests/integration/"
        "test_slow_clients.py`); the broker's VmRSS and descriptors come from `/proc/<pid>`.",
        "",
        f"### Consumers that stop reading ({stalled.seconds:.0f} s)",
        "",
        f"A {stalled.topic_bytes >> 20} MiB topic of 4 partitions; {stalled.connections} raw "
        "connections pipeline Fetch requests for all of it (half at 60 KiB a partition, "
        "answered from memory; half at 1 MiB, answered with sendfile) and never read a byte, "
        "while an idempotent producer sends 2,000 records a second.",
        "",
        "| Measure | Value |",
        "|---|---|",
        f"| Fetch requests handed to the kernel by the stalled clients | "
        f"{stalled.requests_sent:,} |",
        f"| Response bytes they ask for | {stalled.response_bytes_requested / 2**30:,.0f} GiB |",
        f"| Broker VmRSS before / peak / after the clients were reset | "
        f"{_mib(stalled.rss_before_kib)} / {_mib(stalled.rss_peak_kib)} / "
        f"{_mib(stalled.rss_after_kib)} |",
        f"| VmRSS growth from 2.5 s into the stall to its end | "
        f"{_mib(settled[-1] - settled[0]) if settled else '—'} |",
        f"| Broker descriptors before / peak / after | {stalled.fds_before} / "
        f"{stalled.fds_peak} / {stalled.fds_after} |",
        f"| Records acknowledged to the producer meanwhile | {stalled.records_acked_during:,} |",
        f"| A fresh client's ApiVersions meanwhile | {stalled.fresh_client} |",
        f"| Broker ERROR lines | {len(stalled.log_errors)} |",
        "",
        "The broker stops reading from a connection with more than 128 unanswered requests or",
        "a write buffer over 4 MiB (and asyncio's sendfile pauses reading while it waits), as",
        "Kafka mutes a channel whose responses are not yet sent.",
        "",
        f"### Connection churn ({figures.churn_rounds} x 1,000 connections)",
        "",
        "Each round opens 1,000 connections at once (a third send ApiVersions and read the "
        "answer, a third send half a frame, a third send nothing) and drops them, half with "
        "RST and half with FIN. The baseline is taken after one warm-up round.",
        "",
        "| Measure | Value |",
        "|---|---|",
        f"| ApiVersions answered / not | {churn.answered:,} / {churn.unanswered} |",
        f"| Broker descriptors: baseline, peak, after each round | {churn.fds_baseline}, "
        f"{churn.fds_peak}, {', '.join(map(str, churn.fds_after))} |",
        f"| Broker VmRSS: baseline, after each round | {_mib(churn.rss_baseline_kib)}, "
        f"{', '.join(_mib(v) for v in churn.rss_after_kib)} |",
        "",
        "### `max.connections` and `max.connections.per.ip`",
        "",
        "With `max.connections.per.ip=3` and `max.connections=5`: three connections from",
        "127.0.0.1 and two from 127.0.0.2 are answered, the next from each is closed; after",
        "one closes, 127.0.0.2 gets its slot back and 127.0.0.3 is closed; after all close,",
        "five new connections are answered.",
        "",
        f"Answered {limits.admitted} (wrongly refused: {len(limits.not_admitted)}), refused "
        f"{limits.refused} (let through: {len(limits.not_refused)}), slowest refusal "
        f"{limits.slowest_refusal * 1000:.0f} ms. The broker's log lines:",
        "",
        *[f"    {_strip_stamp(line)}" for line in limits.log_lines],
        "",
        "Kafka closes a connection over `max.connections.per.ip` the same way; over",
        "`max.connections` its acceptor instead stops accepting until a slot frees (new",
        "clients wait in the listen backlog). Odradek refuses at once, so a client learns",
        "rather than times out.",
        "",
    ]
    return lines


def _strip_stamp(line: str) -> str:
    """A log line without its date and time."""
    parts = line.split(" ", 2)
    return parts[2] if len(parts) == 3 else line


def _soak_section(soak: SoakRun | None) -> list[str]:
    if soak is None:
        return []
    rss = [s[1] for s in soak.samples]
    return [
        f"## Soak ({soak.seconds / 60:.0f} minutes)",
        "",
        "`tests/robustness/soak.py`: two producers, three consumer group members (one",
        "replaced every 20 s), topic create/describe/alter/produce/delete every 2 s, 100",
        "connections opened and dropped every 2 s. Flat means: last-quarter median VmRSS "
        f"within {RSS_TOLERANCE:.0%} (or {_mib(RSS_SLACK_KIB)}) of the second quarter's, and",
        f"last-quarter median descriptors at most {FD_SLACK} above the second quarter's.",
        "",
        soak.summary() + ".",
        "",
        f"VmRSS samples: median {_mib(statistics.median(rss))}, range {_mib(min(rss))} - "
        f"{_mib(max(rss))}. Problems: {'; '.join(soak.problems()) or 'none'}.",
        "",
    ]


def not_measured_rows(figures: Figures) -> list[str]:
    rows = []
    if figures.disk.not_run:
        reasons = "; ".join(f"{name}: {why}" for name, why in figures.disk.not_run.items())
        rows.append(
            "| Disk faults | full log dir -> KAFKA_STORAGE_ERROR, nothing written is damaged, "
            "serves again once space is freed; unwritable log dir goes offline without a "
            f"crash | {reasons} |"
        )
    if figures.soak is None:
        rows.append(
            "| Soak | 30-minute mixed load: RSS and file handles flat, no acknowledged record "
            f"lost | not run by this command (30 minutes): `{SOAK_COMMAND}`, or "
            "`python -m tests.fuzz.report --soak-seconds 1800` |"
        )
    return rows
