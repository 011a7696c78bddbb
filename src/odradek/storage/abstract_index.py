"""What the offset index and the time index share (Kafka's ``AbstractIndex``).

Both are files of fixed-size big-endian entries, appended in order, one entry per
``index.interval.bytes`` of log, bounded by ``segment.index.bytes`` (the segment rolls
when its index is full). Kafka mmaps a preallocated file and trims it on roll and close;
here the file only ever holds whole entries, which is what Kafka leaves after a clean
shutdown, so the files are interchangeable.

Representation: two ``array.array`` columns in memory, loaded lazily on first use (a
partition nobody reads costs no index memory) and droppable again (``unload``) once
persisted. Chosen over mmap because Python's mmap keeps a duplicate descriptor open per
mapping (10,000 partitions would hold 20,000 more descriptors) and over pread + bisect
because a lookup then costs ~20 system calls instead of one C-level ``bisect``; the
memory is bounded by ``segment.index.bytes`` per loaded segment (at most ~2 MiB for a
full 1 GiB segment at the default interval).

Entries are appended in memory and written out by ``persist`` (on flush, roll, close
and handle eviction), so appends cost no system call. After a crash the unpersisted
tail is simply missing: segments after the recovery point are rebuilt anyway, and a
segment before it was flushed, which persisted its index first. A write that fails part
way (a full disk) is cut back to whole entries; the rest stay in memory for the next try.

Not thread-safe: one owner (the segment) serialises all calls.
"""

from __future__ import annotations

import array
import contextlib
import os
import sys
from abc import ABC, abstractmethod
from typing import ClassVar

from odradek.storage.errors import CorruptIndexError, KafkaStorageError, storage_error
from odradek.storage.file_records import read_exact

_LITTLE_ENDIAN = sys.byteorder == "little"


def big_endian_array(typecode: str, data: bytes) -> array.array[int]:
    """Big-endian packed integers as a native array."""
    values = array.array(typecode)
    values.frombytes(data)
    if _LITTLE_ENDIAN:
        values.byteswap()
    return values


def to_big_endian(values: array.array[int]) -> bytes:
    if _LITTLE_ENDIAN:
        values = array.array(values.typecode, values)
        values.byteswap()
    return values.tobytes()


def strictly_increasing(values: array.array[int]) -> bool:
    return all(map(int.__lt__, values, values[1:]))


def write_tail(fd: int, start: int, data: bytes, what: str) -> None:
    """Replace the file from ``start`` on with ``data`` (an index's entries not yet on
    disk). On failure the file is cut back to ``start`` if it can be, so no partial
    entry stays, and the storage error says whether that undo worked."""
    position = start
    try:
        os.ftruncate(fd, position)
        view = memoryview(data)
        while view:
            written = os.pwrite(fd, view, position)
            view = view[written:]
            position += written
    except OSError as exc:
        try:
            os.ftruncate(fd, start)
        except OSError:
            undone = False
        else:
            undone = True
        raise storage_error(f"cannot write {what}", exc, undone=undone) from exc


