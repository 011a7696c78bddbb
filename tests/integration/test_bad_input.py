"""Bad input gets Kafka's answer: an error code, or for unparseable frames a closed
connection; never a crash, and the broker keeps serving everyone else."""

from __future__ import annotations

import datetime
import struct
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic
from kio.schema.api_versions.v0.response import ApiVersionsResponse as ApiVersionsV0
from kio.schema.create_topics.v7.request import CreatableTopic, CreateTopicsRequest
from kio.schema.errors import ErrorCode
from kio.schema.metadata.v12.request import MetadataRequest, MetadataRequestTopic
from kio.schema.produce.v9.request import PartitionProduceData, ProduceRequest, TopicProduceData
from kio.serial import entity_reader
from kio.static.primitive import Records, i16, i32

from odradek.protocol.record_codec import BatchSpec, NewRecord, build_batch
from tests.support.broker import BrokerProcess
from tests.support.clients import create_topic
from tests.support.wire import WireClient, fetch_request

Factory = Callable[..., BrokerProcess]


@pytest.fixture
def client(broker: BrokerProcess) -> Iterator[WireClient]:
    with WireClient(broker.bootstrap) as wire:
        yield wire


def still_serving(broker: BrokerProcess) -> bool:
    with WireClient(broker.bootstrap) as fresh:
        response = fresh.call(
            MetadataRequest(
                topics=None,
                allow_auto_topic_creation=False,
                include_topic_authorized_operations=False,
            )
        )
        return bool(response.brokers)


def produce(
    client: WireClient, topic: str, records: bytes, partition: int = 0, acks: int = 1
) -> Any:
    response = client.call(
        ProduceRequest(
            transactional_id=None,
            acks=i16(acks),
            timeout=datetime.timedelta(seconds=10),
            topic_data=(
                TopicProduceData(
                    name=topic,
                    partition_data=(
                        PartitionProduceData(index=i32(partition), records=Records(records)),
                    ),
                ),
            ),
        )
    )
    return response.responses[0].partition_responses[0]


def fetch(client: WireClient, topic: str, offset: int, partition: int = 0) -> Any:
    response = client.call(fetch_request(topic, partition, offset, max_wait_ms=10))
    return response.responses[0].partitions[0]


def batch(count: int = 1, **spec: Any) -> bytes:
    return build_batch(
        [NewRecord(key=b"k", value=b"v%d" % i) for i in range(count)], BatchSpec(**spec)
    )


# -- frames that cannot be parsed: the connection closes, the broker lives on ---------------


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n", id="http-request"),
        pytest.param(struct.pack(">i", 2**31 - 1) + b"\x00" * 64, id="huge-declared-size"),
        pytest.param(struct.pack(">i", -5) + b"\x00" * 8, id="negative-size"),
        pytest.param(
            struct.pack(">i", 10) + struct.pack(">hhih", 9999, 0, 1, -1), id="unknown-api-key"
        ),
        pytest.param(
            struct.pack(">i", 12) + struct.pack(">hhih", 3, 12, 1, -1) + b"\xff\xff",
            id="truncated-metadata-body",
        ),
        pytest.param(
            struct.pack(">i", 10) + struct.pack(">hhih", 1, 2, 1, -1), id="removed-fetch-version"
        ),
    ],
)
def test_unparseable_frame_closes_only_that_connection(
    broker: BrokerProcess, client: WireClient, payload: bytes
) -> None:
    client.send_raw(payload)
    assert client.is_closed_by_peer(timeout=1.0)
    assert still_serving(broker)


def test_frame_over_socket_request_max_bytes_is_refused(broker_factory: Factory) -> None:
    broker = broker_factory({"socket.request.max.bytes": "2000"})
    create_topic(broker.bootstrap, "small-frames")
    with WireClient(broker.bootstrap) as wire:
        wire.send_raw(struct.pack(">i", 2001))  # no body follows: refused on the size alone
        assert wire.is_closed_by_peer(timeout=1.0)
    with WireClient(broker.bootstrap) as wire:
        assert produce(wire, "small-frames", batch(3)).error_code is ErrorCode.none


def test_api_versions_at_unknown_version_answers_v0_with_our_list(client: WireClient) -> None:
    body = client.header(18, 99, flexible=True)
    client.send_frame(body + b"\x00")
    frame = client.read_frame()
    response, _ = entity_reader(ApiVersionsV0)(frame, 4)
    assert response.error_code is ErrorCode.unsupported_version
    keys = {api.api_key: (api.min_version, api.max_version) for api in response.api_keys}
    assert keys[18] == (0, 4)
    assert keys[0][0] == 0, "Produce is advertised from v0, as Kafka 4 does"
    assert 71 not in keys, "telemetry must not be advertised"


