"""Client quota maths as Kafka's ClientQuotaManager, with an injected clock: Kafka's Rate
windows, the throttle time formula, precedence of quota entities and meter sharing."""

from __future__ import annotations

from pathlib import Path

import pytest

from odradek.broker.client_quotas import DEFAULT_NAME, sanitize
from odradek.broker.quotas import (
    ClientQuotaManager,
    ClientQuotas,
    ControllerMutationQuotaManager,
    IpConnectionQuota,
    Rate,
)
from odradek.cluster.metadata import LocalStore

D = DEFAULT_NAME


def test_rate_counts_at_least_samples_minus_one_windows() -> None:
    rate = Rate(samples=11, window_ms=1000)
    rate.record(1000, 0)
    assert rate.measure(0) == (100.0, 10_000)
    rate.record(1000, 10_500)  # a new sample; the first still overlaps the window
    assert rate.measure(10_500) == (2000 / 10.5, 10_500)
    # A sample with no event for samples * window is dropped.
    assert rate.measure(11_000) == (1000 / 10.5, 10_500)
    assert rate.measure(30_000) == (0.0, 10_000)


def test_throttle_time_is_kafkas_formula() -> None:
    manager = ClientQuotaManager("producer_byte_rate", samples=11, window_seconds=1)
    manager.update({(None, "app"): 100.0})
    assert manager.record("ANONYMOUS", "app", 900, 0) == 0  # 90 B/s over 10 s
    # 2000 B over a 10 s window is 200 B/s: (200 - 100) / 100 * 10 000 ms.
    assert manager.record("ANONYMOUS", "app", 1100, 0) == 10_000
    # Other client ids have no quota.
    assert manager.record("ANONYMOUS", "other", 10**9, 0) == 0
    # Fifteen seconds later the samples have expired.
    assert manager.record("ANONYMOUS", "app", 500, 15_000) == 0


def test_unrecord_takes_a_value_back() -> None:
    manager = ClientQuotaManager("consumer_byte_rate", samples=11, window_seconds=1)
    manager.update({(None, D): 100.0})
    assert manager.record("ANONYMOUS", "c", 3000, 0) == 20_000
    manager.unrecord("ANONYMOUS", "c", 3000, 0)
    assert manager.record("ANONYMOUS", "c", 500, 1) == 0
    assert manager.max_value_in_window("ANONYMOUS", "c") == 1000.0


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({("u", "c"): 1, ("u", D): 2, ("u", None): 3, (D, "c"): 4, (D, D): 5, (D, None): 6}, 1),
        ({("u", D): 2, ("u", None): 3, (D, "c"): 4, (D, D): 5, (D, None): 6, (None, "c"): 7}, 2),
        ({("u", None): 3, (D, "c"): 4, (D, D): 5, (D, None): 6, (None, "c"): 7}, 3),
        ({(D, "c"): 4, (D, D): 5, (D, None): 6, (None, "c"): 7, (None, D): 8}, 4),
        ({(D, D): 5, (D, None): 6, (None, "c"): 7, (None, D): 8}, 5),
        ({(D, None): 6, (None, "c"): 7, (None, D): 8}, 6),
        ({(None, "c"): 7, (None, D): 8, ("other", None): 9}, 7),
        ({(None, D): 8, ("other", "c"): 9}, 8),
        ({("other", None): 9, (None, "x"): 10}, None),
    ],
)
def test_precedence_of_quota_entities(
    overrides: dict[tuple[str | None, str | None], float], expected: float | None
) -> None:
    manager = ClientQuotaManager("producer_byte_rate", samples=11, window_seconds=1)
    manager.update(overrides)
    assert manager.quota("u", "c") == expected


