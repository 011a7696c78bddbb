"""When parked fetches expire: one event-loop timer for all of them.

A timer per parked fetch (``loop.call_later``) cost a ``TimerHandle``, a push onto the
loop's heap (ordered by a Python ``__lt__``) and, since a fetch at the log end is nearly
always woken by an append before it expires, a cancel. Here a parked fetch is a
``(deadline, sequence, fetch)`` tuple on a heap ordered in C, and the one loop timer
stands at the earliest deadline. A fetch completed early stays on the heap until its
deadline passes or the heap is purged (Kafka's purgatory purges completed operations the
same way), and expires as a no-op.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from typing import Protocol

log = logging.getLogger(__name__)

PURGE_FROM = 1024
"""Heap size from which adding a fetch first drops the fetches already completed."""
_RESOLUTION = time.get_clock_info("monotonic").resolution
"""As asyncio's loop: a deadline within the clock's resolution of now is due."""


class Expiring(Protocol):
    @property
    def done(self) -> bool: ...

    def wake(self) -> None: ...


class FetchExpiry:
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Expiring]] = []
        self._sequence = itertools.count()
        self._purge_at = PURGE_FROM
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0

    def __len__(self) -> int:
        return len(self._heap)

    def add(self, fetch: Expiring, wait_ms: int) -> None:
        """Wake ``fetch`` ``wait_ms`` from now unless it is done by then."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a new loop (tests run several): the old one is gone
            self.close()
            self._heap.clear()
            self._loop = loop
        heap = self._heap
        if len(heap) >= self._purge_at:
            heap[:] = [entry for entry in heap if not entry[2].done]
            heapq.heapify(heap)
            self._purge_at = max(PURGE_FROM, 2 * len(heap))
        deadline = loop.time() + max(wait_ms, 0) / 1000
        heapq.heappush(heap, (deadline, next(self._sequence), fetch))
        if self._timer is None or deadline < self._timer_at:
            self._schedule(loop, deadline)

    def close(self) -> None:
        """Stop the timer (shutdown: the parked fetches were completed)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _schedule(self, loop: asyncio.AbstractEventLoop, deadline: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = loop.call_at(deadline, self._expire)
        self._timer_at = deadline

    def _expire(self) -> None:
        self._timer = None
        loop = self._loop
        assert loop is not None
        heap = self._heap
        now = loop.time() + _RESOLUTION
        while heap and heap[0][0] <= now:
            fetch = heapq.heappop(heap)[2]
            if fetch.done:
                continue
            try:
                fetch.wake()
            except Exception:  # one fetch's failure must not strand the others
                log.exception("error completing an expired fetch")
        while heap and heap[0][2].done:
            heapq.heappop(heap)
        if heap:
            self._schedule(loop, heap[0][0])
