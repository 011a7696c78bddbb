"""Consumer group timings, Odradek side by side with Tansu, driven by librdkafka.

Measured, each as the median of ``--rounds`` runs, on a fresh broker per broker kind:

- **first record, 1 consumer**: a new group, DEFAULT consumer configs (only ``group.id``
  and ``auto.offset.reset=earliest``, so that records already in the topic are read):
  seconds from ``subscribe()`` to the first record returned by ``poll()``;
- **first record, 3 consumers**: three new members subscribing together: seconds until
  every one of them has read a record;
- **rebalance, 11th joins** / **rebalance, 1 of 11 leaves**: a group of 10 consumers
  (default configs) is stable on a 20-partition topic; then an 11th subscribes, or one
  closes (LeaveGroup): seconds until every member has been given its new assignment
  (``on_assign`` after the event, and the assignments cover the topic once).

For Odradek the script also splits the single-consumer time into phases with the
broker's own log (``preparing to rebalance`` and ``generation N`` lines, stamped to the
millisecond) and keeps one librdkafka ``debug=cgrp`` trace of that path.

Each consumer runs in its own thread that calls ``poll(0.05)`` in a loop, as an
application would; confluent-kafka releases the GIL while polling.

Usage: ``python benchmarks/groups.py [--rounds 3] [--broker odradek --broker tansu]
[--results-dir DIR] [--no-publish]``. The "groups" section of BENCHMARKS.md is replaced
(``benchmarks/_sections.py``); results.json and the logs go to ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import random
import re
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _brokers import BrokerProcess, tansu_version
from _report import machine_description, odradek_revision
from _sections import update_section

REPO = Path(__file__).resolve().parent.parent
TANSU = Path("/root/.calfkit/bin/tansu-v0.6.0-510f3e2")
WAIT_S = 60.0
SMALL_PARTITIONS = 6
GROUP_PARTITIONS = 20
GROUP_SIZE = 10
POLL_S = 0.05

MEASUREMENTS = {
    "first_record_1": "subscribe() → first record, 1 consumer",
    "first_record_3": "subscribe() → first record in each of 3 consumers",
    "rebalance_join": "rebalance: an 11th member joins a group of 10",
    "rebalance_leave": "rebalance: 1 of 11 members leaves (LeaveGroup)",
}
PHASES = {
    "first_record_1": {
        "to_preparing": "subscribe() → the group starts its first rebalance "
        "(bootstrap, Metadata, FindCoordinator, JoinGroup twice for KIP-394)",
        "to_generation": "→ generation 1 (`group.initial.rebalance.delay.ms`, 3000 by default)",
        "after_generation": "→ first record (SyncGroup, OffsetFetch, ListOffsets, Fetch)",
    },
    "rebalance_join": {
        "to_preparing": "11th subscribe() → the group starts to rebalance",
        "to_generation": "→ next generation (the 10 learn it from their next heartbeat and rejoin)",
        "after_generation": "→ every member assigned (SyncGroup, callbacks)",
    },
    "rebalance_leave": {
        "to_preparing": "close() → LeaveGroup arrives, the group starts to rebalance",
        "to_generation": "→ next generation (the others learn it from their next "
        "heartbeat and rejoin)",
        "after_generation": "→ every member assigned (SyncGroup, callbacks)",
    },
}


# --------------------------------------------------------------------------- members


@dataclass
class Member:
    """A consumer polling in its own thread; records its assignments and first record."""

    config: dict[str, Any]
    topic: str
    assigns: list[tuple[float, frozenset[int]]] = field(default_factory=list)
    first_record: float | None = None
    subscribed_at: float = 0.0
    error: str | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Member:
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def _run(self, ready: threading.Event) -> None:
        try:
            consumer = Consumer(self.config)
        except Exception as exc:
            self.error = repr(exc)
            ready.set()
            return
        try:

            def on_assign(c: Consumer, partitions: list[TopicPartition]) -> None:
                self.assigns.append((time.time(), frozenset(tp.partition for tp in partitions)))

            def on_revoke(c: Consumer, partitions: list[TopicPartition]) -> None:
                self.assigns.append((time.time(), frozenset()))

            self.subscribed_at = time.time()
            consumer.subscribe([self.topic], on_assign=on_assign, on_revoke=on_revoke)
            ready.set()
            while not self._stop.is_set():
                message = consumer.poll(POLL_S)
                if message is not None and message.error() is None and self.first_record is None:
                    self.first_record = time.time()
        except Exception as exc:
            self.error = repr(exc)
        finally:
            ready.set()
            consumer.close()

    def current(self) -> frozenset[int]:
        return self.assigns[-1][1] if self.assigns else frozenset()

    def assigned_after(self, moment: float) -> float | None:
        later = [at for at, parts in self.assigns if at >= moment and parts]
        return later[-1] if later else None

    def stop(self) -> None:
        self._stop.set()

    def join(self) -> None:
        if self._thread is not None:
            self._thread.join(30)


def default_config(bootstrap: str, group: str, **extra: Any) -> dict[str, Any]:
    # Defaults except what a test of "new group reads existing records" needs.
    return {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "auto.offset.reset": "earliest",
        **extra,
    }


def stop_all(members: list[Member]) -> None:
    for member in members:
        member.stop()
    for member in members:
        member.join()


def wait_until(condition: Callable[[], bool], timeout: float = WAIT_S) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return False


def covers_topic(members: list[Member], partitions: int) -> bool:
    owned = [m.current() for m in members]
    return sum(len(o) for o in owned) == partitions and frozenset().union(*owned) == frozenset(
        range(partitions)
    )


# --------------------------------------------------------------------------- setup


def create_topic(bootstrap: str, name: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(timeout=30)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for i in range(partitions * 10):
        producer.produce(name, value=b"record %d" % i, partition=i % partitions)
    remaining = producer.flush(30)
    if remaining:
        raise RuntimeError(f"{remaining} records not delivered to {name}")


def new_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# --------------------------------------------------------------------------- measurements


@dataclass(frozen=True)
class FirstRecord:
    seconds: float | None
    group: str
    subscribed_at: float = 0.0
    error: str | None = None


def first_record(bootstrap: str, topic: str, count: int) -> FirstRecord:
    """Seconds from the first subscribe() until each of ``count`` new members has read."""
    group = new_name("bench-first")
    members = [Member(default_config(bootstrap, group), topic) for _ in range(count)]
    try:
        for member in members:
            member.start()
        done = wait_until(lambda: all(m.first_record is not None for m in members))
        start = min(m.subscribed_at for m in members)
        if not done:
            errors = [m.error for m in members if m.error]
            return FirstRecord(None, group, start, errors[0] if errors else "timed out")
        return FirstRecord(max(m.first_record or 0.0 for m in members) - start, group, start)
    finally:
        stop_all(members)


@dataclass(frozen=True)
class Rebalance:
    """One measured rebalance: ``seconds`` from the event until every member has its new
    assignment (None if that never happened within WAIT_S)."""

    seconds: float | None
    group: str
    at: float
    phase_s: float
    """Where in the members' heartbeat cycle the event fell: seconds since the group settled."""


