"""Bad frames against a running broker, each on its own connection.

For every seeded case (``frames.draw_case``) the frame's fate is first decided without a
socket (``frames.decode_frame``, the broker's own decode path); then the frame is sent
and the connection watched for ``DEADLINE`` seconds:

    rejected frame   the broker must close the connection
    decoded frame    the broker must answer (a whole response frame with the request's
                     correlation id) or close; it may stay silent only where Kafka
                     does: Produce with acks=0, and requests that wait by design (Fetch
                     up to max_wait, JoinGroup and SyncGroup until the group moves)

The broker's log must not hold a traceback or an ERROR line, and its address space and
resident set are read from ``/proc/<pid>/status`` before and after.
"""

from __future__ import annotations

import random
import re
import socket
import struct
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from odradek.broker.api import NO_RESPONSE
from odradek.protocol.produce_request import ProduceRequestView
from tests.fuzz.campaign import PROTOCOL_ERRORS
from tests.fuzz.frames import Case, RandomDraw, decode_frame, draw_case
from tests.support.clients import create_topic, produce_acked
from tests.support.requests import TOPIC

DEADLINE = 1.0
MAY_WAIT = {1: "Fetch", 11: "JoinGroup", 14: "SyncGroup"}
BAD_LOG_LINE = re.compile(r"Traceback|Unhandled| ERROR | CRITICAL ")
KNOWN_OPEN: dict[re.Pattern[str], str] = {}
"""Broker ERROR records of bugs found and left open, each pinned by a strict xfail test
(when that test passes, remove its entry here): the live run counts them apart."""


@dataclass
class LiveRun:
    seed: int
    frames: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    """Frames per "<expected fate> -> <outcome>": fate from the decode path ("close",
    "answer", "may wait"), outcome on the wire ("closed", "answered", "silent")."""
    failures: list[str] = field(default_factory=list)
    """Frames not closed or answered in time, or answered with the wrong correlation id."""
    slowest: float = 0.0
    """Longest time to a close or an answer, in seconds."""
    vm_before: dict[str, int] = field(default_factory=dict)
    vm_after: dict[str, int] = field(default_factory=dict)
    log_lines: list[str] = field(default_factory=list)
    """Lines of the broker log with a traceback, ERROR or CRITICAL."""
    incidents: Counter[str] = field(default_factory=Counter)
    """The broker log's ERROR records, grouped (see ``log_incidents``)."""
    warnings: int = 0
    seconds: float = 0.0


def populate(bootstrap: str) -> None:
    """The topic every valid request names, with records, so mutated Fetch, ListOffsets,
    DeleteRecords and Produce requests reach the log rather than stop at its absence."""
    create_topic(bootstrap, TOPIC)
    produce_acked(bootstrap, TOPIC, 20)


