"""LogManager: several log dirs, checkpoints, clean/unclean restarts, deletion, periodic jobs."""

from __future__ import annotations

import gc
import os
import uuid
from pathlib import Path

import pytest

from odradek.config import LogConfig
from odradek.protocol.types import TopicPartition
from odradek.storage import LogManager, checkpoints

from .helpers import Clock, make_batch, read_all, small_config


def manager(dirs: list[Path], clock: Clock, **kwargs: object) -> LogManager:
    return LogManager([str(d) for d in dirs], clock=clock, **kwargs)  # type: ignore[arg-type]


def config_for(topic: str) -> LogConfig:
    return small_config(segment_bytes=500)


def fill(logs: LogManager, tp: TopicPartition, count: int) -> None:
    log = logs.get_or_create_log(tp, config_for(tp.topic))
    for n in range(count):
        log.append_as_leader(make_batch([b"%s-%d" % (str(tp).encode(), n)]), 0)
    log.update_high_watermark(log.log_end_offset)


def test_new_logs_spread_over_log_dirs(tmp_path: Path) -> None:
    dirs = [tmp_path / "a", tmp_path / "b"]
    logs = manager(dirs, Clock())
    for p in range(6):
        logs.get_or_create_log(TopicPartition("t", p), config_for("t"))
    parents = [os.path.dirname(log.dir) for log in logs.logs.values()]
    assert sorted(parents.count(str(d)) for d in dirs) == [3, 3]
    logs.shutdown()


def test_clean_restart_restores_offsets_without_loading_indexes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dirs = [tmp_path / "a", tmp_path / "b"]
    clock = Clock()
    logs = manager(dirs, clock)
    topic_id = uuid.uuid4()
    for p in range(4):
        fill(logs, TopicPartition("t", p), 30 + p)
    logs.get_or_create_log(TopicPartition("t", 0), config_for("t"), topic_id)
    one = logs.get_log(TopicPartition("t", 1))
    assert one is not None
    one.update_high_watermark(20)
    one.maybe_increment_log_start_offset(10)
    logs.shutdown()
    for directory in dirs:
        assert checkpoints.has_clean_shutdown_marker(str(directory))
        assert os.path.exists(directory / checkpoints.RECOVERY_POINT_CHECKPOINT)

    preads = []
    real_pread = os.pread

    def counting_pread(fd: int, size: int, offset: int) -> bytes:
        preads.append(size)
        return real_pread(fd, size, offset)

    monkeypatch.setattr(os, "pread", counting_pread)
    logs = manager(dirs, clock)
    logs.load_logs(config_for)
    monkeypatch.setattr(os, "pread", real_pread)
    assert len(logs.logs) == 4
    for p in range(4):
        log = logs.get_log(TopicPartition("t", p))
        assert log is not None
        assert log.log_end_offset == 30 + p
        assert log.recovery_point == 30 + p
        for segment in log.segments:
            assert not segment.offset_index.loaded and not segment.time_index.loaded
    # per partition: the last index entry, the active segment's tail, the time index tail
    assert len(preads) <= 4 * 4
    one = logs.get_log(TopicPartition("t", 1))
    assert one is not None and one.log_start_offset == 10 and one.high_watermark == 20
    assert logs.get_log(TopicPartition("t", 0)).topic_id == topic_id  # type: ignore[union-attr]
    assert not any(checkpoints.has_clean_shutdown_marker(str(d)) for d in dirs)
    assert read_all(one)[0].value == b"t-1-10"
    logs.shutdown()


def test_unclean_restart_recovers_from_recovery_points(tmp_path: Path) -> None:
    clock = Clock()
    logs = manager([tmp_path], clock)
    tp = TopicPartition("t", 0)
    fill(logs, tp, 40)
    log = logs.get_log(tp)
    assert log is not None
    log.flush()
    logs.checkpoint_all()
    for n in range(5):
        log.append_as_leader(make_batch([b"late-%d" % n]), 0)
    with open(log.active_segment.log_path, "ab") as file:
        file.write(b"\x00" * 7 + b"torn write")
    del log
    logs = manager([tmp_path], clock)  # the old manager "crashed": no marker
    logs.load_logs(config_for)
    recovered = logs.get_log(tp)
    assert recovered is not None and recovered.log_end_offset == 45
    assert read_all(recovered)[-1].value == b"late-4"
    assert recovered.high_watermark == 40
    logs.shutdown()


def test_load_ignores_strangers_and_removes_deleted_dirs(tmp_path: Path) -> None:
    (tmp_path / "not-a-partition").mkdir()
    (tmp_path / "t-0.0123abcd-delete").mkdir()
    (tmp_path / "t-0.0123abcd-delete" / "00000000000000000000.log").write_bytes(b"x")
    (tmp_path / "stray-file").write_text("hello")
    with open(tmp_path / checkpoints.RECOVERY_POINT_CHECKPOINT, "w") as file:
        file.write("garbage\n")
    logs = manager([tmp_path], Clock())
    logs.load_logs(config_for)
    assert logs.logs == {}
    assert not (tmp_path / "t-0.0123abcd-delete").exists()
    assert (tmp_path / "not-a-partition").exists()


