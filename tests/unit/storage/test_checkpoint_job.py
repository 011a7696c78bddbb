"""Checkpoint jobs: offsets read at one moment, files written in another thread, and a
snapshot never written over a later one (see ``odradek.storage.checkpoint_job``)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from odradek.protocol.types import TopicPartition
from odradek.storage import LogManager, checkpoints
from tests.support import mounts

from .helpers import Clock, make_batch, small_config

TP = TopicPartition("t", 0)


def high_watermarks(directory: Path) -> dict[TopicPartition, int]:
    return checkpoints.read_offset_checkpoint(
        str(directory / checkpoints.HIGH_WATERMARK_CHECKPOINT)
    )


def advance(logs: LogManager) -> int:
    log = logs.get_or_create_log(TP, small_config())
    log.append_as_leader(make_batch([b"v"]), 0)
    log.update_high_watermark(log.log_end_offset)
    return log.high_watermark


def test_the_offsets_are_those_of_the_moment_the_job_was_made(tmp_path: Path) -> None:
    logs = LogManager([str(tmp_path)], clock=Clock())
    then = advance(logs)
    job = logs.high_watermark_checkpoint()
    advance(logs)
    assert job.write()
    assert high_watermarks(tmp_path) == {TP: then}
    logs.shutdown()


def test_an_older_snapshot_never_replaces_a_newer_file(tmp_path: Path) -> None:
    logs = LogManager([str(tmp_path)], clock=Clock())
    advance(logs)
    late = logs.high_watermark_checkpoint()  # a background job, not yet run
    newest = advance(logs)
    assert logs.high_watermark_checkpoint().write()  # e.g. shutdown's, done first
    late.run()
    assert late.complete()
    assert high_watermarks(tmp_path) == {TP: newest}
    logs.shutdown()
    assert high_watermarks(tmp_path) == {TP: newest}


def test_a_write_in_a_thread_and_one_on_the_loop_leave_the_newest(tmp_path: Path) -> None:
    logs = LogManager([str(tmp_path)], clock=Clock())
    for _ in range(30):
        advance(logs)
        background = logs.high_watermark_checkpoint()
        thread = threading.Thread(target=background.run)
        thread.start()
        newest = advance(logs)
        assert logs.high_watermark_checkpoint().write()
        thread.join()
        assert background.complete()
        assert high_watermarks(tmp_path) == {TP: newest}
        assert not (tmp_path / (checkpoints.HIGH_WATERMARK_CHECKPOINT + ".tmp")).exists()
    logs.shutdown()


@pytest.fixture
def failing_disk(tmp_path: Path) -> Iterator[Path]:
    with mounts.ext4_image(tmp_path, 8) as disk:
        yield disk


def test_a_failed_write_takes_the_dir_offline_only_on_complete(failing_disk: Path) -> None:
    logs = LogManager([str(failing_disk)], clock=Clock())
    failed: list[str] = []
    logs.log_dir_failure_channel.add_listener(failed.append)
    advance(logs)
    job = logs.high_watermark_checkpoint()
    mounts.fail_ext4(failing_disk)
    job.run()  # in a worker thread in the broker: it must not touch the channel
    assert failed == []
    assert not job.complete()
    assert failed == [str(failing_disk)]
    logs.shutdown()  # must not raise
