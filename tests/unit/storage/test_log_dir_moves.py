"""Moving a log to another log dir (``LogManager``'s future logs) and log dirs unusable at
start-up: the swap, a crash between its two renames, a crash mid-copy, and start-up with
a dir that is a regular file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from odradek.protocol.records import complete_batches_size
from odradek.protocol.types import TopicPartition
from odradek.storage import LogManager
from odradek.storage.errors import KafkaStorageError, LogDirNotFoundError
from odradek.storage.log import Log

from .helpers import Clock, make_batch, read_all, small_config

TP = TopicPartition("t", 0)


def manager(dirs: list[Path]) -> LogManager:
    logs = LogManager([str(d) for d in dirs], clock=Clock())
    logs.load_logs(lambda topic: small_config(segment_bytes=500))
    return logs


def filled(logs: LogManager, count: int) -> Log:
    log = logs.get_or_create_log(TP, small_config(segment_bytes=500))
    for n in range(count):
        log.append_as_leader(make_batch([b"v%d" % n]), 0)
    log.update_high_watermark(log.log_end_offset)
    return log


def copy(current: Log, future: Log) -> None:
    """What ``replication.alter_log_dirs`` does, in one go."""
    while future.log_end_offset < current.log_end_offset:
        info = current.read(future.log_end_offset, 1 << 20)
        assert info.records is not None
        data = info.records.read()
        future.append_as_follower(data[: complete_batches_size(data)])
    future.update_high_watermark(current.high_watermark)


def other_dir(logs: LogManager, log: Log) -> str:
    (other,) = [d for d in logs.log_dirs if d != log.parent_dir]
    return other


def test_a_caught_up_future_replaces_the_current_log(tmp_path: Path) -> None:
    logs = manager([tmp_path / "a", tmp_path / "b"])
    current = filled(logs, 30)
    records = read_all(current)
    target = other_dir(logs, current)
    future = logs.create_future_log(TP, target)
    assert future is not None and future.dir.endswith("-future")
    assert logs.create_future_log(TP, target) is None  # already on its way there
    copy(current, future)
    moved, old = logs.replace_current_with_future(TP)
    assert moved.parent_dir == target and logs.get_log(TP) is moved
    assert logs.future_logs == {}
    assert read_all(moved) == records and moved.high_watermark == 30
    assert old.endswith("-delete") and not os.path.exists(current.dir)
    logs.shutdown()
    again = manager([tmp_path / "a", tmp_path / "b"])
    reloaded = again.get_log(TP)
    assert reloaded is not None and reloaded.parent_dir == target
    assert read_all(reloaded) == records
    assert not [n for d in again.log_dirs for n in os.listdir(d) if n.endswith("-delete")]
    again.shutdown()


def test_a_crash_between_the_two_renames_completes_the_move_at_start_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    logs = manager([tmp_path / "a", tmp_path / "b"])
    current = filled(logs, 30)
    records = read_all(current)
    target = other_dir(logs, current)
    future = logs.create_future_log(TP, target)
    assert future is not None
    copy(current, future)
    real_rename = os.rename

    def crash_on_second(src: str, dst: str) -> None:
        if not dst.endswith("-delete"):
            raise OSError(5, "the broker died here")
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", crash_on_second)
    with pytest.raises(KafkaStorageError):
        logs.replace_current_with_future(TP)
    monkeypatch.setattr(os, "rename", real_rename)
    names = sorted(n for d in logs.log_dirs for n in os.listdir(d) if n.startswith("t-0"))
    assert [n.rsplit("-", 1)[-1] for n in names] in (["delete", "future"], ["future", "delete"])
    # No shutdown (a crash); the next start promotes the complete future.
    again = manager([tmp_path / "a", tmp_path / "b"])
    reloaded = again.get_log(TP)
    assert reloaded is not None and reloaded.parent_dir == target
    assert read_all(reloaded) == records
    leftovers = [n for d in again.log_dirs for n in os.listdir(d) if n.startswith("t-0.")]
    assert leftovers == []
    again.shutdown()


def test_a_future_next_to_its_current_log_at_start_up_is_discarded_and_noted(
    tmp_path: Path,
) -> None:
    logs = manager([tmp_path / "a", tmp_path / "b"])
    current = filled(logs, 30)
    records = read_all(current)
    target = other_dir(logs, current)
    future = logs.create_future_log(TP, target)
    assert future is not None
    info = current.read(0, 200)
    assert info.records is not None
    data = info.records.read()
    future.append_as_follower(data[: complete_batches_size(data)])
    logs.shutdown()
    again = manager([tmp_path / "a", tmp_path / "b"])
    assert again.interrupted_moves == {TP: target}
    reloaded = again.get_log(TP)
    assert reloaded is not None and reloaded.parent_dir == current.parent_dir
    assert read_all(reloaded) == records
    assert not [n for n in os.listdir(target) if n.endswith("-future")]
    again.shutdown()


def test_a_log_dir_unusable_at_start_up_is_offline_and_no_replica_is_made_anew(
    tmp_path: Path,
) -> None:
    (tmp_path / "b").write_bytes(b"a file, not a directory")
    logs = manager([tmp_path / "a", tmp_path / "b", tmp_path / "c"])
    assert logs.live_log_dirs == [str(tmp_path / "a"), str(tmp_path / "c")]
    assert logs.log_dir_failure_channel.is_offline(str(tmp_path / "b"))
    with pytest.raises(KafkaStorageError):
        logs.get_or_create_log(TP, small_config(), is_new=False)
    created = logs.get_or_create_log(TP, small_config(), is_new=True)
    assert created.parent_dir in logs.live_log_dirs
    assert not logs.is_log_dir_online(str(tmp_path / "b"))
    other = next(d for d in logs.live_log_dirs if d != created.parent_dir)
    with pytest.raises(KafkaStorageError):  # no move while a dir is offline, as Kafka
        logs.create_future_log(TP, other)
    assert logs.future_logs == {}
    logs.shutdown()


def test_log_dirs_named_in_requests(tmp_path: Path) -> None:
    logs = manager([tmp_path / "a", tmp_path / "b"])
    assert logs.is_log_dir_online(str(tmp_path / "a") + "/")
    for unknown in (str(tmp_path / "c"), "a", ""):
        with pytest.raises(LogDirNotFoundError):
            logs.is_log_dir_online(unknown)
    logs.maybe_update_preferred_log_dir(TP, str(tmp_path / "b"))
    assert logs.get_or_create_log(TP, small_config()).parent_dir == str(tmp_path / "b")
    logs.shutdown()


def test_a_target_failing_during_the_swap_leaves_the_current_log_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    logs = manager([tmp_path / "a", tmp_path / "b"])
    current = filled(logs, 30)
    records = read_all(current)
    target = other_dir(logs, current)
    future = logs.create_future_log(TP, target)
    assert future is not None
    copy(current, future)
    real_rename = os.rename

    def target_fails(src: str, dst: str) -> None:
        if src.endswith("-future"):
            raise OSError(5, "I/O error on the target disk")
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", target_fails)
    with pytest.raises(KafkaStorageError):
        logs.replace_current_with_future(TP)
    monkeypatch.setattr(os, "rename", real_rename)
    assert logs.get_log(TP) is current and os.path.isdir(current.dir)
    assert logs.future_logs == {}
    assert logs.live_log_dirs == [current.parent_dir]
    assert read_all(current) == records
    current.append_as_leader(make_batch([b"after"]), 0)
    assert read_all(current)[-1].value == b"after"
    logs.shutdown()
