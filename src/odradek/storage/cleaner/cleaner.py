"""One cleaning of one log (Kafka's ``Cleaner``): deduplicate by key, write the result
as ``.cleaned`` segments.

The ``LogCleanerManager`` hands over a ``LogToClean``: a snapshot, taken on the log's
own thread, of the inactive segments from the log start up to the first uncleanable
offset, with the transaction index entries that cover them and the last batch of each
live producer. The cleaning itself touches nothing but files (it opens the source
segments by path, read only, and writes new files beside them), so it runs in a worker
thread while the log goes on taking appends on its active segment; the swap of the
cleaned segments into the log is the manager's, back on the log's thread.

A cleaning, as Kafka's:

1. **Offset map.** The dirty section (from the first dirty offset, the cleaner
   checkpoint, up to the first uncleanable offset) is read batch by batch and each
   record's key is put in the ``OffsetMap`` with its offset. Control batches and the
   batches of aborted transactions are skipped. When the map is full, the cleaning ends
   at the last batch that fitted: the next cleaning goes on from there.
2. **Groups.** The segments from the log start to the end of what the map covered are
   grouped so that each group's cleaned result still fits one segment (sum of sizes
   within ``segment.bytes``, offsets within a relative offset's reach).
3. **Retention**, record by record (``_Retention``): a record stays if no later record
   has its key (its offset is at or above the map's offset for it), except a tombstone
   whose batch's delete horizon has passed; records without a key go. The records of
   aborted transactions go. A transaction marker goes once nothing of its transaction is
   left and its delete horizon has passed. The last batch of a live producer stays even
   when all its records go (as an empty batch), so the producer's sequence survives.
   KIP-534: a kept batch with a tombstone, or a marker of an emptied transaction, is
   given a delete horizon, now + ``delete.retention.ms``, the first time it is cleaned;
   a consumer that started reading before has that long to see it.
4. **Writing.** Each group becomes one segment file ``<base>.log.cleaned`` (base offset
   of the group's first segment) with its offset, time and transaction indexes, fsynced.
   A batch whose records all stay is copied byte for byte; others are rebuilt
   (``record_codec.rebuild_batch``). If the group's last segment kept nothing, an empty
   batch over its last batch's offsets closes the cleaned segment, so that the segment's
   offset range reaches every segment it replaces: recovery, completing an interrupted
   swap, deletes the old segments whose base offsets fall in that range.
"""

from __future__ import annotations

import copy
import logging
import os
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from odradek.protocol import records as batch
from odradek.protocol.record_codec import (
    RecordDecodeError,
    RecordSpan,
    batch_payload,
    read_end_txn_marker,
    rebuild_batch,
    scan_records,
)
from odradek.protocol.records import BatchHeader
from odradek.protocol.types import TopicPartition
from odradek.storage import log_files
from odradek.storage.cleaner.offset_map import OffsetMap
from odradek.storage.errors import CorruptRecordError, KafkaStorageError
from odradek.storage.file_records import FileHandle, iter_headers
from odradek.storage.segment import Clock, LogSegment
from odradek.storage.txn_index import TxnIndexEntry

log = logging.getLogger(__name__)

_INT32_MAX = 2**31 - 1


@dataclass(frozen=True, slots=True)
class SourceSegment:
    """A segment of the log as it was when the cleaning was planned."""

    base_offset: int
    log_path: str
    size: int
    """Bytes of the segment when planned; an inactive segment does not grow."""
    next_offset: int
    """Base offset of the segment after it."""


@dataclass(frozen=True, slots=True)
class ProducerTail:
    """Where a live producer's last batch is (Kafka's ``lastRecordsOfActiveProducers``)."""

    last_data_offset: int
    """Last offset of its last data batch, -1 when it has only written markers."""
    producer_epoch: int