def vm_status(pid: int) -> dict[str, int]:
    """VmPeak, VmSize, VmHWM and VmRSS of a process, in KiB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmPeak", "VmSize", "VmHWM", "VmRSS"):
            out[name] = int(value.split()[0])
    return out


def expected_fate(case: Case) -> str:
    """What the broker must do with this frame ("close", "answer", "may wait"), from its
    decode path."""
    try:
        request = decode_frame(case.frame)
    except PROTOCOL_ERRORS:
        return "close"
    except Exception:
        return "crash"
    api_key = struct.unpack_from(">h", case.frame, 0)[0]
    if request is NO_RESPONSE or (isinstance(request, ProduceRequestView) and request.acks == 0):
        return "may wait"  # acks=0 (Produce v0-2 are answered from the frame: the reply)
    if api_key in MAY_WAIT:
        return "may wait"
    return "answer"


def send_and_watch(
    address: tuple[str, int], data: bytes, deadline: float = DEADLINE
) -> tuple[str, float, bytes]:
    """Send ``data`` on a new connection: ("closed" | "answered" | "silent" | "not
    accepted", seconds, response frame). "not accepted": the connection itself failed or
    timed out (a broker whose event loop is stuck stops accepting once its backlog is
    full)."""
    started = time.monotonic()
    try:
        sock = socket.create_connection(address, timeout=deadline)
    except OSError:
        return "not accepted", time.monotonic() - started, b""
    with sock:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            return "closed", time.monotonic() - started, b""
        received = b""
        while True:
            left = started + deadline - time.monotonic()
            if left <= 0:
                return "silent", time.monotonic() - started, received
            sock.settimeout(left)
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                return "silent", time.monotonic() - started, received
            except ConnectionResetError:
                return "closed", time.monotonic() - started, received
            if not chunk:
                return "closed", time.monotonic() - started, received
            received += chunk
            if len(received) >= 4 and len(received) >= 4 + struct.unpack_from(">i", received)[0]:
                return "answered", time.monotonic() - started, received


def try_case(address: tuple[str, int], case: Case) -> tuple[str, float, str | None]:
    """("<expected fate> -> <outcome>", seconds, failure or None) for one case."""
    fate = expected_fate(case)
    outcome, seconds, response = send_and_watch(address, case.framed())
    failure = None
    if fate == "crash":
        failure = "the decode path raised an undocumented exception"
    elif outcome == "not accepted":
        failure = f"connection not accepted within {DEADLINE} s"
    elif outcome == "silent" and fate != "may wait":
        failure = f"neither closed nor answered within {DEADLINE} s"
    elif outcome == "answered" and fate == "close":
        failure = "answered a frame the decode path rejects"
    elif outcome == "answered" and response[4:8] != case.frame[4:8]:
        failure = "answered with another correlation id"
    if failure is not None:
        failure = f"{case.label}: {failure}\n    frame {case.frame.hex()}"
    return f"{fate} -> {outcome}", seconds, failure


def run_live(
    address: tuple[str, int], pid: int, log_path: Path, *, seed: int, count: int, workers: int = 8
) -> LiveRun:
    """Send ``count`` seeded bad frames, ``workers`` connections at a time."""
    run = LiveRun(seed)
    draw = RandomDraw(random.Random(seed))
    cases = [draw_case(draw) for _ in range(count)]
    log_start = log_path.stat().st_size
    run.vm_before = vm_status(pid)
    started = time.monotonic()
    with ThreadPoolExecutor(workers) as pool:
        for outcome, seconds, failure in pool.map(lambda case: try_case(address, case), cases):
            run.frames += 1
            run.outcomes[outcome] += 1
            if not outcome.endswith("silent"):
                run.slowest = max(run.slowest, seconds)
            if failure is not None:
                run.failures.append(failure)
    run.seconds = time.monotonic() - started
    run.vm_after = vm_status(pid)
    with log_path.open("rb") as log:
        log.seek(log_start)
        text = log.read().decode(errors="replace")
    run.log_lines = [line for line in text.splitlines() if BAD_LOG_LINE.search(line)]
    run.incidents = log_incidents(text)
    run.warnings = sum(" WARNING " in line for line in text.splitlines())
    return run


_RECORD = re.compile(r"\n(?=\d{4}-\d\d-\d\d )")
_OUR_FRAME = re.compile(
    r'File ".*?/(odradek/(?!broker/connection\.py)[^"]+)", line (\d+), in (\w+)'
)


def unexpected_incidents(run: LiveRun) -> list[str]:
    """The run's ERROR records that no known open finding accounts for."""
    return [
        f"{count} x {text}"
        for text, count in run.incidents.items()
        if not any(pattern.search(text) for pattern in KNOWN_OPEN)
    ]


def log_incidents(text: str) -> Counter[str]:
    """ERROR records of a broker log, as "exception (deepest odradek frame)": count."""
    incidents: Counter[str] = Counter()
    for record in _RECORD.split(text):
        if " ERROR " not in record and " CRITICAL " not in record and "Traceback" not in record:
            continue
        lines = record.rstrip().splitlines()
        frames = _OUR_FRAME.findall(record)
        where = f" ({frames[-1][0]}:{frames[-1][1]} in {frames[-1][2]})" if frames else ""
        incidents[lines[-1].strip()[:160] + where] += 1
    return incidents


def summary(run: LiveRun) -> dict[str, Any]:
    return {
        "seed": run.seed,
        "frames": run.frames,
        "outcomes": dict(run.outcomes),
        "failures": len(run.failures),
        "slowest_s": round(run.slowest, 3),
        "vm_peak_growth_kib": run.vm_after.get("VmPeak", 0) - run.vm_before.get("VmPeak", 0),
        "rss_peak_growth_kib": run.vm_after.get("VmHWM", 0) - run.vm_before.get("VmHWM", 0),
        "bad_log_lines": len(run.log_lines),
        "incidents": dict(run.incidents),
        "warnings": run.warnings,
        "seconds": round(run.seconds, 1),
    }
