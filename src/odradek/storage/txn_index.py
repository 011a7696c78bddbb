"""Transaction index: the aborted transactions whose abort markers a segment holds
(Kafka's ``TransactionIndex``).

File ``<base offset>.txnindex``, 34-byte big-endian entries in the order the markers were
appended (last offsets strictly increase)::

    int16 version              0
    int64 producer_id
    int64 first_offset         first offset of the transaction (possibly in an earlier
                               segment)
    int64 last_offset          offset of its abort marker, in this segment
    int64 last_stable_offset   the partition's LSO once the abort was written: the first
                               offset of the earliest transaction of another producer
                               still open then, else last_offset + 1

Only aborts are indexed (a read_committed consumer needs nothing for a commit), and a
segment that holds none has no file. A read_committed fetch of [fetch offset, upper
bound) collects the entries overlapping that range from the segment holding the fetch
offset onwards, and stops at the first entry whose last_stable_offset reaches the upper
bound: every transaction that could overlap the range had ended by that marker.

Representation: the entries are read into memory on first use (they are few, and
rare) and dropped again with the segment's other index memory (``unload``); whether a
segment has a file at all is known from the directory listing at start-up, so an
absent index costs no system call. Appends are written through at once, as Kafka's are:
an abort marker must never be on disk without its entry. Recovery rebuilds a segment's
entries in memory and writes them once (``persist``); a full disk then leaves them in
memory and the next flush writes them or fails, so the recovery point never passes a
segment whose entries are not in its file. A trailing partial entry (a torn write) is
ignored, as Kafka ignores it, and cut off by the next write. ``sanity_check`` (run by
the loader) finds entries Kafka would refuse; lookups keep the entries before the first
bad one and log a warning.

Not thread-safe: the owning segment serialises calls.
"""

from __future__ import annotations

import bisect
import contextlib
import logging
import os
import struct
from dataclasses import dataclass

from odradek.storage.abstract_index import write_tail
from odradek.storage.errors import CorruptIndexError, KafkaStorageError, storage_error
from odradek.storage.values import AbortedTxn

log = logging.getLogger(__name__)

VERSION = 0
ENTRY_SIZE = 34
_ENTRY = struct.Struct(">hqqqq")


@dataclass(frozen=True, slots=True)
class TxnIndexEntry:
    """One aborted transaction of a segment (Kafka's ``AbortedTxn``)."""

    producer_id: int
    first_offset: int
    last_offset: int
    last_stable_offset: int

    def encode(self) -> bytes:
        return _ENTRY.pack(
            VERSION, self.producer_id, self.first_offset, self.last_offset, self.last_stable_offset
        )


def parse_entries(data: bytes, base_offset: int) -> tuple[list[TxnIndexEntry], str | None]:
    """The whole entries of ``data`` up to the first bad one, and what was wrong with it
    (None when every whole entry is sound). A trailing partial entry is not an error."""
    entries: list[TxnIndexEntry] = []
    last = -1
    whole = len(data) - len(data) % ENTRY_SIZE
    for version, pid, first, last_offset, lso in _ENTRY.iter_unpack(memoryview(data)[:whole]):
        if version != VERSION:
            return entries, f"unknown entry version {version}"
        if last_offset < base_offset:
            return entries, f"last offset {last_offset} is below the base offset {base_offset}"
        if last_offset <= last or first > last_offset:
            return entries, f"entry ({first}, {last_offset}) is out of order"
        entries.append(TxnIndexEntry(pid, first, last_offset, lso))
        last = last_offset
    return entries, None


