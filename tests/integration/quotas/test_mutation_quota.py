"""controller_mutation_rate (KIP-599): partitions created or deleted per second, a token
bucket per client. Strict for new clients (CreateTopics v6+: a topic is refused with
THROTTLING_QUOTA_EXCEEDED while the bucket is in debt), permissive for old ones (every
topic is created, the client is throttled)."""

from __future__ import annotations

import datetime
import struct
from typing import Any

from kio.schema.create_topics.v5 import request as v5
from kio.schema.create_topics.v7 import request as v7
from kio.serial import entity_reader
from kio.static.primitive import i16, i32

from odradek.protocol import codec
from tests.integration.quotas.quota_wire import alter
from tests.support.broker import BrokerProcess
from tests.support.wire import WireClient, encode_header

THROTTLING_QUOTA_EXCEEDED = 89


def create_topics(client: WireClient, module: Any, client_id: str, topics: dict[str, int]) -> Any:
    request = module.CreateTopicsRequest(
        topics=tuple(
            module.CreatableTopic(
                name=name,
                num_partitions=i32(partitions),
                replication_factor=i16(1),
                assignments=(),
                configs=(),
            )
            for name, partitions in topics.items()
        ),
        timeout=datetime.timedelta(seconds=10),
        validate_only=False,
    )
    version = int(request.__version__)
    client.correlation_id += 1
    client.send_frame(
        encode_header(
            19, version, client.correlation_id, codec.is_flexible_request(19, version), client_id
        )
        + codec.encode(request)
    )
    body = client.read_frame()
    assert struct.unpack_from(">i", body, 0)[0] == client.correlation_id
    offset = 5 if codec.is_flexible_response(19, version) else 4
    response, _ = entity_reader(codec.response_class(19, version))(body, offset)
    return response


def test_strict_and_permissive_mutation_quotas(broker_factory: Any) -> None:
    broker: BrokerProcess = broker_factory()
    with WireClient(broker.bootstrap) as client:
        # Every client id its own bucket of 2 partitions/s, 22 partitions of burst.
        assert alter(client, [({"client-id": None}, {"controller_mutation_rate": 2.0})]) == [
            (0, None)
        ]
        response = create_topics(client, v7, "new", {"a": 20, "b": 10, "c": 1})
        errors = {t.name: (int(t.error_code), t.error_message) for t in response.topics}
        assert errors == {
            "a": (0, None),
            "b": (0, None),  # the bucket had tokens left: it goes into debt
            "c": (THROTTLING_QUOTA_EXCEEDED, "The throttling quota has been exceeded."),
        }
        throttle_ms = response.throttle_time.total_seconds() * 1000
        assert 3000 < throttle_ms <= 4000, throttle_ms  # 8 partitions of debt at 2/s
        # An old client (v5) is never refused, only throttled.
        response = create_topics(client, v5, "old", {"d": 20, "e": 10, "f": 1})
        assert [int(t.error_code) for t in response.topics] == [0, 0, 0]
        assert response.throttle_time.total_seconds() * 1000 > 4000
