"""Size-prefixed frames: ``int32 size`` then ``size`` bytes, as every Kafka message travels.

The decoder never allocates for a declared size: it only keeps bytes that arrived, and a
declared size above the limit (or below zero) is rejected as soon as its 4 bytes are in,
before any body is read. That is the whole defence against CVE-2022-34917-style memory
exhaustion, so it lives here, once, for every connection.
"""

from __future__ import annotations

import collections
import struct
from typing import Final

_SIZE = struct.Struct(">i")
SIZE_PREFIX: Final = 4
MIN_REQUEST_SIZE: Final = 8
"""api_key (2) + api_version (2) + correlation_id (4): anything shorter cannot be a request."""


class FrameError(Exception):
    """The byte stream cannot be framed; the connection must be closed.

    ``frames`` holds the whole frames that arrived before the bad size prefix: they are
    still requests to answer before closing, as Kafka answers them.
    """

    def __init__(self, message: str, frames: list[bytearray] | None = None) -> None:
        super().__init__(message)
        self.frames: list[bytearray] = frames or []


SMALL_CHUNK = 4096
"""Received chunks smaller than this are merged into one buffer..."""
MERGED_CHUNK = 65536
"""... of up to about this size."""


class FrameDecoder:
    """Incremental frame splitter for one connection (not thread-safe; one per connection).

    Received chunks are kept as they came; a frame is assembled with one copy into a
    ``bytearray`` of its size once all of its bytes are here. Frames are writable, so the
    produce path patches record batch headers inside the request frame itself. Small
    chunks are copied together into one buffer rather than kept apart: each kept chunk
    costs a few hundred bytes of bookkeeping, so a client trickling a frame a byte at a
    time would otherwise make the broker hold hundreds of times what it sent.
    """

    __slots__ = ("_buffered", "_chunks", "_max_size", "_size")

    def __init__(self, max_size: int) -> None:
        self._chunks: collections.deque[memoryview | bytearray] = collections.deque()
        self._buffered = 0
        self._max_size = max_size
        self._size = -1
        """Body size of the frame being received; -1 while its size prefix is incomplete."""

    def feed(self, data: bytes | memoryview) -> list[bytearray]:
        """Add received bytes; return every complete frame body now available, in order.

        Raises FrameError on a declared size below the minimum or above ``max_size``.
        """
        frames: list[bytearray] = []
        try:
            self._feed(data, frames)
        except FrameError as exc:
            exc.frames = frames
            raise
        return frames

    def _feed(self, data: bytes | memoryview, frames: list[bytearray]) -> None:
        if self._buffered or self._size >= 0:
            # A frame begun in an earlier chunk: finish it from the start of ``data``.
            # Under load nearly every chunk ends part way into a frame, so without this
            # step every later frame would be assembled the slow way.
            data = self._complete_pending(data, frames)
        if data:
            # Nothing pending: whole frames are cut straight out of ``data`` (one copy
            # each) and only a partial tail is kept.
            data = self._split(data, frames)
        if data:
            self._keep(data)
        while True:
            if self._size < 0:
                if self._buffered < SIZE_PREFIX:
                    break
                (size,) = _SIZE.unpack(self._take(SIZE_PREFIX))
                self._check(size)
                self._size = size
            if self._buffered < self._size:
                break
            frames.append(self._take(self._size))
            self._size = -1

    def _complete_pending(
        self, data: bytes | memoryview, frames: list[bytearray]
    ) -> bytes | memoryview:
        """Add the start of ``data`` to the pending frame; once that is whole, move it to
        ``frames`` and return the rest of ``data`` (empty while it is still short)."""
        view = memoryview(data)
        if self._size < 0:
            missing = SIZE_PREFIX - self._buffered
            if len(view) < missing:
                self._keep(view)
                return b""
            self._keep(view[:missing])
            view = view[missing:]
            (size,) = _SIZE.unpack(self._take(SIZE_PREFIX))
            self._check(size)
            self._size = size
        missing = self._size - self._buffered
        if len(view) < missing:
            self._keep(view)
            return b""
        # Taken at once, so this piece is not merged into a kept buffer first.
        self._chunks.append(view[:missing])
        self._buffered += missing
        frames.append(self._take(self._size))
        self._size = -1
        return view[missing:]

    def _keep(self, data: bytes | memoryview) -> None:
        """Hold received bytes until the frame they belong to is whole."""
        size = len(data)
        if not size:
            return
        chunks = self._chunks
        if size >= SMALL_CHUNK:
            chunks.append(memoryview(data))
        elif chunks and isinstance(chunks[-1], bytearray) and len(chunks[-1]) < MERGED_CHUNK:
            chunks[-1] += data
        else:
            chunks.append(bytearray(data))
        self._buffered += size

    def _split(self, data: bytes | memoryview, frames: list[bytearray]) -> bytes | memoryview:
        """Append the whole frames at the start of ``data`` to ``frames``; the rest."""
        view = memoryview(data)
        end = len(data)
        position = 0
        while end - position >= SIZE_PREFIX:
            (size,) = _SIZE.unpack_from(data, position)
            self._check(size)
            start = position + SIZE_PREFIX
            if end - start < size:
                break
            frames.append(bytearray(view[start : start + size]))
            position = start + size
        return view[position:] if position else data

    def _check(self, size: int) -> None:
        if size < MIN_REQUEST_SIZE or size > self._max_size:
            raise FrameError(
                f"frame size {size} outside [{MIN_REQUEST_SIZE}, {self._max_size}] "
                "(socket.request.max.bytes)"
            )

    def _take(self, size: int) -> bytearray:
        """The next ``size`` buffered bytes, as a new ``bytearray``. Joined rather than
        copied into ``bytearray(size)``, which would first zero-fill all of it: a large
        frame is then assembled in half the time."""
        chunks = self._chunks
        parts: list[memoryview | bytearray] = []
        wanted = size
        while wanted:
            chunk = chunks[0]
            if len(chunk) <= wanted:
                parts.append(chunk)
                chunks.popleft()
                wanted -= len(chunk)
            else:
                parts.append(memoryview(chunk)[:wanted])
                chunks[0] = chunk[wanted:]
                wanted = 0
        self._buffered -= size
        return bytearray().join(parts)

    @property
    def buffered(self) -> int:
        """Bytes received and not yet returned as frames (size prefixes included)."""
        return self._buffered + (SIZE_PREFIX if self._size >= 0 else 0)
