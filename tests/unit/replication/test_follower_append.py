"""A follower appends what a fetch brought, whole batches only: a leader's read cut at the
byte limit ends inside a batch, and the follower keeps the batches before it and fetches
the rest next time (found by benchmarks/replication.py: producers' batches of ~1 MB
against replica.fetch.max.bytes of 1 MiB stalled replication for good)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from odradek.cluster.metadata import PartitionState
from odradek.protocol import records as batch
from odradek.protocol.types import TopicPartition
from odradek.replication.partition import Partition
from odradek.storage import CorruptRecordError
from odradek.storage.log import Log
from tests.unit.storage.helpers import Clock, make_batch, partition_dir, read_all, small_config

TP = TopicPartition("t", 0)


def follower(tmp_path: Path) -> Partition:
    log = Log.open(partition_dir(tmp_path, "follow-0"), small_config(), clock=Clock())
    state = PartitionState(leader=1, leader_epoch=0, replicas=(1, 2), isr=(1, 2))
    return Partition(TP, uuid.uuid4(), log, state, broker_id=2)


def test_complete_batches_size() -> None:
    one, two = make_batch([b"a" * 100]), make_batch([b"b" * 200])
    data = one + two
    assert batch.complete_batches_size(data) == len(data)
    assert batch.complete_batches_size(data[:-1]) == len(one)
    assert batch.complete_batches_size(data[: len(one) + 11]) == len(one)  # no length yet
    assert batch.complete_batches_size(data[:5]) == 0
    assert batch.complete_batches_size(b"") == 0
    bogus = bytearray(data)
    bogus[len(one) + batch.LENGTH_OFFSET : len(one) + batch.LOG_OVERHEAD] = (10).to_bytes(4)
    assert batch.complete_batches_size(bogus) == len(bogus)  # left for validation to reject


def test_follower_keeps_whole_batches_of_a_cut_response(tmp_path: Path) -> None:
    leader = Log.open(partition_dir(tmp_path, "lead-0"), small_config(), clock=Clock())
    for n in range(10):
        leader.append_as_leader(make_batch([b"%d" % n + b"x" * 500] * 3), leader_epoch=0)
    leader.update_high_watermark(leader.log_end_offset)
    partition = follower(tmp_path)
    fetches = 0
    while partition.log.log_end_offset < leader.log_end_offset:
        info = leader.read(partition.log.log_end_offset, 4000, min_one_message=True)
        assert info.records is not None
        data = info.records.read()
        partition.append_as_follower(data, leader.high_watermark, leader.log_start_offset)
        fetches += 1
        assert fetches < 20, "the follower makes no progress"
    assert partition.log.log_end_offset == 30
    assert read_all(partition.log) == read_all(leader)
    assert partition.log.high_watermark == 30
    leader.close()
    partition.log.close()


def test_a_corrupt_batch_length_is_still_rejected(tmp_path: Path) -> None:
    partition = follower(tmp_path)
    data = bytearray(make_batch([b"a"]) + make_batch([b"b"], base_offset=1))
    second = len(make_batch([b"a"]))
    data[second + batch.LENGTH_OFFSET : second + batch.LOG_OVERHEAD] = (10).to_bytes(4)
    with pytest.raises(CorruptRecordError):
        partition.append_as_follower(data, 2, 0)
    partition.log.close()
