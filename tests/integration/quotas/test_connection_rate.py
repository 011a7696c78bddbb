"""connection_creation_rate on an ip entity: connections from that address beyond the
rate are held unread and closed after the throttle time (Kafka's DelayedCloseSocket);
other addresses are not affected, and removing the quota lifts it."""

from __future__ import annotations

import socket
from typing import Any

from kio.schema.api_versions.v3.request import ApiVersionsRequest

from tests.integration.quotas.quota_wire import alter
from tests.support.broker import BrokerProcess
from tests.support.wire import WireClient


def answers(broker: BrokerProcess, source: str) -> bool:
    """Whether a new connection from ``source`` gets an ApiVersions answer."""
    host, port = broker.bootstrap.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=3, source_address=(source, 0))
    with WireClient.wrap(sock) as client:
        try:
            client.call(ApiVersionsRequest(client_software_name="t", client_software_version="1"))
        except (ConnectionError, OSError, AssertionError):
            return False
        return True


def test_connection_creation_rate_per_ip(broker_factory: Any) -> None:
    broker: BrokerProcess = broker_factory()
    with WireClient(broker.bootstrap) as client:
        assert alter(client, [({"ip": "127.0.0.2"}, {"connection_creation_rate": 1.0})]) == [
            (0, None)
        ]
    # One a second over a window of at least ten seconds: ten at once, then refused.
    results = [answers(broker, "127.0.0.2") for _ in range(12)]
    assert results[:10] == [True] * 10
    assert results[10:] == [False, False]
    assert answers(broker, "127.0.0.1")
    with WireClient(broker.bootstrap) as client:
        assert alter(client, [({"ip": "127.0.0.2"}, {"connection_creation_rate": None})]) == [
            (0, None)
        ]
    assert answers(broker, "127.0.0.2")
