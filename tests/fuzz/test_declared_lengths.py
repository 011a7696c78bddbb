"""The declared-length check: never in the way of a valid request, always in the way of a
lying one. Regression cases for what the fuzzer found are kept here, one test each."""

from __future__ import annotations

import struct
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st
from kio.static.primitive import Records

from odradek.protocol import codec
from odradek.protocol.codec import DecodeError
from odradek.protocol.declared_lengths import LengthError, check_request, walk
from tests.fuzz.frames import Target, decode_frame, header, targets, uvarint
from tests.support.requests import build_request

st.register_type_strategy(Records, st.binary(max_size=64).map(Records))

KIO_TARGETS = [target for target in targets() if target.path != "legacy"]


def _walk_to_end(cls: Any, body: bytes) -> int:
    return walk(cls, body, 0)


@pytest.mark.parametrize("target", KIO_TARGETS, ids=lambda target: target.name.replace(" ", "-"))
def test_walk_ends_where_kio_ends(target: Target) -> None:
    cls = codec.request_class(target.api_key, target.version)
    _entity, size = codec._reader(cls)(target.body, 0)
    assert _walk_to_end(cls, target.body) == size == len(target.body)
    check_request(cls, target.body, 0)


@settings(
    max_examples=150,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_any_valid_request_passes_the_check(data: st.DataObject) -> None:
    """Random valid entities (kio's hypothesis strategies): many elements, long strings,
    tagged fields set; the walk accepts them and ends where kio's reader ends."""
    target = data.draw(st.sampled_from(KIO_TARGETS))
    cls = codec.request_class(target.api_key, target.version)
    body = codec.encode(data.draw(st.from_type(cls)))
    check_request(cls, body, 0)
    try:
        _entity, size = codec._reader(cls)(body, 0)
    except ValueError as exc:
        # kio reads int64 millisecond durations into datetime.timedelta, whose range
        # ends near 2^56 ms; its own strategies draw up to 2^63. Not a walk question.
        if "timedelta" not in str(exc):
            raise
        reject()
    assert _walk_to_end(cls, body) == size == len(body)


# -- findings -------------------------------------------------------------------------------


def _rejected(frame: bytes) -> str:
    started = time.monotonic()
    with pytest.raises(DecodeError) as caught:
        decode_frame(frame)
    assert time.monotonic() - started < 0.1
    return str(caught.value)


def test_compact_array_count_of_2_pow_32_is_rejected_before_kio_reserves_32_gib() -> None:
    """Metadata v12, topics = uvarint 2^32 - 1 (count 2^32 - 2): kio's reader called
    ``Vec::with_capacity(2^32 - 2)``, the allocation failed and Rust aborted the broker
    process. A 30-byte frame killed the broker."""
    frame = header(3, 12, flexible=True) + uvarint(2**32 - 1) + b"\x00" * 4
    assert "array of 4294967294 elements" in _rejected(frame)


def test_legacy_array_count_int32_max_is_rejected_before_kio_reserves_16_gib() -> None:
    """Metadata v4, topics count INT32_MAX: kio reserved 16 GiB of address space (fatal
    under an address-space limit or strict overcommit) before reading one element."""
    frame = header(3, 4, flexible=False) + struct.pack(">i", 2**31 - 1) + b"\x00" * 4
    assert "array of 2147483647 elements" in _rejected(frame)


def test_int32_array_count_beyond_the_frame_is_rejected() -> None:
    """Fetch v7 ends with its forgotten topics: "matrix", partitions [0] (int32 array)."""
    body = _body(1, 7)
    assert body.endswith(struct.pack(">ii", 1, 0))
    lying = body[:-8] + struct.pack(">i", 3) + b"\x00" * 8  # three int32s in 8 bytes
    with pytest.raises(DecodeError, match="array of 3 elements of at least 4 bytes"):
        codec.decode_request(1, 7, lying, 0)


def _body(api_key: int, version: int) -> bytes:
    return codec.encode(build_request(codec.request_class(api_key, version)))


@pytest.mark.parametrize(
    "tagged",
    [
        pytest.param(uvarint(1) + uvarint(0) + uvarint(2**35 - 1) + b"\x00", id="size-2^35"),
        pytest.param(uvarint(1) + uvarint(0) + uvarint(1000) + b"\x00", id="size-past-end"),
        pytest.param(uvarint(2**32 - 1) + b"\x00\x00", id="count-2^32"),
        pytest.param(uvarint(1) + uvarint(99) + uvarint(1) + b"\x00", id="unknown-tag"),
        pytest.param(uvarint(1) + uvarint(0) + uvarint(3) + b"\x01\x00\x00", id="size-lies"),
        pytest.param(b"\xff\xff\xff\xff\xff\x01", id="varint-6-bytes"),
    ],
)
def test_hostile_tagged_fields_are_rejected(tagged: bytes) -> None:
    """Fetch v12 ends with its tagged fields (cluster_id "x" as tag 0); Heartbeat v4 with
    none. The walk rejects each; so does the decode path (kio, Heartbeat has no arrays)."""
    body = _body(1, 12)
    assert body.endswith(b"\x01\x00\x02\x02x")
    with pytest.raises(LengthError):
        _walk_to_end(codec.request_class(1, 12), body[:-5] + tagged)
    body = _body(12, 4)
    assert body.endswith(b"\x00")
    with pytest.raises(DecodeError):
        codec.decode_request(12, 4, body[:-1] + tagged, 0)


def test_produce_v0_negative_topic_name_length_no_longer_loops() -> None:
    """Produce v0-2 (answered from the raw frame): a topic name length of -6 moved the
    walk back to the partition count it had just read, so 2^31 - 1 topics went round the
    same 6 bytes, blocking the event loop for minutes and growing the response by 4 bytes
    a turn (8 GiB). An 18-byte body did it."""
    body = struct.pack(">hii", 1, 1000, 2**31 - 1) + struct.pack(">hih", 0, -1, -6)
    assert "Produce" in _rejected(header(0, 2, flexible=False) + body)


@pytest.mark.parametrize("count", [2**31 - 1, -2])
def test_produce_v0_counts_are_held_against_the_body(count: int) -> None:
    body = struct.pack(">hii", 1, 1000, count) + b"\x00" * 12
    assert "array of" in _rejected(header(0, 1, flexible=False) + body)