class AbstractIndex(ABC):
    """Common state: file path, base offset, capacity, lazily loaded entry columns."""

    ENTRY_SIZE: ClassVar[int]
    KEY_TYPE: ClassVar[str]
    VALUE_TYPE: ClassVar[str]

    def __init__(self, path: str, base_offset: int, max_index_size: int) -> None:
        self.path = path
        self.base_offset = base_offset
        self.max_entries = max_index_size // self.ENTRY_SIZE
        self._keys: array.array[int] = array.array(self.KEY_TYPE)
        self._values: array.array[int] = array.array(self.VALUE_TYPE)
        self.loaded = False
        """Whether the entries are in memory (a plain field: the append path reads it)."""
        self._persisted = 0

    # -- loading ---------------------------------------------------------------------------

    def load(self) -> None:
        """Read the file (missing means empty); CorruptIndexError if it is not whole entries
        or fails the subclass's ordering check."""
        try:
            with open(self.path, "rb") as file:
                data = file.read()
        except FileNotFoundError:
            data = b""
        if len(data) % self.ENTRY_SIZE:
            raise CorruptIndexError(
                f"index file {self.path} has {len(data)} bytes, not a multiple of {self.ENTRY_SIZE}"
            )
        self._keys, self._values = self._parse(data)
        self.loaded = True
        self._persisted = len(self._keys)
        self._check_order()

    def unload(self) -> None:
        """Drop the in-memory entries if they are all on disk (they reload on demand)."""
        if self.loaded and self._persisted == len(self._keys):
            self._keys = array.array(self.KEY_TYPE)
            self._values = array.array(self.VALUE_TYPE)
            self.loaded = False

    def mark_empty(self) -> None:
        """Treat the index as loaded and empty (a new segment), without touching the file."""
        self._keys = array.array(self.KEY_TYPE)
        self._values = array.array(self.VALUE_TYPE)
        self.loaded = True
        self._persisted = 0

    def _ensure_loaded(self) -> None:
        if not self.loaded:
            self.load()

    @abstractmethod
    def _parse(self, data: bytes) -> tuple[array.array[int], array.array[int]]: ...

    @abstractmethod
    def _encode(self, start: int) -> bytes: ...

    @abstractmethod
    def _check_order(self) -> None: ...

    def peek_last_raw(self) -> bytes | None:
        """The last entry's bytes without loading the index (one pread), or None if empty."""
        if self.loaded:
            return self._encode(len(self._keys) - 1) if self._keys else None
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        try:
            size = os.fstat(fd).st_size
            if size == 0:
                return None
            if size % self.ENTRY_SIZE:
                raise CorruptIndexError(f"index file {self.path} has {size} bytes")
            return read_exact(fd, self.ENTRY_SIZE, size - self.ENTRY_SIZE)
        finally:
            os.close(fd)

    # -- size ------------------------------------------------------------------------------

    @property
    def entries(self) -> int:
        self._ensure_loaded()
        return len(self._keys)

    def is_full(self) -> bool:
        if not self.loaded:  # _ensure_loaded, inline: asked before every append
            self.load()
        return len(self._keys) >= self.max_entries

    def set_max_index_size(self, max_index_size: int) -> None:
        self.max_entries = max_index_size // self.ENTRY_SIZE

    # -- writes ----------------------------------------------------------------------------

    def _append(self, key: int, value: int) -> None:
        self._keys.append(key)
        self._values.append(value)

    def _truncate_to_entries(self, count: int) -> None:
        self._ensure_loaded()
        if count >= len(self._keys):
            return
        del self._keys[count:]
        del self._values[count:]
        if count < self._persisted:
            self._persisted = count
            with contextlib.suppress(FileNotFoundError):
                os.truncate(self.path, count * self.ENTRY_SIZE)

    def reset(self) -> None:
        """Remove every entry, in memory and on disk."""
        self.mark_empty()
        with open(self.path, "wb"):
            pass

    def persist(self, *, fsync: bool = False) -> None:
        """Append the entries not yet on disk to the file (creating it if needed), and
        fsync it when asked.

        A failed write is cut back to the entries already persisted, so the file only
        ever holds whole entries; LogDirFullError when the disk was full (the entries
        stay in memory for the next try), KafkaStorageError otherwise.
        """
        pending = self.loaded and len(self._keys) > self._persisted
        if not pending and not fsync:
            return
        flags = os.O_WRONLY | os.O_CLOEXEC | (os.O_CREAT if self.loaded else 0)
        try:
            fd = os.open(self.path, flags, 0o644)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise storage_error(f"cannot open index {self.path}", exc, undone=True) from exc
        try:
            if pending:
                self._write_pending(fd)
            if fsync:
                try:
                    os.fsync(fd)
                except OSError as exc:
                    raise KafkaStorageError(f"cannot fsync index {self.path}: {exc}") from exc
        finally:
            os.close(fd)

    def _write_pending(self, fd: int) -> None:
        start = self._persisted * self.ENTRY_SIZE
        write_tail(fd, start, self._encode(self._persisted), f"index {self.path}")
        self._persisted = len(self._keys)

    def rename(self, new_path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.rename(self.path, new_path)
        self.path = new_path

    def delete(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        self.mark_empty()
