"""The hand-written Fetch response encoder must match kio's encoding byte for byte."""

from __future__ import annotations

import uuid

from hypothesis import given, settings
from hypothesis import strategies as st

from odradek.broker.fetch_response import PartitionData, TopicData, encode_fetch_response
from odradek.broker.handlers.common import ZERO_DURATION
from odradek.protocol import codec
from odradek.protocol.errors import ErrorCode

partitions = st.builds(
    PartitionData,
    index=st.integers(0, 1000),
    error_code=st.sampled_from([0, 1, 3, 6]),
    high_watermark=st.integers(-1, 2**40),
    last_stable_offset=st.integers(-1, 2**40),
    log_start_offset=st.integers(-1, 2**40),
    aborted_transactions=st.none()
    | st.lists(st.tuples(st.integers(0, 2**40), st.integers(0, 2**40)), max_size=3),
    preferred_read_replica=st.just(-1),
    records=st.binary(max_size=200),
)
topics = st.lists(
    st.builds(
        TopicData,
        name=st.text(alphabet="abcxyz._-", min_size=1, max_size=20),
        topic_id=st.uuids(),
        partitions=st.lists(partitions, max_size=4),
    ),
    max_size=3,
)


def kio_encoding(version: int, data: list[TopicData], session_id: int) -> bytes:
    module = codec.response_module(1, version)
    responses = []
    for topic in data:
        parts = []
        for p in topic.partitions:
            aborted = None
            if p.aborted_transactions is not None:
                aborted = tuple(
                    codec.build(module.AbortedTransaction, producer_id=pid, first_offset=first)
                    for pid, first in p.aborted_transactions
                )
            parts.append(
                codec.build(
                    module.PartitionData,
                    partition_index=p.index,
                    error_code=ErrorCode(p.error_code),
                    high_watermark=p.high_watermark,
                    last_stable_offset=p.last_stable_offset,
                    log_start_offset=p.log_start_offset,
                    aborted_transactions=aborted,
                    preferred_read_replica=p.preferred_read_replica,
                    records=p.records,
                )
            )
        responses.append(
            codec.build(
                module.FetchableTopicResponse,
                topic=topic.name,
                topic_id=topic.topic_id,
                partitions=tuple(parts),
            )
        )
    response = codec.build(
        module.FetchResponse,
        throttle_time=ZERO_DURATION,
        error_code=ErrorCode.none,
        session_id=session_id,
        responses=tuple(responses),
    )
    return codec.encode(response)


@settings(max_examples=60)
@given(version=st.integers(4, 16), data=topics, session_id=st.integers(0, 2**31 - 1))
def test_matches_kio(version: int, data: list[TopicData], session_id: int) -> None:
    chunks = encode_fetch_response(version, data, session_id=session_id)
    ours = b"".join(part for part in chunks.parts if isinstance(part, bytes))
    assert ours == kio_encoding(version, data, session_id)
    assert chunks.size == len(ours)


class Region:
    """A stand-in file region: the encoder must leave it as its own chunk."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.position = 0
        self.size = len(data)
        self.handle = self

    def fileno(self) -> int:
        return -1

    def read(self) -> bytes:
        return self.data


def test_file_regions_stay_separate_chunks() -> None:
    region = Region(b"r" * 100)
    data = [TopicData("t", uuid.uuid4(), [PartitionData(0, 0, 5, 5, 0, None, -1, region)])]
    chunks = encode_fetch_response(12, data)
    assert region in chunks.parts
    flattened = b"".join(p if isinstance(p, bytes) else p.read() for p in chunks.parts)
    assert flattened == kio_encoding(
        12,
        [TopicData("t", data[0].topic_id, [PartitionData(0, 0, 5, 5, 0, None, -1, b"r" * 100)])],
        0,
    )
