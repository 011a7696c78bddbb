"""Leader epoch cache (endOffsetFor, truncations, file) and the checkpoint files."""

from __future__ import annotations

import logging
import os
import uuid

import pytest

from odradek.protocol.types import TopicPartition
from odradek.storage import checkpoints
from odradek.storage.leader_epoch import LeaderEpochFileCache

TP = TopicPartition("t", 0)


def cache_with(tmp: os.PathLike[str], *entries: tuple[int, int]) -> LeaderEpochFileCache:
    cache = LeaderEpochFileCache(TP, str(tmp))
    for epoch, offset in entries:
        cache.assign(epoch, offset)
    return cache


def test_end_offset_for(tmp_path: os.PathLike[str]) -> None:
    cache = cache_with(tmp_path, (2, 10), (4, 30), (7, 50))
    assert cache.end_offset_for(7, 80) == (7, 80)  # latest epoch: log end offset
    assert cache.end_offset_for(4, 80) == (4, 50)
    assert cache.end_offset_for(5, 80) == (4, 50)  # no epoch 5: the one below, ends at 7's start
    assert cache.end_offset_for(2, 80) == (2, 30)
    assert cache.end_offset_for(1, 80) == (1, 10)  # below the first: Kafka answers itself + first
    assert cache.end_offset_for(8, 80) == (-1, -1)
    assert cache.end_offset_for(-1, 80) == (-1, -1)
    assert LeaderEpochFileCache(TP, str(tmp_path / "empty")).end_offset_for(0, 5) == (-1, -1)


def test_assign_keeps_entries_monotonic(tmp_path: os.PathLike[str]) -> None:
    cache = cache_with(tmp_path, (1, 0), (2, 10), (3, 20))
    cache.assign(3, 25)  # same epoch, later offset: ignored
    assert cache.entries == [(1, 0), (2, 10), (3, 20)]
    cache.assign(4, 15)  # earlier offset: entries at or after it go
    assert cache.entries == [(1, 0), (2, 10), (4, 15)]
    cache.assign(2, 30)  # lower epoch: later epochs go
    assert cache.entries == [(1, 0), (2, 30)]
    with pytest.raises(ValueError):
        cache.assign(-1, 3)


def test_truncations_and_file_format(tmp_path: os.PathLike[str]) -> None:
    cache = cache_with(tmp_path, (0, 0), (1, 10), (2, 20), (3, 30))
    cache.truncate_from_end(20)
    assert cache.entries == [(0, 0), (1, 10)]
    cache.truncate_from_start(15)
    assert cache.entries == [(1, 15)]
    cache.truncate_from_start(15)
    assert cache.entries == [(1, 15)]
    with open(os.path.join(tmp_path, "leader-epoch-checkpoint")) as file:
        assert file.read() == "0\n1\n1 15\n"
    assert LeaderEpochFileCache(TP, str(tmp_path)).entries == [(1, 15)]
    assert cache.epoch_for_offset(14) is None and cache.epoch_for_offset(99) == 1


def test_malformed_epoch_file_is_ignored(
    tmp_path: os.PathLike[str], caplog: pytest.LogCaptureFixture
) -> None:
    with open(os.path.join(tmp_path, "leader-epoch-checkpoint"), "w") as file:
        file.write("0\n2\n1 5\n")
    with caplog.at_level(logging.WARNING):
        assert LeaderEpochFileCache(TP, str(tmp_path)).entries == []
    assert "expected 2 entries" in caplog.text


def test_offset_checkpoint_round_trip(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(tmp_path, checkpoints.RECOVERY_POINT_CHECKPOINT)
    offsets = {
        TopicPartition("a.b-c", 3): 17,
        TopicPartition("x", 0): 0,
        TopicPartition("x", 10): 2**40,
    }
    checkpoints.write_offset_checkpoint(path, offsets)
    with open(path) as file:
        assert file.read() == "0\n3\na.b-c 3 17\nx 0 0\nx 10 1099511627776\n"
    assert checkpoints.read_offset_checkpoint(path) == offsets
    assert not os.path.exists(path + ".tmp")
    assert checkpoints.read_offset_checkpoint(os.path.join(tmp_path, "missing")) == {}


@pytest.mark.parametrize(
    "text",
    ["1\n0\n", "0\nx\n", "0\n2\nt 0 5\n", "0\n1\nt 0\n", "0\n1\nt zero 5\n", "garbage"],
)
def test_malformed_offset_checkpoint_is_ignored_with_a_warning(
    tmp_path: os.PathLike[str], caplog: pytest.LogCaptureFixture, text: str
) -> None:
    path = os.path.join(tmp_path, "cp")
    with open(path, "w") as file:
        file.write(text)
    with caplog.at_level(logging.WARNING):
        assert checkpoints.read_offset_checkpoint(path) == {}
    assert "checkpoint" in caplog.text


def test_partition_metadata(tmp_path: os.PathLike[str]) -> None:
    topic_id = uuid.UUID("d6b42d4c-e8ba-4a69-a0b7-7ef1e6a6c3a1")
    checkpoints.write_partition_metadata(str(tmp_path), topic_id)
    with open(os.path.join(tmp_path, "partition.metadata")) as file:
        text = file.read()
    assert text == "version: 0\ntopic_id: 1rQtTOi6Smmgt37x5qbDoQ"
    assert checkpoints.read_partition_metadata(str(tmp_path)) == topic_id
    with open(os.path.join(tmp_path, "partition.metadata"), "w") as file:
        file.write("version: 0\ntopic_id: nope")
    assert checkpoints.read_partition_metadata(str(tmp_path)) is None


def test_meta_properties_and_clean_shutdown_marker(tmp_path: os.PathLike[str]) -> None:
    directory_id = uuid.uuid4()
    checkpoints.write_meta_properties(
        str(tmp_path), node_id=3, cluster_id="abc", directory_id=directory_id
    )
    props = checkpoints.read_meta_properties(str(tmp_path))
    assert props["version"] == "1" and props["node.id"] == "3" and props["cluster.id"] == "abc"
    assert checkpoints.decode_uuid(props["directory.id"]) == directory_id
    assert not checkpoints.has_clean_shutdown_marker(str(tmp_path))
    checkpoints.write_clean_shutdown_marker(str(tmp_path))
    with open(os.path.join(tmp_path, ".kafka_cleanshutdown")) as file:
        assert file.read() == '{"version":0,"brokerEpoch":-1}'
    checkpoints.remove_clean_shutdown_marker(str(tmp_path))
    assert not checkpoints.has_clean_shutdown_marker(str(tmp_path))
