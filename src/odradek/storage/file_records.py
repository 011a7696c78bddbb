"""Segment data files: descriptors that outlive their segment, file regions, batch scans.

Kafka's ``FileRecords``. A ``.log`` file is a plain concatenation of magic v2 record
batches (layout in ``odradek.protocol.records``), byte for byte as producers sent them
apart from the base offset, partition leader epoch and (LogAppendTime topics) max
timestamp that the broker patched in.

File descriptors: a ``FileHandle`` owns one descriptor and closes it when closed
explicitly or when its last reference goes away (``__del__``; CPython's reference
counting makes that prompt). A ``FileRegion`` handed to the network layer keeps its
handle alive, so a segment may drop its own reference (to bound open descriptors, see
``HandleCache``) or be deleted (unlinked) while a response is still being sent with
``os.sendfile``: the bytes stay readable through the open descriptor. A region over
bytes that a truncation removed reads short; Kafka has the same hazard and the broker
must tolerate a short ``sendfile``.

Scans read headers (61 bytes) and, for recovery, whole batches for their CRC, through
buffered ``os.pread`` calls: never a per-record Python loop.

Not thread-safe, except that ``FileRegion.read`` and ``os.sendfile`` on a region's handle
may run in any thread (``pread`` does not move a file position).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Final, NamedTuple, Protocol

import crc32c

from odradek.protocol import records as batch
from odradek.protocol.records import BatchHeader

INT32_MAX: Final = 2**31 - 1
_SCAN_CHUNK: Final = 1 << 20
_HEADER_CHUNK: Final = 1 << 16


class FileHandle:
    """One open file descriptor; closed by ``close()`` or when the last reference goes."""

    __slots__ = ("__weakref__", "_fd", "path")

    def __init__(self, fd: int, path: str) -> None:
        self._fd = fd
        self.path = path

    @classmethod
    def open(cls, path: str, *, writable: bool, create: bool = False) -> FileHandle:
        flags = os.O_CLOEXEC | (os.O_RDWR | os.O_APPEND if writable else os.O_RDONLY)
        if create:
            flags |= os.O_CREAT
        return cls(os.open(path, flags, 0o644), path)

    def fileno(self) -> int:
        if self._fd < 0:
            raise ValueError(f"file handle of {self.path} is closed")
        return self._fd

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def close(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

    def __del__(self, _close: Callable[[int], None] = os.close) -> None:
        # ``_close`` is bound at definition time so that it still works at interpreter exit.
        fd, self._fd = self._fd, -1
        if fd >= 0:
            try:
                _close(fd)
            except OSError:  # closed behind our back: nothing left to release
                return

    def pread(self, size: int, position: int) -> bytes:
        """Up to ``size`` bytes at ``position``; shorter only at end of file."""
        return read_exact(self.fileno(), size, position)

    def __repr__(self) -> str:
        return f"FileHandle({self.path!r}, fd={self._fd})"


def read_exact(fd: int, size: int, position: int) -> bytes:
    data = os.pread(fd, size, position)
    if len(data) == size or not data:
        return data
    parts = [data]
    got = len(data)
    while got < size:
        more = os.pread(fd, size - got, position + got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


class FileRegion(NamedTuple):
    """``size`` bytes at ``position`` of an open file: what Fetch sends with ``os.sendfile``."""

    handle: FileHandle
    position: int
    size: int

    def fileno(self) -> int:
        return self.handle.fileno()

    def read(self) -> bytes:
        """The region's bytes (fewer if the file was truncated meanwhile)."""
        return self.handle.pread(self.size, self.position)


class HandleOwner(Protocol):
    def close_handles(self) -> None: ...


class HandleCache:
    """Least-recently-used bound on segments that hold an open descriptor.

    Segments ``touch`` the cache whenever they use their descriptor; past ``max_open``
    owners the least recently used one is asked to ``close_handles()`` and reopens lazily
    when used again. Regions already handed out keep their own reference.
    """

    def __init__(self, max_open: int) -> None:
        if max_open < 1:
            raise ValueError("max_open must be at least 1")
        self.max_open = max_open
        self._owners: OrderedDict[HandleOwner, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._owners)

    def touch(self, owner: HandleOwner) -> None:
        owners = self._owners
        if owner in owners:
            owners.move_to_end(owner)
            return
        owners[owner] = None
        while len(owners) > self.max_open:
            oldest, _ = owners.popitem(last=False)
            oldest.close_handles()

    def forget(self, owner: HandleOwner) -> None:
        self._owners.pop(owner, None)