def test_who_shares_a_meter() -> None:
    manager = ClientQuotaManager("producer_byte_rate", samples=11, window_seconds=1)
    # A default client-id quota: each client id has its own meter at that rate.
    manager.update({(None, D): 100.0})
    assert manager.record("ANONYMOUS", "a", 1000, 0) == 0
    assert manager.record("ANONYMOUS", "b", 1000, 0) == 0
    # A user quota: all of the user's clients share one meter.
    manager.update({("ANONYMOUS", None): 100.0})
    assert manager.record("ANONYMOUS", "a", 1000, 0) == 0
    assert manager.record("ANONYMOUS", "b", 1000, 0) == 10_000
    # Removing every quota switches the manager off.
    manager.update({})
    assert not manager.enabled
    assert manager.record("ANONYMOUS", "a", 10**9, 0) == 0


def test_changing_a_quota_keeps_the_meter(tmp_path: Path) -> None:
    store = LocalStore(tmp_path, "cluster")
    now = [0]
    quotas = ClientQuotas(store, samples=11, window_seconds=1, clock=lambda: now[0])
    store.add_listener(quotas)
    quotas.reload()
    assert not quotas.produce.enabled
    store.set_entity_configs("clients", sanitize("app/1"), {"producer_byte_rate": "1000"})
    assert quotas.produce.enabled and not quotas.fetch.enabled
    assert quotas.produce.record("ANONYMOUS", "app/1", 5000, 0) == 0
    store.set_entity_configs("clients", sanitize("app/1"), {"producer_byte_rate": "250"})
    assert quotas.produce.record("ANONYMOUS", "app/1", 0, 0) == 10_000
    store.set_entity_configs("users", f"{D}/clients/{D}", {"consumer_byte_rate": "10"})
    assert quotas.fetch.quota("ANONYMOUS", "anyone") == 10.0
    store.set_entity_configs("clients", sanitize("app/1"), {})
    assert not quotas.produce.enabled


def test_sanitize_as_kafka() -> None:
    assert sanitize("a b*c~d/é") == "a%20b%2Ac%7Ed%2F%C3%A9"
    assert sanitize("<default>") != DEFAULT_NAME


def test_idle_meters_are_dropped() -> None:
    manager = ClientQuotaManager("producer_byte_rate", samples=11, window_seconds=1)
    manager.update({(None, D): 100.0})
    for index in range(1024):
        manager.record("ANONYMOUS", f"c{index}", 1, 0)
    manager.record("ANONYMOUS", "late", 1, 3_600_000)
    assert manager.record("ANONYMOUS", "late", 0, 3_600_000) == 0
    assert manager.meter_count == 1


def test_token_bucket_as_kafkas_controller_mutation_quota() -> None:
    manager = ControllerMutationQuotaManager("controller_mutation_rate", 11, 1)
    manager.update({(None, "admin"): 2.0})  # burst: 11 s x 2 = 22 partitions
    assert manager.throttle_if_exceeded("ANONYMOUS", "admin", 0) == 0
    assert manager.record("ANONYMOUS", "admin", 20, 0) == 0
    assert manager.record("ANONYMOUS", "admin", 10, 0) == 4000  # 8 in debt at 2/s
    assert manager.throttle_if_exceeded("ANONYMOUS", "admin", 1000) == 3000
    assert manager.throttle_if_exceeded("ANONYMOUS", "admin", 4000) == 0
    # Refilled up to the burst, never beyond.
    assert manager.record("ANONYMOUS", "admin", 22, 100_000) == 0
    assert manager.record("ANONYMOUS", "admin", 1, 100_000) == 500


def test_ip_connection_rate() -> None:
    quota = IpConnectionQuota(samples=11, window_seconds=1)
    quota.update({"127.0.0.1": 1.0, None: 100.0})
    assert quota.quota("10.0.0.1") == 100.0
    # 1 connection/s over at least 10 s: ten pass at once, the eleventh is throttled
    # (at most one window) and not counted.
    assert [quota.record_connection("127.0.0.1", 0) for _ in range(10)] == [0] * 10
    assert quota.record_connection("127.0.0.1", 0) == 1000
    assert quota.record_connection("127.0.0.1", 0) == 1000
    assert quota.record_connection("127.0.0.2", 0) == 0
    assert quota.record_connection("127.0.0.1", 11_000) == 0  # the first sample expired