def rebalances(bootstrap: str, topic: str, rng: random.Random) -> tuple[Rebalance, Rebalance]:
    """(11th joins, 1 of 11 leaves) for a fresh group of GROUP_SIZE consumers.

    Members learn of a rebalance from their next heartbeat (every 3 s by default), so the
    result depends on where in that cycle the event lands; each event waits a random
    1-4 s after the group has settled, covering one whole cycle.
    """
    group = new_name("bench-rebalance")
    members = [Member(default_config(bootstrap, group), topic) for _ in range(GROUP_SIZE)]
    failed = Rebalance(None, group, 0.0, 0.0)
    try:
        for member in members:
            member.start()
        if not wait_until(lambda: covers_topic(members, GROUP_PARTITIONS), WAIT_S * 2):
            return failed, failed

        settled = max(m.assigns[-1][0] for m in members)
        time.sleep(max(settled + rng.uniform(1.0, 4.0) - time.time(), 0))
        joined_at = time.time()
        members.append(Member(default_config(bootstrap, group), topic).start())
        joined = Rebalance(
            _until_reassigned(members, joined_at), group, joined_at, joined_at - settled
        )

        settled = max(m.assigns[-1][0] for m in members)
        time.sleep(max(settled + rng.uniform(1.0, 4.0) - time.time(), 0))
        leaver = members.pop(rng.randrange(len(members)))
        left_at = time.time()
        leaver.stop()
        left = Rebalance(_until_reassigned(members, left_at), group, left_at, left_at - settled)
        leaver.join()
        return joined, left
    finally:
        stop_all(members)