def iter_headers(
    handle: FileHandle, start: int, end: int, *, chunk_size: int = _HEADER_CHUNK
) -> Iterator[BatchHeader]:
    """Headers of the well-framed batches in ``[start, end)``, positions absolute.

    Checks framing only (magic 2, length, fits before ``end``, offsets not going
    backwards); stops silently at the first batch that fails, so callers compare the last
    header's end with ``end``. ``chunk_size``: bytes read per ``pread`` (a header that
    is not in the buffer costs one more).
    """
    position = start
    buffer = b""
    buffer_start = start
    fd = handle.fileno()
    next_offset = -(2**63)
    while end - position >= batch.BATCH_HEADER_SIZE:
        relative = position - buffer_start
        if relative + batch.BATCH_HEADER_SIZE > len(buffer):
            buffer = read_exact(fd, min(chunk_size, end - position), position)
            buffer_start = position
            relative = 0
            if len(buffer) < batch.BATCH_HEADER_SIZE:
                return
        if buffer[relative + batch.MAGIC_OFFSET] != 2:
            return
        header = batch.read_header(buffer, relative)
        if (
            header.batch_length < batch.MIN_BATCH_LENGTH
            or position + header.size > end
            or header.base_offset < next_offset
            or header.last_offset_delta < 0
        ):
            return
        header.position = position
        yield header
        next_offset = header.next_offset
        position += header.size


def iter_valid_batches(
    handle: FileHandle, start: int, end: int, *, segment_base_offset: int, next_offset: int
) -> Iterator[BatchHeader]:
    """Headers of the batches in ``[start, end)`` that pass Kafka's recovery checks.

    A batch is valid when it is well framed, has magic 2, its CRC-32C matches, its offsets
    do not go backwards (base offset >= ``next_offset``, then each batch's successor) and
    fit the segment's 32-bit relative offsets. Stops at the first invalid batch; the
    caller truncates there.
    """
    position = start
    buffer = b""
    buffer_start = start
    fd = handle.fileno()
    while end - position >= batch.BATCH_HEADER_SIZE:
        relative = position - buffer_start
        if relative + batch.BATCH_HEADER_SIZE > len(buffer):
            buffer = read_exact(fd, min(_SCAN_CHUNK, end - position), position)
            buffer_start = position
            relative = 0
            if len(buffer) < batch.BATCH_HEADER_SIZE:
                return
        if buffer[relative + batch.MAGIC_OFFSET] != 2:
            return
        header = batch.read_header(buffer, relative)
        size = header.size
        if header.batch_length < batch.MIN_BATCH_LENGTH or position + size > end:
            return
        if (
            header.base_offset < next_offset
            or header.last_offset_delta < 0
            or header.last_offset - segment_base_offset > INT32_MAX
        ):
            return
        if relative + size <= len(buffer):
            crc = batch.compute_crc(buffer, relative, size)
        elif size <= _SCAN_CHUNK:
            buffer = read_exact(fd, min(_SCAN_CHUNK, end - position), position)
            buffer_start = position
            if len(buffer) < size:
                return
            crc = batch.compute_crc(buffer, 0, size)
        else:
            crc = _file_crc(fd, position + batch.ATTRIBUTES_OFFSET, position + size)
            if crc < 0:
                return
        if crc != header.crc:
            return
        header.position = position
        yield header
        next_offset = header.next_offset
        position += size


def _file_crc(fd: int, start: int, end: int) -> int:
    """CRC-32C of a file range too large to read at once; -1 if the file is shorter."""
    value = 0
    position = start
    while position < end:
        chunk = read_exact(fd, min(_SCAN_CHUNK, end - position), position)
        if not chunk:
            return -1
        value = crc32c.crc32c(chunk, value=value)
        position += len(chunk)
    return int(value)
