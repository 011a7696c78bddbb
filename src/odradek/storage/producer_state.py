"""Idempotent and transactional producer state of one partition (Kafka's
``ProducerStateManager``).

Per producer id: its epoch, the metadata of its last 5 batches (duplicate detection),
the epoch of the transaction coordinator that last wrote a marker for it, and the first
offset of its open transaction. ``ProducerAppendInfo`` checks an append the way Kafka's
does:

- epoch older than the current one: INVALID_PRODUCER_EPOCH;
- a new epoch must start at sequence 0 unless the producer had no epoch yet;
- same epoch: the first sequence must follow the last (wrapping at 2**31 - 1 to 0),
  else OUT_OF_ORDER_SEQUENCE_NUMBER, except that a producer with no state at all (expired,
  or its records deleted) may start anywhere; only client appends are checked (the
  coordinators' batches carry no sequence, and the leader checked replicated ones);
- a transactional data batch opens a transaction unless one is open; a
  non-transactional one while a transaction is open is INVALID_TXN_STATE;
- an end marker (control batch, ``record_codec.read_end_txn_marker``) closes the open
  transaction, if any (a marker for none completes nothing, as in Kafka): its producer
  epoch older than the current one is INVALID_PRODUCER_EPOCH, its coordinator epoch older
  than the producer's is TRANSACTION_COORDINATOR_FENCED; it sets the producer's epoch,
  coordinator epoch and timestamp, never its sequences;
- replication appends log the two epoch breaches instead of refusing them, as Kafka does;
- while a transaction verification of the producer is in progress (``verification``;
  KIP-890), a client batch whose first sequence is above the lowest sequence waiting on
  it is OUT_OF_ORDER_SEQUENCE_NUMBER; any transactional batch of the producer (data or
  marker) ends the verification state.

Duplicates are found (``find_duplicate_batch``) before those checks by the log.

Transactions of the partition: ``ongoing_txns`` (first offset -> producer id, in offset
order) and, once a marker completed them, ``unreplicated_txns`` until the high watermark
passes the marker. The first unstable offset is the lowest first offset of either; the
log's last stable offset is min(first unstable offset, high watermark). A completed
abort's last stable offset for the transaction index is ``last_stable_offset``: the
first offset of the earliest open transaction of another producer, else the marker's
offset + 1. Each batch is applied in turn, so a live append and a replay of the same
batches (recovery) compute the same values.

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
roll and on clean shutdown; on load, an entry's open transaction is open again, and state
after the latest snapshot is rebuilt by replaying batch headers (and the control record
of each marker). Completed transactions whose markers were not yet below the high
watermark are not in a snapshot (nor in Kafka's).

Not thread-safe: the owning log serialises calls.
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import crc32c

from odradek.protocol import records as batch
from odradek.protocol.record_codec import EndTxnMarker, RecordDecodeError, read_end_txn_marker
from odradek.protocol.records import BatchHeader
from odradek.protocol.types import TopicPartition
from odradek.storage import log_files
from odradek.storage.checkpoints import write_atomically
from odradek.storage.errors import (
    CorruptSnapshotError,
    InvalidProducerEpochError,
    InvalidRecordError,
    InvalidTxnStateError,
    OutOfOrderSequenceError,
    TransactionCoordinatorFencedError,
)
from odradek.storage.values import ActiveProducer, AppendOrigin
from odradek.storage.verification import VerificationGuard, VerificationStateEntry

log = logging.getLogger(__name__)

NUM_BATCHES_TO_RETAIN = 5
SNAPSHOT_VERSION = 1
_INT32_MAX = 2**31 - 1
_HEADER = struct.Struct(">hIi")
_ENTRY = struct.Struct(">qhiqiqiq")


MarkerReader = Callable[[BatchHeader], EndTxnMarker | None]
"""Reads the end marker of a control batch (None: not a transaction marker)."""
CompletedTxnCallback = Callable[["CompletedTxn", int], None]
"""Told of each completed transaction with its last stable offset (see the docstring)."""


@dataclass(frozen=True, slots=True)
class CompletedTxn:
    """A transaction that a marker ended (Kafka's ``CompletedTxn``)."""

    producer_id: int
    first_offset: int
    last_offset: int
    """Offset of the marker."""
    is_aborted: bool


def marker_in(buffer: bytes | bytearray | memoryview, header: BatchHeader) -> EndTxnMarker | None:
    """The end marker of the control batch ``header`` in ``buffer`` (of an append): None
    for an empty control batch or another kind of control record; InvalidRecordError
    when its control record cannot be read."""
    if header.records_count <= 0:
        return None
    try:
        return read_end_txn_marker(buffer, header)
    except RecordDecodeError as exc:
        raise InvalidRecordError(
            f"unreadable control batch at offset {header.base_offset}: {exc}"
        ) from exc


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
    """Checks and accumulates one append's batches from one producer.

    ``lenient``: a replay of batches already in the log (recovery), where a batch that
    breaks the transaction rules is logged, never refused.
    """

    def __init__(
        self,
        tp: TopicPartition,
        current: ProducerStateEntry | None,
        producer_id: int,
        origin: AppendOrigin,
        *,
        lenient: bool = False,
        verification: VerificationStateEntry | None = None,
    ) -> None:
        self.topic_partition = tp
        self.producer_id = producer_id
        self.origin = origin
        self.lenient = lenient
        self.verification = verification
        """The producer's verification in progress here, if any (client appends)."""
        self.saw_transactional = False
        """A transactional batch (data or marker) was appended: verification is over."""
        self.current = current or ProducerStateEntry(producer_id)
        self.updated = self.current.copy()
        self.updated.batches.clear()
        self.started_transactions: list[int] | None = None
        """First offsets of the transactions this append opened (None: none)."""

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
        verification = self.verification
        if verification is not None and first_seq > verification.lowest_sequence:
            raise OutOfOrderSequenceError(
                f"out of order sequence number for producer {self.producer_id} at offset "
                f"{offset} in {self.topic_partition}: {first_seq} (incoming seq. number), "
                f"{verification.lowest_sequence} (earliest seen sequence)"
            )
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

    def _carry_batches(self, epoch: int) -> None:
        if not self.updated.batches and epoch == self.current.producer_epoch:
            self.updated.batches.extend(self.current.batches)

    def append(
        self, header: BatchHeader, marker: EndTxnMarker | None = None
    ) -> CompletedTxn | None:
        """Check and record a batch (offsets already assigned): a data batch, or a control
        batch with its end ``marker`` (None: not a transaction marker, nothing to do).
        Returns the transaction a marker completed."""
        if header.is_control:
            if marker is None:
                return None
            self.saw_transactional = True
            return self._append_end_txn_marker(header, marker)
        epoch = header.producer_epoch
        self._check_producer_epoch(epoch, header.base_offset)
        if self.origin is AppendOrigin.CLIENT:
            self._check_sequence(epoch, header.base_sequence, header.base_offset)
        self._carry_batches(epoch)
        updated = self.updated
        updated.add_batch(
            epoch,
            header.last_sequence,
            header.last_offset,
            header.last_offset - header.base_offset,
            header.max_timestamp,
        )
        if header.is_transactional:
            self.saw_transactional = True
            if updated.current_txn_first_offset is None:
                updated.current_txn_first_offset = header.base_offset
                if self.started_transactions is None:
                    self.started_transactions = []
                self.started_transactions.append(header.base_offset)
        elif updated.current_txn_first_offset is not None:
            message = (
                f"expected a transactional write from producer {self.producer_id} at offset "
                f"{header.base_offset} in partition {self.topic_partition}: its transaction "
                f"from offset {updated.current_txn_first_offset} is still open"
            )
            if not self.lenient:
                raise InvalidTxnStateError(message)
            log.warning(message)
        return None

    def _append_end_txn_marker(
        self, header: BatchHeader, marker: EndTxnMarker
    ) -> CompletedTxn | None:
        offset = header.base_offset
        epoch = header.producer_epoch
        self._check_producer_epoch(epoch, offset)
        updated = self.updated
        if updated.coordinator_epoch > marker.coordinator_epoch:
            message = (
                f"invalid coordinator epoch for producer {self.producer_id} at offset {offset} "
                f"in partition {self.topic_partition}: {marker.coordinator_epoch} (zombie), "
                f"{updated.coordinator_epoch} (current)"
            )
            if self.origin is not AppendOrigin.REPLICATION:
                raise TransactionCoordinatorFencedError(message)
            log.info(message)
        first = updated.current_txn_first_offset
        completed = (
            None
            if first is None
            else CompletedTxn(self.producer_id, first, offset, is_aborted=not marker.commit)
        )
        self._carry_batches(epoch)
        updated.maybe_update_producer_epoch(epoch)
        updated.current_txn_first_offset = None
        updated.coordinator_epoch = marker.coordinator_epoch
        updated.last_timestamp = header.max_timestamp
        return completed


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
        self.ongoing_txns: dict[int, int] = {}
        """Open transactions: first offset -> producer id, in offset order."""
        self.unreplicated_txns: dict[int, CompletedTxn] = {}
        """Completed transactions whose marker is not yet below the high watermark, by
        first offset (in completion order)."""
        self.verification_states: dict[int, VerificationStateEntry] = {}
        """Transaction verifications in progress, by producer id (``storage.verification``)."""
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

    def prepare_update(
        self, producer_id: int, origin: AppendOrigin, *, lenient: bool = False
    ) -> ProducerAppendInfo:
        return ProducerAppendInfo(
            self.topic_partition,
            self.producers.get(producer_id),
            producer_id,
            origin,
            lenient=lenient,
            verification=(
                self.verification_states.get(producer_id) if origin is AppendOrigin.CLIENT else None
            ),
        )

    # -- transaction verification (KIP-890) ------------------------------------------------

    def has_ongoing_transaction(self, producer_id: int, producer_epoch: int) -> bool:
        """Whether the producer has a transaction open here, at ``producer_epoch``."""
        entry = self.producers.get(producer_id)
        return (
            entry is not None
            and entry.current_txn_first_offset is not None
            and entry.producer_epoch == producer_epoch
        )

    def maybe_start_verification(
        self, producer_id: int, sequence: int, producer_epoch: int, now: int
    ) -> VerificationGuard | None:
        """The guard a transactional batch must be verified under, None when the producer
        already has its transaction open here (nothing to verify). A verification in
        progress is shared: its guard is returned and its lowest sequence updated."""
        if self.has_ongoing_transaction(producer_id, producer_epoch):
            return None
        entry = self.verification_states.get(producer_id)
        if entry is None:
            entry = VerificationStateEntry(now, sequence, producer_epoch)
            self.verification_states[producer_id] = entry
        else:
            entry.maybe_update_lowest_sequence_and_epoch(sequence, producer_epoch)
        return entry.guard

    def verification_guard(self, producer_id: int) -> VerificationGuard | None:
        """The guard of the producer's verification in progress, if any."""
        entry = self.verification_states.get(producer_id)
        return None if entry is None else entry.guard

    def analyze(
        self,
        headers: Iterable[BatchHeader],
        origin: AppendOrigin,
        buffer: bytes | bytearray | memoryview,
    ) -> tuple[
        dict[int, ProducerAppendInfo],
        BatchMetadata | None,
        list[tuple[CompletedTxn, int]] | None,
    ]:
        """Check an append's batches (offsets assigned, in ``buffer``) against producer
        state, without changing it. Returns the checked updates for ``update``; or, for a
        client batch that repeats one of the producer's retained batches, that original
        batch; and the transactions that the append's markers complete (None: none), each
        with its last stable offset, for ``complete_txn`` and the transaction index."""
        updated: dict[int, ProducerAppendInfo] = {}
        completed: list[tuple[CompletedTxn, int]] | None = None
        ongoing: dict[int, int] | None = None  # open transactions as of each batch
        for header in headers:
            if not header.has_producer_id:
                continue
            pid = header.producer_id
            marker = None
            if header.is_control:
                marker = marker_in(buffer, header)
                if marker is None:
                    continue
            elif origin is AppendOrigin.CLIENT:
                entry = self.producers.get(pid)
                duplicate = entry.find_duplicate_batch(header) if entry is not None else None
                if duplicate is not None:
                    return {}, duplicate, None
            info = updated.get(pid)
            if info is None:
                info = updated[pid] = self.prepare_update(pid, origin)
            done = info.append(header, marker)
            if done is not None:
                if ongoing is None:
                    ongoing = dict(self.ongoing_txns)
                if completed is None:
                    completed = []
                completed.append((done, _last_stable_offset(ongoing, done)))
                ongoing.pop(done.first_offset, None)
            elif (
                header.is_transactional
                and info.updated.current_txn_first_offset == header.base_offset
            ):
                if ongoing is None:
                    ongoing = dict(self.ongoing_txns)
                ongoing[header.base_offset] = pid
        return updated, None, completed

    def update(self, info: ProducerAppendInfo) -> None:
        self.producers[info.producer_id] = info.updated
        if info.saw_transactional and self.verification_states:
            # The transaction opened (a first offset now answers for it) or ended (a
            # verification started before the marker must not open the next one).
            self.verification_states.pop(info.producer_id, None)
        started = info.started_transactions
        if started is not None:
            for first_offset in started:
                ongoing = self.ongoing_txns
                in_order = not ongoing or first_offset > next(reversed(ongoing))
                ongoing[first_offset] = info.producer_id
                if not in_order:  # offsets only grow, but keep the order whatever comes
                    self.ongoing_txns = dict(sorted(ongoing.items()))

    def last_stable_offset(self, completed: CompletedTxn) -> int:
        """Kafka's ``lastStableOffset(completedTxn)``, before ``complete_txn``."""
        return _last_stable_offset(self.ongoing_txns, completed)

    def complete_txn(self, completed: CompletedTxn) -> None:
        """The transaction's marker was written: it is no longer open, and stays unstable
        until the high watermark passes its marker."""
        if self.ongoing_txns.pop(completed.first_offset, None) is None:
            log.warning(
                "%s: completed transaction %s was not open", self.topic_partition, completed
            )
        self.unreplicated_txns[completed.first_offset] = completed

    def first_unstable_offset(self) -> int | None:
        """The first offset of the earliest transaction that is open or whose marker is
        not yet below the high watermark; None when there is none."""
        first = next(iter(self.ongoing_txns), None)
        if self.unreplicated_txns:
            unreplicated = min(self.unreplicated_txns)
            if first is None or unreplicated < first:
                first = unreplicated
        return first

    def on_high_watermark_updated(self, high_watermark: int) -> None:
        self._remove_unreplicated_txns(high_watermark)

    def _remove_unreplicated_txns(self, offset: int) -> None:
        """Forget completed transactions whose marker is below ``offset``."""
        txns = self.unreplicated_txns
        if txns:
            for first_offset in [f for f, txn in txns.items() if txn.last_offset < offset]:
                del txns[first_offset]

    def update_map_end_offset(self, offset: int) -> None:
        self.map_end_offset = offset

    def replay_batch(
        self,
        header: BatchHeader,
        read_marker: MarkerReader,
        on_completed: CompletedTxnCallback | None = None,
    ) -> None:
        """Apply one batch already in the log (recovery): no sequence checks, nothing
        refused. ``read_marker`` reads a control batch's marker; ``on_completed`` hears
        of each transaction a marker completes, with its last stable offset."""
        if header.has_producer_id:
            marker = read_marker(header) if header.is_control else None
            if marker is not None or not header.is_control:
                info = self.prepare_update(
                    header.producer_id, AppendOrigin.REPLICATION, lenient=True
                )
                done = info.append(header, marker)
                self.update(info)
                if done is not None:
                    if on_completed is not None:
                        on_completed(done, self.last_stable_offset(done))
                    self.complete_txn(done)
        self.map_end_offset = header.next_offset

    def replay(self, headers: Iterable[BatchHeader], read_marker: MarkerReader) -> None:
        """Apply batches already in the log (see ``replay_batch``)."""
        for header in headers:
            self.replay_batch(header, read_marker)

    def active_producers(self) -> list[ActiveProducer]:
        """Every producer's state (DescribeProducers), by producer id."""
        return [
            ActiveProducer(
                producer_id=pid,
                producer_epoch=entry.producer_epoch,
                last_sequence=entry.last_seq,
                last_timestamp=entry.last_timestamp,
                coordinator_epoch=entry.coordinator_epoch,
                current_txn_start_offset=(
                    -1 if entry.current_txn_first_offset is None else entry.current_txn_first_offset
                ),
            )
            for pid, entry in sorted(self.producers.items())
        ]

    def is_expired(self, entry: ProducerStateEntry, now: int) -> bool:
        return (
            entry.current_txn_first_offset is None
            and now - entry.last_timestamp >= self.producer_id_expiration_ms
        )

    def remove_expired_producers(self, now: int) -> int:
        """Drop idle producers, and verifications never completed, older than
        ``producer.id.expiration.ms``; the number of producers dropped."""
        expired = [pid for pid, entry in self.producers.items() if self.is_expired(entry, now)]
        for pid in expired:
            del self.producers[pid]
        if self.verification_states:
            self.verification_states = {
                pid: entry
                for pid, entry in self.verification_states.items()
                if now - entry.timestamp < self.producer_id_expiration_ms
            }
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
            self._clear()
            self._load_from_latest_snapshot(log_start_offset, now)
        else:
            self.on_log_start_offset_incremented(log_start_offset)

    def _clear(self) -> None:
        self.producers.clear()
        self.ongoing_txns.clear()
        # As Kafka: the offset truncated to is at or below the high watermark, so every
        # completed transaction left was replicated.
        self.unreplicated_txns.clear()

    def _load_entries(self, entries: Iterable[ProducerStateEntry], now: int) -> None:
        self.producers = {e.producer_id: e for e in entries if not self.is_expired(e, now)}
        self.ongoing_txns = {
            first: pid
            for first, pid in sorted(
                (e.current_txn_first_offset, e.producer_id)
                for e in self.producers.values()
                if e.current_txn_first_offset is not None
            )
        }
        self.unreplicated_txns = {}

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
            self._load_entries(entries, now)
            self.last_snapshot_offset = self.map_end_offset = offset
            return
        self.last_snapshot_offset = self.map_end_offset = log_start_offset

    def load_at(self, offset: int, log_start_offset: int, now: int) -> None:
        """Load the latest readable snapshot in [log start offset, ``offset``], changing
        no file (a scratch state for recovery); without one, start empty at the log
        start offset. The caller replays batches from ``map_end_offset`` to ``offset``."""
        self._clear()
        for snapshot in reversed(self._snapshots):
            if not log_start_offset <= snapshot <= offset:
                continue
            path = log_files.producer_snapshot_file(self.log_dir, snapshot)
            try:
                entries = read_snapshot(path)
            except (CorruptSnapshotError, OSError) as exc:
                log.warning("failed to load producer snapshot %s: %s", path, exc)
                continue
            self._load_entries(entries, now)
            self.last_snapshot_offset = self.map_end_offset = snapshot
            return
        self.last_snapshot_offset = self.map_end_offset = log_start_offset

    def truncate_fully_and_start_at(self, offset: int) -> None:
        self._clear()
        for snapshot in list(self._snapshots):
            self._delete_snapshot(snapshot)
        self.last_snapshot_offset = 0
        self.map_end_offset = offset

    def on_log_start_offset_incremented(self, log_start_offset: int) -> None:
        """As Kafka: completed transactions whose marker is below the log start offset are
        forgotten; open ones stay (the log clamps the first unstable offset)."""
        self._remove_unreplicated_txns(log_start_offset)
        self.map_end_offset = max(self.map_end_offset, log_start_offset)
        self.last_snapshot_offset = self.latest_snapshot_offset or log_start_offset


def _last_stable_offset(ongoing: dict[int, int], completed: CompletedTxn) -> int:
    for first_offset, pid in ongoing.items():
        if pid != completed.producer_id:
            return first_offset
    return completed.last_offset + 1


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
