"""aiokafka against a real broker: it speaks only non-flexible versions (ApiVersions <= 2,
Metadata <= 5, Fetch <= 11, Produce <= 8, ListOffsets <= 5), so these tests hold those
older encodings to the same exactness as the newest ones."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.admin.records_to_delete import RecordsToDelete
from aiokafka.errors import TopicAlreadyExistsError

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
)
from tests.support.broker import BrokerProcess

TIMEOUT = 20.0


async def create(bootstrap: str, topic: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        response = await admin.create_topics([NewTopic(topic, partitions, 1)])
        assert [error for _, error, *_ in response.topic_errors] == [0], response
    finally:
        await admin.close()


async def produce(
    bootstrap: str, topic: str, records: Sequence[Outgoing], **config: Any
) -> list[Rec]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, **config)
    await producer.start()
    try:
        futures = [
            await producer.send(
                topic,
                key=record.key,
                value=record.value,
                partition=record.partition,
                headers=list(record.headers),
                timestamp_ms=record.timestamp,
            )
            for record in records
        ]
        acked = []
        for record, future in zip(records, futures, strict=True):
            metadata = await asyncio.wait_for(future, TIMEOUT)
            if metadata is None:  # acks=0: no response, no offset
                continue
            assert metadata.partition == record.partition
            acked.append(placed(record, metadata.offset))
        return acked
    finally:
        await producer.stop()


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


async def read(consumer: AIOKafkaConsumer, count: int) -> list[Rec]:
    got: list[Rec] = []
    deadline = time.monotonic() + TIMEOUT
    while len(got) < count:
        assert time.monotonic() < deadline, f"read {len(got)} of {count}"
        batches = await consumer.getmany(timeout_ms=200)
        for messages in batches.values():
            got += [to_rec(message) for message in messages]
    return got


async def read_all(bootstrap: str, topic: str, partitions: int, count: int) -> list[Rec]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
        await consumer.seek_to_beginning()
        got = await read(consumer, count)
        assert not await consumer.getmany(timeout_ms=300), "more records than were produced"
        return got
    finally:
        await consumer.stop()


@pytest.mark.parametrize("codec", CODECS)
def test_idempotent_round_trip_is_exact(broker: BrokerProcess, codec: str) -> None:
    topic = topic_name(f"aio-{codec}")
    sent = outgoing(90, 3, tag=codec, null_key_and_value=False)

    async def scenario() -> tuple[list[Rec], list[Rec]]:
        await create(broker.bootstrap, topic, 3)
        acked = await produce(
            broker.bootstrap,
            topic,
            sent,
            compression_type=None if codec == "none" else codec,
            enable_idempotence=True,
            acks="all",
        )
        return acked, await read_all(broker.bootstrap, topic, 3, len(acked))

    acked, got = asyncio.run(scenario())
    assert_offsets_follow_send_order(acked, sent)
    assert_partition_order(got)
    assert by_position(got) == by_position(acked)
    assert_stored_with(broker.bootstrap, topic, 3, codec)
    assert_idempotent_batches(broker.bootstrap, topic, 3)
    assert by_position(ck.read_all(broker.bootstrap, topic, 3)) == by_position(acked)


def test_acks_1_and_acks_0(broker: BrokerProcess) -> None:
    topic = topic_name("aio-acks")
    first = outgoing(20, 1, tag="a1", null_key_and_value=False)
    second = outgoing(20, 1, tag="a0", null_key_and_value=False)

    async def scenario() -> tuple[list[Rec], list[Rec]]:
        await create(broker.bootstrap, topic, 1)
        acked = await produce(broker.bootstrap, topic, first, acks=1)
        assert await produce(broker.bootstrap, topic, second, acks=0) == []
        return acked, await read_all(broker.bootstrap, topic, 1, 40)

    acked, got = asyncio.run(scenario())
    assert [rec.offset for rec in acked] == list(range(20))
    assert got == acked + [placed(record, 20 + i) for i, record in enumerate(second)]


def test_reads_what_librdkafka_wrote(broker: BrokerProcess) -> None:
    topic = topic_name("aio-from-ck")
    ck.create_topic(broker.bootstrap, topic, 2)
    acked = ck.produce(broker.bootstrap, topic, outgoing(40, 2), **{"compression.type": "gzip"})
    got = asyncio.run(read_all(broker.bootstrap, topic, 2, 40))
    assert_partition_order(got)
    assert by_position(got) == by_position(acked)


def test_offset_lookups_and_seek(broker: BrokerProcess) -> None:
    topic = topic_name("aio-offsets")
    sent = outgoing(40, 2, null_key_and_value=False)

    async def scenario() -> None:
        await create(broker.bootstrap, topic, 2)
        acked = by_position(await produce(broker.bootstrap, topic, sent, compression_type="snappy"))
        consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None)
        await consumer.start()
        try:
            tp0, tp1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
            assert await consumer.beginning_offsets([tp0, tp1]) == {tp0: 0, tp1: 0}
            assert await consumer.end_offsets([tp0, tp1]) == {tp0: 20, tp1: 20}
            # Record i: partition i % 2, offset i // 2, timestamp BASE + i * 1000 + i % 3.
            found = await consumer.offsets_for_times(
                {tp0: BASE_TIMESTAMP + 12 * 1000 + 1, tp1: BASE_TIMESTAMP + 10**9}
            )
            assert found[tp0] is not None
            assert (found[tp0].offset, found[tp0].timestamp) == (7, BASE_TIMESTAMP + 14 * 1000 + 2)
            assert found[tp1] is None

            consumer.assign([tp1])
            consumer.seek(tp1, 11)
            expected = [r for r in acked if r.partition == 1 and r.offset >= 11]
            assert await read(consumer, 9) == expected
            assert await consumer.position(tp1) == 20
        finally:
            await consumer.stop()

    asyncio.run(scenario())


def test_admin_topics_partitions_configs_records_cluster(broker: BrokerProcess) -> None:
    topic = topic_name("aio-admin")

    async def scenario() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
        await admin.start()
        try:
            await admin.create_topics(
                [NewTopic(topic, 2, 1, topic_configs={"retention.ms": "90000"})]
            )
            assert topic in await admin.list_topics()
            again = await admin.create_topics([NewTopic(topic, 2, 1)])
            assert again.topic_errors[0][1] == TopicAlreadyExistsError.errno
            await admin.create_partitions({topic: NewPartitions(total_count=3)})
            (described,) = await admin.describe_topics([topic])
            assert sorted(p["partition"] for p in described["partitions"]) == [0, 1, 2]
            resource = ConfigResource(ConfigResourceType.TOPIC, topic)
            (described,) = await admin.describe_configs([resource])
            entries = {e[0]: (e[1], e[3]) for e in described.resources[0][4]}
            assert entries["retention.ms"] == ("90000", 1)  # DYNAMIC_TOPIC_CONFIG
            assert entries["cleanup.policy"] == ("delete", 5)  # DEFAULT_CONFIG
            changed = ConfigResource(ConfigResourceType.TOPIC, topic, {"retention.ms": "5555"})
            (altered,) = await admin.alter_configs([changed])
            assert [r[0] for r in altered.resources] == [0]
            (described,) = await admin.describe_configs([resource])
            entries = {e[0]: (e[1], e[3]) for e in described.resources[0][4]}
            assert entries["retention.ms"] == ("5555", 1)

            await produce(broker.bootstrap, topic, outgoing(9, 3, null_key_and_value=False))
            deleted = await admin.delete_records({TopicPartition(topic, 2): RecordsToDelete(2)})
            assert deleted == {TopicPartition(topic, 2): 2}

            cluster = await admin.describe_cluster()
            host, port = broker.bootstrap.rsplit(":", 1)
            assert cluster["controller_id"] == 1
            assert cluster["brokers"] == [
                {"node_id": 1, "host": host, "port": int(port), "rack": None}
            ]

            await admin.delete_topics([topic])
            assert topic not in await admin.list_topics()
        finally:
            await admin.close()

    asyncio.run(scenario())
