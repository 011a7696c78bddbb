"""Idempotent producer state of one partition (Kafka's ``ProducerStateManager``).

Per producer id: its epoch, the metadata of its last 5 batches (duplicate detection),
the coordinator epoch and the first offset of its open transaction (kept for
transactions). ``ProducerAppendInfo`` checks an append the way Kafka's does:

- epoch older than the current one: INVALID_PRODUCER_EPOCH;
- a new epoch must start at sequence 0 unless the producer had no epoch yet;
- same epoch: the first sequence must follow the last (wrapping at 2**31 - 1 to 0),
  else OUT_OF_ORDER_SEQUENCE_NUMBER, except that a producer with no state at all (expired,
  or its records deleted) may start anywhere;
- replication appends skip the sequence checks (the leader did them).

Duplicates are found (``find_duplicate_batch``) before those checks by the log.

Snapshot file ``<offset>.snapshot`` in the partition directory, state as of that offset
(Kafka's ``ProducerSnapshot`` v1, big-endian)::

    int16  version = 1
    uint32 crc                 CRC-32C of everything after this field
    int32  entry count
    entries:
      int64 producer_id
      int16 epoch
      int32 last_sequence
      int64 last_offset
      int32 offset_delta         last offset - first offset of the last batch
      int64 timestamp            max timestamp of the last batch
      int32 coordinator_epoch
      int64 current_txn_first_offset   -1 when none

Only the last batch of each producer is in a snapshot, as in Kafka, so after a restart
duplicates are detected against that one batch. A snapshot is written on every segment
roll and on clean shutdown; on load, state after the latest snapshot is rebuilt by
replaying batch headers.

Not thread-safe: the owning log serialises calls.
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

import crc32c

from odradek.protocol import records as batch
from odradek.protocol.records import BatchHeader
from odradek.protocol.types import TopicPartition
from odradek.storage import log_files
from odradek.storage.checkpoints import write_atomically
from odradek.storage.errors import (
    CorruptSnapshotError,
    InvalidProducerEpochError,
    OutOfOrderSequenceError,
)
from odradek.storage.values import AppendOrigin

log = logging.getLogger(__name__)

NUM_BATCHES_TO_RETAIN = 5
SNAPSHOT_VERSION = 1
_INT32_MAX = 2**31 - 1
_HEADER = struct.Struct(">hIi")
_ENTRY = struct.Struct(">qhiqiqiq")


def _decrease_sequence(sequence: int, decrement: int) -> int:
    if sequence < decrement:
        return _INT32_MAX - (decrement - sequence) + 1
    return sequence - decrement


@dataclass(frozen=True, slots=True)
class BatchMetadata:
    last_seq: int
    last_offset: int
    offset_delta: int
    timestamp: int

    @property
    def first_seq(self) -> int:
        return _decrease_sequence(self.last_seq, self.offset_delta)

    @property
    def first_offset(self) -> int:
        return self.last_offset - self.offset_delta


@dataclass(slots=True)
class ProducerStateEntry:
    producer_id: int
    producer_epoch: int = batch.NO_PRODUCER_EPOCH
    coordinator_epoch: int = -1
    last_timestamp: int = batch.NO_TIMESTAMP
    current_txn_first_offset: int | None = None
    batches: deque[BatchMetadata] = field(
        default_factory=lambda: deque(maxlen=NUM_BATCHES_TO_RETAIN)
    )

    @property
    def last_seq(self) -> int:
        return self.batches[-1].last_seq if self.batches else batch.NO_SEQUENCE

    @property
    def last_data_offset(self) -> int:
        return self.batches[-1].last_offset if self.batches else -1

    @property
    def last_offset_delta(self) -> int:
        return self.batches[-1].offset_delta if self.batches else 0

    def copy(self) -> ProducerStateEntry:
        return ProducerStateEntry(
            self.producer_id,
            self.producer_epoch,
            self.coordinator_epoch,
            self.last_timestamp,
            self.current_txn_first_offset,
            deque(self.batches, maxlen=NUM_BATCHES_TO_RETAIN),
        )

    def maybe_update_producer_epoch(self, epoch: int) -> None:
        if self.producer_epoch != epoch:
            self.batches.clear()
            self.producer_epoch = epoch

    def add_batch(self, epoch: int, last_seq: int, last_offset: int, delta: int, ts: int) -> None:
        self.maybe_update_producer_epoch(epoch)
        self.batches.append(BatchMetadata(last_seq, last_offset, delta, ts))
        self.last_timestamp = ts

    def find_duplicate_batch(self, header: BatchHeader) -> BatchMetadata | None:
        """The retained batch with the same epoch and sequence range, if any."""
        if header.producer_epoch != self.producer_epoch:
            return None
        first_seq, last_seq = header.base_sequence, header.last_sequence
        for metadata in self.batches:
            if metadata.last_seq == last_seq and metadata.first_seq == first_seq:
                return metadata
        return None


class ProducerAppendInfo:
    """Checks and accumulates one append's batches from one producer."""

    def __init__(
        self,
        tp: TopicPartition,
        current: ProducerStateEntry | None,
        producer_id: int,
        origin: AppendOrigin,
    ) -> None:
        self.topic_partition = tp
        self.producer_id = producer_id
        self.origin = origin
        self.current = current or ProducerStateEntry(producer_id)
        self.updated = self.current.copy()
        self.updated.batches.clear()

    def _check_producer_epoch(self, epoch: int, offset: int) -> None:
        if epoch < self.updated.producer_epoch:
            message = (
                f"epoch of producer {self.producer_id} at offset {offset} in "
                f"{self.topic_partition} is {epoch}, which is smaller than the last seen epoch "
                f"{self.updated.producer_epoch}"
            )
            if self.origin is AppendOrigin.REPLICATION:
                log.warning(message)
            else:
                raise InvalidProducerEpochError(message)

    def _check_sequence(self, epoch: int, first_seq: int, offset: int) -> None:
        updated, current = self.updated, self.current
        if epoch != updated.producer_epoch:
            if first_seq != 0 and updated.producer_epoch != batch.NO_PRODUCER_EPOCH:
                raise OutOfOrderSequenceError(
                    f"invalid sequence number for new epoch of producer {self.producer_id} at "
                    f"offset {offset} in {self.topic_partition}: {epoch} (request epoch), "
                    f"{first_seq} (seq. number), {updated.producer_epoch} (current epoch)"
                )
            return
        if updated.batches:
            last_seq = updated.last_seq
        elif epoch == current.producer_epoch:
            last_seq = current.last_seq
        else:
            last_seq = batch.NO_SEQUENCE
        in_sequence = first_seq == last_seq + 1 or (first_seq == 0 and last_seq == _INT32_MAX)
        if current.producer_epoch != batch.NO_PRODUCER_EPOCH and not in_sequence:
            raise OutOfOrderSequenceError(
                f"out of order sequence number for producer {self.producer_id} at offset "
                f"{offset} in {self.topic_partition}: {first_seq} (incoming seq. number), "
                f"{last_seq} (current end sequence number)"
            )

    def append(self, header: BatchHeader) -> None:
        """Check and record a data batch (offsets already assigned)."""
        epoch = header.producer_epoch
        self._check_producer_epoch(epoch, header.base_offset)
        if self.origin is AppendOrigin.CLIENT:
            self._check_sequence(epoch, header.base_sequence, header.base_offset)
        if not self.updated.batches and epoch == self.current.producer_epoch:
            self.updated.batches.extend(self.current.batches)
        self.updated.add_batch(
            epoch,
            header.last_sequence,
            header.last_offset,
            header.last_offset - header.base_offset,
            header.max_timestamp,
        )
        if header.is_transactional and self.updated.current_txn_first_offset is None:
            self.updated.current_txn_first_offset = header.base_offset