def test_delete_log(tmp_path: Path) -> None:
    logs = manager([tmp_path], Clock())
    tp = TopicPartition("gone", 2)
    fill(logs, tp, 5)
    assert logs.delete_log(tp)
    assert logs.get_log(tp) is None
    assert [n for n in os.listdir(tmp_path) if n.startswith("gone")] == []
    assert not logs.delete_log(tp)
    assert (
        checkpoints.read_offset_checkpoint(str(tmp_path / checkpoints.RECOVERY_POINT_CHECKPOINT))
        == {}
    )


def test_cleanup_and_flush_jobs(tmp_path: Path) -> None:
    clock = Clock()
    logs = manager([tmp_path], clock)
    tp = TopicPartition("r", 0)
    log = logs.get_or_create_log(
        tp,
        small_config(
            segment_bytes=400, retention_ms=60_000, flush_ms=1000, file_delete_delay_ms=500
        ),
    )
    for n in range(20):
        log.append_as_leader(make_batch([b"v%d" % n], timestamp=clock.now), 0)
    log.update_high_watermark(log.log_end_offset)
    assert logs.flush_dirty_logs(clock.now) == 0
    clock.advance(1000)
    assert logs.flush_dirty_logs() == 1 and log.recovery_point == 20
    segments = log.number_of_segments
    clock.advance(60_001)
    deleted = logs.cleanup_logs()
    assert deleted == segments
    assert log.log_start_offset == 20 and log.number_of_segments == 1
    assert any(n.endswith(".deleted") for n in os.listdir(log.dir))
    clock.advance(500)
    logs.cleanup_logs()
    assert not any(n.endswith(".deleted") for n in os.listdir(log.dir))
    logs.shutdown()


def test_open_files_are_bounded(tmp_path: Path) -> None:
    def open_fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    before = open_fds()
    logs = manager([tmp_path], Clock(), max_open_files=3)
    for p in range(12):
        fill(logs, TopicPartition("many", p), 3)
    assert open_fds() - before <= 3
    for p in range(12):
        log = logs.get_log(TopicPartition("many", p))
        assert log is not None and len(read_all(log)) == 3
    assert open_fds() - before <= 3
    logs.shutdown()
    assert open_fds() <= before


def test_meta_properties_keep_directory_id(tmp_path: Path) -> None:
    logs = manager([tmp_path], Clock())
    logs.write_meta_properties(node_id=1, cluster_id="c1")
    first = checkpoints.read_meta_properties(str(tmp_path))["directory.id"]
    logs.write_meta_properties(node_id=1, cluster_id="c1")
    assert checkpoints.read_meta_properties(str(tmp_path))["directory.id"] == first


def test_restart_opens_no_segment_files_and_rewrites_no_epoch_file(tmp_path: Path) -> None:
    def open_fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    logs = manager([tmp_path], Clock())
    for p in range(8):
        log = logs.get_or_create_log(TopicPartition("idle", p), config_for("idle"))
        log.leader_epoch_cache.assign(0, log.log_end_offset)  # what a new leader does
    fill(logs, TopicPartition("busy", 0), 5)
    logs.shutdown()
    epoch_files = sorted(tmp_path.glob("*/leader-epoch-checkpoint"))
    before = {path: (path.stat().st_ino, path.stat().st_mtime_ns) for path in epoch_files}

    # Descriptors of earlier tests' garbage must not close in the middle of the count.
    gc.collect()
    fds = open_fds()
    again = manager([tmp_path], Clock())
    again.load_logs(config_for)
    # No segment keeps a descriptor from the start-up checks: 9 partitions, 0 files open.
    assert open_fds() == fds
    assert len(again.handle_cache) == 0
    # An idle partition's epoch entry starts at its log end offset and is kept as is: the
    # file is neither rewritten nor replaced.
    after = {path: (path.stat().st_ino, path.stat().st_mtime_ns) for path in epoch_files}
    assert after == before
    idle = again.get_log(TopicPartition("idle", 3))
    assert idle is not None
    assert [tuple(e) for e in idle.leader_epoch_cache.entries] == [(0, 0)]
    # The partitions work as before: the first append reopens the files.
    idle.append_as_leader(make_batch([b"first"]), 0)
    idle.update_high_watermark(idle.log_end_offset)
    assert [r.value for r in read_all(idle)] == [b"first"]
    busy = again.get_log(TopicPartition("busy", 0))
    assert busy is not None and len(read_all(busy)) == 5
    again.shutdown()