def test_removed_produce_versions_get_unsupported_version(client: WireClient) -> None:
    body = struct.pack(">hi", 1, 1000) + struct.pack(">i", 1)
    body += struct.pack(">h", 5) + b"topic" + struct.pack(">i", 1)
    records = batch()
    body += struct.pack(">ii", 0, len(records)) + records
    client.send_frame(client.header(0, 2, flexible=False) + body)
    frame = client.read_frame()
    topic_count, name_length = struct.unpack_from(">ih", frame, 4)
    assert topic_count == 1 and frame[10 : 10 + name_length] == b"topic"
    partition, error = struct.unpack_from(">ih", frame, 10 + name_length + 4)
    assert (partition, error) == (0, ErrorCode.unsupported_version)


# -- requests that parse but are wrong: Kafka's error codes ---------------------------------


def test_invalid_topic_names(client: WireClient) -> None:
    response = client.call(
        CreateTopicsRequest(
            topics=(
                CreatableTopic(
                    name="no spaces!",
                    num_partitions=i32(1),
                    replication_factor=i16(1),
                    assignments=(),
                    configs=(),
                ),
            ),
            timeout=datetime.timedelta(seconds=5),
            validate_only=False,
        )
    )
    assert response.topics[0].error_code is ErrorCode.invalid_topic_exception
    assert "illegal" in (response.topics[0].error_message or "")
    metadata = client.call(
        MetadataRequest(
            topics=(MetadataRequestTopic(topic_id=None, name="bad/name"),),
            allow_auto_topic_creation=True,
            include_topic_authorized_operations=False,
        )
    )
    assert metadata.topics[0].error_code is ErrorCode.invalid_topic_exception


def test_replication_factor_beyond_one_broker(client: WireClient) -> None:
    response = client.call(
        CreateTopicsRequest(
            topics=(
                CreatableTopic(
                    name="rf3",
                    num_partitions=i32(1),
                    replication_factor=i16(3),
                    assignments=(),
                    configs=(),
                ),
            ),
            timeout=datetime.timedelta(seconds=5),
            validate_only=False,
        )
    )
    assert response.topics[0].error_code is ErrorCode.invalid_replication_factor


def test_unknown_partition(broker: BrokerProcess, client: WireClient) -> None:
    create_topic(broker.bootstrap, "two-parts", partitions=2)
    assert produce(client, "two-parts", batch(), partition=7).error_code is (
        ErrorCode.unknown_topic_or_partition
    )
    assert fetch(client, "two-parts", 0, partition=7).error_code is (
        ErrorCode.unknown_topic_or_partition
    )
    assert produce(client, "no-such-topic", batch()).error_code is (
        ErrorCode.unknown_topic_or_partition
    )


def test_crc_mismatch_is_corrupt_message_and_nothing_is_written(
    broker: BrokerProcess, client: WireClient
) -> None:
    create_topic(broker.bootstrap, "crc")
    good = batch(2)
    corrupted = bytearray(good)
    corrupted[-1] ^= 0xFF
    assert produce(client, "crc", bytes(corrupted)).error_code is ErrorCode.corrupt_message
    result = produce(client, "crc", good)
    assert (result.error_code, result.base_offset) == (ErrorCode.none, 0)


def test_truncated_batch_is_rejected(broker: BrokerProcess, client: WireClient) -> None:
    create_topic(broker.bootstrap, "truncated")
    error = produce(client, "truncated", batch(3)[:-5]).error_code
    assert error in (ErrorCode.corrupt_message, ErrorCode.invalid_record)
    assert fetch(client, "truncated", 0).high_watermark == 0


def test_batch_over_max_message_bytes(broker: BrokerProcess, client: WireClient) -> None:
    create_topic(broker.bootstrap, "tiny", config={"max.message.bytes": "200"})
    big = build_batch([NewRecord(key=None, value=b"x" * 500)])
    assert produce(client, "tiny", big).error_code is ErrorCode.message_too_large
    assert produce(client, "tiny", batch()).error_code is ErrorCode.none


def test_fetch_outside_the_log_is_offset_out_of_range(
    broker: BrokerProcess, client: WireClient
) -> None:
    create_topic(broker.bootstrap, "range")
    produce(client, "range", batch(3))
    assert fetch(client, "range", 4).error_code is ErrorCode.offset_out_of_range
    assert fetch(client, "range", -1).error_code is ErrorCode.offset_out_of_range
    inside = fetch(client, "range", 1)
    assert inside.error_code is ErrorCode.none
    assert inside.records[:8] == struct.pack(">q", 0), "the whole batch holding offset 1"


def test_invalid_acks(broker: BrokerProcess, client: WireClient) -> None:
    create_topic(broker.bootstrap, "acks")
    assert produce(client, "acks", batch(), acks=2).error_code is ErrorCode.invalid_required_acks


