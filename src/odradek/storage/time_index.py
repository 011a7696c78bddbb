"""Time index: sparse map from timestamp to offset (Kafka's ``TimeIndex``).

File ``<base offset>.timeindex``, 12-byte big-endian entries::

    int64 timestamp         the largest timestamp seen so far in the segment
    int32 relative_offset   last offset of the batch where it was first seen - base offset

An entry is added with each offset index entry when the segment's max timestamp has
grown, and once more on roll and close so that the last entry holds the segment's
largest timestamp (retention reads it without scanning the log). Timestamps strictly
increase, offsets never decrease. The last slot is kept free for that final entry, so
the index counts as full one entry early.

Storage and thread-safety: see ``abstract_index``.
"""

from __future__ import annotations

import array
import bisect
import struct

from odradek.storage.abstract_index import AbstractIndex
from odradek.storage.errors import CorruptIndexError
from odradek.storage.file_records import INT32_MAX

NO_TIMESTAMP = -1
_ENTRY = struct.Struct(">qi")


class TimeIndex(AbstractIndex):
    ENTRY_SIZE = 12
    KEY_TYPE = "q"
    VALUE_TYPE = "i"

    def _parse(self, data: bytes) -> tuple[array.array[int], array.array[int]]:
        count = len(data) // self.ENTRY_SIZE
        flat = struct.unpack(">" + "qi" * count, data)
        return array.array("q", flat[0::2]), array.array("i", flat[1::2])

    def _encode(self, start: int) -> bytes:
        count = len(self._keys) - start
        flat: list[int] = [0] * (2 * count)
        flat[0::2] = self._keys[start:]
        flat[1::2] = self._values[start:]
        return struct.pack(">" + "qi" * count, *flat)

    def _check_order(self) -> None:
        values = self._values
        if values and (values[0] < 0 or any(map(int.__gt__, values, values[1:]))):
            raise CorruptIndexError(f"time index {self.path} offsets go backwards")
        if not all(map(int.__lt__, self._keys, self._keys[1:])):
            raise CorruptIndexError(f"time index {self.path} timestamps are not increasing")

    def sanity_check(self, next_offset: int) -> None:
        """Ordered (checked on load) and no entry beyond the segment's last offset."""
        self._ensure_loaded()
        if self._values and self.base_offset + self._values[-1] >= max(
            next_offset, self.base_offset + 1
        ):
            raise CorruptIndexError(
                f"time index {self.path} refers to offset {self.base_offset + self._values[-1]}"
                f" beyond the segment's end {next_offset}"
            )

    def is_full(self) -> bool:
        if not self.loaded:  # _ensure_loaded, inline: asked before every append
            self.load()
        return len(self._keys) >= self.max_entries - 1

    def last_entry(self) -> tuple[int, int]:
        """(timestamp, offset) of the last entry, or (-1, base offset) when empty."""
        self._ensure_loaded()
        if not self._keys:
            return NO_TIMESTAMP, self.base_offset
        return self._keys[-1], self.base_offset + self._values[-1]

    def peek_last_entry(self) -> tuple[int, int]:
        """``last_entry`` without loading the whole index (one pread)."""
        raw = self.peek_last_raw()
        if raw is None:
            return NO_TIMESTAMP, self.base_offset
        timestamp, relative = _ENTRY.unpack(raw)
        return timestamp, self.base_offset + relative

    def lookup(self, target_timestamp: int) -> tuple[int, int]:
        """(timestamp, offset) of the greatest entry with timestamp <= target, or
        (-1, base offset)."""
        self._ensure_loaded()
        slot = bisect.bisect_right(self._keys, target_timestamp) - 1
        if slot < 0:
            return NO_TIMESTAMP, self.base_offset
        return self._keys[slot], self.base_offset + self._values[slot]

    def maybe_append(self, timestamp: int, offset: int, *, skip_full_check: bool = False) -> None:
        """Add (timestamp, offset) if the timestamp is larger than the last entry's."""
        if not self.loaded:  # _ensure_loaded, inline: an entry every index interval
            self.load()
        if not skip_full_check and self.is_full():
            raise ValueError(f"time index {self.path} is full")
        relative = offset - self.base_offset
        if not 0 <= relative <= INT32_MAX:
            raise ValueError(f"offset {offset} does not fit the time index of {self.base_offset}")
        if self._keys:
            if relative < self._values[-1]:
                raise ValueError(f"time index offset {offset} goes backwards")
            if timestamp <= self._keys[-1]:
                return
        elif timestamp <= NO_TIMESTAMP:
            return
        self._append(timestamp, relative)

    def truncate_to(self, offset: int) -> None:
        """Remove every entry whose offset is >= ``offset``."""
        self._ensure_loaded()
        self._truncate_to_entries(bisect.bisect_left(self._values, offset - self.base_offset))