@dataclass(frozen=True, slots=True, kw_only=True)
class LogToClean:
    """What one cleaning works on; built by the manager on the log's thread."""

    topic_partition: TopicPartition
    directory: str
    segments: tuple[SourceSegment, ...]
    """The inactive segments from the log start up to the first uncleanable offset."""
    first_dirty_offset: int
    first_uncleanable_offset: int
    aborted_transactions: tuple[TxnIndexEntry, ...]
    """Every aborted transaction that overlaps the segments, by first offset."""
    producer_tails: Mapping[int, ProducerTail]
    now: int
    delete_retention_ms: int
    segment_bytes: int
    max_index_size: int
    index_interval_bytes: int


@dataclass(frozen=True, slots=True)
class CleanedSegment:
    """One ``.cleaned`` segment written, and the source segments it replaces."""

    base_offset: int
    replaces: tuple[SourceSegment, ...]


@dataclass(slots=True)
class CleanerStats:
    bytes_read: int = 0
    bytes_written: int = 0
    records_read: int = 0
    records_removed: int = 0
    map_records: int = 0


@dataclass(frozen=True, slots=True)
class CleaningResult:
    end_offset: int
    """Everything below is clean: the next cleaning's first dirty offset."""
    segments: tuple[CleanedSegment, ...]
    stats: CleanerStats
    earliest_delete_horizon: int | None
    """The earliest delete horizon left in the cleaned segments on a tombstone or a
    marker: once it passes, cleaning again removes something."""


class CleaningAbortedError(Exception):
    """The cleaner was asked to stop (broker shutdown); nothing was swapped."""


class Cleaner:
    """Cleans one log at a time with its own offset map."""

    def __init__(
        self,
        map_memory: int,
        *,
        load_factor: float = 0.9,
        clock: Clock,
        abort: threading.Event | None = None,
        max_io_bytes_per_second: float = float("inf"),
    ) -> None:
        self.offset_map = OffsetMap(map_memory, load_factor)
        self._clock = clock
        self._abort = abort or threading.Event()
        self._throttler = Throttler(max_io_bytes_per_second, self._abort)

    def clean(self, plan: LogToClean) -> CleaningResult:
        """Write the cleaned segments of ``plan``; the caller swaps them in (or, if the
        log changed meanwhile, deletes them). A failure deletes what was written."""
        stats = CleanerStats()
        self.offset_map.clear()
        end_offset = self._build_offset_map(plan, stats)
        to_clean = [s for s in plan.segments if s.base_offset < end_offset]
        retention = _Retention(plan, self.offset_map)
        cleaned: list[CleanedSegment] = []
        try:
            for group in group_segments_by_size(to_clean, plan.segment_bytes):
                self._clean_group(plan, group, retention, stats)
                cleaned.append(CleanedSegment(group[0].base_offset, tuple(group)))
        except BaseException:
            for item in cleaned:
                delete_cleaned_files(plan.directory, item.base_offset)
            raise
        return CleaningResult(end_offset, tuple(cleaned), stats, retention.earliest_horizon)

    # -- 1. offset map ---------------------------------------------------------------------

    def _build_offset_map(self, plan: LogToClean, stats: CleanerStats) -> int:
        """Fill the map from the dirty section; returns the offset it reached."""
        offset_map = self.offset_map
        start, stop = plan.first_dirty_offset, plan.first_uncleanable_offset
        txns = _TransactionTracker([t for t in plan.aborted_transactions if t.last_offset >= start])
        reached = start
        for segment in plan.segments:
            if segment.next_offset <= start:
                continue
            if segment.base_offset >= stop:
                break
            for header, data in self._read_batches(segment):
                if header.next_offset <= start:
                    continue
                if header.base_offset >= stop:
                    return reached
                if header.is_control:
                    txns.on_control_batch(header, _marker_is_commit(header, data))
                elif not txns.on_data_batch(header):
                    if offset_map and len(offset_map) + header.records_count > offset_map.capacity:
                        return reached
                    for span in _spans(header, data):
                        if span.key is not None:
                            offset_map.put(span.key, header.base_offset + span.offset_delta)
                    stats.map_records += header.records_count
                reached = header.next_offset
        return min(max(reached, start), stop)

    # -- 3, 4. retention and writing -------------------------------------------------------

    def _clean_group(
        self,
        plan: LogToClean,
        group: Sequence[SourceSegment],
        retention: _Retention,
        stats: CleanerStats,
    ) -> None:
        base = group[0].base_offset
        delete_cleaned_files(plan.directory, base)
        cleaned = LogSegment.create(
            plan.directory,
            base,
            index_interval_bytes=plan.index_interval_bytes,
            max_index_size=plan.max_index_size,
            clock=self._clock,
            suffix=log_files.CLEANED_FILE_SUFFIX,
        )
        try:
            for position, source in enumerate(group):
                wrote = False
                last: tuple[BatchHeader, bytes] | None = None
                for header, data in self._read_batches(source):
                    stats.bytes_read += header.size
                    stats.records_read += header.records_count
                    out = retention.filter(header, data, stats)
                    last = (header, data)
                    if out is None:
                        continue
                    kept_header = batch.read_header(out)
                    cleaned.append(
                        out,
                        largest_offset=kept_header.last_offset,
                        largest_timestamp=kept_header.max_timestamp,
                        offset_of_max_timestamp=kept_header.last_offset,
                    )
                    for entry in retention.take_index_entries():
                        cleaned.update_txn_index(
                            entry.producer_id,
                            entry.first_offset,
                            entry.last_offset,
                            entry.last_stable_offset,
                        )
                    stats.bytes_written += len(out)
                    wrote = True
                if not wrote and last is not None and position == len(group) - 1 and position:
                    filler = _filler_batch(last[0], last[1])
                    cleaned.append(
                        filler,
                        largest_offset=last[0].last_offset,
                        largest_timestamp=last[0].max_timestamp,
                        offset_of_max_timestamp=last[0].last_offset,
                    )
                    stats.bytes_written += len(filler)
            cleaned.on_become_inactive()
            cleaned.flush()
            cleaned.close_handles()
            # The cleaned segment keeps the age of the data it holds, as Kafka's does.
            modified = os.stat(group[-1].log_path).st_mtime_ns
            os.utime(cleaned.log_path, ns=(modified, modified))
        except BaseException:
            cleaned.close_handles()
            delete_cleaned_files(plan.directory, base)
            raise

    def _read_batches(self, segment: SourceSegment) -> Iterator[tuple[BatchHeader, bytes]]:
        for item in _read_batches(segment):
            if self._abort.is_set():
                raise CleaningAbortedError(f"cleaning of {segment.log_path} stopped")
            self._throttler.maybe_throttle(item[0].size)
            yield item


