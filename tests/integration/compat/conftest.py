"""Real clients must not make the broker log warnings, errors or tracebacks.

A client that works around a broker failure (retrying, falling back to another version)
can still pass a round-trip test; the broker's log shows it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.support.broker import BrokerProcess

TROUBLE = re.compile(r" (WARNING|ERROR|CRITICAL) |Traceback")


@pytest.fixture(autouse=True)
def quiet_broker_log(broker: BrokerProcess) -> Iterator[None]:
    start = broker.log_path.stat().st_size
    yield
    with broker.log_path.open("rb") as log:
        log.seek(start)
        written = log.read().decode(errors="replace")
    trouble = [line for line in written.splitlines() if TROUBLE.search(line)]
    assert not trouble, "broker logged trouble during this test:\n" + "\n".join(trouble[:20])
