"""Decoding bad frames with memory measured: shared by the fuzz tests and the report.

A frame's outcome is one of

    decoded    the request parsed (the handler would run)
    rejected   FrameError, HeaderError or DecodeError, or RefusedError (unknown key or
               version): the broker closes the connection, as documented
    crash      any other exception: the broker would log a traceback

and its cost is the peak of Python allocations during the decode (``tracemalloc``), which
must stay within ``ALLOCATION_FACTOR`` times the frame's size plus ``ALLOCATION_SLACK``.
Native allocations (kio's Rust reader) are invisible to tracemalloc; ``native_memory``
checks them under an address-space limit instead.
"""

from __future__ import annotations

import random
import time
import tracemalloc
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from odradek.protocol.codec import DecodeError
from odradek.protocol.framing import FrameError
from odradek.protocol.headers import HeaderError
from tests.fuzz.frames import Case, RandomDraw, RefusedError, decode_frame, draw_case

PROTOCOL_ERRORS = (FrameError, HeaderError, DecodeError, RefusedError)
ALLOCATION_FACTOR = 10
ALLOCATION_SLACK = 16 * 1024
"""An exception and its traceback cost a few KiB whatever the frame (kio's first look at
a schema costs more: ``frames.targets`` decodes every version once beforehand); a length
honoured as declared costs from 32 KiB (INT16_MAX) to gigabytes."""


def allocation_budget(frame_size: int) -> int:
    return ALLOCATION_FACTOR * frame_size + ALLOCATION_SLACK


@dataclass(frozen=True, slots=True)
class Outcome:
    kind: str
    """"decoded", "rejected" or "crash"."""
    detail: str
    """The exception's type and message, or the decoded value's type."""
    peak: int
    """Peak Python allocation during the decode, in bytes."""


def decode_measured(frame: bytes) -> Outcome:
    """Decode ``frame`` as the broker does, with its peak Python allocation."""
    with measuring() as peak:
        try:
            value = decode_frame(frame)
        except PROTOCOL_ERRORS as exc:
            kind, detail = "rejected", f"{type(exc).__name__}: {exc}"
        except Exception as exc:
            kind, detail = "crash", f"{type(exc).__name__}: {exc}"
        else:
            kind, detail = "decoded", type(value).__name__
    return Outcome(kind, detail, peak[0])


@contextmanager
def measuring() -> Iterator[list[int]]:
    """Peak Python allocation in the block, in bytes, in the list's only item afterwards.

    tracemalloc runs only inside the block: traced, everything else (hypothesis too)
    would run several times slower.
    """
    result = [0]
    outer = tracemalloc.is_tracing()
    if not outer:
        tracemalloc.start()
    tracemalloc.reset_peak()
    before = tracemalloc.get_traced_memory()[0]
    try:
        yield result
    finally:
        result[0] = tracemalloc.get_traced_memory()[1] - before
        if not outer:
            tracemalloc.stop()


@dataclass
class DecoderRun:
    """What ``run_decoder`` saw, for ROBUSTNESS.md."""

    seed: int
    frames: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    targets: set[str] = field(default_factory=set)
    crashes: list[tuple[str, str, str]] = field(default_factory=list)
    """(case label, frame hex, exception) of every crash."""
    over_budget: list[tuple[str, int, int]] = field(default_factory=list)
    """(case label, frame size, peak) of every frame over its allocation budget."""
    peaks: list[int] = field(default_factory=list)
    """Every frame's peak Python allocation, in bytes."""
    max_peak: int = 0
    max_peak_frame: int = 0
    seconds: float = 0.0


def run_decoder(seed: int, count: int) -> DecoderRun:
    """Decode ``count`` seeded cases in this process, every outcome and peak recorded."""
    run = DecoderRun(seed)
    draw = RandomDraw(random.Random(seed))
    started = time.monotonic()
    for _ in range(count):
        case = draw_case(draw)
        record(run, case, decode_measured(case.frame))
    run.seconds = time.monotonic() - started
    return run


def record(run: DecoderRun, case: Case, outcome: Outcome) -> None:
    run.frames += 1
    run.targets.add(case.target.name)
    run.outcomes[outcome.kind] += 1
    run.peaks.append(outcome.peak)
    if outcome.kind == "crash":
        run.crashes.append((case.label, case.frame.hex(), outcome.detail))
    size = len(case.frame) + 4
    if outcome.peak > allocation_budget(size):
        run.over_budget.append((case.label, size, outcome.peak))
    if outcome.peak > run.max_peak:
        run.max_peak, run.max_peak_frame = outcome.peak, size
