"""Small conversions shared by handlers (kio's rich types <-> Kafka's raw numbers)."""

from __future__ import annotations

import datetime
from typing import Any

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
