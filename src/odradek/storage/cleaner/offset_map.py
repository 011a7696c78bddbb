"""The key -> latest offset map of one cleaning (Kafka's ``SkimpyOffsetMap``).

Keys are stored as their MD5 digest, as Kafka does: every entry costs the same whatever
the key's length, and a collision (which would drop a live record) is out of reach. The
map is bounded by a byte budget (``log.cleaner.dedupe.buffer.size`` shared by the
``log.cleaner.threads``) at what an entry really costs here: a dict slot, a 16-byte
``bytes`` digest and an ``int`` offset come to about 136 bytes in CPython, against
Kafka's 24 (digest + offset in a flat buffer). The same budget thus holds about a sixth
of Kafka's keys per pass; a log with more distinct dirty keys is cleaned in several
passes, each as far as the map reached.
"""

from __future__ import annotations

import hashlib
from typing import Final

ENTRY_BYTES: Final = 136
"""Measured memory of one entry (dict slot, digest, offset) in CPython 3.11."""


class OffsetMap:
    """The last offset seen for each key digest, up to ``slots * load_factor`` keys."""

    __slots__ = ("_latest", "_map", "capacity")

    def __init__(self, memory: int, load_factor: float = 0.9) -> None:
        slots = memory // ENTRY_BYTES
        self.capacity = max(int(slots * load_factor), 1)
        self._map: dict[bytes, int] = {}
        self._latest = -1

    def __len__(self) -> int:
        return len(self._map)

    @property
    def full(self) -> bool:
        return len(self._map) >= self.capacity

    @property
    def latest_offset(self) -> int:
        """The highest offset put in the map (-1 when empty)."""
        return self._latest

    def put(self, key: bytes, offset: int) -> None:
        self._map[hashlib.md5(key, usedforsecurity=False).digest()] = offset
        self._latest = max(self._latest, offset)

    def get(self, key: bytes) -> int:
        """The last offset of ``key``, or -1 when the map has not seen it."""
        return self._map.get(hashlib.md5(key, usedforsecurity=False).digest(), -1)

    def clear(self) -> None:
        self._map.clear()
        self._latest = -1