def _until_reassigned(members: list[Member], since: float) -> float | None:
    def done() -> bool:
        return all(m.assigned_after(since) is not None for m in members) and covers_topic(
            members, GROUP_PARTITIONS
        )

    if not wait_until(done):
        return None
    return max(m.assigned_after(since) or since for m in members) - since


# --------------------------------------------------------------------------- phases


_STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")


def group_events(log_path: Path, group: str) -> list[tuple[float, str]]:
    """(time, line) of the broker's INFO lines about ``group``."""
    events = []
    for line in log_path.read_text(errors="replace").splitlines():
        stamp = _STAMP.match(line)
        if stamp is None or f"group {group} " not in line:
            continue
        at = datetime.datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
        events.append((at, line))
    return events


def split_at_generation(
    events: list[tuple[float, str]], since: float, done: float
) -> dict[str, float]:
    """event -> broker starts the rebalance -> new generation -> last member assigned."""
    slack = 0.002  # the log has millisecond stamps
    preparing = next(
        (at for at, line in events if at >= since - slack and "preparing to rebalance" in line),
        None,
    )
    if preparing is None:
        return {}
    generation = next(
        (at for at, line in events if at >= preparing and _GENERATION.search(line)), None
    )
    if generation is None:
        return {}
    return {
        "to_preparing": max(preparing - since, 0.0),
        "to_generation": generation - preparing,
        "after_generation": done - generation,
    }


_GENERATION = re.compile(r"generation \d+ with \d+ members")


