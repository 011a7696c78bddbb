"""Fetch requests by hand: a follower's (v12) encoded, and every served version (v4-v16)
parsed.

Parsing: kio's generic reader cost a consumer's one-partition fetch about 30k
instructions (a checked entity per struct, a ``timedelta`` for the wait, a ``UUID`` per
topic); a consumer at the log end sends one per record it receives. ``parse_fetch_request``
reads the fields the broker uses into named tuples, checks every length against the
frame as kio does, and skips the rest (forgotten topics, rack id, cluster id, unknown
tagged fields). The unit tests hold it against kio's encoder for every version.

Encoding a follower's request:

A follower sends one after every answer, naming every partition it follows from that
leader; built as kio entities (each field a checked phantom type) and encoded by kio's
generic writer, that request was a quarter of a follower's CPU. The layout, all big
endian, flexible (compact lengths are unsigned varints of length + 1)::

    replica_id int32, max_wait_ms int32, min_bytes int32, max_bytes int32,
    isolation_level int8, session_id int32, session_epoch int32,
    topics: [topic compact string,
             partitions: [partition int32, current_leader_epoch int32,
                          fetch_offset int64, last_fetched_epoch int32,
                          log_start_offset int64, partition_max_bytes int32, tags],
             tags],
    forgotten_topics_data: [], rack_id compact string, tags

The follower's ``cluster_id`` (tagged field 0) is left out, as kio leaves a null one out.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Iterable, Sequence
from typing import Final, NamedTuple

from odradek.protocol.codec import DecodeError
from odradek.protocol.headers import unsigned_varint
from odradek.protocol.reader import (
    array_length,
    int32,
    short,
    skip_tagged_fields,
    string,
    tagged_field,
    uuid_at,
)
from odradek.protocol.types import new_tuple

API_KEY: Final = 1
VERSION: Final = 12

_HEAD = struct.Struct(">iiiibii")
_PARTITION = struct.Struct(">iiqiqi")
_NO_TAGS: Final = b"\x00"
_EMPTY_ARRAY: Final = b"\x01"
_EMPTY_STRING: Final = b"\x01"
_NO_SESSION: Final = (0, -1)
"""session id 0 and epoch -1: a full fetch, no session (KIP-227)."""


class FollowerFetchPartition(NamedTuple):
    partition: int
    current_leader_epoch: int
    fetch_offset: int
    log_start_offset: int
    partition_max_bytes: int
    last_fetched_epoch: int = -1


def encode_follower_fetch(
    *,
    replica_id: int,
    max_wait_ms: int,
    min_bytes: int,
    max_bytes: int,
    topics: Iterable[tuple[str, Sequence[FollowerFetchPartition]]],
) -> bytes:
    """The body of a Fetch v12 request from follower ``replica_id`` (after the header)."""
    out = bytearray(_HEAD.pack(replica_id, max_wait_ms, min_bytes, max_bytes, 0, *_NO_SESSION))
    topic_list = list(topics)
    out += unsigned_varint(len(topic_list) + 1)
    pack = _PARTITION.pack
    for name, partitions in topic_list:
        raw = name.encode()
        out += unsigned_varint(len(raw) + 1)
        out += raw
        out += unsigned_varint(len(partitions) + 1)
        for p in partitions:
            out += pack(
                p.partition,
                p.current_leader_epoch,
                p.fetch_offset,
                p.last_fetched_epoch,
                p.log_start_offset,
                p.partition_max_bytes,
            )
            out += _NO_TAGS
        out += _NO_TAGS
    out += _EMPTY_ARRAY  # forgotten_topics_data
    out += _EMPTY_STRING  # rack_id ""
    out += _NO_TAGS
    return bytes(out)


# -- parsing ---------------------------------------------------------------------------------

MIN_VERSION: Final = 4
MAX_VERSION: Final = 16
FLEXIBLE_FROM: Final = 12
TOPIC_ID_FROM: Final = 13
REPLICA_STATE_FROM: Final = 15
"""From v15 the replica id moved into the ReplicaState tagged field (KIP-903)."""
_REPLICA_STATE_TAG: Final = 1
_NO_LIMIT: Final = 0x7FFFFFFF

_HEAD_V7 = struct.Struct(">iiiibii")  # replica id .. session epoch (v7-v14)
_HEAD_V15 = struct.Struct(">iiibii")  # the same without the replica id (v15+)
_HEAD_V4 = struct.Struct(">iiiib")  # replica id .. isolation level (v4-v6)


class FetchPartitionView(NamedTuple):
    partition: int
    current_leader_epoch: int
    fetch_offset: int
    partition_max_bytes: int


class FetchTopicView(NamedTuple):
    topic: str
    """The name (v4-v12); empty from v13, where ``topic_id`` names the topic."""
    topic_id: uuid.UUID | None
    partitions: list[FetchPartitionView]


class FetchRequestView(NamedTuple):
    replica_id: int
    """-1 for a consumer; a follower's broker id."""
    max_wait_ms: int
    min_bytes: int
    max_bytes: int
    isolation_level: int
    session_id: int
    session_epoch: int
    topics: list[FetchTopicView]


# The partition fields per version, up to the partition max bytes; a few positions in
# each are read (index, current leader epoch, fetch offset, max bytes).
_PARTITION_V4 = struct.Struct(">iqi")  # partition, fetch_offset, partition_max_bytes
_PARTITION_V5 = struct.Struct(">iqqi")  # + log_start_offset
_PARTITION_V9 = struct.Struct(">iiqqi")  # + current_leader_epoch
_PARTITION_V12 = struct.Struct(">iiqiqi")  # + last_fetched_epoch