# -- idempotent producers -------------------------------------------------------------------


def test_retried_batch_gets_its_original_offset(broker: BrokerProcess, client: WireClient) -> None:
    create_topic(broker.bootstrap, "idem")
    pid = 4242
    first = produce(client, "idem", batch(2, producer_id=pid, producer_epoch=0, base_sequence=0))
    second = produce(client, "idem", batch(3, producer_id=pid, producer_epoch=0, base_sequence=2))
    retry = produce(client, "idem", batch(2, producer_id=pid, producer_epoch=0, base_sequence=0))
    assert (first.base_offset, second.base_offset) == (0, 2)
    assert (retry.error_code, retry.base_offset) == (ErrorCode.none, 0)
    gap = produce(client, "idem", batch(1, producer_id=pid, producer_epoch=0, base_sequence=9))
    assert gap.error_code is ErrorCode.out_of_order_sequence_number
    bumped = produce(client, "idem", batch(1, producer_id=pid, producer_epoch=1, base_sequence=0))
    assert bumped.error_code is ErrorCode.none and bumped.base_offset == 5
    stale = produce(client, "idem", batch(1, producer_id=pid, producer_epoch=0, base_sequence=5))
    assert stale.error_code is ErrorCode.invalid_producer_epoch
    assert fetch(client, "idem", 0).high_watermark == 6


def test_producer_state_survives_restart(broker_factory: Factory) -> None:
    broker = broker_factory()
    create_topic(broker.bootstrap, "idem-restart")
    pid = 77
    with WireClient(broker.bootstrap) as wire:
        produce(wire, "idem-restart", batch(2, producer_id=pid, producer_epoch=0, base_sequence=0))
    broker.kill()
    broker.start()
    with WireClient(broker.bootstrap) as wire:
        retry = produce(
            wire, "idem-restart", batch(2, producer_id=pid, producer_epoch=0, base_sequence=0)
        )
        assert (retry.error_code, retry.base_offset) == (ErrorCode.none, 0)
        gap = produce(
            wire, "idem-restart", batch(1, producer_id=pid, producer_epoch=0, base_sequence=3)
        )
        assert gap.error_code is ErrorCode.out_of_order_sequence_number
        next_ok = produce(
            wire, "idem-restart", batch(1, producer_id=pid, producer_epoch=0, base_sequence=2)
        )
        assert (next_ok.error_code, next_ok.base_offset) == (ErrorCode.none, 2)


def test_acks_zero_gets_no_response_but_is_written(
    broker: BrokerProcess, client: WireClient
) -> None:
    create_topic(broker.bootstrap, "acks0")
    request = ProduceRequest(
        transactional_id=None,
        acks=i16(0),
        timeout=datetime.timedelta(seconds=10),
        topic_data=(
            TopicProduceData(
                name="acks0",
                partition_data=(PartitionProduceData(index=i32(0), records=Records(batch(4))),),
            ),
        ),
    )
    client.send_frame(client.request_bytes(request))
    # The next response on this connection answers the next request, not the produce.
    assert fetch(client, "acks0", 0).high_watermark == 4


def test_too_many_partitions_in_one_request_is_a_policy_violation(broker: BrokerProcess) -> None:
    """Kafka's controller limit: at most 10,000 new partitions per request, all topics of
    a request over it refused with POLICY_VIOLATION; nothing is created."""
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    futures = admin.create_topics(
        [NewTopic("huge-a", 6_000, 1), NewTopic("huge-b", 6_000, 1)], operation_timeout=10
    )
    for name in ("huge-a", "huge-b"):
        with pytest.raises(KafkaException) as info:
            futures[name].result(timeout=30)
        assert info.value.args[0].code() == KafkaError.POLICY_VIOLATION
    create_topic(broker.bootstrap, "grows", partitions=1)
    grown = admin.create_partitions([NewPartitions("grows", 20_000)])
    with pytest.raises(KafkaException) as info:
        grown["grows"].result(timeout=30)
    assert info.value.args[0].code() == KafkaError.POLICY_VIOLATION
    names = admin.list_topics(timeout=10).topics
    assert "huge-a" not in names and "huge-b" not in names
    assert len(names["grows"].partitions) == 1


def test_deleting_a_topic_of_many_partitions_removes_every_log(broker: BrokerProcess) -> None:
    """Logs are deleted in one pass (one checkpoint for all, not one per partition, which
    made deleting a wide topic quadratic)."""
    create_topic(broker.bootstrap, "wide", partitions=1_000)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.delete_topics(["wide"], operation_timeout=30)["wide"].result(timeout=60)
    assert "wide" not in admin.list_topics(timeout=10).topics
    assert not list(broker.data_dir.glob("wide-*"))
