"""Reading an internal topic's partition back, as both coordinators do when they become
its leader: every batch in order with transaction markers (the group coordinator), or
only the records of data batches (the transaction coordinator), from the log start on."""

from __future__ import annotations

from pathlib import Path

from odradek.coordinator.internal_topics import read_batches, read_records
from odradek.protocol.record_codec import BatchSpec, NewRecord, build_batch, build_end_txn_marker
from odradek.storage.log import Log
from odradek.storage.values import AppendOrigin
from tests.unit.storage.helpers import START_MS, Clock, partition_dir, small_config

PID = 7


def records(*pairs: tuple[bytes, bytes]) -> list[NewRecord]:
    return [NewRecord(key=k, value=v, timestamp=START_MS) for k, v in pairs]


def filled_log(tmp_path: Path) -> Log:
    log = Log.open(partition_dir(tmp_path), small_config(), clock=Clock())
    log.append_as_leader(build_batch(records((b"k0", b"v0"), (b"k1", b"v1"))), 0)
    spec = BatchSpec(producer_id=PID, producer_epoch=0, base_sequence=0, transactional=True)
    log.append_as_leader(build_batch(records((b"k2", b"v2")), spec), 0)
    marker = build_end_txn_marker(PID, 0, commit=True, coordinator_epoch=0, timestamp=START_MS)
    log.append_as_leader(marker, 0, origin=AppendOrigin.COORDINATOR)
    log.append_as_leader(build_batch(records((b"k4", b"v4"))), 0)
    log.update_high_watermark(log.log_end_offset)
    return log


def test_read_batches_yields_every_batch_with_markers(tmp_path: Path) -> None:
    log = filled_log(tmp_path)
    batches = [
        (h.base_offset, h.next_offset, h.is_transactional, h.is_control)
        for _, h in read_batches(log, chunk_bytes=1)  # one batch per read
    ]
    assert batches == [
        (0, 2, False, False),
        (2, 3, True, False),
        (3, 4, True, True),
        (4, 5, False, False),
    ]
    log.close()


def test_read_records_skips_markers_and_what_lies_before_the_log_start(tmp_path: Path) -> None:
    log = filled_log(tmp_path)
    assert [(o, k) for o, k, _ in read_records(log)] == [
        (0, b"k0"),
        (1, b"k1"),
        (2, b"k2"),
        (4, b"k4"),
    ]
    log.maybe_increment_log_start_offset(1)  # inside the first batch
    assert [o for o, _, _ in read_records(log, chunk_bytes=1)] == [1, 2, 4]
    assert [h.base_offset for _, h in read_batches(log)] == [0, 2, 3, 4]  # whole batches
    log.close()
