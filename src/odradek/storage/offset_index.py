"""Offset index: sparse map from offset to the file position of a batch (Kafka's ``OffsetIndex``).

File ``<base offset>.index``, 8-byte big-endian entries::

    int32 relative_offset   offset - segment base offset
    int32 position          byte position in the .log file

An entry ``(o, p)`` says: the batches appended at position ``p`` end with offset ``o``
(``o`` is the last offset of the append, ``p`` where it starts), so the batch holding
any offset >= ``o`` starts at or after ``p``. Entries strictly increase in both columns.
A lookup finds the greatest entry at or below the target and the caller scans batch
headers forward from its position.

Storage and thread-safety: see ``abstract_index``.
"""

from __future__ import annotations

import array
import bisect

from odradek.storage.abstract_index import AbstractIndex, big_endian_array, strictly_increasing
from odradek.storage.abstract_index import to_big_endian as _to_big_endian
from odradek.storage.errors import CorruptIndexError
from odradek.storage.file_records import INT32_MAX


class OffsetIndex(AbstractIndex):
    ENTRY_SIZE = 8
    KEY_TYPE = "i"
    VALUE_TYPE = "i"

    def _parse(self, data: bytes) -> tuple[array.array[int], array.array[int]]:
        both = big_endian_array("i", data)
        return both[0::2], both[1::2]

    def _encode(self, start: int) -> bytes:
        count = len(self._keys) - start
        both = array.array("i", bytes(8 * count))
        both[0::2] = self._keys[start:]
        both[1::2] = self._values[start:]
        return _to_big_endian(both)

    def _check_order(self) -> None:
        if self._keys and (self._keys[0] < 0 or self._values[0] < 0):
            raise CorruptIndexError(f"offset index {self.path} has a negative entry")
        if not strictly_increasing(self._keys) or not strictly_increasing(self._values):
            raise CorruptIndexError(f"offset index {self.path} is not strictly increasing")

    def sanity_check(self, log_size: int) -> None:
        """Kafka's checks and more: ordered (checked on load), positions inside the log."""
        self._ensure_loaded()
        if self._values and self._values[-1] >= log_size:
            raise CorruptIndexError(
                f"offset index {self.path} points at position {self._values[-1]} but the "
                f"log has {log_size} bytes"
            )

    @property
    def last_offset(self) -> int:
        """Offset of the last entry, or the base offset when empty."""
        self._ensure_loaded()
        return self.base_offset + self._keys[-1] if self._keys else self.base_offset

    def entry(self, n: int) -> tuple[int, int]:
        self._ensure_loaded()
        return self.base_offset + self._keys[n], self._values[n]

    def lookup(self, target_offset: int) -> tuple[int, int]:
        """(offset, position) of the greatest entry <= target, or (base offset, 0)."""
        self._ensure_loaded()
        slot = bisect.bisect_right(self._keys, target_offset - self.base_offset) - 1
        if slot < 0:
            return self.base_offset, 0
        return self.base_offset + self._keys[slot], self._values[slot]

    def fetch_upper_bound_offset(self, position: int) -> int | None:
        """Offset of the first entry whose position is >= ``position``, or None. Every
        batch before that position ends below this offset."""
        self._ensure_loaded()
        slot = bisect.bisect_left(self._values, position)
        return self.base_offset + self._keys[slot] if slot < len(self._keys) else None

    def can_append_offset(self, offset: int) -> bool:
        return 0 <= offset - self.base_offset <= INT32_MAX

    def append(self, offset: int, position: int) -> None:
        if not self.loaded:  # _ensure_loaded, inline: an entry every index interval
            self.load()
        relative = offset - self.base_offset
        if not 0 <= relative <= INT32_MAX:
            raise ValueError(
                f"offset {offset} does not fit the index of segment {self.base_offset}"
            )
        if self._keys and (relative <= self._keys[-1] or position <= self._values[-1]):
            raise ValueError(
                f"offset index entry ({offset}, {position}) is not after the last one "
                f"({self.last_offset}, {self._values[-1]})"
            )
        if len(self._keys) >= self.max_entries:
            raise ValueError(f"offset index {self.path} is full")
        self._append(relative, position)

    def truncate_to(self, offset: int) -> None:
        """Remove every entry whose offset is >= ``offset``."""
        self._ensure_loaded()
        self._truncate_to_entries(bisect.bisect_left(self._keys, offset - self.base_offset))
