"""Loading a partition directory at start-up, with recovery (Kafka's ``LogLoader``).

1. Leftovers: ``*.deleted``, ``*.cleaned`` and ``*.tmp`` files are deleted; ``*.swap``
   files (a finished compaction or split whose rename was interrupted) replace the
   segments they cover and are renamed into place, except swaps at or after the lowest
   ``.cleaned`` offset (an unfinished split), which are deleted. Index files without a
   ``.log`` are deleted.
2. Segments are listed, not opened. A segment missing an offset or time index file, or
   whose ``.txnindex`` fails its sanity check (read for every segment that has one, as
   Kafka does; most have none), is recovered.
3. After an unclean stop, every segment from the one holding the recovery point onward
   is recovered (``LogSegment.recover``: CRC of every batch, indexes rebuilt, torn or
   garbage tail truncated); after the first segment that had to be truncated, the later
   ones are deleted. Recovery also rebuilds the transaction index, which needs the
   producer state as of each abort marker (the transactions then open): as Kafka's
   ``recoverSegment``, a scratch ``ProducerStateManager`` is loaded from the latest
   snapshot at or below the segment's base offset and the batches in between are
   replayed, then the segment's own batches go through it. It is made only when the
   segment holds a batch with a producer id, and carries on to the next segment.
   After a clean shutdown nothing is scanned except the active segment's tail: its last
   index entry is checked against the batch it points at, headers are scanned from there
   to the end of the file, and the batches after the recovery point (there should be
   none) are CRC-checked. Garbage appended to the ``.log``, ``.index`` or ``.timeindex``
   is detected that way, and the tail truncated or the indexes rebuilt.
4. Log start offset = max(checkpoint, first segment's base offset); the leader epoch
   cache is truncated to the log's range (an entry starting exactly at the log end
   stays); producer state comes from the latest snapshot plus a replay of batch headers
   after it. Descriptors opened by the checks are closed again.

A corrupt segment never stops the start-up: what is valid is kept and a warning logged.
Work is proportional to the data after the recovery point (plus, when producer state
must be replayed, the data after the latest producer snapshot, i.e. since the last roll).

Runs before the log is shared; not thread-safe.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass

from odradek.config import LogConfig
from odradek.protocol.records import BatchHeader
from odradek.protocol.types import TopicPartition
from odradek.storage import log_files
from odradek.storage.errors import CorruptIndexError, KafkaStorageError
from odradek.storage.file_records import FileHandle, HandleCache, iter_headers
from odradek.storage.leader_epoch import LeaderEpochFileCache
from odradek.storage.local_log import LogSegments, roll_jitter
from odradek.storage.producer_state import CompletedTxn, ProducerStateManager
from odradek.storage.segment import Clock, LogSegment
from odradek.storage.time_index import NO_TIMESTAMP

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LoadedLogOffsets:
    log_start_offset: int
    recovery_point: int
    next_offset: int


class LogLoader:
    def __init__(
        self,
        directory: str,
        topic_partition: TopicPartition,
        config: LogConfig,
        *,
        clock: Clock,
        handle_cache: HandleCache | None,
        clean_shutdown: bool,
        log_start_offset_checkpoint: int,
        recovery_point_checkpoint: int,
        leader_epoch_cache: LeaderEpochFileCache,
        producer_state: ProducerStateManager,
    ) -> None:
        self.dir = directory
        self.topic_partition = topic_partition
        self.config = config
        self.clock = clock
        self.handle_cache = handle_cache
        self.clean_shutdown = clean_shutdown
        self.log_start_offset_checkpoint = log_start_offset_checkpoint
        self.recovery_point_checkpoint = recovery_point_checkpoint
        self.leader_epoch_cache = leader_epoch_cache
        self.producer_state = producer_state
        self.segments = LogSegments()
        self._txn_state: _TxnIndexRebuilder | None = None

    def _segment(self, base_offset: int, *, txn_index_exists: bool | None = None) -> LogSegment:
        return LogSegment(
            self.dir,
            base_offset,
            index_interval_bytes=self.config.index_interval_bytes,
            max_index_size=self.config.segment_index_bytes,
            clock=self.clock,
            roll_jitter_ms=roll_jitter(self.config),
            handle_cache=self.handle_cache,
            txn_index_exists=txn_index_exists,
        )

    def _new_segment(self, base_offset: int) -> LogSegment:
        return LogSegment.create(
            self.dir,
            base_offset,
            index_interval_bytes=self.config.index_interval_bytes,
            max_index_size=self.config.segment_index_bytes,
            clock=self.clock,
            roll_jitter_ms=roll_jitter(self.config),
            handle_cache=self.handle_cache,
        )

    def load(self) -> LoadedLogOffsets:
        names = self._remove_temp_files_and_complete_swaps(os.listdir(self.dir))
        self.producer_state.set_snapshot_files(names)
        self._txn_state = _TxnIndexRebuilder(self, names)
        self._load_segment_files(names)
        next_offset, recovery_point = self._recover()
        log_start = max(self.log_start_offset_checkpoint, self.segments.base_offsets[0])
        cache = self.leader_epoch_cache
        # Entries that start past the log end are gone with the data they described. One
        # that starts exactly at the log end (an epoch with nothing appended yet: every
        # idle partition) is kept; Kafka drops it and the leader writes it straight back,
        # which here cost a rewrite and an fsync per partition on every start.
        cache.truncate_from_end(next_offset + 1)
        cache.truncate_from_start(log_start)
        # Whatever the checks opened is closed again: a partition that is never written or
        # read after start-up holds no descriptor (the first use reopens its files).
        self._txn_state = None
        for segment in self.segments:
            segment.close_handles()
        return LoadedLogOffsets(log_start, recovery_point, next_offset)

    # -- leftovers -------------------------------------------------------------------------

    def _remove_temp_files_and_complete_swaps(self, names: list[str]) -> list[str]:
        """Returns the directory's file names afterwards."""
        swaps: list[str] = []
        min_cleaned = None
        for name in names:
            path = os.path.join(self.dir, name)
            if name.endswith((log_files.DELETED_FILE_SUFFIX, log_files.TMP_FILE_SUFFIX)):
                _unlink(path)
            elif name.endswith(log_files.CLEANED_FILE_SUFFIX):
                offset = log_files.offset_from_file_name(name)
                if offset is not None:
                    min_cleaned = offset if min_cleaned is None else min(min_cleaned, offset)
                _unlink(path)
            elif name.endswith(log_files.SWAP_FILE_SUFFIX):
                swaps.append(name)
        if not swaps and len(names) == len(kept := [n for n in names if _is_kept(n)]):
            return kept
        valid_swaps = []
        for name in swaps:
            offset = log_files.offset_from_file_name(name)
            if offset is None or (min_cleaned is not None and offset >= min_cleaned):
                _unlink(os.path.join(self.dir, name))
            else:
                valid_swaps.append(name)
        ranges = []
        for name in valid_swaps:
            if name.endswith(log_files.LOG_FILE_SUFFIX + log_files.SWAP_FILE_SUFFIX):
                base = log_files.offset_from_file_name(name)
                assert base is not None
                handle = FileHandle.open(os.path.join(self.dir, name), writable=False)
                next_offset = base + 1
                for header in iter_headers(handle, 0, os.fstat(handle.fileno()).st_size):
                    next_offset = header.next_offset
                handle.close()
                ranges.append((base, next_offset))
        for name in os.listdir(self.dir):
            offset = log_files.offset_from_file_name(name)
            if offset is None or name.endswith(log_files.SWAP_FILE_SUFFIX):
                continue
            if name.endswith(log_files.PRODUCER_SNAPSHOT_FILE_SUFFIX):
                continue
            if any(low <= offset < high for low, high in ranges):
                log.info("deleting segment file %s replaced by a swap file", name)
                _unlink(os.path.join(self.dir, name))
        for name in valid_swaps:
            path = os.path.join(self.dir, name)
            if os.path.exists(path):
                os.replace(path, path[: -len(log_files.SWAP_FILE_SUFFIX)])
        return os.listdir(self.dir)

    def _load_segment_files(self, listing: list[str]) -> None:
        names = set(listing)
        for name in sorted(names):
            offset = log_files.offset_from_file_name(name)
            if offset is None:
                continue
            if name.endswith(
                (
                    log_files.INDEX_FILE_SUFFIX,
                    log_files.TIME_INDEX_FILE_SUFFIX,
                    log_files.TXN_INDEX_FILE_SUFFIX,
                )
            ):
                if log_files.filename_prefix(offset) + log_files.LOG_FILE_SUFFIX not in names:
                    log.warning("deleting orphaned index file %s", os.path.join(self.dir, name))
                    _unlink(os.path.join(self.dir, name))
            elif name.endswith(log_files.LOG_FILE_SUFFIX):
                prefix = log_files.filename_prefix(offset)
                has_txn_index = prefix + log_files.TXN_INDEX_FILE_SUFFIX in names
                segment = self._segment(offset, txn_index_exists=has_txn_index)
                if (
                    prefix + log_files.INDEX_FILE_SUFFIX not in names
                    or prefix + log_files.TIME_INDEX_FILE_SUFFIX not in names
                ):
                    log.warning("index files missing for %s, rebuilding", segment.log_path)
                    self._recover_segment(segment)
                elif has_txn_index:
                    try:
                        segment.txn_index.sanity_check()
                    except CorruptIndexError as exc:
                        log.warning("%s; recovering %s", exc, segment.log_path)
                        self._recover_segment(segment)
                self.segments.add(segment)

    # -- recovery --------------------------------------------------------------------------

    def _recover_segment(self, segment: LogSegment) -> int:
        cache = self.leader_epoch_cache
        txn_state = self._txn_state
        assert txn_state is not None
        txn_state.start(segment)

        def on_batch(header: BatchHeader) -> None:
            epoch = header.partition_leader_epoch
            latest = cache.latest_epoch
            if epoch >= 0 and (latest is None or epoch > latest):
                cache.assign(epoch, header.base_offset)
            txn_state.on_batch(header)

        try:
            return segment.recover(on_batch)
        except (OSError, KafkaStorageError, ValueError) as exc:
            txn_state.forget()
            log.warning("cannot recover %s (%s); emptying it", segment.log_path, exc)
            return segment.truncate_to(segment.base_offset)

    def _recover(self) -> tuple[int, int]:
        """Returns (next offset, recovery point)."""
        segments = self.segments
        next_offset: int | None = None
        if not self.clean_shutdown and len(segments):
            unflushed = segments.values_from(self.recovery_point_checkpoint)
            for position, segment in enumerate(unflushed):
                if self._recover_segment(segment) > 0:
                    rest = unflushed[position + 1 :]
                    if rest:
                        log.warning(
                            "corruption in segment %d of %s; deleting %d later segments",
                            segment.base_offset,
                            self.topic_partition,
                            len(rest),
                        )
                    for later in rest:
                        segments.remove(later.base_offset)
                        later.delete()
                    break
        elif len(segments):
            next_offset = self._check_active_tail()
        last = segments.last
        if last is not None and next_offset is None:
            next_offset = last.read_next_offset()
        if next_offset is not None and next_offset < self.log_start_offset_checkpoint:
            log.warning(
                "deleting all segments of %s: log end offset %d is below log start offset %d",
                self.topic_partition,
                next_offset,
                self.log_start_offset_checkpoint,
            )
            for segment in list(segments):
                segments.remove(segment.base_offset)
                segment.delete()
            self.leader_epoch_cache.clear_and_flush()
            self.producer_state.truncate_fully_and_start_at(self.log_start_offset_checkpoint)
            next_offset = None
        if next_offset is None:
            segments.add(self._new_segment(self.log_start_offset_checkpoint))
            next_offset = self.log_start_offset_checkpoint
        if self.clean_shutdown:
            return next_offset, next_offset
        return next_offset, min(self.recovery_point_checkpoint, next_offset)

    def _check_active_tail(self) -> int | None:
        """After a clean shutdown: find garbage after the recovery point without loading
        the active segment's index (see the module docstring). Returns the log end offset
        when the tail was sound."""
        segment = self.segments.last
        assert segment is not None
        try:
            return self._check_tail(segment)
        except CorruptIndexError as exc:
            log.warning("%s; recovering %s", exc, segment.log_path)
            self._recover_segment(segment)
            return None

    def _check_tail(self, segment: LogSegment) -> int | None:
        base = segment.base_offset
        raw = segment.offset_index.peek_last_raw()
        entry_offset, position = base, 0
        if raw is not None:
            relative, position = (
                int.from_bytes(raw[:4], "big", signed=True),
                int.from_bytes(raw[4:], "big", signed=True),
            )
            entry_offset = base + relative
            if relative < 0 or not 0 < position < segment.size:
                raise CorruptIndexError(f"last offset index entry of {segment.log_path} is invalid")
        headers = list(segment.iter_headers(position))
        if raw is not None and (not headers or headers[0].base_offset > entry_offset):
            raise CorruptIndexError(f"last offset index entry of {segment.log_path} is invalid")
        next_offset = headers[-1].next_offset if headers else base
        if raw is not None and entry_offset >= next_offset:
            raise CorruptIndexError(f"last offset index entry of {segment.log_path} is invalid")
        timestamp, time_offset = segment.time_index.peek_last_entry()
        if timestamp < NO_TIMESTAMP or not base <= time_offset < max(next_offset, base + 1):
            raise CorruptIndexError(f"last time index entry of {segment.log_path} is invalid")
        framed_end = headers[-1].position + headers[-1].size if headers else position
        unflushed_start = next(
            (h.position for h in headers if h.base_offset >= self.recovery_point_checkpoint),
            framed_end,
        )
        if unflushed_start < segment.size and segment.validate_tail(unflushed_start) > 0:
            return None
        return next_offset


