"""kafka-python 3.x against a real broker: admin, idempotent producer, assign()-consumer.

kafka-python 3 defaults to ``enable_idempotence=True, acks='all'`` (InitProducerId and
sequence checks are needed for a plain producer). This client cannot send null header
values nor a record with neither key nor value, so the records here leave those out.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import (
    ConfigResource,
    ConfigResourceType,
    KafkaAdminClient,
    NewPartitions,
    NewTopic,
)
from kafka.errors import TopicAlreadyExistsError

from tests.integration.compat import ck
from tests.integration.compat.common import (
    BASE_TIMESTAMP,
    CODECS,
    Outgoing,
    Rec,
    assert_idempotent_batches,
    assert_offsets_follow_send_order,
    assert_partition_order,
    assert_stored_with,
    by_position,
    outgoing,
    placed,
    topic_name,
    wait_for,
)
from tests.support.broker import BrokerProcess

TIMEOUT = 20.0


@pytest.fixture
def admin(broker: BrokerProcess) -> Iterator[KafkaAdminClient]:
    client = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=10000)
    yield client
    client.close()


def create(admin: KafkaAdminClient, topic: str, partitions: int) -> None:
    admin.create_topics([NewTopic(topic, partitions, 1)])


def produce(bootstrap: str, topic: str, records: Sequence[Outgoing], **config: Any) -> list[Rec]:
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, **config)
    try:
        futures = [
            producer.send(
                topic,
                key=record.key,
                value=record.value,
                partition=record.partition,
                headers=list(record.headers),
                timestamp_ms=record.timestamp,
            )
            for record in records
        ]
        producer.flush(TIMEOUT)
        acked = []
        for record, future in zip(records, futures, strict=True):
            metadata = future.get(TIMEOUT)
            assert metadata.partition == record.partition
            acked.append(placed(record, metadata.offset))
        return acked
    finally:
        producer.close(TIMEOUT)


def to_rec(message: Any) -> Rec:
    assert message.timestamp_type == 0, message  # CreateTime
    return Rec(
        message.partition,
        message.offset,
        message.key,
        message.value,
        tuple(message.headers),
        message.timestamp,
    )


def read(consumer: KafkaConsumer, count: int) -> list[Rec]:
    got: list[Rec] = []
    deadline = time.monotonic() + TIMEOUT
    while len(got) < count:
        assert time.monotonic() < deadline, f"read {len(got)} of {count}"
        for messages in consumer.poll(timeout_ms=200).values():
            got += [to_rec(message) for message in messages]
    return got


def read_all(bootstrap: str, topic: str, partitions: int, count: int) -> list[Rec]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
        consumer.seek_to_beginning()
        got = read(consumer, count)
        assert not consumer.poll(timeout_ms=300), "more records than were produced"
        return got
    finally:
        consumer.close()


def test_defaults_are_idempotent_acks_all(broker: BrokerProcess) -> None:
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
    try:
        assert producer.config["enable_idempotence"] is True
        assert producer.config["acks"] == -1
    finally:
        producer.close(TIMEOUT)


@pytest.mark.parametrize("codec", CODECS)
def test_round_trip_is_exact(admin: KafkaAdminClient, broker: BrokerProcess, codec: str) -> None:
    topic = topic_name(f"kp-{codec}")
    create(admin, topic, 3)
    sent = outgoing(90, 3, tag=codec, null_header_values=False, null_key_and_value=False)
    compression = None if codec == "none" else codec
    acked = produce(broker.bootstrap, topic, sent, compression_type=compression)
    assert_offsets_follow_send_order(acked, sent)

    got = read_all(broker.bootstrap, topic, 3, len(acked))
    assert_partition_order(got)
    assert by_position(got) == by_position(acked)
    assert_stored_with(broker.bootstrap, topic, 3, codec)
    assert_idempotent_batches(broker.bootstrap, topic, 3)
    # librdkafka reads the same records back from what kafka-python wrote.
    assert by_position(ck.read_all(broker.bootstrap, topic, 3)) == by_position(acked)


def test_acks_1_without_idempotence(admin: KafkaAdminClient, broker: BrokerProcess) -> None:
    topic = topic_name("kp-acks1")
    create(admin, topic, 2)
    sent = outgoing(40, 2, null_header_values=False, null_key_and_value=False)
    acked = produce(broker.bootstrap, topic, sent, acks=1, enable_idempotence=False)
    assert_offsets_follow_send_order(acked, sent)
    assert by_position(read_all(broker.bootstrap, topic, 2, 40)) == by_position(acked)


def test_reads_what_librdkafka_wrote(admin: KafkaAdminClient, broker: BrokerProcess) -> None:
    topic = topic_name("kp-from-ck")
    create(admin, topic, 2)
    sent = outgoing(40, 2, null_header_values=False, null_key_and_value=False)
    acked = ck.produce(broker.bootstrap, topic, sent, **{"compression.type": "zstd"})
    got = read_all(broker.bootstrap, topic, 2, 40)
    assert_partition_order(got)
    assert by_position(got) == by_position(acked)


def test_offsets_lookups_and_seek(admin: KafkaAdminClient, broker: BrokerProcess) -> None:
    topic = topic_name("kp-offsets")
    create(admin, topic, 2)
    sent = outgoing(40, 2, null_header_values=False, null_key_and_value=False)
    acked = by_position(produce(broker.bootstrap, topic, sent, compression_type="gzip"))
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False)
    try:
        tp0, tp1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
        assert consumer.beginning_offsets([tp0, tp1]) == {tp0: 0, tp1: 0}
        assert consumer.end_offsets([tp0, tp1]) == {tp0: 20, tp1: 20}
        # Record i: partition i % 2, offset i // 2, timestamp BASE + i * 1000 + i % 3.
        found = consumer.offsets_for_times(
            {tp0: BASE_TIMESTAMP + 10 * 1000 + 2, tp1: BASE_TIMESTAMP + 10**9}
        )
        assert found[tp0] is not None
        assert (found[tp0].offset, found[tp0].timestamp) == (6, BASE_TIMESTAMP + 12 * 1000)
        assert found[tp1] is None

        consumer.assign([tp0])
        consumer.seek(tp0, 13)  # inside a compressed batch
        assert read(consumer, 7) == [r for r in acked if r.partition == 0 and r.offset >= 13]
        assert consumer.position(tp0) == 20
    finally:
        consumer.close()


def test_admin_topics_partitions_configs(admin: KafkaAdminClient, broker: BrokerProcess) -> None:
    topic = topic_name("kp-admin")
    admin.create_topics([NewTopic(topic, 2, 1, topic_configs={"retention.ms": "120000"})])
    assert topic in admin.list_topics()
    with pytest.raises(TopicAlreadyExistsError):
        create(admin, topic, 1)

    (described,) = admin.describe_topics([topic])
    assert described["error_code"] == 0
    assert sorted(p["partition_index"] for p in described["partitions"]) == [0, 1]

    admin.create_partitions({topic: NewPartitions(total_count=4)})
    wait_for(lambda: len(admin.describe_topics([topic])[0]["partitions"]) == 4, 10, "4 partitions")

    resource = ConfigResource(ConfigResourceType.TOPIC, topic)
    modified = admin.describe_configs([resource])["topic"][topic]
    assert {name: entry["value"] for name, entry in modified.items()} == {"retention.ms": "120000"}
    assert modified["retention.ms"]["config_source"] == "DYNAMIC_TOPIC_CONFIG"
    everything = admin.describe_configs([resource], config_filter="all")["topic"][topic]
    assert everything["cleanup.policy"]["value"] == "delete"
    assert everything["cleanup.policy"]["config_source"] == "DEFAULT_CONFIG"

    assert admin.alter_configs(
        [ConfigResource(ConfigResourceType.TOPIC, topic, configs={"retention.ms": "7777"})]
    ) == {"topic": {topic: "OK"}}
    modified = admin.describe_configs([resource], include_synonyms=True)["topic"][topic]
    assert modified["retention.ms"]["value"] == "7777"
    assert modified["retention.ms"]["synonyms"][0] == {
        "name": "retention.ms",
        "value": "7777",
        "source": "DYNAMIC_TOPIC_CONFIG",
    }

    produce(
        broker.bootstrap, topic, outgoing(8, 4, null_header_values=False, null_key_and_value=False)
    )
    deleted = admin.delete_records({TopicPartition(topic, 3): 1})
    assert deleted[TopicPartition(topic, 3)]["low_watermark"] == 1

    cluster = admin.describe_cluster()
    host, port = broker.bootstrap.rsplit(":", 1)
    assert cluster["controller_id"] == 1
    assert cluster["brokers"] == [{"broker_id": 1, "host": host, "port": int(port), "rack": None}]

    admin.delete_topics([topic])
    wait_for(lambda: topic not in admin.list_topics(), 10, "topic deleted")
