"""The hot-path Produce parser reads exactly what kio reads, for every version it serves."""

from __future__ import annotations

import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from odradek.protocol import codec
from odradek.protocol.codec import DecodeError
from odradek.protocol.produce_request import parse_produce_request
from odradek.protocol.types import TopicPartition

partitions = st.lists(
    st.tuples(st.integers(-(2**31), 2**31 - 1), st.none() | st.binary(max_size=300)),
    max_size=4,
)
topics = st.lists(st.tuples(st.text(max_size=30), partitions), max_size=4)


def encode(version: int, transactional_id: str | None, acks: int, data: list) -> bytes:  # type: ignore[type-arg]
    module = codec.request_class(0, version)
    mod = __import__(module.__module__, fromlist=["x"])
    request = codec.build(
        module,
        transactional_id=transactional_id,
        acks=acks,
        timeout=datetime.timedelta(milliseconds=1500),
        topic_data=tuple(
            codec.build(
                mod.TopicProduceData,
                name=name,
                partition_data=tuple(
                    codec.build(mod.PartitionProduceData, index=index, records=records)
                    for index, records in parts
                ),
            )
            for name, parts in data
        ),
    )
    return codec.encode(request)


@settings(max_examples=80)
@given(
    version=st.integers(3, 12),
    transactional_id=st.none() | st.text(max_size=20),
    acks=st.sampled_from([-1, 0, 1]),
    data=topics,
    prefix=st.binary(max_size=8),
)
def test_matches_kio(
    version: int,
    transactional_id: str | None,
    acks: int,
    data: list,
    prefix: bytes,  # type: ignore[type-arg]
) -> None:
    body = encode(version, transactional_id, acks, data)
    frame = bytearray(prefix + body)
    parsed = parse_produce_request(frame, len(prefix), version)
    expected = codec.decode_request(0, version, bytes(frame), len(prefix))
    assert parsed.transactional_id == expected.transactional_id
    assert parsed.acks == expected.acks
    assert parsed.timeout_ms == 1500
    assert [
        (
            t.name,
            [(tp, None if records is None else bytes(records)) for tp, records in t.partitions],
        )
        for t in parsed.topics
    ] == [
        (t.name, [(TopicPartition(t.name, p.index), p.records) for p in t.partition_data])
        for t in expected.topic_data
    ]
    assert parsed.entries() == [entry for t in parsed.topics for entry in t.partitions]


def test_records_are_writable_views_into_the_frame() -> None:
    frame = bytearray(encode(9, None, 1, [("t", [(0, b"abcdef")])]))
    _, view = parse_produce_request(frame, 0, 9).entries()[0]
    assert view is not None and not view.readonly
    view[0:1] = b"X"
    assert b"Xbcdef" in frame


@settings(max_examples=200)
@given(version=st.integers(3, 12), data=topics, cut=st.integers(0, 10_000))
def test_truncated_frames_are_decode_errors(version: int, data: list, cut: int) -> None:  # type: ignore[type-arg]
    body = encode(version, "tx", 1, data)
    truncated = bytearray(body[: min(cut, len(body) - 1)])
    with pytest.raises(DecodeError):
        parse_produce_request(truncated, 0, version)


def test_lying_array_length_is_rejected_without_allocating() -> None:
    frame = bytearray(b"\xff\xff" + b"\x00\x01" + b"\x00\x00\x03\xe8" + b"\x7f\xff\xff\xff")
    with pytest.raises(DecodeError):
        parse_produce_request(frame, 0, 3)


@pytest.mark.parametrize("version", [3, 8, 9, 12])
@pytest.mark.parametrize(
    ("name_length", "records_size"),
    [(200, 10), (5, 1_000), (5, 20_000), (249, 3_000_000)],
)
def test_long_names_and_large_records_match_kio(
    version: int, name_length: int, records_size: int
) -> None:
    """Around the lengths the flexible parser reads inline (one-byte names, records
    lengths of one or two bytes): a 2-byte name length, 2-, 3- and 4-byte records
    lengths."""
    records = bytes(range(256)) * (records_size // 256) + b"x" * (records_size % 256)
    data = [("n" * name_length, [(7, records), (8, None)])]
    frame = bytearray(encode(version, "tx", -1, data))
    parsed = parse_produce_request(frame, 0, version)
    assert parsed.transactional_id == "tx"
    assert [(tp, None if r is None else bytes(r)) for tp, r in parsed.entries()] == [
        (TopicPartition("n" * name_length, 7), records),
        (TopicPartition("n" * name_length, 8), None),
    ]
