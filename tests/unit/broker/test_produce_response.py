"""The hand-written Produce response encoder must match kio's encoding byte for byte."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from kio.serial import entity_reader

from odradek.broker.handlers.common import ZERO_DURATION, millis_to_datetime
from odradek.broker.produce_response import MAX_VERSION, encode_produce_response
from odradek.protocol import codec
from odradek.protocol.errors import ErrorCode
from odradek.replication.replica_manager import ProduceResult

results = st.builds(
    ProduceResult,
    error=st.sampled_from(
        [ErrorCode.none, ErrorCode.not_leader_or_follower, ErrorCode.invalid_record]
    ),
    base_offset=st.integers(-1, 2**50),
    log_append_time=st.just(-1) | st.integers(0, 2**42),
    log_start_offset=st.integers(-1, 2**50),
    message=st.none() | st.text(max_size=40),
)
topics = st.lists(
    st.tuples(
        st.text(alphabet="abcxyz._-é", min_size=1, max_size=20),
        st.lists(st.tuples(st.integers(0, 10_000), results), max_size=4),
    ),
    max_size=3,
)


def kio_encoding(version: int, data: list[tuple[str, list[tuple[int, ProduceResult]]]]) -> bytes:
    module = codec.response_module(0, version)
    responses = tuple(
        codec.build(
            module.TopicProduceResponse,
            name=name,
            partition_responses=tuple(
                codec.build(
                    module.PartitionProduceResponse,
                    index=index,
                    error_code=result.error,
                    base_offset=result.base_offset,
                    log_append_time=millis_to_datetime(result.log_append_time),
                    log_start_offset=result.log_start_offset,
                    record_errors=(),
                    error_message=result.message,
                )
                for index, result in partitions
            ),
        )
        for name, partitions in data
    )
    return codec.encode(
        codec.build(module.ProduceResponse, responses=responses, throttle_time=ZERO_DURATION)
    )


@settings(max_examples=60, deadline=None)
@given(data=topics)
def test_every_version_matches_kio(data: list[tuple[str, list[tuple[int, ProduceResult]]]]) -> None:
    for version in range(3, MAX_VERSION + 1):
        assert encode_produce_response(version, data) == kio_encoding(version, data), version


def test_one_partition_answer_decodes_with_kio() -> None:
    ok = ProduceResult(base_offset=42, log_start_offset=0)
    for version in range(3, MAX_VERSION + 1):
        body = encode_produce_response(version, [("t", [(0, ok)])])
        cls = codec.response_class(0, version)
        decoded, size = entity_reader(cls)(body, 0)
        assert size == len(body)
        (topic,) = decoded.responses
        (partition,) = topic.partition_responses
        assert (topic.name, partition.index, partition.base_offset) == ("t", 0, 42)
        assert partition.error_code == ErrorCode.none


def test_long_names_and_many_partitions_match_kio() -> None:
    """Counts and name lengths past the one-byte varints written inline."""
    ok = ProduceResult(base_offset=3, log_start_offset=0)
    data = [("n" * 200, [(index, ok) for index in range(200)]), ("t", [(0, ok)])]
    for version in range(3, MAX_VERSION + 1):
        assert encode_produce_response(version, data) == kio_encoding(version, data), version
