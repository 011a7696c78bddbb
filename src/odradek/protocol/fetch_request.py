"""A follower's Fetch request (v12), encoded by hand.

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
from collections.abc import Iterable, Sequence
from typing import Final, NamedTuple

from odradek.protocol.headers import unsigned_varint

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