class _Trace(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        stamp = datetime.datetime.fromtimestamp(record.created).strftime("%H:%M:%S.%f")[:-3]
        self.lines.append(f"{stamp} {record.getMessage()}")


def cgrp_trace(bootstrap: str, topic: str) -> list[str]:
    """One single-consumer run with librdkafka ``debug=cgrp``: its log lines, stamped
    when poll() delivered them (so to within one poll interval)."""
    trace = _Trace()
    logger = logging.getLogger(f"bench.cgrp.{uuid.uuid4().hex}")
    logger.setLevel(logging.DEBUG)
    logger.addHandler(trace)
    logger.propagate = False
    group = new_name("bench-trace")
    config = default_config(bootstrap, group, debug="cgrp", logger=logger)
    member = Member(config, topic).start()
    try:
        wait_until(lambda: member.first_record is not None)
    finally:
        stop_all([member])
    lines = [f"{_clock(member.subscribed_at)} SUBSCRIBE() called", *trace.lines]
    if member.first_record is not None:
        lines.append(f"{_clock(member.first_record)} FIRST_RECORD returned by poll()")
    return sorted(lines, key=lambda line: line[:12])  # stable within a millisecond


def _clock(at: float) -> str:
    return datetime.datetime.fromtimestamp(at).strftime("%H:%M:%S.%f")[:-3]


_MILESTONES = re.compile(
    r"SUBSCRIBE\(\)|Joining group|JoinGroup response:|SyncGroup response|"
    r"OffsetFetchRequest|FIRST_RECORD"
)


def timeline(trace: list[str]) -> list[str]:
    """The group milestones of a cgrp trace, in ms since subscribe()."""
    picked = [line for line in trace if _MILESTONES.search(line)]
    if not picked:
        return []

    def ms(line: str) -> float:
        return datetime.datetime.strptime(line[:12], "%H:%M:%S.%f").timestamp() * 1000

    zero = ms(picked[0])
    out = []
    for line in picked:
        text = re.sub(r"^\S+ \[[^]]*\] \[[^]]*\]: ", "", line[13:])
        text = re.sub(r"\S+/(\d+|bootstrap): ", "", text)
        text = re.sub(r"rdkafka-[0-9a-f-]{36}", "rdkafka-…", text)
        out.append(f"+{ms(line) - zero:6.0f} ms  {text[:110]}")
    return out


# --------------------------------------------------------------------------- runs


@dataclass
class BrokerRun:
    broker: str
    version: str
    samples: dict[str, list[float | None]] = field(default_factory=dict)
    phases: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    event_phase_s: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    timeline: list[str] = field(default_factory=list)


@contextmanager
def running(name: str, work: Path) -> Iterator[BrokerProcess]:
    work.mkdir(parents=True, exist_ok=True)
    broker = BrokerProcess(
        name, work, work / f"{name}.log", tansu=TANSU if name == "tansu" else None
    )
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def run_broker(name: str, rounds: int, work: Path) -> BrokerRun:
    version = odradek_revision() if name == "odradek" else tansu_version(TANSU)
    result = BrokerRun(name, version, {key: [] for key in MEASUREMENTS})
    with running(name, work) as broker:
        bootstrap = broker.bootstrap
        small, large = new_name("bench-small"), new_name("bench-large")
        create_topic(bootstrap, small, SMALL_PARTITIONS)
        create_topic(bootstrap, large, GROUP_PARTITIONS)
        cold = first_record(bootstrap, small, 1)  # creates __consumer_offsets; not counted
        result.notes.append(f"first group on the fresh broker: {_fmt(cold.seconds)}")
        rng = random.Random(20261122)
        for round_no in range(1, rounds + 1):
            print(f"[{name}] round {round_no}/{rounds}", flush=True)
            one = first_record(bootstrap, small, 1)
            result.samples["first_record_1"].append(one.seconds)
            three = first_record(bootstrap, small, 3)
            result.samples["first_record_3"].append(three.seconds)
            joined, left = rebalances(bootstrap, large, rng)
            result.samples["rebalance_join"].append(joined.seconds)
            result.samples["rebalance_leave"].append(left.seconds)
            result.event_phase_s += [joined.phase_s, left.phase_s]
            if name == "odradek":
                measured = [
                    ("first_record_1", one.group, one.subscribed_at, one.seconds),
                    ("rebalance_join", joined.group, joined.at, joined.seconds),
                    ("rebalance_leave", left.group, left.at, left.seconds),
                ]
                for key, group, since, seconds in measured:
                    if seconds is None:
                        continue
                    events = group_events(broker.log_path, group)
                    split = split_at_generation(events, since, since + seconds)
                    if split:
                        result.phases.setdefault(key, []).append(split)
            print(
                f"[{name}]   1 consumer {_fmt(one.seconds)}, 3 consumers "
                f"{_fmt(three.seconds)}, join {_fmt(joined.seconds)}, "
                f"leave {_fmt(left.seconds)}",
                flush=True,
            )
        trace = cgrp_trace(bootstrap, small)
        (work / "cgrp-trace.txt").write_text("\n".join(trace) + "\n")
        result.timeline = timeline(trace)
    return result


def _fmt(value: float | None) -> str:
    return "failed" if value is None else f"{value:.2f} s"


def cell(values: list[float | None]) -> str:
    good = sorted(v for v in values if v is not None)
    if not good:
        return "failed"
    text = f"{statistics.median(good):.2f} s ({good[0]:.2f}-{good[-1]:.2f})"
    if len(good) < len(values):
        text += f" ({len(good)}/{len(values)})"
    return text


# --------------------------------------------------------------------------- report


def report(runs: list[BrokerRun], rounds: int, took_s: float) -> str:
    names = [run.broker.capitalize() if run.broker == "tansu" else "Odradek" for run in runs]
    lines = [
        "## Consumer groups",
        "",
        "Time to the first record for a new group, and rebalance time in a group of 10, "
        "driven by librdkafka with its default consumer configs. Generated by "
        "`benchmarks/groups.py`.",
        "",
        f"- Date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; "
        f"the run took {took_s / 60:.1f} min",
        f"- Command: `python benchmarks/groups.py --rounds {rounds}`",
    ]
    for run in runs:
        if run.broker == "odradek":
            lines.append(f"- Odradek: {run.version}, default broker config")
        else:
            lines.append(f"- Tansu: {run.version}, `tansu broker`, in-memory storage")
    lines += [
        f"- Each cell: median of {rounds} rounds (min-max); a new group each round. Consumers: "
        "`group.id`, `auto.offset.reset=earliest`, everything else default "
        "(`session.timeout.ms` 45000, `heartbeat.interval.ms` 3000, range + roundrobin). "
        "Each rebalance event comes a random 1-4 s after the group settled, so anywhere in "
        "the members' heartbeat cycle.",
        "",
        "| | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(runs),
    ]
    for key, label in MEASUREMENTS.items():
        lines.append(f"| {label} | " + " | ".join(cell(run.samples[key]) for run in runs) + " |")
    lines += meaning(runs)
    notes = [f"{run.broker}: {note}" for run in runs for note in run.notes]
    if notes:
        lines += ["", "Not counted above: " + "; ".join(notes) + "."]
    odradek = next((run for run in runs if run.broker == "odradek"), None)
    if odradek is not None and odradek.phases:
        lines += [
            "",
            "### Where the time goes (Odradek)",
            "",
            "Each measurement split with the broker's own log lines (`preparing to "
            "rebalance`, `generation N with M members`, millisecond stamps) against the "
            "client's clock; median of the rounds:",
            "",
            "| measurement | phase | time |",
            "|---|---|---|",
        ]
        for key, labels in PHASES.items():
            for phase, label in labels.items():
                values: list[float | None] = [
                    split[phase] for split in odradek.phases.get(key, []) if phase in split
                ]
                lines.append(f"| {MEASUREMENTS[key]} | {label} | {cell(values)} |")
    for run in runs:
        if run.timeline:
            lines += [
                "",
                f"One single-consumer run against {run.broker.capitalize()} with librdkafka "
                "`debug=cgrp` (client-side milestones, stamped when `poll()` delivered the "
                "log line):",
                "",
                "```",
                *run.timeline,
                "```",
            ]
    return "\n".join(lines) + "\n"


def _median(values: list[float | None]) -> float | None:
    good = [v for v in values if v is not None]
    return statistics.median(good) if good else None


def meaning(runs: list[BrokerRun]) -> list[str]:
    """What the Odradek numbers say, with the numbers in."""
    odradek = next((run for run in runs if run.broker == "odradek"), None)
    if odradek is None:
        return []
    one = _median(odradek.samples["first_record_1"])
    three = _median(odradek.samples["first_record_3"])
    delays = [p["to_generation"] for p in odradek.phases.get("first_record_1", [])]
    delay = statistics.median(delays) if delays else None
    rebalance = _median(odradek.samples["rebalance_join"] + odradek.samples["rebalance_leave"])
    out = ["", "What this means:", ""]
    if one is not None:
        verdict = "meets" if one <= 3.5 else "misses"
        share = f" {delay:.2f} s of it is" if delay is not None else " most of it is"
        out.append(
            f"- A new single-consumer group reads its first record after {one:.2f} s, which "
            f"{verdict} issue #4's 3.5 s target;{share} `group.initial.rebalance.delay.ms` "
            "(3 s), the wait Kafka itself puts before a new group's first generation so that "
            "consumers starting together land in one."
        )
    if three is not None:
        out.append(
            f"- Three consumers starting together read after {three:.2f} s: the second and "
            "third join during the first delay, and as in Kafka (InitialDelayedJoin) a "
            "member joining during the delay extends it by one more delay, up to the "
            "rebalance timeout. Kafka behaves the same with its defaults."
        )
    if rebalance is not None:
        out.append(
            f"- A rebalance of 10-11 members takes {rebalance:.2f} s (median of joins and "
            "leaves): the members hear of it only on their next heartbeat "
            "(`heartbeat.interval.ms`, 3 s by default), then rejoin and sync within "
            "milliseconds."
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--broker", action="append", choices=["odradek", "tansu"])
    parser.add_argument("--results-dir", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--no-publish", action="store_true", help="leave BENCHMARKS.md alone")
    args = parser.parse_args()
    brokers = args.broker or ["odradek", "tansu"]
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d-%H%M%S")
    out = args.results_dir / f"{stamp}-groups"
    began = time.monotonic()
    runs = []
    for name in brokers:
        if name == "tansu" and not TANSU.exists():
            print(f"tansu: {TANSU} not found, skipped", flush=True)
            continue
        runs.append(run_broker(name, args.rounds, out / name))
    took = time.monotonic() - began
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps([asdict(run) for run in runs], indent=2))
    body = report(runs, args.rounds, took)
    (out / "BENCHMARKS-groups.md").write_text(body)
    print(body)
    if not args.no_publish:
        update_section(REPO / "BENCHMARKS.md", "groups", body, machine=machine_description())


if __name__ == "__main__":
    main()
