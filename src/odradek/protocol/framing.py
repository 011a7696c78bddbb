"""Size-prefixed frames: ``int32 size`` then ``size`` bytes, as every Kafka message travels.

The decoder never allocates for a declared size: it only keeps bytes that arrived, and a
declared size above the limit (or below zero) is rejected as soon as its 4 bytes are in,
before any body is read. That is the whole defence against CVE-2022-34917-style memory
exhaustion, so it lives here, once, for every connection.
"""

from __future__ import annotations

import struct
from typing import Final

_SIZE = struct.Struct(">i")
SIZE_PREFIX: Final = 4
MIN_REQUEST_SIZE: Final = 8
"""api_key (2) + api_version (2) + correlation_id (4): anything shorter cannot be a request."""


class FrameError(Exception):
    """The byte stream cannot be framed; the connection must be closed."""


class FrameDecoder:
    """Incremental frame splitter for one connection (not thread-safe; one per connection)."""

    __slots__ = ("_buffer", "_max_size")

    def __init__(self, max_size: int) -> None:
        self._buffer = bytearray()
        self._max_size = max_size

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return every complete frame body now available, in order.

        Raises FrameError on a declared size below the minimum or above ``max_size``.
        """
        buffer = self._buffer
        if not buffer and len(data) >= SIZE_PREFIX:
            # Fast path: frames aligned with reads need no copy into the buffer.
            frames, consumed = self._split(data)
            if consumed < len(data):
                buffer += memoryview(data)[consumed:]
            return frames
        buffer += data
        frames, consumed = self._split(buffer)
        if consumed:
            del buffer[:consumed]
        return frames

    def _split(self, data: bytes | bytearray) -> tuple[list[bytes], int]:
        frames: list[bytes] = []
        view = memoryview(data)
        position = 0
        end = len(data)
        max_size = self._max_size
        while end - position >= SIZE_PREFIX:
            (size,) = _SIZE.unpack_from(data, position)
            if size < MIN_REQUEST_SIZE or size > max_size:
                raise FrameError(
                    f"frame size {size} outside [{MIN_REQUEST_SIZE}, {max_size}] "
                    "(socket.request.max.bytes)"
                )
            if end - position - SIZE_PREFIX < size:
                break
            start = position + SIZE_PREFIX
            frames.append(bytes(view[start : start + size]))
            position = start + size
        return frames, position

    @property
    def buffered(self) -> int:
        return len(self._buffer)


def frame(payload_size: int) -> bytes:
    """The size prefix for a frame whose body is ``payload_size`` bytes."""
    return _SIZE.pack(payload_size)