def _is_kept(name: str) -> bool:
    return not name.endswith(
        (log_files.DELETED_FILE_SUFFIX, log_files.TMP_FILE_SUFFIX, log_files.CLEANED_FILE_SUFFIX)
    )


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


class _TxnIndexRebuilder:
    """The scratch producer state with which recovery rebuilds transaction indexes (see
    the module docstring). ``start`` before each recovered segment, ``on_batch`` with
    each of its valid batches."""

    def __init__(self, loader: LogLoader, names: list[str]) -> None:
        self._loader = loader
        self._names = names
        self._state: ProducerStateManager | None = None
        self._segment: LogSegment | None = None
        self._ready = False

    def start(self, segment: LogSegment) -> None:
        self._segment = segment
        state = self._state
        self._ready = state is not None and state.map_end_offset == segment.base_offset

    def forget(self) -> None:
        self._state = None
        self._ready = False

    def on_batch(self, header: BatchHeader) -> None:
        if not self._ready:
            if not header.has_producer_id:
                return
            self._load()
        state, segment = self._state, self._segment
        assert state is not None and segment is not None
        state.replay_batch(header, segment.read_end_txn_marker, self._on_completed)

    def _on_completed(self, txn: CompletedTxn, last_stable_offset: int) -> None:
        segment = self._segment
        assert segment is not None
        if txn.is_aborted:
            segment.update_txn_index(
                txn.producer_id, txn.first_offset, txn.last_offset, last_stable_offset, write=False
            )

    def _load(self) -> None:
        loader, segment = self._loader, self._segment
        assert segment is not None
        state = ProducerStateManager(
            loader.topic_partition,
            loader.dir,
            producer_id_expiration_ms=loader.producer_state.producer_id_expiration_ms,
            file_names=self._names,
        )
        log_start = loader.log_start_offset_checkpoint
        now = loader.clock()
        state.load_at(segment.base_offset, log_start, now)
        _replay(state, loader.segments, log_start_offset=log_start, last_offset=segment.base_offset)
        state.update_map_end_offset(segment.base_offset)
        self._state = state
        self._ready = True