def parse_fetch_request(frame: bytes | bytearray, offset: int, version: int) -> FetchRequestView:
    """The Fetch request in ``frame`` after its header (``offset``)."""
    if not MIN_VERSION <= version <= MAX_VERSION:
        raise DecodeError(f"FetchRequest v{version} is not parsed here")
    try:
        return _parse(memoryview(frame), offset, version)
    except DecodeError as exc:
        raise DecodeError(f"FetchRequest v{version}: {exc}") from None


def _parse(data: memoryview, position: int, version: int) -> FetchRequestView:
    end = len(data)
    flexible = version >= FLEXIBLE_FROM
    replica_id = -1
    session_id, session_epoch = 0, -1
    max_bytes = _NO_LIMIT
    if version >= REPLICA_STATE_FROM:
        if position + _HEAD_V15.size > end:
            raise short("the request's fixed fields")
        max_wait_ms, min_bytes, max_bytes, isolation, session_id, session_epoch = (
            _HEAD_V15.unpack_from(data, position)
        )
        position += _HEAD_V15.size
    elif version >= 7:
        if position + _HEAD_V7.size > end:
            raise short("the request's fixed fields")
        replica_id, max_wait_ms, min_bytes, max_bytes, isolation, session_id, session_epoch = (
            _HEAD_V7.unpack_from(data, position)
        )
        position += _HEAD_V7.size
    else:
        if position + _HEAD_V4.size > end:
            raise short("the request's fixed fields")
        replica_id, max_wait_ms, min_bytes, max_bytes, isolation = _HEAD_V4.unpack_from(
            data, position
        )
        position += _HEAD_V4.size
    if version >= 12:
        layout, epoch_at, offset_at, max_at = _PARTITION_V12, 1, 2, 5
    elif version >= 9:
        layout, epoch_at, offset_at, max_at = _PARTITION_V9, 1, 2, 4
    elif version >= 5:
        layout, epoch_at, offset_at, max_at = _PARTITION_V5, -1, 1, 3
    else:
        layout, epoch_at, offset_at, max_at = _PARTITION_V4, -1, 1, 2
    layout_size = layout.size
    unpack = layout.unpack_from
    topics = []
    # Flexible versions: the common shapes (one-byte counts, no tagged fields, no
    # forgotten topics, an empty rack id) are read inline; anything else goes through
    # the helpers, which check it as strictly.
    byte = data[position] if flexible and position < end else 0
    if 0 < byte < 0x80:
        topic_count = byte - 1
        position += 1
        if position + topic_count > end:
            raise short("an array")
    else:
        topic_count, position = array_length(data, position, end, flexible)
    for _ in range(topic_count):
        topic_id: uuid.UUID | None
        if version >= TOPIC_ID_FROM:
            name = ""
            topic_id, position = uuid_at(data, position, end)
        else:
            read, position = string(data, position, end, flexible)
            assert read is not None  # null is refused unless nullable
            name, topic_id = read, None
        partitions = []
        byte = data[position] if flexible and position < end else 0
        if 0 < byte < 0x80:
            partition_count = byte - 1
            position += 1
            if position + partition_count > end:
                raise short("an array")
        else:
            partition_count, position = array_length(data, position, end, flexible)
        for _ in range(partition_count):
            if position + layout_size > end:
                raise short("a partition")
            fields = unpack(data, position)
            position += layout_size
            if flexible:
                if position < end and not data[position]:
                    position += 1
                else:
                    position = skip_tagged_fields(data, position, end)
            partitions.append(
                new_tuple(
                    FetchPartitionView,
                    (
                        fields[0],
                        fields[epoch_at] if epoch_at > 0 else -1,
                        fields[offset_at],
                        fields[max_at],
                    ),
                )
            )
        if flexible:
            if position < end and not data[position]:
                position += 1
            else:
                position = skip_tagged_fields(data, position, end)
        topics.append(new_tuple(FetchTopicView, (name, topic_id, partitions)))
    if flexible:
        if position + 2 < end and data[position] == 1 and data[position + 1] == 1:
            position += 2  # no forgotten topics (v7+) and an empty rack id (v11+)
        else:
            position = _skip_forgotten_topics(data, position, end, version, flexible)
            _rack_id, position = string(data, position, end, flexible)
        if position >= end or data[position]:  # else no tagged fields: the usual case
            # The replica id is in ReplicaState (tag 1) from v15; other tags (the cluster
            # id, tags unknown here) are skipped.
            wanted = _REPLICA_STATE_TAG if version >= REPLICA_STATE_FROM else -1
            state, _ = tagged_field(data, position, end, wanted)
            if state is not None:
                # ReplicaState: replica_id int32, replica_epoch int64, tagged fields.
                replica_id, _ = int32(data, state[0], state[1])
    else:
        if version >= 7:
            position = _skip_forgotten_topics(data, position, end, version, flexible)
        if version >= 11:
            _rack_id, position = string(data, position, end, flexible)
    return new_tuple(
        FetchRequestView,
        (
            replica_id,
            max_wait_ms,
            min_bytes,
            max_bytes,
            isolation,
            session_id,
            session_epoch,
            topics,
        ),
    )


def _skip_forgotten_topics(
    data: memoryview, position: int, end: int, version: int, flexible: bool
) -> int:
    """Sessions are declined, so the partitions a session would forget are only checked."""
    count, position = array_length(data, position, end, flexible)
    for _ in range(count):
        if version >= TOPIC_ID_FROM:
            _id, position = uuid_at(data, position, end)
        else:
            _name, position = string(data, position, end, flexible)
        partitions, position = array_length(data, position, end, flexible)
        if position + 4 * partitions > end:
            raise short("forgotten partitions")
        position += 4 * partitions
        if flexible:
            position = skip_tagged_fields(data, position, end)
    return position