def test_epoch_entries_past_the_log_end_are_dropped_at_load(tmp_path: Path) -> None:
    logs = manager([tmp_path], Clock())
    fill(logs, TopicPartition("t", 0), 3)  # epoch 0 from offset 0, log end 3
    log = logs.get_log(TopicPartition("t", 0))
    assert log is not None
    log.leader_epoch_cache.assign(1, 3)
    log.leader_epoch_cache.assign(2, 7)  # beyond the log end: cannot be right
    logs.shutdown()

    again = manager([tmp_path], Clock())
    again.load_logs(config_for)
    reloaded = again.get_log(TopicPartition("t", 0))
    assert reloaded is not None
    assert [tuple(e) for e in reloaded.leader_epoch_cache.entries] == [(0, 0), (1, 3)]
    again.shutdown()


def test_shutdown_syncs_every_log_before_the_marker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    logs = manager([tmp_path], Clock())
    for p in range(5):
        fill(logs, TopicPartition("t", p), 3)
    events: list[str] = []
    real_fsync = os.fsync
    real_marker = checkpoints.write_clean_shutdown_marker

    def fsync(fd: int) -> None:
        events.append("fsync")
        real_fsync(fd)

    def marker(log_dir: str, broker_epoch: int = -1) -> None:
        events.append("marker")
        real_marker(log_dir, broker_epoch)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(checkpoints, "write_clean_shutdown_marker", marker)
    logs.shutdown()
    # Per partition: the segment, its two indexes, the producer snapshot, the directory;
    # then the checkpoint files; the marker comes last.
    assert events.count("marker") == 1
    before_marker = events[: events.index("marker")]
    assert before_marker.count("fsync") >= 5 * 5
    assert events[events.index("marker") + 1 :] == ["fsync", "fsync"]  # the marker's own
    for p in range(5):
        assert any(name.endswith(".snapshot") for name in os.listdir(tmp_path / f"t-{p}"))
    points = checkpoints.read_offset_checkpoint(
        str(tmp_path / checkpoints.RECOVERY_POINT_CHECKPOINT)
    )
    assert points == {TopicPartition("t", p): 3 for p in range(5)}


def test_failed_fsync_at_shutdown_means_no_clean_marker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    logs = manager([tmp_path], Clock())
    for p in range(3):
        fill(logs, TopicPartition("t", p), 2)
    real_open = os.open

    def failing_open(path: str, flags: int, *args: int) -> int:
        failing = str(path).endswith(".log") and f"{os.sep}t-1{os.sep}" in str(path)
        if failing and flags == os.O_RDONLY | os.O_CLOEXEC:
            raise OSError(5, "Input/output error")
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", failing_open)
    logs.shutdown()
    monkeypatch.undo()
    # A failed fsync takes the log dir offline (log_dir_failure): nothing more is
    # written there, so no checkpoint claims t-1 flushed and there is no clean marker.
    assert logs.log_dir_failure_channel.is_offline(str(tmp_path))
    assert not checkpoints.has_clean_shutdown_marker(str(tmp_path))
    points = checkpoints.read_offset_checkpoint(
        str(tmp_path / checkpoints.RECOVERY_POINT_CHECKPOINT)
    )
    assert points.get(TopicPartition("t", 1), 0) == 0  # never claimed flushed


def test_delete_logs_removes_many_at_once(tmp_path: Path) -> None:
    logs = manager([tmp_path / "a", tmp_path / "b"], Clock())
    gone = [TopicPartition("gone", p) for p in range(40)]
    kept = TopicPartition("kept", 0)
    for tp in [*gone, kept]:
        fill(logs, tp, 2)
    assert logs.delete_logs([*gone, TopicPartition("never", 0)]) == len(gone)
    assert all(logs.get_log(tp) is None for tp in gone)
    for log_dir in ("a", "b"):
        assert not [n for n in os.listdir(tmp_path / log_dir) if n.startswith("gone")]
    points = {}
    for log_dir in ("a", "b"):
        points.update(
            checkpoints.read_offset_checkpoint(
                str(tmp_path / log_dir / checkpoints.HIGH_WATERMARK_CHECKPOINT)
            )
        )
    assert points == {kept: 2}


def test_topic_id_is_made_durable_by_the_shutdown_flush(tmp_path: Path) -> None:
    """partition.metadata is written without fsync when a log is created (Kafka defers it
    too) and synced with the rest of the log at the next flush, shutdown's included."""
    topic_id = uuid.uuid4()
    logs = manager([tmp_path], Clock())
    log = logs.get_or_create_log(TopicPartition("ids", 0), config_for("ids"), topic_id)
    job = log.flush_job()
    assert str(tmp_path / "ids-0" / checkpoints.PARTITION_METADATA_FILE) in job.paths
    job.run()
    job.complete()
    assert log.flush_job().paths == []
    logs.shutdown()
    assert checkpoints.read_partition_metadata(str(tmp_path / "ids-0")) == topic_id
