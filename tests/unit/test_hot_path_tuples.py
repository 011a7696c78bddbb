"""The named tuples the produce and fetch paths build with ``new_tuple`` carry every field.

``new_tuple`` (``tuple.__new__`` on the class) checks no field count: a field added to
one of these classes and not to its hot-path call site would make short tuples that fail
only when the missing field is read. Each is checked here against its class.
"""

from __future__ import annotations

import struct
import time
from pathlib import Path
from typing import Any

from odradek.cluster.controller import Controller
from odradek.cluster.metadata import LocalStore
from odradek.config import BrokerConfig
from odradek.protocol.fetch_request import FollowerFetchPartition as Wanted
from odradek.protocol.fetch_request import encode_follower_fetch, parse_fetch_request
from odradek.protocol.headers import encode_request_header, parse_request_header
from odradek.protocol.produce_request import parse_produce_request
from odradek.protocol.types import TopicPartition
from odradek.replication.replica_manager import ReplicaManager
from odradek.storage import Log
from odradek.storage.log_manager import LogManager
from odradek.storage.validator import LogValidator

from .cluster.helpers import single_broker
from .storage.helpers import Clock, make_batch, partition_dir, small_config


def assert_whole(value: Any) -> None:
    assert len(value) == len(type(value)._fields), type(value).__name__


def test_request_header_and_produce_view() -> None:
    records = make_batch([b"v"])
    body = (
        b"\x00"  # null transactional id
        + struct.pack(">hi", 1, 1000)
        + b"\x02\x02t\x02"  # one topic "t", one partition
        + struct.pack(">i", 0)
        + bytes([len(records) + 1])
        + records
        + b"\x00\x00\x00"  # partition, topic and request tagged fields
    )
    frame = bytearray(encode_request_header(0, 10, 7, "c", flexible=True) + body)
    header = parse_request_header(frame, flexible=True)
    assert_whole(header)
    view = parse_produce_request(frame, header.size, 10)
    assert_whole(view)
    assert_whole(view.topics[0])
    ((tp, _),) = view.entries()
    assert_whole(tp)
    assert tp == TopicPartition("t", 0)


def test_fetch_request_views() -> None:
    body = encode_follower_fetch(
        replica_id=2, max_wait_ms=500, min_bytes=1, max_bytes=1 << 20,
        topics=[("t", [Wanted(0, 1, 5, 0, 1 << 20)])],
    )  # fmt: skip
    request = parse_fetch_request(bytearray(body), 0, 12)
    assert_whole(request)
    assert_whole(request.topics[0])
    assert_whole(request.topics[0].partitions[0])
    assert request.replica_id == 2


def test_append_results(tmp_path: Path) -> None:
    log = Log.open(partition_dir(tmp_path), small_config(), clock=Clock())
    assert_whole(log.append_as_leader(make_batch([b"a", b"b"]), leader_epoch=1))
    assert_whole(log.log_end_offset_metadata)
    validator = LogValidator(TopicPartition("t", 0), small_config())
    result = validator.validate_and_assign_offsets(
        bytearray(make_batch([b"c"])), first_offset=5, leader_epoch=1, now=Clock()()
    )
    assert_whole(result)
    log.close()


def test_produce_result(tmp_path: Path) -> None:
    config = BrokerConfig({"log.dirs": str(tmp_path)})
    store = LocalStore(tmp_path, "cluster")
    logs = LogManager([tmp_path])
    manager = ReplicaManager(1, config, logs, store, clock=lambda: int(time.time() * 1000))
    manager.startup()
    store.add_listener(manager)
    store.register_broker(single_broker(1))
    Controller(store, config).create_topic("t", 1, 1)
    now = int(time.time() * 1000)
    tp = TopicPartition("t", 0)
    results = manager.append_records(1, [(tp, bytearray(make_batch([b"x"], timestamp=now)))])
    assert results[tp].error == 0
    assert_whole(results[tp])
    logs.shutdown()