class ProducerStateManager:
    """All producers of one partition, their snapshots, and expiry."""

    def __init__(
        self,
        topic_partition: TopicPartition,
        log_dir: str,
        *,
        producer_id_expiration_ms: int,
        file_names: Iterable[str] | None = None,
    ) -> None:
        """``file_names``: the partition directory's listing, if the caller has one."""
        self.topic_partition = topic_partition
        self.log_dir = log_dir
        self.producer_id_expiration_ms = producer_id_expiration_ms
        self.producers: dict[int, ProducerStateEntry] = {}
        self.map_end_offset = 0
        self.last_snapshot_offset = 0
        self._snapshots: list[int] = []
        if file_names is None:
            file_names = os.listdir(log_dir) if os.path.isdir(log_dir) else []
        self.set_snapshot_files(file_names)

    def set_snapshot_files(self, names: Iterable[str]) -> None:
        """Learn the snapshot files from a listing of the partition directory."""
        offsets = []
        for name in names:
            if name.endswith(log_files.PRODUCER_SNAPSHOT_FILE_SUFFIX):
                offset = log_files.offset_from_file_name(name)
                if offset is not None:
                    offsets.append(offset)
        self._snapshots = sorted(offsets)

    # -- lookups and updates ---------------------------------------------------------------

    def last_entry(self, producer_id: int) -> ProducerStateEntry | None:
        return self.producers.get(producer_id)

    def prepare_update(self, producer_id: int, origin: AppendOrigin) -> ProducerAppendInfo:
        return ProducerAppendInfo(
            self.topic_partition, self.producers.get(producer_id), producer_id, origin
        )

    def analyze(
        self, headers: Iterable[BatchHeader], origin: AppendOrigin
    ) -> tuple[dict[int, ProducerAppendInfo], BatchMetadata | None]:
        """Check an append's batches (offsets assigned) against producer state, without
        changing it; returns the checked updates for ``update``, or, for a client batch
        that repeats one of the producer's retained batches, that original batch."""
        updated: dict[int, ProducerAppendInfo] = {}
        for header in headers:
            if not header.has_producer_id or header.is_control:
                continue
            if origin is AppendOrigin.CLIENT:
                entry = self.producers.get(header.producer_id)
                duplicate = entry.find_duplicate_batch(header) if entry is not None else None
                if duplicate is not None:
                    return {}, duplicate
            info = updated.get(header.producer_id)
            if info is None:
                info = updated[header.producer_id] = self.prepare_update(header.producer_id, origin)
            info.append(header)
        return updated, None

    def update(self, info: ProducerAppendInfo) -> None:
        self.producers[info.producer_id] = info.updated

    def update_map_end_offset(self, offset: int) -> None:
        self.map_end_offset = offset

    def replay(self, headers: Iterable[BatchHeader]) -> None:
        """Apply batches already in the log (recovery): no sequence checks."""
        for header in headers:
            if header.has_producer_id and not header.is_control:
                info = self.prepare_update(header.producer_id, AppendOrigin.REPLICATION)
                info.append(header)
                self.update(info)
            self.map_end_offset = header.next_offset

    def is_expired(self, entry: ProducerStateEntry, now: int) -> bool:
        return (
            entry.current_txn_first_offset is None
            and now - entry.last_timestamp >= self.producer_id_expiration_ms
        )

    def remove_expired_producers(self, now: int) -> int:
        expired = [pid for pid, entry in self.producers.items() if self.is_expired(entry, now)]
        for pid in expired:
            del self.producers[pid]
        return len(expired)

    # -- snapshots -------------------------------------------------------------------------

    @property
    def snapshot_offsets(self) -> list[int]:
        return list(self._snapshots)

    @property
    def latest_snapshot_offset(self) -> int | None:
        return self._snapshots[-1] if self._snapshots else None

    def take_snapshot(self, *, sync: bool = True) -> str | None:
        """Write a snapshot at the map end offset if there is none there yet."""
        if self.map_end_offset <= self.last_snapshot_offset:
            return None
        path = log_files.producer_snapshot_file(self.log_dir, self.map_end_offset)
        write_snapshot(path, self.producers.values(), sync=sync)
        if self.map_end_offset not in self._snapshots:
            self._snapshots.append(self.map_end_offset)
            self._snapshots.sort()
        self.last_snapshot_offset = self.map_end_offset
        return path

    def _delete_snapshot(self, offset: int) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(log_files.producer_snapshot_file(self.log_dir, offset))
        if offset in self._snapshots:
            self._snapshots.remove(offset)

    def delete_snapshots_before(self, offset: int) -> None:
        for snapshot in [o for o in self._snapshots if o < offset]:
            self._delete_snapshot(snapshot)

    def truncate_and_reload(self, log_start_offset: int, log_end_offset: int, now: int) -> None:
        """Drop snapshots outside (log start, log end], then load the latest one left.

        Afterwards ``map_end_offset`` says from where batches must be replayed.
        """
        for snapshot in list(self._snapshots):
            if snapshot > log_end_offset or snapshot <= log_start_offset:
                self._delete_snapshot(snapshot)
        if log_end_offset != self.map_end_offset:
            self.producers.clear()
            self._load_from_latest_snapshot(log_start_offset, now)
        else:
            self.on_log_start_offset_incremented(log_start_offset)

    def _load_from_latest_snapshot(self, log_start_offset: int, now: int) -> None:
        while self._snapshots:
            offset = self._snapshots[-1]
            path = log_files.producer_snapshot_file(self.log_dir, offset)
            try:
                entries = read_snapshot(path)
            except (CorruptSnapshotError, OSError) as exc:
                log.warning("failed to load producer snapshot %s: %s", path, exc)
                self._delete_snapshot(offset)
                continue
            self.producers = {e.producer_id: e for e in entries if not self.is_expired(e, now)}
            self.last_snapshot_offset = self.map_end_offset = offset
            return
        self.last_snapshot_offset = self.map_end_offset = log_start_offset

    def truncate_fully_and_start_at(self, offset: int) -> None:
        self.producers.clear()
        for snapshot in list(self._snapshots):
            self._delete_snapshot(snapshot)
        self.last_snapshot_offset = 0
        self.map_end_offset = offset

    def on_log_start_offset_incremented(self, log_start_offset: int) -> None:
        self.map_end_offset = max(self.map_end_offset, log_start_offset)
        self.last_snapshot_offset = self.latest_snapshot_offset or log_start_offset


