"""Small conversions shared by handlers (kio's rich types <-> Kafka's raw numbers)."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

ZERO_DURATION = datetime.timedelta(0)
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


def millis_to_datetime(millis: int) -> datetime.datetime | None:
    """kio models a -1 timestamp as None and others as aware datetimes."""
    if millis < 0:
        return None
    return EPOCH + datetime.timedelta(milliseconds=millis)


def duration_ms(value: Any) -> int:
    """Milliseconds of a kio duration field (a timedelta)."""
    if isinstance(value, datetime.timedelta):
        return int(value.total_seconds() * 1000)
    return int(value)


def datetime_to_millis(value: Any) -> int:
    """Epoch milliseconds of a kio timestamp field (datetime or None)."""
    if value is None:
        return -1
    if isinstance(value, datetime.datetime):
        return (value - EPOCH) // datetime.timedelta(milliseconds=1)
    return int(value)


def deferred(start: Callable[[Callable[[T], None]], None], render: Callable[[T], Any]) -> Any:
    """Run ``start(respond)`` and answer with ``render(result)`` once ``respond`` is called.

    Coordinators answer some requests later (JoinGroup when the rebalance completes):
    they take a callback. If it is called at once, the response is returned at once;
    otherwise a coroutine waiting for it is returned, which the connection runs as a task.
    """
    answer: asyncio.Future[T] = asyncio.get_running_loop().create_future()

    def respond(result: T) -> None:
        if not answer.done():
            answer.set_result(result)

    start(respond)
    if answer.done():
        return render(answer.result())

    async def wait() -> Any:
        return render(await answer)

    return wait()
