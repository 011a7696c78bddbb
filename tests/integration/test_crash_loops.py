"""kill -9 loops during produce with ``flush.messages=1``: every acknowledged record is at
its acknowledged offset after the restarts, once (``tests.robustness.crash``, which
``python -m tests.fuzz.report`` also runs)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.robustness.crash import KILL9_BROKER_CONFIG, kill9_produce_rounds
from tests.support.broker import BrokerProcess

Factory = Callable[..., BrokerProcess]


def test_kill_9_during_produce_loses_no_acknowledged_record(broker_factory: Factory) -> None:
    broker = broker_factory(KILL9_BROKER_CONFIG)
    run = kill9_produce_rounds(broker, seed=3, rounds=3)
    assert run.failures == [], broker.log()
    assert run.rounds == 3
    assert run.records_written >= 200  # 50 acknowledged before each kill and after the last
    assert run.records_lost == 0


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_kill_9_loops_many_rounds(broker_factory: Factory) -> None:
    broker = broker_factory(KILL9_BROKER_CONFIG)
    run = kill9_produce_rounds(broker, seed=11, rounds=40)
    assert run.failures == [], broker.log()
    assert run.rounds == 40
    assert run.records_lost == 0
