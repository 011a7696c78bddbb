"""Parked fetches expire in deadline order on one loop timer; a fetch completed early is
never woken, and completed fetches are purged from the heap as it grows."""

from __future__ import annotations

import asyncio

from odradek.replication import fetch_expiry
from odradek.replication.fetch_expiry import FetchExpiry


class Fetch:
    def __init__(self, name: str, woken: list[str], fail: bool = False) -> None:
        self.name = name
        self.done = False
        self._woken = woken
        self._fail = fail

    def wake(self) -> None:
        self.done = True
        self._woken.append(self.name)
        if self._fail:
            raise RuntimeError("boom")


def test_expire_in_deadline_order_with_a_shorter_wait_added_later() -> None:
    async def scenario() -> list[str]:
        woken: list[str] = []
        expiry = FetchExpiry()
        expiry.add(Fetch("slow", woken), 200)
        expiry.add(Fetch("fast", woken), 20)  # earlier than the timer already set
        await asyncio.sleep(0.1)
        assert woken == ["fast"]
        await asyncio.sleep(0.3)
        assert len(expiry) == 0
        return woken

    assert asyncio.run(scenario()) == ["fast", "slow"]


def test_a_fetch_done_early_is_not_woken_and_a_failure_strands_no_other() -> None:
    async def scenario() -> list[str]:
        woken: list[str] = []
        expiry = FetchExpiry()
        early = Fetch("early", woken)
        expiry.add(early, 10)
        expiry.add(Fetch("failing", woken, fail=True), 10)
        expiry.add(Fetch("after", woken), 10)
        early.done = True  # woken by an append meanwhile
        await asyncio.sleep(0.2)
        return woken

    assert asyncio.run(scenario()) == ["failing", "after"]


def test_completed_fetches_are_purged_as_the_heap_grows() -> None:
    async def scenario() -> int:
        woken: list[str] = []
        expiry = FetchExpiry()
        live = Fetch("live", woken)
        expiry.add(live, 60_000)
        for index in range(3 * fetch_expiry.PURGE_FROM):
            fetch = Fetch(str(index), woken)
            expiry.add(fetch, 60_000)
            fetch.done = True  # every other fetch completes at once, as at the log end
        assert woken == []
        size = len(expiry)
        expiry.close()
        return size

    assert asyncio.run(scenario()) <= 2 * fetch_expiry.PURGE_FROM