class Throttler:
    """Holds a cleaner's reads to ``log.cleaner.io.max.bytes.per.second`` (Kafka's
    ``Throttler``): after each slice of bytes, sleep for as long as the bytes were read
    ahead of the rate. Sleeps wake early when the cleaner is told to stop."""

    CHECK_BYTES = 1 << 20

    def __init__(self, rate: float, abort: threading.Event) -> None:
        self.rate = rate
        self._abort = abort
        self._bytes = 0
        self._since = time.monotonic()

    UNLIMITED = 1e300
    """Kafka's default is Double.MAX_VALUE: no limit."""

    def maybe_throttle(self, size: int) -> None:
        if self.rate >= self.UNLIMITED:
            return
        self._bytes += size
        if self._bytes < min(self.CHECK_BYTES, self.rate):
            return
        now = time.monotonic()
        ahead = self._bytes / self.rate - (now - self._since)
        if ahead > 0:
            self._abort.wait(ahead)
        self._bytes = 0
        self._since = time.monotonic()


# -- grouping ------------------------------------------------------------------------------


def group_segments_by_size(
    segments: Sequence[SourceSegment], max_size: int
) -> list[list[SourceSegment]]:
    """Consecutive segments whose cleaned result fits one segment (Kafka's
    ``groupSegmentsBySize``): together at most ``max_size`` bytes, and every offset
    within a relative offset (int32) of the first segment's base offset."""
    groups: list[list[SourceSegment]] = []
    remaining = list(segments)
    while remaining:
        group = [remaining.pop(0)]
        size = group[0].size
        while remaining:
            following = remaining[0]
            if size + following.size > max_size:
                break
            if following.next_offset - 1 - group[0].base_offset > _INT32_MAX:
                break
            size += following.size
            group.append(remaining.pop(0))
        groups.append(group)
    return groups


