"""Replaying ``__consumer_offsets`` batches into a shard (Kafka's ``CoordinatorLoaderImpl``).

What each batch of the partition means to the group coordinator:

- a data batch without the transactional bit: its records (offset commits, group
  metadata, tombstones) apply at once, in log order;
- a transactional data batch (written by TxnOffsetCommit): its offset commits are
  pending under the batch's producer id;
- a control batch: a transaction marker (``record_codec.read_end_txn_marker``) commits or
  aborts that producer's pending offsets; other control records mean nothing here.

Pending offsets of a transaction whose marker is not in the log yet stay pending. Pure:
no I/O, so the replay is tested on bytes built in memory.
"""

from __future__ import annotations

import logging

from odradek.coordinator.group.records import RecordFormatError, decode_key, decode_value
from odradek.coordinator.group.shard import GroupCoordinatorShard
from odradek.protocol.record_codec import RecordDecodeError, decode_records, read_end_txn_marker
from odradek.protocol.records import NO_PRODUCER_ID, BatchHeader, iter_headers

log = logging.getLogger(__name__)


def replay_batches(
    shard: GroupCoordinatorShard, data: bytes | bytearray | memoryview, start_offset: int
) -> tuple[int, int]:
    """Replay the whole batches in ``data``, skipping records before ``start_offset``;
    returns (records replayed, offset after the last whole batch, or ``start_offset``
    when there is none)."""
    count = 0
    next_offset = start_offset
    for header in iter_headers(data):
        if header.next_offset <= start_offset:
            continue
        next_offset = header.next_offset
        count += replay_batch(shard, data, header, start_offset)
    return count, next_offset


def replay_batch(
    shard: GroupCoordinatorShard,
    data: bytes | bytearray | memoryview,
    header: BatchHeader,
    start_offset: int = 0,
) -> int:
    """Replay one batch (``header``, in ``data``), skipping records before
    ``start_offset``; the number of records replayed."""
    if header.is_control:
        _replay_marker(shard, data, header)
        return 0
    producer_id = header.producer_id if header.is_transactional else NO_PRODUCER_ID
    try:
        records = decode_records(data, header)
    except RecordDecodeError as exc:
        log.warning("skipping unreadable batch at %d: %s", header.base_offset, exc)
        return 0
    count = 0
    for record in records:
        if record.offset < start_offset or record.key is None:
            continue
        try:
            key = decode_key(record.key)
            shard.replay(key, decode_value(key, record.value), record.offset, producer_id)
        except RecordFormatError as exc:
            log.warning("skipping unreadable record at %d: %s", record.offset, exc)
        count += 1
    return count


def _replay_marker(
    shard: GroupCoordinatorShard, data: bytes | bytearray | memoryview, header: BatchHeader
) -> None:
    try:
        marker = read_end_txn_marker(data, header)
    except RecordDecodeError as exc:
        log.warning("skipping unreadable control batch at %d: %s", header.base_offset, exc)
        return
    if marker is not None:
        shard.complete_transaction(header.producer_id, marker.commit, header.base_offset)
