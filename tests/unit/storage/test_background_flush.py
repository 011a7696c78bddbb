"""Rolls hand their fsyncs to a flush scheduler when the log has one (the broker runs
them off its event loop); the recovery point moves only when the job completes."""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path

import pytest

from odradek.storage.log import FlushJob, Log

from .helpers import Clock, make_batch, partition_dir, read_all, small_config


def fill_until_roll(log: Log) -> None:
    n = 0
    while log.number_of_segments == 1:
        log.append_as_leader(make_batch([b"value-%d" % n]), 0)
        n += 1
    log.append_as_leader(make_batch([b"after the roll"]), 0)
    log.update_high_watermark(log.log_end_offset)


def scheduled_log(tmp_path: Path) -> tuple[Log, list[FlushJob]]:
    """A log with small segments whose rolls hand their flushes to the returned list."""
    jobs: list[FlushJob] = []
    log = Log.open(
        partition_dir(tmp_path), small_config(segment_bytes=600), clock=Clock(),
        flush_scheduler=jobs.append,
    )  # fmt: skip
    return log, jobs


@pytest.fixture
def fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = os.fsync

    def counting(fd: int) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fsync", counting)
    return calls


def test_roll_leaves_fsyncs_to_the_scheduler(tmp_path: Path, fsyncs: list[int]) -> None:
    log, jobs = scheduled_log(tmp_path)
    log.append_as_leader(make_batch([b"first"]), 0)  # records epoch 0 (fsynced at once)
    fsyncs.clear()
    fill_until_roll(log)
    new_base = log.active_segment.base_offset

    assert fsyncs == []  # nothing was fsynced inside the append that rolled
    assert [job.up_to for job in jobs] == [new_base]
    assert log.recovery_point == 0
    (job,) = jobs
    old = log.segments[0]
    assert {old.log_path, old.offset_index.path, old.time_index.path} <= set(job.paths)
    assert any(path.endswith(".snapshot") for path in job.paths)

    worker = threading.Thread(target=job.run)  # run() is safe off the log's thread
    worker.start()
    worker.join()
    assert len(fsyncs) == len(job.paths) + 1  # every file, then the directory
    assert log.recovery_point == 0
    job.complete()
    assert log.recovery_point == new_base
    assert len(read_all(log)) == log.log_end_offset


def test_truncation_before_completion_keeps_the_recovery_point(tmp_path: Path) -> None:
    log, jobs = scheduled_log(tmp_path)
    fill_until_roll(log)
    (job,) = jobs
    job.run()
    log.truncate_to(2)
    job.complete()
    assert log.recovery_point == 0
    assert log.log_end_offset == 2


def test_job_skips_files_deleted_meanwhile(tmp_path: Path) -> None:
    log, jobs = scheduled_log(tmp_path)
    fill_until_roll(log)
    (job,) = jobs
    os.unlink(job.paths[0])
    job.run()
    job.complete()
    assert log.recovery_point == job.up_to


def test_without_a_scheduler_the_roll_flushes_inline(tmp_path: Path, fsyncs: list[int]) -> None:
    log = Log.open(partition_dir(tmp_path), small_config(segment_bytes=600), clock=Clock())
    fsyncs.clear()
    fill_until_roll(log)
    assert fsyncs
    assert log.recovery_point == log.active_segment.base_offset


def test_a_rolled_segment_gives_its_descriptor_back_once_flushed(tmp_path: Path) -> None:
    """Descriptors stay flat as a partition rolls (the soak's finding): the flushed
    segment closes its file and indexes, and a read opens it again."""
    log, jobs = scheduled_log(tmp_path)
    fill_until_roll(log)
    old = log.segments[0]

    def open_files() -> set[str]:
        found = set()
        for fd in os.listdir("/proc/self/fd"):
            with contextlib.suppress(FileNotFoundError):  # the listing's own, closed since
                found.add(os.readlink(f"/proc/self/fd/{fd}"))
        return found

    assert old.log_path in open_files()
    (job,) = jobs
    job.run()
    job.complete()
    assert old.log_path not in open_files()
    assert old.offset_index.path not in open_files()
    assert log.active_segment.log_path in open_files()
    assert len(read_all(log)) == log.log_end_offset  # the old segment reopens for the read
    assert old.log_path in open_files()