def cleaned_paths(directory: str, base_offset: int, suffix: str) -> list[str]:
    """The files of a segment in transit (``.cleaned`` or ``.swap``)."""
    return [
        log_files.log_file(directory, base_offset, suffix),
        log_files.offset_index_file(directory, base_offset, suffix),
        log_files.time_index_file(directory, base_offset, suffix),
        log_files.txn_index_file(directory, base_offset, suffix),
    ]


def delete_cleaned_files(directory: str, base_offset: int) -> None:
    for path in cleaned_paths(directory, base_offset, log_files.CLEANED_FILE_SUFFIX):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("cannot delete %s: %s", path, exc)


# -- reading -------------------------------------------------------------------------------


def _read_batches(segment: SourceSegment) -> Iterator[tuple[BatchHeader, bytes]]:
    """Each batch of the segment with its bytes (the header's position made 0)."""
    try:
        handle = FileHandle.open(segment.log_path, writable=False)
    except OSError as exc:
        raise KafkaStorageError(f"cannot open {segment.log_path}: {exc}") from exc
    try:
        for header in iter_headers(handle, 0, segment.size):
            data = handle.pread(header.size, header.position)
            local = copy.copy(header)
            local.position = 0
            yield local, data
    except OSError as exc:
        raise KafkaStorageError(f"cannot read {segment.log_path}: {exc}") from exc
    finally:
        handle.close()


def _spans(header: BatchHeader, data: bytes) -> list[RecordSpan]:
    try:
        return scan_records(batch_payload(data, header), header.records_count)
    except RecordDecodeError as exc:
        raise CorruptRecordError(
            f"corrupt batch at offset {header.base_offset} found while cleaning: {exc}"
        ) from exc


def _marker_is_commit(header: BatchHeader, data: bytes) -> bool | None:
    """True for a commit marker, False for an abort, None for another control record."""
    if header.records_count <= 0:
        return None
    try:
        marker = read_end_txn_marker(data, header)
    except RecordDecodeError:
        return None
    return None if marker is None else marker.commit


def _filler_batch(header: BatchHeader, data: bytes) -> bytes:
    """An empty batch spanning ``header``'s offsets, of no producer."""
    filler = copy.copy(header)
    filler.attributes = header.attributes & batch.TIMESTAMP_TYPE_MASK
    filler.producer_id = batch.NO_PRODUCER_ID
    filler.producer_epoch = batch.NO_PRODUCER_EPOCH
    filler.base_sequence = batch.NO_SEQUENCE
    return rebuild_batch(filler, b"", [])


# -- transactions --------------------------------------------------------------------------


class _TransactionTracker:
    """Which transactions the batches read so far are in (Kafka's
    ``CleanedTransactionMetadata``). Aborted transactions come from the transaction
    indexes, ordered by first offset; a producer's batches from the first offset of an
    aborted transaction up to its abort marker are aborted."""

    def __init__(self, aborted: Iterable[TxnIndexEntry]) -> None:
        self._pending = sorted(aborted, key=lambda entry: entry.first_offset)
        self._next = 0
        self._aborted: dict[int, list[object]] = {}
        """producer id -> [index entry, whether a batch of it was read]"""
        self._committed: set[int] = set()
        self.index_entries: list[TxnIndexEntry] = []
        """Entries of aborted transactions whose marker stays: the cleaned segment's
        transaction index."""

    def _reach(self, offset: int) -> None:
        pending = self._pending
        while self._next < len(pending) and pending[self._next].first_offset <= offset:
            entry = pending[self._next]
            self._aborted.setdefault(entry.producer_id, [entry, False])
            self._next += 1

    def on_data_batch(self, header: BatchHeader) -> bool:
        """True when the batch belongs to an aborted transaction."""
        self._reach(header.last_offset)
        if not header.is_transactional:
            return False
        state = self._aborted.get(header.producer_id)
        if state is not None:
            state[1] = True
            return True
        self._committed.add(header.producer_id)
        return False

    def on_control_batch(self, header: BatchHeader, commit: bool | None) -> bool:
        """True when the marker ends a transaction with nothing left in the log (or the
        control batch is empty already: a producer's last batch, kept empty)."""
        self._reach(header.last_offset)
        if header.records_count <= 0:
            return True
        if commit is None:
            return False
        producer_id = header.producer_id
        if commit:
            if producer_id in self._committed:
                self._committed.discard(producer_id)
                return False
            return True
        state = self._aborted.pop(producer_id, None)
        if state is not None and state[1]:
            entry = state[0]
            assert isinstance(entry, TxnIndexEntry)
            self.index_entries.append(entry)
            return False
        return True


