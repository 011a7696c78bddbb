"""Broker registrations for metadata tests."""

from __future__ import annotations

from odradek.cluster.brokers import BrokerRegistration, Endpoint


def single_broker(broker_id: int, rack: str | None = None) -> BrokerRegistration:
    return BrokerRegistration(
        broker_id=broker_id,
        endpoints=(Endpoint("PLAINTEXT", "127.0.0.1", 9000 + broker_id),),
        rack=rack,
    )
