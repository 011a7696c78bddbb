"""One log segment: a ``.log`` data file and its indexes (Kafka's ``LogSegment``).

Files (names in ``log_files``): ``<base>.log`` (batches, see ``file_records``),
``<base>.index`` (``offset_index``), ``<base>.timeindex`` (``time_index``) and, when the
segment holds abort markers, ``<base>.txnindex`` (``txn_index``). All offsets in the
segment are >= the base offset and < base + 2**31.

Nothing is opened or read when a segment object is made: the data file is opened on
first use, through the shared ``HandleCache`` that bounds open descriptors, and the
indexes are loaded (and sanity-checked; rebuilt from the log if they fail) on first
lookup; all index memory goes again when the cache evicts the segment. Reads return
``FileRegion``s that keep their descriptor alive on their own. The transaction index is
rebuilt only by ``recover``, which needs the producer state (the caller's ``on_batch``
computes it and appends the entries).

Not thread-safe: the owning ``Log`` serialises all calls.
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Callable, Iterable, Iterator

from odradek.protocol import records as batch
from odradek.protocol.record_codec import (
    EndTxnMarker,
    Record,
    RecordDecodeError,
    decode_records,
    read_end_txn_marker,
)
from odradek.protocol.records import BatchHeader
from odradek.storage import log_files
from odradek.storage.errors import (
    CorruptIndexError,
    CorruptRecordError,
    KafkaStorageError,
    LogDirFullError,
    storage_error,
)
from odradek.storage.file_records import (
    FileHandle,
    FileRegion,
    HandleCache,
    iter_valid_batches,
)
from odradek.storage.file_records import iter_headers as _iter_file_headers
from odradek.storage.offset_index import OffsetIndex
from odradek.storage.time_index import NO_TIMESTAMP, TimeIndex
from odradek.storage.txn_index import TransactionIndex, TxnIndexEntry
from odradek.storage.values import (
    AbortedTxn,
    FetchDataInfo,
    LogOffsetMetadata,
    TimestampAndOffset,
)

log = logging.getLogger(__name__)

Clock = Callable[[], int]


class LogSegment:
    """A segment of one partition's log; see the module docstring."""

    def __init__(
        self,
        directory: str,
        base_offset: int,
        *,
        index_interval_bytes: int,
        max_index_size: int,
        clock: Clock,
        roll_jitter_ms: int = 0,
        handle_cache: HandleCache | None = None,
        suffix: str = "",
        txn_index_exists: bool | None = None,
    ) -> None:
        """``txn_index_exists``: whether a ``.txnindex`` file is there, if known (from a
        directory listing)."""
        self.directory = directory
        self.base_offset = base_offset
        self.log_path = log_files.log_file(directory, base_offset, suffix)
        self.offset_index = OffsetIndex(
            log_files.offset_index_file(directory, base_offset, suffix), base_offset, max_index_size
        )
        self.time_index = TimeIndex(
            log_files.time_index_file(directory, base_offset, suffix), base_offset, max_index_size
        )
        self.txn_index = TransactionIndex(
            log_files.txn_index_file(directory, base_offset, suffix),
            base_offset,
            exists=txn_index_exists,
        )
        self.index_interval_bytes = index_interval_bytes
        self.roll_jitter_ms = roll_jitter_ms
        self._clock = clock
        self._handle_cache = handle_cache
        self._handle: FileHandle | None = None
        self._size: int | None = None
        self._indexes_checked = False
        self._bytes_since_last_index_entry = 0
        self._max_timestamp: tuple[int, int] | None = None
        self._rolling_based_timestamp: int | None = None
        self.created = clock()

    @classmethod
    def create(
        cls,
        directory: str,
        base_offset: int,
        *,
        index_interval_bytes: int,
        max_index_size: int,
        clock: Clock,
        roll_jitter_ms: int = 0,
        handle_cache: HandleCache | None = None,
        suffix: str = "",
    ) -> LogSegment:
        """A new, empty segment: creates the ``.log`` file and empty index files (with
        ``suffix``: a segment in transit, such as the cleaner's ``.cleaned``)."""
        segment = cls(
            directory,
            base_offset,
            index_interval_bytes=index_interval_bytes,
            max_index_size=max_index_size,
            clock=clock,
            roll_jitter_ms=roll_jitter_ms,
            handle_cache=handle_cache,
            suffix=suffix,
            txn_index_exists=False,
        )
        try:
            with open(segment.log_path, "ab"):
                pass
            segment.offset_index.reset()
            segment.time_index.reset()
        except KafkaStorageError:
            raise
        except OSError as exc:
            # Empty files left behind are harmless: the next roll reuses them.
            raise storage_error(
                f"cannot create segment {segment.log_path}", exc, undone=True
            ) from exc
        segment._size = 0
        segment._indexes_checked = True
        return segment

    def __repr__(self) -> str:
        return f"LogSegment(base_offset={self.base_offset}, size={self._size})"

    # -- file handle -----------------------------------------------------------------------

    def _file(self) -> FileHandle:
        handle = self._handle
        if handle is None:
            try:
                handle = FileHandle.open(self.log_path, writable=True)
            except OSError as exc:
                raise KafkaStorageError(f"cannot open {self.log_path}: {exc}") from exc
            self._handle = handle
        if self._handle_cache is not None:
            self._handle_cache.touch(self)
        return handle

    def close_handles(self) -> None:
        """Give up the descriptor and index memory; both come back on next use.

        Called for whichever segment the handle cache evicts, so a failure to write the
        index entries is logged, not raised into an unrelated partition's request: the
        entries not written stay in memory, and the next operation on this segment's
        log dir meets the failure itself.
        """
        try:
            self._persist_indexes(fsync=False)
        except KafkaStorageError as exc:
            log.warning("%s", exc)
        self._handle = None
        self.offset_index.unload()
        self.time_index.unload()
        self.txn_index.unload()
        if self._handle_cache is not None:
            self._handle_cache.forget(self)

    def close_handlers(self) -> None:
        """Drop the descriptor without writing anything (Kafka's ``closeHandlers``): the
        log dir has failed, and the disk must not be touched again."""
        self._handle = None
        if self._handle_cache is not None:
            self._handle_cache.forget(self)

    @property
    def size(self) -> int:
        if self._size is None:
            try:
                self._size = os.stat(self.log_path).st_size
            except OSError as exc:
                raise KafkaStorageError(f"cannot stat {self.log_path}: {exc}") from exc
        return self._size

    def last_modified(self) -> int:
        """Modification time of the ``.log`` file, epoch milliseconds."""
        return os.stat(self.log_path).st_mtime_ns // 1_000_000

    # -- indexes ---------------------------------------------------------------------------

    def _ensure_indexes(self) -> None:
        if self._indexes_checked and self.offset_index.loaded and self.time_index.loaded:
            return
        try:
            if not self.offset_index.loaded:
                self.offset_index.load()
            self.offset_index.sanity_check(self.size)
            next_offset = self._next_offset_from(self.offset_index.last_offset, check=True)
            if not self.time_index.loaded:
                self.time_index.load()
            self.time_index.sanity_check(next_offset)
        except CorruptIndexError as exc:
            log.warning("%s; rebuilding the indexes of %s from the log", exc, self.log_path)
            self.rebuild_indexes()
        self._indexes_checked = True

    def _next_offset_from(self, index_offset: int, *, check: bool = False) -> int:
        """Next offset after the last batch, scanning headers from the index entry at or
        below ``index_offset``; with ``check``, that entry must point at a batch whose
        base offset is <= the entry's offset."""
        entry_offset, position = self.offset_index.lookup(index_offset)
        next_offset = self.base_offset
        first = True
        for header in _iter_file_headers(self._file(), position, self.size):
            if first and check and position and header.base_offset > entry_offset:
                raise CorruptIndexError(f"offset index of {self.log_path} points mid-batch")
            first = False
            next_offset = header.next_offset
        if check and position and (first or entry_offset >= next_offset):
            raise CorruptIndexError(f"offset index of {self.log_path} points past the data")
        return next_offset

    def persist_indexes(self) -> None:
        """Write index entries still only in memory to the index files (no fsync)."""
        self._persist_indexes(fsync=False)

    def _persist_indexes(self, *, fsync: bool, txn: bool = True) -> None:
        """Write (and fsync) the index entries only in memory. On a full disk the offset
        and time index entries stay in memory and a warning is logged: the files hold a
        prefix of the entries, which is a valid sparse index, and recovery rebuilds what
        it needs from the log. The transaction index is not a mere speed-up: its failure
        is raised (its entries are normally written at once; only recovery leaves any to
        write here), so a flush that could not write them does not count."""
        try:
            self.offset_index.persist(fsync=fsync)
            self.time_index.persist(fsync=fsync)
        except LogDirFullError as exc:
            log.warning("%s; index entries stay in memory until there is room", exc)
        if txn:
            self.txn_index.persist(fsync=fsync)

    def rebuild_indexes(self) -> None:
        """Rebuild both indexes from batch headers (no CRC check, no truncation)."""
        self._rebuild(_iter_file_headers(self._file(), 0, self.size))

    def _rebuild(self, headers: Iterable[BatchHeader]) -> int:
        self.offset_index.reset()
        self.time_index.reset()
        valid_end = 0
        last_index_entry = 0
        max_timestamp = (NO_TIMESTAMP, self.base_offset)
        for header in headers:
            if header.max_timestamp > max_timestamp[0]:
                max_timestamp = (header.max_timestamp, header.last_offset)
            if valid_end - last_index_entry > self.index_interval_bytes:
                self.offset_index.append(header.last_offset, valid_end)
                self.time_index.maybe_append(*max_timestamp, skip_full_check=True)
                last_index_entry = valid_end
            valid_end = header.position + header.size
        self.time_index.maybe_append(*max_timestamp, skip_full_check=True)
        self._max_timestamp = max_timestamp
        self._bytes_since_last_index_entry = valid_end - last_index_entry
        self._indexes_checked = True
        self._persist_indexes(fsync=False, txn=False)
        return valid_end

    # -- append ----------------------------------------------------------------------------

    def append(
        self,
        data: bytes | bytearray | memoryview,
        *,
        largest_offset: int,
        largest_timestamp: int,
        offset_of_max_timestamp: int,
    ) -> int:
        """Append already validated batches with one write; returns their position."""
        size = len(data)
        if not size:
            return self.size
        self._ensure_indexes()
        if not self.offset_index.can_append_offset(largest_offset):
            raise ValueError(f"offset {largest_offset} overflows segment {self.base_offset}")
        position = self.size
        if position == 0:
            self._rolling_based_timestamp = largest_timestamp
        fd = self._file().fileno()
        try:
            written = os.write(fd, data)
            if written < size:  # short write: write the rest
                view = memoryview(data)[written:]
                while view:
                    view = view[os.write(fd, view) :]
        except OSError as exc:
            # A write that stopped part way (a full disk) is cut back: no partial batch
            # is left behind, and the segment is as it was before the append.
            raise storage_error(
                f"cannot append to {self.log_path}", exc, undone=_truncate_back(fd, position)
            ) from exc
        self._size = position + size
        known = self._max_timestamp  # None until asked for (read from the time index)
        if largest_timestamp > (known[0] if known is not None else self.max_timestamp_so_far):
            self._max_timestamp = (largest_timestamp, offset_of_max_timestamp)
        if self._bytes_since_last_index_entry > self.index_interval_bytes:
            self.offset_index.append(largest_offset, position)
            self.time_index.maybe_append(*self._max_timestamp_entry())
            self._bytes_since_last_index_entry = 0
        self._bytes_since_last_index_entry += size
        return position

    # -- transactions ----------------------------------------------------------------------

    def update_txn_index(
        self,
        producer_id: int,
        first_offset: int,
        last_offset: int,
        last_stable_offset: int,
        *,
        write: bool = True,
    ) -> None:
        """Index an aborted transaction whose marker (``last_offset``) this segment holds
        (Kafka's ``updateTxnIndex``); written at once unless ``write`` is false (recovery
        writes the rebuilt entries together)."""
        entry = TxnIndexEntry(producer_id, first_offset, last_offset, last_stable_offset)
        self.txn_index.append(entry, write=write)

    def collect_aborted_txns(
        self, fetch_offset: int, upper_bound_offset: int, out: list[AbortedTxn]
    ) -> bool:
        """See ``TransactionIndex.collect``."""
        return self.txn_index.collect(fetch_offset, upper_bound_offset, out)

    def read_end_txn_marker(self, header: BatchHeader) -> EndTxnMarker | None:
        """The end marker of a control batch of this segment; None when the batch holds
        no readable transaction marker (logged: replaying the log never stops on it)."""
        if header.records_count <= 0:
            return None
        local = copy.copy(header)
        local.position = 0
        try:
            return read_end_txn_marker(self.read_batch(header), local)
        except RecordDecodeError as exc:
            log.warning(
                "unreadable control batch at offset %d of %s: %s",
                header.base_offset,
                self.log_path,
                exc,
            )
            return None

    def fetch_upper_bound_offset(self, position: int, size: int) -> int | None:
        """An offset above everything in the ``size`` bytes read from ``position`` (Kafka's
        ``fetchUpperBoundOffset``): the first offset index entry at or past their end;
        None when there is none (the caller takes the next segment's base offset)."""
        self._ensure_indexes()
        return self.offset_index.fetch_upper_bound_offset(position + size)

    # -- timestamps ------------------------------------------------------------------------

    def _max_timestamp_entry(self) -> tuple[int, int]:
        if self._max_timestamp is None:
            if self.time_index.loaded:
                self._max_timestamp = self.time_index.last_entry()
            else:
                try:
                    self._max_timestamp = self.time_index.peek_last_entry()
                except CorruptIndexError:
                    self._ensure_indexes()
                    self._max_timestamp = self.time_index.last_entry()
        return self._max_timestamp

    @property
    def max_timestamp_so_far(self) -> int:
        return self._max_timestamp_entry()[0]

    @property
    def offset_of_max_timestamp_so_far(self) -> int:
        return self._max_timestamp_entry()[1]

    def largest_timestamp(self) -> int:
        """Largest record timestamp, or the file's mtime when none (retention's clock)."""
        timestamp = self.max_timestamp_so_far
        return timestamp if timestamp >= 0 else self.last_modified()

    def time_waited_for_roll(self, now: int, message_timestamp: int) -> int:
        if self._rolling_based_timestamp is None and self.size >= batch.BATCH_HEADER_SIZE:
            raw = self._file().pread(batch.BATCH_HEADER_SIZE, 0)
            self._rolling_based_timestamp = batch.read_header(raw).max_timestamp
        timestamp = self._rolling_based_timestamp
        if timestamp is not None and timestamp >= 0:
            return message_timestamp - timestamp
        return now - self.created

    def should_roll(
        self,
        *,
        max_segment_ms: int,
        max_segment_bytes: int,
        max_timestamp_in_messages: int,
        max_offset_in_messages: int,
        messages_size: int,
        now: int,
    ) -> bool:
        """Kafka's roll rule: size, time since the first batch's timestamp (minus jitter),
        a full index, or an offset that no longer fits the 32-bit relative offsets."""
        size = self.size
        if size > max_segment_bytes - messages_size:
            return True
        if size > 0 and (
            self.time_waited_for_roll(now, max_timestamp_in_messages)
            > max_segment_ms - self.roll_jitter_ms
        ):
            return True
        self._ensure_indexes()
        offset_index = self.offset_index
        return (
            offset_index.is_full()
            or self.time_index.is_full()
            or not offset_index.can_append_offset(max_offset_in_messages)
        )

    # -- reads -----------------------------------------------------------------------------

    def translate_offset(self, offset: int, starting_position: int = 0) -> BatchHeader | None:
        """Header of the first batch whose last offset is >= ``offset``, or None."""
        self._ensure_indexes()
        _, position = self.offset_index.lookup(offset)
        # the batch is usually within one index interval of the entry: read little
        chunk = self.index_interval_bytes + 2 * batch.BATCH_HEADER_SIZE
        for header in _iter_file_headers(
            self._file(), max(position, starting_position), self.size, chunk_size=chunk
        ):
            if header.last_offset >= offset:
                return header
        return None

    def read(
        self,
        start_offset: int,
        max_size: int,
        *,
        max_position: int | None,
        min_one_message: bool = False,
    ) -> FetchDataInfo | None:
        """Batches from the one holding ``start_offset``, at most ``max_size`` bytes (the
        whole first batch with ``min_one_message``) and not past ``max_position``. None
        when the segment holds nothing at or after ``start_offset``."""
        if max_size < 0:
            raise ValueError(f"invalid max size {max_size}")
        first = self.translate_offset(start_offset)
        if first is None:
            return None
        return self.read_at(
            start_offset,
            first.position,
            first.size,
            max_size,
            max_position=max_position,
            min_one_message=min_one_message,
        )

    def read_at(
        self,
        start_offset: int,
        position: int,
        first_size: int,
        max_size: int,
        *,
        max_position: int | None,
        min_one_message: bool = False,
    ) -> FetchDataInfo:
        """``read`` once the batch holding ``start_offset`` is known to start at
        ``position`` and be ``first_size`` bytes long."""
        metadata = LogOffsetMetadata(start_offset, self.base_offset, position)
        adjusted_max_size = max(max_size, first_size) if min_one_message else max_size
        if adjusted_max_size == 0 or max_position is None:
            return FetchDataInfo(fetch_offset_metadata=metadata)
        if adjusted_max_size < first_size:
            return FetchDataInfo(fetch_offset_metadata=metadata, first_entry_incomplete=True)
        fetch_size = min(max_position - position, adjusted_max_size)
        if fetch_size <= 0:
            return FetchDataInfo(fetch_offset_metadata=metadata)
        region = FileRegion(self._file(), position, fetch_size)
        return FetchDataInfo(fetch_offset_metadata=metadata, records=region)

    def read_next_offset(self) -> int:
        """The offset after the segment's last batch (the base offset when empty)."""
        self._ensure_indexes()
        return self._next_offset_from(self.offset_index.last_offset)

    def iter_headers(
        self, start_position: int = 0, end_position: int | None = None
    ) -> Iterator[BatchHeader]:
        """Headers of the well-framed batches from ``start_position`` (a batch boundary)."""
        end = self.size if end_position is None else min(end_position, self.size)
        return _iter_file_headers(self._file(), start_position, end)

    def read_batch(self, header: BatchHeader) -> bytes:
        return self._file().pread(header.size, header.position)

    def decode_batch(self, header: BatchHeader) -> list[Record]:
        """The records of one batch of this segment (decompressed)."""
        data = self.read_batch(header)
        local = copy.copy(header)
        local.position = 0
        try:
            return decode_records(data, local)
        except RecordDecodeError as exc:
            raise CorruptRecordError(f"cannot decode batch in {self.log_path}: {exc}") from exc

    def find_offset_by_timestamp(
        self, timestamp: int, starting_offset: int
    ) -> TimestampAndOffset | None:
        """First record with timestamp >= ``timestamp`` and offset >= ``starting_offset``.

        The time and offset indexes give a starting position; headers are scanned from
        there and only the one batch that holds the answer is decompressed.
        """
        self._ensure_indexes()
        _, index_offset = self.time_index.lookup(timestamp)
        _, position = self.offset_index.lookup(max(index_offset, starting_offset))
        for header in _iter_file_headers(self._file(), position, self.size):
            if header.max_timestamp < timestamp or header.last_offset < starting_offset:
                continue
            records = self.decode_batch(header)
            epoch = header.partition_leader_epoch
            for record in records:
                if record.timestamp >= timestamp and record.offset >= starting_offset:
                    return TimestampAndOffset(record.timestamp, record.offset, _epoch(epoch))
        return None

    # -- recovery and truncation -----------------------------------------------------------

    def recover(self, on_batch: Callable[[BatchHeader], None] | None = None) -> int:
        """Validate every batch (framing, magic, offsets, CRC), rebuild the offset and
        time indexes and truncate at the first invalid byte. Returns the number of bytes
        truncated. The transaction index is emptied: ``on_batch``, called with each valid
        batch in turn, appends its entries again (``txn_index.append(..., write=False)``)
        and they are written at the end."""
        size = self.size
        batches = iter_valid_batches(
            self._file(),
            0,
            size,
            segment_base_offset=self.base_offset,
            next_offset=self.base_offset,
        )
        if on_batch is not None:
            batches = _tap(batches, on_batch)
        self.txn_index.reset()
        valid_end = self._rebuild(batches)
        try:
            self.txn_index.persist()
        except LogDirFullError as exc:
            log.warning("%s; the entries stay in memory and the next flush writes them", exc)
        truncated = size - valid_end
        if truncated:
            log.warning(
                "truncating %d invalid bytes at position %d of %s",
                truncated,
                valid_end,
                self.log_path,
            )
            self._truncate_file(valid_end)
        return truncated

    def validate_tail(self, start_position: int) -> int:
        """CRC-check the batches from ``start_position`` (a batch boundary) to the end,
        truncating at the first invalid byte; returns the bytes truncated."""
        size = self.size
        valid_end = start_position
        batches = iter_valid_batches(
            self._file(),
            start_position,
            size,
            segment_base_offset=self.base_offset,
            next_offset=self.base_offset,
        )
        for header in batches:
            valid_end = header.position + header.size
        if valid_end == size:
            return 0
        log.warning("truncating %d invalid bytes at the end of %s", size - valid_end, self.log_path)
        self._truncate_file(valid_end)
        self.rebuild_indexes()
        self.txn_index.truncate_to(self.read_next_offset())
        return size - valid_end

    def _truncate_file(self, position: int) -> None:
        try:
            os.ftruncate(self._file().fileno(), position)
        except OSError as exc:
            raise KafkaStorageError(f"cannot truncate {self.log_path}: {exc}") from exc
        self._size = position

    def truncate_to(self, offset: int) -> int:
        """Remove every batch holding offsets >= ``offset`` (a batch containing it goes
        whole); returns the bytes removed."""
        first = self.translate_offset(offset)
        self.offset_index.truncate_to(offset)
        self.time_index.truncate_to(offset)
        self.txn_index.truncate_to(offset)
        if first is None:
            return 0
        removed = self.size - first.position
        self._truncate_file(first.position)
        if first.position == 0:
            self.created = self._clock()
            self._rolling_based_timestamp = None
        self._bytes_since_last_index_entry = 0
        self._max_timestamp = self._read_largest_timestamp()
        return removed

    def _read_largest_timestamp(self) -> tuple[int, int]:
        timestamp, offset = self.time_index.last_entry()
        _, position = self.offset_index.lookup(offset)
        for header in _iter_file_headers(self._file(), position, self.size):
            if header.max_timestamp > timestamp:
                timestamp, offset = header.max_timestamp, header.last_offset
        return timestamp, offset

    # -- lifecycle -------------------------------------------------------------------------

    def on_become_inactive(self) -> None:
        """Called on roll: the time index gets the segment's largest timestamp."""
        self._ensure_indexes()
        timestamp, offset = self._max_timestamp_entry()
        self.time_index.maybe_append(timestamp, offset, skip_full_check=True)
        self._persist_indexes(fsync=False)

    def flush(self) -> None:
        """fsync the data file, then write and fsync the indexes."""
        try:
            if self._handle is not None:
                os.fsync(self._handle.fileno())
            else:
                fd = os.open(self.log_path, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        except OSError as exc:
            raise KafkaStorageError(f"cannot flush {self.log_path}: {exc}") from exc
        self._persist_indexes(fsync=True)

    def close(self) -> None:
        if self._max_timestamp is not None and self.time_index.loaded:
            self.time_index.maybe_append(*self._max_timestamp, skip_full_check=True)
        self.close_handles()

    def change_file_suffixes(self, old_suffix: str, new_suffix: str) -> None:
        """Rename the segment's files (``.deleted`` before deletion, like Kafka)."""
        self._persist_indexes(fsync=False)
        new_log_path = _replace_suffix(self.log_path, old_suffix, new_suffix)
        try:
            os.rename(self.log_path, new_log_path)
        except OSError as exc:
            raise KafkaStorageError(f"cannot rename {self.log_path}: {exc}") from exc
        self.log_path = new_log_path
        for index in (self.offset_index, self.time_index, self.txn_index):
            index.rename(_replace_suffix(index.path, old_suffix, new_suffix))

    def paths(self) -> list[str]:
        """Every file the segment may have (the transaction index need not exist)."""
        return [self.log_path, self.offset_index.path, self.time_index.path, self.txn_index.path]

    def flush_paths(self) -> list[str]:
        """The files an fsync of the segment must cover (see ``LocalLog.unflushed_files``):
        the transaction index only when it was written since its last fsync."""
        paths = [self.log_path, self.offset_index.path, self.time_index.path]
        txn_path = self.txn_index.take_unsynced_path()
        if txn_path is not None:
            paths.append(txn_path)
        return paths

    def delete(self) -> None:
        """Unlink the files. Regions already handed out stay readable."""
        self._handle = None
        if self._handle_cache is not None:
            self._handle_cache.forget(self)
        for path in self.paths():
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise KafkaStorageError(f"cannot delete {path}: {exc}") from exc
        self.offset_index.mark_empty()
        self.time_index.mark_empty()
        self.txn_index.mark_empty()


def _truncate_back(fd: int, size: int) -> bool:
    """Cut the file back to ``size``; False if even that failed."""
    try:
        os.ftruncate(fd, size)
    except OSError:
        return False
    return True


def _epoch(epoch: int) -> int | None:
    return epoch if epoch >= 0 else None


def _replace_suffix(path: str, old_suffix: str, new_suffix: str) -> str:
    if old_suffix and not path.endswith(old_suffix):
        raise ValueError(f"{path} does not end with {old_suffix}")
    return path[: len(path) - len(old_suffix)] + new_suffix


def _tap(
    headers: Iterator[BatchHeader], on_batch: Callable[[BatchHeader], None]
) -> Iterator[BatchHeader]:
    for header in headers:
        on_batch(header)
        yield header
