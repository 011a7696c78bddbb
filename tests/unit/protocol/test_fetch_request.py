"""The follower's hand-encoded Fetch v12 is byte for byte what kio writes for the same
request, and kio reads it back field for field; the hand-written Fetch parser reads what
kio reads, for every version the broker serves."""

from __future__ import annotations

import datetime
import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kio.schema.fetch.v12 import request as fetch_v12
from kio.static.primitive import i8, i32, i32Timedelta, i64

from odradek.protocol import codec
from odradek.protocol.codec import DecodeError
from odradek.protocol.fetch_request import (
    FollowerFetchPartition,
    encode_follower_fetch,
    parse_fetch_request,
)

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


# -- the parser ------------------------------------------------------------------------------

fetch_partitions = st.lists(
    st.tuples(int32, int32, int64, int32, int64, int32),  # index, epoch, offset, ..., max bytes
    max_size=4,
)
fetch_topics = st.lists(st.tuples(st.text(max_size=30), st.uuids(), fetch_partitions), max_size=4)
forgotten = st.lists(
    st.tuples(st.text(max_size=10), st.uuids(), st.lists(int32, max_size=3)), max_size=2
)


def kio_fetch(version: int, fields: dict[str, Any], data: list[Any], gone: list[Any]) -> bytes:
    cls = codec.request_class(1, version)
    module = __import__(cls.__module__, fromlist=["x"])
    extra: dict[str, Any] = {}
    if version >= 15:
        extra["replica_state"] = codec.build(
            module.ReplicaState, replica_id=fields["replica_id"], replica_epoch=7
        )
    if version >= 7:
        extra["forgotten_topics_data"] = tuple(
            codec.build(module.ForgottenTopic, topic=name, topic_id=topic_id, partitions=parts)
            for name, topic_id, parts in gone
        )
    request = codec.build(
        cls,
        cluster_id=fields["cluster_id"],
        replica_id=fields["replica_id"],
        max_wait=datetime.timedelta(milliseconds=fields["max_wait_ms"]),
        min_bytes=fields["min_bytes"],
        max_bytes=fields["max_bytes"],
        isolation_level=fields["isolation_level"],
        session_id=fields["session_id"],
        session_epoch=fields["session_epoch"],
        topics=tuple(
            codec.build(
                module.FetchTopic,
                topic=name,
                topic_id=topic_id,
                partitions=tuple(
                    codec.build(
                        module.FetchPartition,
                        partition=p[0],
                        current_leader_epoch=p[1],
                        fetch_offset=p[2],
                        last_fetched_epoch=p[3],
                        log_start_offset=p[4],
                        partition_max_bytes=p[5],
                    )
                    for p in parts
                ),
            )
            for name, topic_id, parts in data
        ),
        rack_id=fields["rack_id"],
        **extra,
    )
    return codec.encode(request)


request_fields = st.fixed_dictionaries(
    {
        "cluster_id": st.none() | st.text(max_size=10),
        "replica_id": st.integers(-1, 2**31 - 1),
        "max_wait_ms": st.integers(0, 2**31 - 1),
        "min_bytes": int32,
        "max_bytes": int32,
        "isolation_level": st.sampled_from([0, 1]),
        "session_id": int32,
        "session_epoch": int32,
        "rack_id": st.text(max_size=10),
    }
)


@settings(max_examples=150)
@given(
    version=st.integers(4, 16),
    fields=request_fields,
    data=fetch_topics,
    gone=forgotten,
    prefix=st.binary(max_size=8),
)
def test_parser_matches_kio(
    version: int, fields: dict[str, Any], data: list[Any], gone: list[Any], prefix: bytes
) -> None:
    frame = bytearray(prefix + kio_fetch(version, fields, data, gone))
    parsed = parse_fetch_request(frame, len(prefix), version)
    expected = codec.decode_request(1, version, bytes(frame), len(prefix))
    replica_id = expected.replica_state.replica_id if version >= 15 else expected.replica_id
    assert parsed.replica_id == replica_id
    assert parsed.max_wait_ms == expected.max_wait // datetime.timedelta(milliseconds=1)
    assert parsed.min_bytes == expected.min_bytes
    assert parsed.max_bytes == expected.max_bytes
    assert parsed.isolation_level == expected.isolation_level
    assert parsed.session_id == getattr(expected, "session_id", 0)
    assert parsed.session_epoch == getattr(expected, "session_epoch", -1)
    assert [(t.topic, t.topic_id, [tuple(p) for p in t.partitions]) for t in parsed.topics] == [
        (
            getattr(t, "topic", ""),
            getattr(t, "topic_id", None),
            [
                (
                    p.partition,
                    getattr(p, "current_leader_epoch", -1),
                    p.fetch_offset,
                    p.partition_max_bytes,
                )
                for p in t.partitions
            ],
        )
        for t in expected.topics
    ]


@settings(max_examples=200)
@given(
    version=st.integers(4, 16), fields=request_fields, data=fetch_topics, cut=st.integers(0, 2000)
)
def test_truncated_fetch_frames_are_decode_errors(
    version: int, fields: dict[str, Any], data: list[Any], cut: int
) -> None:
    body = kio_fetch(version, fields, data, [])
    with pytest.raises(DecodeError, match=f"FetchRequest v{version}"):
        parse_fetch_request(bytearray(body[: min(cut, len(body) - 1)]), 0, version)


def test_lying_topic_count_is_rejected_without_allocating() -> None:
    body = bytearray(kio_fetch(11, _fields(), [], []))
    body[25:29] = (2**31 - 1).to_bytes(4, "big")  # the topics count, after 25 fixed bytes
    with pytest.raises(DecodeError, match="array"):
        parse_fetch_request(body, 0, 11)


def test_unknown_tagged_fields_are_skipped_and_replica_state_read() -> None:
    body = bytearray(kio_fetch(16, _fields(replica_id=3), [("", uuid.UUID(int=5), [])], []))
    assert parse_fetch_request(body, 0, 16).replica_id == 3
    # Add an unknown tag (9, two bytes) after ReplicaState: still read, still replica 3.
    count_at = body.rindex(b"\x01\x0d")  # one tagged field: tag 1, 13 bytes of ReplicaState
    body[count_at - 1] += 1
    body += b"\x09\x02ab"
    assert parse_fetch_request(body, 0, 16).replica_id == 3


def test_tag_1_before_v15_is_an_unknown_tag_not_replica_state() -> None:
    body = bytearray(kio_fetch(12, _fields(replica_id=-1), [], []))
    assert body[-1] == 0  # no tagged fields
    body[-1:] = b"\x01\x01\x04\x00\x00\x00\x07"  # tag 1 with 4 bytes: replica 7 if read
    assert parse_fetch_request(body, 0, 12).replica_id == -1


def _fields(**changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "cluster_id": None, "replica_id": -1, "max_wait_ms": 500, "min_bytes": 1,
        "max_bytes": 52428800, "isolation_level": 1, "session_id": 0, "session_epoch": -1,
        "rack_id": "",
    }  # fmt: skip
    fields.update(changes)
    return fields
