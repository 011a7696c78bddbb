"""A mixed soak, out of CI: ``ODRADEK_SOAK_SECONDS=1800 pytest -m slow
tests/integration/test_soak.py`` (30 minutes by default; ``ODRADEK_SOAK_SAMPLE_SECONDS``
sets how often the broker's RSS and descriptors are sampled, default 5). What runs and
what counts as flat: ``tests.robustness.soak``."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from tests.robustness.soak import SOAK_BROKER_CONFIG, run_soak
from tests.support.broker import BrokerProcess

SOAK_SECONDS = float(os.environ.get("ODRADEK_SOAK_SECONDS", "1800"))
SAMPLE_SECONDS = float(os.environ.get("ODRADEK_SOAK_SAMPLE_SECONDS", "5"))


@pytest.mark.slow
@pytest.mark.timeout(int(SOAK_SECONDS) + 900)
def test_mixed_soak_keeps_memory_and_descriptors_flat_and_loses_nothing(
    broker_factory: Callable[..., BrokerProcess],
) -> None:
    broker = broker_factory(SOAK_BROKER_CONFIG)
    run = run_soak(broker, SOAK_SECONDS, sample_every=SAMPLE_SECONDS)
    print(run.summary())  # shown with -s or -rP
    assert run.problems() == [], run.samples
    assert run.acknowledged > 0
    assert run.member_replacements > 0 or SOAK_SECONDS < 40
    assert run.topics_churned > 0 and run.connections_churned > 0
