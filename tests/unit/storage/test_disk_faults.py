"""Storage on a full disk and on a failed one, with real file systems (``tests.support.
mounts``): a full tmpfs undoes the failed write and keeps the log online; a failed ext4
takes its log dir offline. See ``odradek.storage.log_dir_failure`` for the rules."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from odradek.protocol.errors import ErrorCode
from odradek.protocol.types import TopicPartition
from odradek.storage import checkpoints
from odradek.storage.errors import KafkaStorageError, LogDirFullError
from odradek.storage.log import Log
from odradek.storage.log_dir_failure import LogDirFailureChannel
from odradek.storage.log_manager import LogManager
from odradek.storage.offset_index import OffsetIndex
from tests.support import mounts
from tests.unit.storage.helpers import Clock, make_batch, read_all, small_config

VALUE = b"v" * 3000  # a batch a little under a tmpfs page


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    with mounts.tmpfs(tmp_path / "disk", 512) as disk:
        yield disk


@pytest.fixture
def failing_disk(tmp_path: Path) -> Iterator[Path]:
    with mounts.ext4_image(tmp_path, 8) as disk:
        yield disk


def append_until_full(log: Log, values: list[bytes]) -> LogDirFullError:
    """Append one batch per value until the disk is full; returns the error."""
    for n in range(100_000):
        value = b"%d:" % n + VALUE
        try:
            log.append_as_leader(make_batch([value]), 0)
        except LogDirFullError as exc:
            return exc
        values.append(value)
    raise AssertionError("the disk never filled up")


def test_full_disk_append_is_undone_and_served_again_once_space_is_freed(
    small_disk: Path,
) -> None:
    channel = LogDirFailureChannel()
    directory = small_disk / "t-0"
    log = Log.open(str(directory), small_config(), clock=Clock(), log_dir_failure_channel=channel)
    filler = mounts.fill(small_disk, leave_kib=200)
    values: list[bytes] = []
    error = append_until_full(log, values)

    assert error.error_code == ErrorCode.kafka_storage_error
    assert values, "some appends must succeed before the disk is full"
    segment_file = directory / f"{0:020d}.log"
    # No partial batch: the file ends exactly where the last acknowledged batch ends.
    assert segment_file.stat().st_size == log.active_segment.size
    assert log.log_end_offset == len(values)
    assert [r.value for r in read_all(log)] == values
    assert not channel.offline_log_dirs, "a full disk must not take the dir offline"

    with pytest.raises(LogDirFullError):  # still full: the next append fails the same way
        log.append_as_leader(make_batch([VALUE * 2]), 0)
    assert log.log_end_offset == len(values)

    filler.unlink()
    info = log.append_as_leader(make_batch([b"after"]), 0)
    assert info.first_offset == len(values)
    log.flush()
    log.close()

    reopened = Log.open(str(directory), small_config(), clock=Clock())
    assert [r.value for r in read_all(reopened)] == [*values, b"after"]
    reopened.close()


def test_roll_on_a_full_disk_loses_nothing(small_disk: Path) -> None:
    """Segments of ~3 batches: the disk fills up around rolls (new segment files, index
    entries, producer snapshots), and every acknowledged record survives a reopen."""
    config = small_config(segment_bytes=10_000, index_interval_bytes=1)
    directory = small_disk / "t-0"
    channel = LogDirFailureChannel()
    log = Log.open(str(directory), config, clock=Clock(), log_dir_failure_channel=channel)
    filler = mounts.fill(small_disk, leave_kib=120)
    values: list[bytes] = []
    append_until_full(log, values)
    assert log.number_of_segments > 3
    assert [r.value for r in read_all(log)] == values
    for index in directory.glob("*.index"):
        assert index.stat().st_size % 8 == 0, f"{index.name} holds a partial entry"

    filler.unlink()
    for n in range(10):  # rolls work again
        values.append(b"more-%d" % n + VALUE)
        log.append_as_leader(make_batch([values[-1]]), 0)
    assert not channel.offline_log_dirs
    log.flush()
    log.close()
    reopened = Log.open(str(directory), config, clock=Clock())
    assert [r.value for r in read_all(reopened)] == values
    assert reopened.log_end_offset == len(values)
    reopened.close()


def test_index_write_on_a_full_disk_keeps_whole_entries(small_disk: Path) -> None:
    path = small_disk / f"{0:020d}.index"
    index = OffsetIndex(str(path), 0, 1 << 20)
    index.mark_empty()
    index.append(1, 100)
    index.persist()  # the file now owns one page, mostly free
    mounts.fill(small_disk)
    for n in range(2, 2000):  # more than the rest of that page
        index.append(n, n * 100)
    with pytest.raises(LogDirFullError):
        index.persist()
    size = path.stat().st_size
    assert size % 8 == 0 and size >= 8
    assert index.entries == 1999, "entries not written stay in memory"
    (small_disk / "filler").unlink()
    index.persist(fsync=True)
    assert path.stat().st_size == 1999 * 8


def test_checkpoint_on_a_full_disk_keeps_the_previous_file(small_disk: Path) -> None:
    path = small_disk / checkpoints.RECOVERY_POINT_CHECKPOINT
    before = {TopicPartition("t", 0): 5}
    checkpoints.write_offset_checkpoint(str(path), before)
    mounts.fill(small_disk)
    many = {TopicPartition("t" * 200, p): p for p in range(100)}  # needs a fresh page
    with pytest.raises(LogDirFullError):
        checkpoints.write_offset_checkpoint(str(path), many)
    assert checkpoints.read_offset_checkpoint(str(path)) == before
    assert sorted(os.listdir(small_disk)) == sorted(
        ["filler", checkpoints.RECOVERY_POINT_CHECKPOINT]
    ), "no temporary file is left behind"


def test_log_manager_on_a_full_disk_stays_online(small_disk: Path) -> None:
    logs = LogManager([small_disk], clock=Clock())
    tp = TopicPartition("t", 0)
    log = logs.get_or_create_log(tp, small_config(flush_ms=0))
    log.append_as_leader(make_batch([b"one"]), 0)
    assert logs.checkpoint_all()
    mounts.fill(small_disk)
    with pytest.raises(LogDirFullError):
        log.append_as_leader(make_batch([VALUE * 3]), 0)
    assert logs.flush_dirty_logs() == 1  # fsyncs need no space; index entries wait
    assert not logs.checkpoint_all(), "a checkpoint cannot be written on a full disk"
    logs.shutdown()  # must not raise
    assert logs.live_log_dirs == [str(small_disk)]
    (small_disk / "filler").unlink()
    reopened = LogManager([small_disk], clock=Clock())
    reopened.load_logs(lambda _topic: small_config())
    found = reopened.get_log(tp)
    assert found is not None and [r.value for r in read_all(found)] == [b"one"]
    reopened.shutdown()


def test_failed_log_dir_goes_offline_and_the_others_carry_on(
    tmp_path: Path, failing_disk: Path
) -> None:
    healthy = tmp_path / "healthy"
    logs = LogManager([healthy, failing_disk], clock=Clock())
    failed_dirs: list[str] = []
    logs.log_dir_failure_channel.add_listener(failed_dirs.append)
    good_tp, bad_tp = TopicPartition("t", 0), TopicPartition("t", 1)
    good = logs.get_or_create_log(good_tp, small_config())
    bad = logs.get_or_create_log(bad_tp, small_config())
    assert bad.parent_dir == str(failing_disk)
    for log in (good, bad):
        log.append_as_leader(make_batch([b"before"]), 0)
    assert logs.checkpoint_all()

    mounts.fail_ext4(failing_disk)
    with pytest.raises(KafkaStorageError) as raised:
        bad.append_as_leader(make_batch([b"after"]), 0)
    assert not isinstance(raised.value, LogDirFullError)
    assert raised.value.error_code == ErrorCode.kafka_storage_error

    assert failed_dirs == [str(failing_disk)]
    assert logs.live_log_dirs == [str(healthy)]
    assert bad_tp not in logs.logs, "the failed dir's logs are closed and forgotten"
    good.append_as_leader(make_batch([b"after"]), 0)
    assert logs.checkpoint_all(), "the healthy dir's checkpoints are still written"
    created = logs.get_or_create_log(TopicPartition("t", 2), small_config())
    assert created.parent_dir == str(healthy), "no new log goes to a failed dir"
    logs.shutdown()  # must not raise
    assert checkpoints.has_clean_shutdown_marker(str(healthy))
    assert not checkpoints.has_clean_shutdown_marker(str(failing_disk))