def _replay(
    state: ProducerStateManager,
    segments: LogSegments,
    *,
    log_start_offset: int,
    last_offset: int,
    snapshot_offsets: frozenset[int] | set[int] = frozenset(),
) -> None:
    """Replay the batches from ``state.map_end_offset`` to ``last_offset`` into
    ``state``, snapshotting it at the base offsets in ``snapshot_offsets`` on the way."""
    last_offset_segment = segments.floor(last_offset)
    for segment in segments.values_from(state.map_end_offset, last_offset):
        start = max(segment.base_offset, state.map_end_offset, log_start_offset)
        state.update_map_end_offset(start)
        if segment.base_offset in snapshot_offsets:
            state.take_snapshot()
        first = segment.translate_offset(start)
        if first is None:
            continue
        end: int | None = None
        if segment is last_offset_segment:
            last = segment.translate_offset(last_offset)
            end = last.position if last is not None else None
        state.replay(segment.iter_headers(first.position, end), segment.read_end_txn_marker)


def rebuild_producer_state(
    state: ProducerStateManager,
    segments: LogSegments,
    *,
    log_start_offset: int,
    last_offset: int,
    now: int,
    reload_from_clean_shutdown: bool,
) -> None:
    """Kafka's ``rebuildProducerState``: the latest snapshot at or below ``last_offset``,
    then the batch headers after it replayed.

    After a clean shutdown without any snapshot (no producer ever wrote), empty snapshots
    are taken instead of scanning the log. Snapshots are also (re)taken at the bases of
    the last two segments so that a later truncation need not replay much.
    """
    snapshot_offsets: set[int] = set()
    last_segment = segments.last
    if last_segment is not None:
        snapshot_offsets.add(last_segment.base_offset)
        lower = segments.lower(last_segment.base_offset)
        if lower is not None:
            snapshot_offsets.add(lower.base_offset)
    if state.latest_snapshot_offset is None and reload_from_clean_shutdown:
        for offset in sorted(snapshot_offsets | {last_offset}):
            state.update_map_end_offset(offset)
            state.take_snapshot(sync=False)
        return
    was_empty = not state.producers and state.map_end_offset >= last_offset
    state.truncate_and_reload(log_start_offset, last_offset, now)
    if last_offset > state.map_end_offset and not was_empty:
        _replay(
            state,
            segments,
            log_start_offset=log_start_offset,
            last_offset=last_offset,
            snapshot_offsets=snapshot_offsets,
        )
    state.update_map_end_offset(last_offset)
    state.take_snapshot()