def write_snapshot(path: str, entries: Iterable[ProducerStateEntry], *, sync: bool) -> None:
    body = bytearray()
    count = 0
    for entry in entries:
        body += _ENTRY.pack(
            entry.producer_id,
            entry.producer_epoch,
            entry.last_seq,
            entry.last_data_offset,
            entry.last_offset_delta,
            entry.last_timestamp,
            entry.coordinator_epoch,
            -1 if entry.current_txn_first_offset is None else entry.current_txn_first_offset,
        )
        count += 1
    checked = struct.pack(">i", count) + bytes(body)
    data = struct.pack(">hI", SNAPSHOT_VERSION, int(crc32c.crc32c(checked))) + checked
    write_atomically(path, data, fsync=sync)


def read_snapshot(path: str) -> list[ProducerStateEntry]:
    with open(path, "rb") as file:
        data = file.read()
    if len(data) < _HEADER.size:
        raise CorruptSnapshotError(f"snapshot {path} is too short")
    version, crc, count = _HEADER.unpack_from(data)
    if version != SNAPSHOT_VERSION:
        raise CorruptSnapshotError(f"snapshot {path} has unknown version {version}")
    if crc != int(crc32c.crc32c(memoryview(data)[6:])):
        raise CorruptSnapshotError(f"snapshot {path} is corrupt (CRC is no longer valid)")
    if count < 0 or len(data) != _HEADER.size + count * _ENTRY.size:
        raise CorruptSnapshotError(f"snapshot {path} has a bad entry count {count}")
    entries = []
    for values in _ENTRY.iter_unpack(memoryview(data)[_HEADER.size :]):
        pid, epoch, last_seq, last_offset, delta, timestamp, coordinator_epoch, txn = values
        entry = ProducerStateEntry(
            pid, epoch, coordinator_epoch, timestamp, None if txn < 0 else txn
        )
        if last_offset >= 0:
            entry.batches.append(BatchMetadata(last_seq, last_offset, delta, timestamp))
        entries.append(entry)
    return entries
