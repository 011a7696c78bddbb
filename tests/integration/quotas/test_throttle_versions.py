"""KIP-219 by version: a client of Fetch v8+ gets its throttled answer at once (empty,
with the throttle time) and its connection is muted afterwards; an older client's answer
is held back for the throttle time instead, as Kafka does."""

from __future__ import annotations

import importlib
import time
from typing import Any

from odradek.protocol import codec
from tests.integration.quotas.quota_wire import alter
from tests.support.broker import BrokerProcess
from tests.support.clients import create_topic, produce_acked
from tests.support.wire import WireClient, fetch_request

TOPIC = "quota-versions"


def fetch_at(client: WireClient, version: int) -> tuple[int, int, float]:
    """(throttle ms, records bytes, seconds the answer took) of a Fetch at ``version``."""
    v12 = fetch_request(TOPIC, max_bytes=100_000)
    request = v12 if version == 12 else _downgrade(v12, version)
    started = time.monotonic()
    response = client.call(request)
    took = time.monotonic() - started
    size = sum(len(p.records or b"") for topic in response.responses for p in topic.partitions)
    return int(response.throttle_time.total_seconds() * 1000), size, took


def _downgrade(v12: Any, version: int) -> Any:
    """The same fetch at an older version (a consumer, no session)."""
    cls = codec.request_class(1, version)
    mod = importlib.import_module(cls.__module__)
    return codec.build(
        cls,
        replica_id=-1,
        max_wait=v12.max_wait,
        min_bytes=v12.min_bytes,
        max_bytes=v12.max_bytes,
        isolation_level=v12.isolation_level,
        session_id=v12.session_id,
        session_epoch=v12.session_epoch,
        topics=tuple(
            codec.build(
                mod.FetchTopic,
                topic=t.topic,
                partitions=tuple(
                    codec.build(
                        mod.FetchPartition,
                        partition=p.partition,
                        fetch_offset=p.fetch_offset,
                        log_start_offset=p.log_start_offset,
                        partition_max_bytes=p.partition_max_bytes,
                    )
                    for p in t.partitions
                ),
            )
            for t in v12.topics
        ),
        forgotten_topics_data=(),
    )


def throttled_fetch(client: WireClient, version: int) -> tuple[int, float]:
    for _ in range(50):
        throttle_ms, size, took = fetch_at(client, version)
        if throttle_ms:
            assert size == 0, "a throttled fetch answers no records"
            return throttle_ms, took
        assert size > 0
    raise AssertionError("never throttled")


def test_new_clients_answered_at_once_old_ones_held_back(broker_factory: Any) -> None:
    broker: BrokerProcess = broker_factory({"quota.window.num": "2"})
    create_topic(broker.bootstrap, TOPIC)
    produce_acked(broker.bootstrap, TOPIC, 20)
    with WireClient(broker.bootstrap) as client:
        assert alter(client, [({"client-id": "wire"}, {"consumer_byte_rate": 2000.0})]) == [
            (0, None)
        ]
    with WireClient(broker.bootstrap) as client:
        throttle_ms, took = throttled_fetch(client, 12)
        assert took < throttle_ms / 1000 / 2, (took, throttle_ms)
        _, _, next_took = fetch_at(client, 12)  # muted meanwhile
        assert next_took >= throttle_ms / 1000 * 0.8, (next_took, throttle_ms)
    time.sleep(3)  # the meter drains
    with WireClient(broker.bootstrap) as client:
        throttle_ms, took = throttled_fetch(client, 7)
        assert took >= throttle_ms / 1000 * 0.8, (took, throttle_ms)