@dataclass(slots=True)
class _Retention:
    """The retention decisions of step 3, batch by batch in offset order."""

    plan: LogToClean
    offset_map: OffsetMap
    txns: _TransactionTracker = field(init=False)
    earliest_horizon: int | None = None

    def __post_init__(self) -> None:
        self.txns = _TransactionTracker(self.plan.aborted_transactions)

    def take_index_entries(self) -> list[TxnIndexEntry]:
        entries = self.txns.index_entries
        self.txns.index_entries = []
        return entries

    def _horizon(self, header: BatchHeader) -> int | None:
        if header.attributes & batch.DELETE_HORIZON_FLAG:
            return header.base_timestamp
        return None

    def _note_horizon(self, horizon: int) -> None:
        if self.earliest_horizon is None or horizon < self.earliest_horizon:
            self.earliest_horizon = horizon

    def filter(self, header: BatchHeader, data: bytes, stats: CleanerStats) -> bytes | None:
        """The bytes to write for this batch, or None to drop it."""
        plan = self.plan
        now = plan.now
        horizon = self._horizon(header)
        horizon_passed = horizon is not None and horizon <= now
        empty_txn_marker = False
        if header.is_control:
            empty_txn_marker = self.txns.on_control_batch(header, _marker_is_commit(header, data))
            discard = empty_txn_marker and horizon_passed
        else:
            discard = self.txns.on_data_batch(header)
        if discard:
            spans: list[RecordSpan] = []
            kept: list[RecordSpan] = []
            payload = b""
        else:
            payload = batch_payload(data, header)
            try:
                spans = scan_records(payload, header.records_count)
            except RecordDecodeError as exc:
                raise CorruptRecordError(
                    f"corrupt batch at offset {header.base_offset} found while cleaning: {exc}"
                ) from exc
            if header.is_control:
                kept = spans
            else:
                kept = [s for s in spans if self._keep(header, s, horizon_passed)]
        stats.records_removed += header.records_count - len(kept)
        if kept:
            has_tombstone = not header.is_control and any(s.tombstone for s in kept)
            new_horizon = None
            if (has_tombstone or empty_txn_marker) and horizon is None:
                new_horizon = now + plan.delete_retention_ms
            if new_horizon is not None:
                self._note_horizon(new_horizon)
            elif horizon is not None and (has_tombstone or empty_txn_marker):
                self._note_horizon(horizon)
            if len(kept) == len(spans) and new_horizon is None:
                return data
            return rebuild_batch(header, payload, kept, delete_horizon=new_horizon)
        if header.has_producer_id and self._is_producer_tail(header):
            return rebuild_batch(header, b"", [])
        return None

    def _keep(self, header: BatchHeader, span: RecordSpan, horizon_passed: bool) -> bool:
        if span.key is None:
            return False
        offset = header.base_offset + span.offset_delta
        if offset < self.offset_map.get(span.key):
            return False
        return not (span.tombstone and horizon_passed)

    def _is_producer_tail(self, header: BatchHeader) -> bool:
        tail = self.plan.producer_tails.get(header.producer_id)
        if tail is None:
            return False
        if tail.last_data_offset >= 0:
            return header.last_offset == tail.last_data_offset
        return header.is_control and header.producer_epoch == tail.producer_epoch