class TransactionIndex:
    """The ``.txnindex`` of one segment; see the module docstring."""

    def __init__(self, path: str, base_offset: int, *, exists: bool | None = None) -> None:
        """``exists``: whether the file is there, when the caller knows (False: the index
        is empty and no system call is needed to find out)."""
        self.path = path
        self.base_offset = base_offset
        self._entries: list[TxnIndexEntry] = []
        self._last_offsets: list[int] = []
        self._max_lso: list[int] = []
        """Running maximum of the entries' last stable offsets."""
        self._loaded = exists is False
        self._persisted = 0
        self._unsynced = False

    # -- loading ---------------------------------------------------------------------------

    @property
    def loaded(self) -> bool:
        return self._loaded

    def _read(self) -> tuple[list[TxnIndexEntry], str | None]:
        try:
            with open(self.path, "rb") as file:
                data = file.read()
        except FileNotFoundError:
            return [], None
        except OSError as exc:
            raise KafkaStorageError(f"cannot read transaction index {self.path}: {exc}") from exc
        return parse_entries(data, self.base_offset)

    def _set(self, entries: list[TxnIndexEntry]) -> None:
        self._entries = []
        self._last_offsets = []
        self._max_lso = []
        for entry in entries:
            self._push(entry)
        self._persisted = len(entries)
        self._loaded = True

    def _push(self, entry: TxnIndexEntry) -> None:
        previous = self._max_lso[-1] if self._max_lso else entry.last_stable_offset
        self._entries.append(entry)
        self._last_offsets.append(entry.last_offset)
        self._max_lso.append(max(previous, entry.last_stable_offset))

    def _drop_from(self, count: int) -> None:
        del self._entries[count:]
        del self._last_offsets[count:]
        del self._max_lso[count:]

    def _ensure_loaded(self) -> None:
        if self._loaded:
            return
        entries, problem = self._read()
        if problem is not None:
            log.warning(
                "transaction index %s: %s; using the %d entries before it",
                self.path,
                problem,
                len(entries),
            )
        self._set(entries)

    def sanity_check(self) -> None:
        """CorruptIndexError when the file holds an entry Kafka would refuse; otherwise
        the entries stay loaded."""
        entries, problem = self._read()
        if problem is not None:
            raise CorruptIndexError(f"transaction index {self.path}: {problem}")
        self._set(entries)

    def unload(self) -> None:
        """Drop the entries from memory if they are all in the file (they reload on
        demand). An empty index stays loaded: it costs nothing and saves a lookup."""
        if self._loaded and self._entries and self._persisted == len(self._entries):
            self._drop_from(0)
            self._loaded = False

    def mark_empty(self) -> None:
        """Treat the index as loaded and empty (a new segment), without touching the file."""
        self._drop_from(0)
        self._loaded = True
        self._persisted = 0

    # -- reads -----------------------------------------------------------------------------

    @property
    def entries(self) -> list[TxnIndexEntry]:
        self._ensure_loaded()
        return list(self._entries)

    def collect(self, fetch_offset: int, upper_bound_offset: int, out: list[AbortedTxn]) -> bool:
        """Add to ``out`` the aborted transactions overlapping [fetch_offset,
        upper_bound_offset); True when the search is complete (an entry's last stable
        offset reached the upper bound), False when it must go on in the next segment."""
        self._ensure_loaded()
        entries = self._entries
        if not entries:
            return False
        # Entries ending before the fetch offset cannot overlap the range; Kafka reads
        # them anyway and stops at the first whose last stable offset reaches the upper
        # bound, which the running maximum finds without walking them.
        start = bisect.bisect_left(self._last_offsets, fetch_offset)
        if start and self._max_lso[start - 1] >= upper_bound_offset:
            return True
        for entry in entries[start:]:
            if entry.first_offset < upper_bound_offset:
                out.append(AbortedTxn(entry.producer_id, entry.first_offset))
            if entry.last_stable_offset >= upper_bound_offset:
                return True
        return False

    # -- writes ----------------------------------------------------------------------------

    def append(self, entry: TxnIndexEntry, *, write: bool = True) -> None:
        """Add an entry; with ``write``, write it to the file at once (on failure the
        entry is dropped again and the file keeps only whole earlier entries)."""
        self._ensure_loaded()
        if self._entries and entry.last_offset <= self._entries[-1].last_offset:
            raise ValueError(
                f"the last offset of an aborted transaction must increase, but "
                f"{entry.last_offset} is not above {self._entries[-1].last_offset} in {self.path}"
            )
        self._push(entry)
        if write:
            try:
                self.persist()
            except BaseException:
                self._drop_from(len(self._entries) - 1)
                raise

    def persist(self, *, fsync: bool = False) -> None:
        """Write the entries not yet in the file (creating it), and fsync it when asked
        and something was written since the last fsync. LogDirFullError when the disk
        was full (the file is cut back to whole entries), KafkaStorageError otherwise."""
        pending = self._loaded and len(self._entries) > self._persisted
        sync = fsync and (pending or self._unsynced)
        if not pending and not sync:
            return
        flags = os.O_WRONLY | os.O_CLOEXEC | (os.O_CREAT if pending else 0)
        try:
            fd = os.open(self.path, flags, 0o644)
        except FileNotFoundError:
            self._unsynced = False
            return
        except OSError as exc:
            raise storage_error(
                f"cannot open transaction index {self.path}", exc, undone=True
            ) from exc
        try:
            if pending:
                self._write_pending(fd)
            if sync:
                try:
                    os.fsync(fd)
                except OSError as exc:
                    raise KafkaStorageError(
                        f"cannot fsync transaction index {self.path}: {exc}"
                    ) from exc
                self._unsynced = False
        finally:
            os.close(fd)

    def _write_pending(self, fd: int) -> None:
        data = b"".join(entry.encode() for entry in self._entries[self._persisted :])
        start = self._persisted * ENTRY_SIZE
        write_tail(fd, start, data, f"transaction index {self.path}")
        self._persisted = len(self._entries)
        self._unsynced = True

    def take_unsynced_path(self) -> str | None:
        """The file's path if it was written since its last fsync, for a caller that
        fsyncs it (a ``FlushJob``); it then counts as synced."""
        if not self._unsynced:
            return None
        self._unsynced = False
        return self.path

    def truncate_to(self, offset: int) -> None:
        """Remove every entry whose marker is at or after ``offset``."""
        self._ensure_loaded()
        count = bisect.bisect_left(self._last_offsets, offset)
        if count >= len(self._entries):
            return
        self._drop_from(count)
        if count < self._persisted:
            self._persisted = count
            try:
                os.truncate(self.path, count * ENTRY_SIZE)
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise KafkaStorageError(
                    f"cannot truncate transaction index {self.path}: {exc}"
                ) from exc

    def reset(self) -> None:
        """Remove every entry, in memory and on disk (before recovery rebuilds them)."""
        self.mark_empty()
        self._unsynced = False
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise KafkaStorageError(f"cannot reset transaction index {self.path}: {exc}") from exc

    def rename(self, new_path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.rename(self.path, new_path)
        self.path = new_path

    def delete(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        self.mark_empty()
