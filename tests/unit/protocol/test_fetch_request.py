"""The follower's hand-encoded Fetch v12 is byte for byte what kio writes for the same
request, and kio reads it back field for field."""

from __future__ import annotations

import datetime

from hypothesis import given
from hypothesis import strategies as st
from kio.schema.fetch.v12 import request as fetch_v12
from kio.static.primitive import i8, i32, i32Timedelta, i64

from odradek.protocol import codec
from odradek.protocol.fetch_request import FollowerFetchPartition, encode_follower_fetch

int32 = st.integers(-(2**31), 2**31 - 1)
int64 = st.integers(-(2**63), 2**63 - 1)
partitions = st.lists(
    st.builds(FollowerFetchPartition, int32, int32, int64, int64, int32, int32), max_size=40
)
topics = st.lists(st.tuples(st.text(max_size=300), partitions), max_size=5)
Topics = list[tuple[str, list[FollowerFetchPartition]]]


def kio_request(
    replica_id: int,
    wait_ms: int,
    max_bytes: int,
    topics: Topics,
) -> fetch_v12.FetchRequest:
    return fetch_v12.FetchRequest(
        cluster_id=None,
        replica_id=i32(replica_id),  # type: ignore[arg-type]
        max_wait=i32Timedelta.parse(datetime.timedelta(milliseconds=wait_ms)),
        min_bytes=i32(1),
        max_bytes=i32(max_bytes),
        isolation_level=i8(0),
        session_id=i32(0),
        session_epoch=i32(-1),
        topics=tuple(
            fetch_v12.FetchTopic(
                topic=name,  # type: ignore[arg-type]
                partitions=tuple(
                    fetch_v12.FetchPartition(
                        partition=i32(p.partition),
                        current_leader_epoch=i32(p.current_leader_epoch),
                        fetch_offset=i64(p.fetch_offset),
                        last_fetched_epoch=i32(p.last_fetched_epoch),
                        log_start_offset=i64(p.log_start_offset),
                        partition_max_bytes=i32(p.partition_max_bytes),
                    )
                    for p in parts
                ),
            )
            for name, parts in topics
        ),
        forgotten_topics_data=(),
        rack_id="",
    )


@given(
    replica_id=st.integers(0, 2**31 - 1),
    wait_ms=st.integers(0, 2**31 - 1),
    max_bytes=int32,
    topics=topics,
)
def test_same_bytes_as_kio(
    replica_id: int,
    wait_ms: int,
    max_bytes: int,
    topics: Topics,
) -> None:
    ours = encode_follower_fetch(
        replica_id=replica_id, max_wait_ms=wait_ms, min_bytes=1, max_bytes=max_bytes,
        topics=topics,
    )  # fmt: skip
    expected = kio_request(replica_id, wait_ms, max_bytes, topics)
    assert ours == codec.encode(expected)
    decoded = codec.decode_request(1, 12, bytearray(ours), 0)
    assert decoded == expected
