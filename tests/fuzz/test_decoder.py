"""The broker's decode path under bad frames, for every request version it serves.

Properties: only the documented exceptions (FrameError, HeaderError, DecodeError, or
the connection refused for an unknown key or version) come out, and no decode allocates
in proportion to a declared length (CVE-2022-34917): the Python allocation peak stays
within ``allocation_budget`` of the frame's size. Derandomized, so CI runs the same
cases every time; ``python -m tests.fuzz.report`` runs many more.
"""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from odradek.protocol.framing import FrameDecoder, FrameError
from tests.fuzz.campaign import PROTOCOL_ERRORS, allocation_budget, decode_measured, measuring
from tests.fuzz.frames import (
    INT32_MAX,
    Case,
    HypothesisDraw,
    Target,
    decode_frame,
    draw_case,
    targets,
)

FUZZ = settings(
    max_examples=12,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.mark.parametrize("target", targets(), ids=lambda target: target.name.replace(" ", "-"))
@FUZZ
@given(data=st.data())
def test_bad_frames_are_rejected_cheaply(target: Target, data: st.DataObject) -> None:
    case = draw_case(HypothesisDraw(data), target)
    outcome = decode_measured(case.frame)
    assert outcome.kind != "crash", f"{case.label}: {outcome.detail}\nframe {case.frame.hex()}"
    size = len(case.frame) + 4
    assert outcome.peak <= allocation_budget(size), (
        f"{case.label}: {outcome.peak} bytes allocated decoding a {size}-byte frame"
    )


SIZE_LIES = ("exact", "exact", "exact", "negative", "tiny", "over-max", "int32-max", "short")
MAX_SIZE = 1 << 20


@settings(FUZZ, max_examples=150)
@given(data=st.data())
def test_byte_streams_with_lying_frame_sizes(data: st.DataObject) -> None:
    """Several bad frames on one connection, size prefixes lying, split anywhere."""
    draw = HypothesisDraw(data)
    cases: list[Case] = [draw_case(draw) for _ in range(draw.integer(1, 4))]
    stream = b""
    for case in cases:
        lie = draw.choice(SIZE_LIES)
        size = {
            "exact": len(case.frame),
            "negative": draw.choice((-1, -(2**31), -8)),
            "tiny": draw.integer(0, 7),
            "over-max": MAX_SIZE + 1,
            "int32-max": INT32_MAX,
            "short": max(len(case.frame) - draw.integer(1, 8), 8),
        }[lie]
        stream += struct.pack(">i", size) + case.frame
    chunks = []
    position = 0
    while position < len(stream):
        chunk = draw.integer(1, 64)
        chunks.append(stream[position : position + chunk])
        position += chunk
    decoder = FrameDecoder(MAX_SIZE)
    with measuring() as peak:
        try:
            for chunk in chunks:
                for frame in decoder.feed(chunk):
                    # The broker closes the connection on a protocol error; go on regardless.
                    with contextlib.suppress(*PROTOCOL_ERRORS):
                        decode_frame(frame)
        except FrameError:
            pass
    assert peak[0] <= allocation_budget(len(stream))


def test_a_declared_frame_size_allocates_nothing() -> None:
    """A 100 MB size prefix and 1 KB of body: only the bytes received are kept."""
    decoder = FrameDecoder(100 * 1024 * 1024)
    with measuring() as peak:
        assert decoder.feed(struct.pack(">i", 100 * 1024 * 1024)) == []
        for _ in range(16):
            assert decoder.feed(b"\x00" * 64) == []
    assert peak[0] < 16 * 1024
    assert decoder.buffered == 4 + 1024
