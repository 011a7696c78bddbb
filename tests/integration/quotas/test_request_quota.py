"""request_percentage: time spent handling a client's requests, as a percentage of one
thread (Kafka's ClientRequestQuotaManager), throttles that client: the answer carries the
throttle time and the connection is muted for it; other clients are not affected."""

from __future__ import annotations

import time
from typing import Any

from kio.schema.metadata.v12.request import MetadataRequest

from tests.integration.quotas.quota_wire import alter
from tests.support.broker import BrokerProcess
from tests.support.wire import WireClient


def metadata(client: WireClient) -> tuple[int, float]:
    """(throttle time the answer reports, seconds the answer took)."""
    started = time.monotonic()
    response = client.call(
        MetadataRequest(
            topics=None,
            allow_auto_topic_creation=False,
            include_topic_authorized_operations=False,
        )
    )
    return int(response.throttle_time.total_seconds() * 1000), time.monotonic() - started


def test_request_percentage_throttles_and_mutes(broker_factory: Any) -> None:
    broker: BrokerProcess = broker_factory({"quota.window.num": "2"})
    with WireClient(broker.bootstrap) as client:
        # The wire client's client id is "wire"; 0.01 % of a thread is 100 us a second.
        assert alter(client, [({"client-id": "wire"}, {"request_percentage": 0.01})]) == [(0, None)]
    with WireClient(broker.bootstrap) as client:
        throttle_ms = 0
        for _ in range(50):
            throttle_ms, _ = metadata(client)
            if throttle_ms:
                break
        assert throttle_ms > 0, "no request was throttled"
        # The connection is muted for the throttle time: the next answer waits for it.
        _, took = metadata(client)
        assert took >= throttle_ms / 1000 * 0.8, (took, throttle_ms)
    with WireClient(broker.bootstrap) as client:
        assert alter(client, [({"client-id": "wire"}, {"request_percentage": None})])[0][0] == 0
        # The mute may still run out; afterwards nothing is throttled.
        time.sleep(2.5)
        assert all(metadata(client)[0] == 0 for _ in range(20))
