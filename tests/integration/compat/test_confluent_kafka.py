"""confluent-kafka (librdkafka) against a real broker: admin, produce, assign()-consume.

Every test reads back exactly what the producer's delivery reports acknowledged: the same
partition, offset, key, value, headers and timestamp, in offset order per partition.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    TIMESTAMP_LOG_APPEND_TIME,
    KafkaError,
    KafkaException,
    TopicCollection,
    TopicPartition,
)
from confluent_kafka.admin import (
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewPartitions,
    OffsetSpec,
    ResourceType,
)

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
    stored_batches,
    topic_name,
    wait_for,
)
from tests.support.broker import BrokerProcess

PRODUCER_MODES: dict[str, dict[str, Any]] = {
    "idempotent": {"enable.idempotence": True, "acks": "all"},
    "acks1": {"enable.idempotence": False, "acks": 1},
    "acks0": {"enable.idempotence": False, "acks": 0},
}


@pytest.mark.parametrize("mode", PRODUCER_MODES)
@pytest.mark.parametrize("codec", CODECS)
def test_round_trip_is_exact(broker: BrokerProcess, codec: str, mode: str) -> None:
    topic = topic_name(f"ck-{codec}-{mode}")
    ck.create_topic(broker.bootstrap, topic, partitions=3)
    sent = outgoing(90, 3, tag=codec)

    acked = ck.produce(
        broker.bootstrap, topic, sent, **PRODUCER_MODES[mode], **{"compression.type": codec}
    )
    if mode == "acks0":
        # No offsets are reported for acks=0: they follow send order per partition.
        assert {rec.offset for rec in acked} == {None}
        counters = {p: 0 for p in range(3)}
        expected = []
        for record in sent:
            expected.append(placed(record, counters[record.partition]))
            counters[record.partition] += 1
        acked = expected
    assert_offsets_follow_send_order(acked, sent)

    read = ck.read_all(broker.bootstrap, topic, 3)
    assert_partition_order(read)
    assert by_position(read) == by_position(acked)
    if codec != "lz4":  # see test_lz4_batches_are_sent_compressed
        assert_stored_with(broker.bootstrap, topic, 3, codec)
    if mode == "idempotent":
        assert_idempotent_batches(broker.bootstrap, topic, 3)


def test_lz4_batches_are_sent_compressed(broker: BrokerProcess) -> None:
    """librdkafka enables LZ4 only when ApiVersions lists FindCoordinator (key 10) v0, its
    marker of a broker >= 0.8.2 (rdkafka_feature.c); otherwise it silently sends lz4
    batches uncompressed."""
    topic = topic_name("ck-lz4")
    ck.create_topic(broker.bootstrap, topic)
    ck.produce(broker.bootstrap, topic, outgoing(20, 1), **{"compression.type": "lz4"})
    assert_stored_with(broker.bootstrap, topic, 1, "lz4")


def test_partitioner_places_keys_and_reports_them(broker: BrokerProcess) -> None:
    """Without an explicit partition, the delivery report's partition is where it went."""
    topic = topic_name("ck-keyed")
    ck.create_topic(broker.bootstrap, topic, partitions=4)
    producer = ck.Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5})
    acked: list[Rec] = []

    def report(err: Any, msg: Any) -> None:
        assert err is None, err
        acked.append(
            Rec(msg.partition(), msg.offset(), msg.key(), msg.value(), (), msg.timestamp()[1])
        )

    for i in range(40):
        producer.produce(topic, key=b"user-%d" % (i % 8), value=b"%d" % i, on_delivery=report)
    assert producer.flush(ck.TIMEOUT) == 0

    partitions_of_key: dict[bytes | None, set[int]] = {}
    for rec in acked:
        partitions_of_key.setdefault(rec.key, set()).add(rec.partition)
    assert all(len(found) == 1 for found in partitions_of_key.values())
    assert len({rec.partition for rec in acked}) > 1
    # Timestamps the producer chose (CreateTime, now) come back unchanged too.
    assert by_position(ck.read_all(broker.bootstrap, topic, 4)) == by_position(acked)


def test_admin_create_describe_delete_topics(broker: BrokerProcess) -> None:
    topic = topic_name("ck-admin")
    admin = ck.admin(broker.bootstrap)
    ck.create_topic(broker.bootstrap, topic, partitions=5, config={"retention.ms": "3600000"})

    described = admin.describe_topics(TopicCollection([topic]))[topic].result(timeout=10)
    assert described.name == topic
    assert [p.id for p in described.partitions] == [0, 1, 2, 3, 4]
    assert all(
        p.leader is not None and p.leader.id == p.replicas[0].id for p in described.partitions
    )
    listed = admin.list_topics(topic, timeout=10).topics[topic]
    assert listed.error is None
    assert sorted(listed.partitions) == [0, 1, 2, 3, 4]

    with pytest.raises(KafkaException) as exists:
        admin.create_topics([ck.NewTopic(topic, 1, 1)])[topic].result(timeout=10)
    assert exists.value.args[0].name() == "TOPIC_ALREADY_EXISTS"

    admin.delete_topics([topic], operation_timeout=10)[topic].result(timeout=10)
    wait_for(lambda: topic not in admin.list_topics(timeout=10).topics, 10, "topic deleted")
    with pytest.raises(KafkaException) as gone:
        admin.delete_topics([topic])[topic].result(timeout=10)
    assert gone.value.args[0].name() == "UNKNOWN_TOPIC_OR_PART"


def test_create_partitions_then_produce_to_new_ones(broker: BrokerProcess) -> None:
    topic = topic_name("ck-grow")
    admin = ck.admin(broker.bootstrap)
    ck.create_topic(broker.bootstrap, topic, partitions=1)
    admin.create_partitions([NewPartitions(topic, 3)])[topic].result(timeout=10)
    wait_for(
        lambda: len(admin.list_topics(topic, timeout=10).topics[topic].partitions) == 3,
        10,
        "three partitions in metadata",
    )
    sent = outgoing(30, 3)
    acked = ck.produce(broker.bootstrap, topic, sent, acks="all")
    assert {rec.partition for rec in acked} == {0, 1, 2}
    assert by_position(ck.read_all(broker.bootstrap, topic, 3)) == by_position(acked)

    with pytest.raises(KafkaException) as shrink:
        admin.create_partitions([NewPartitions(topic, 2)])[topic].result(timeout=10)
    assert shrink.value.args[0].name() == "INVALID_PARTITIONS"


def _topic_configs(admin: Any, topic: str) -> dict[str, ConfigEntry]:
    resource = ConfigResource(ResourceType.TOPIC, topic)
    result: dict[str, ConfigEntry] = admin.describe_configs([resource])[resource].result(10)
    return result


def test_describe_and_incremental_alter_configs(broker: BrokerProcess) -> None:
    topic = topic_name("ck-configs")
    admin = ck.admin(broker.bootstrap)
    ck.create_topic(broker.bootstrap, topic, config={"cleanup.policy": "compact"})

    configs = _topic_configs(admin, topic)
    assert configs["cleanup.policy"].value == "compact"
    assert configs["cleanup.policy"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert configs["retention.ms"].value == "604800000"
    assert configs["retention.ms"].source == ConfigSource.DEFAULT_CONFIG.value
    assert configs["max.message.bytes"].value == "1048588"

    change = ConfigResource(
        ResourceType.TOPIC,
        topic,
        incremental_configs=[
            ConfigEntry("retention.ms", "60000", incremental_operation=AlterConfigOpType.SET),
            ConfigEntry("cleanup.policy", None, incremental_operation=AlterConfigOpType.DELETE),
        ],
    )
    admin.incremental_alter_configs([change])[change].result(timeout=10)
    configs = _topic_configs(admin, topic)
    assert configs["retention.ms"].value == "60000"
    assert configs["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert configs["cleanup.policy"].value == "delete"
    assert configs["cleanup.policy"].source == ConfigSource.DEFAULT_CONFIG.value

    bad = ConfigResource(
        ResourceType.TOPIC,
        topic,
        incremental_configs=[
            ConfigEntry("retention.ms", "soon", incremental_operation=AlterConfigOpType.SET)
        ],
    )
    with pytest.raises(KafkaException) as invalid:
        admin.incremental_alter_configs([bad])[bad].result(timeout=10)
    assert invalid.value.args[0].name() == "INVALID_CONFIG"
    assert _topic_configs(admin, topic)["retention.ms"].value == "60000"

    node = ConfigResource(ResourceType.BROKER, "1")
    broker_configs = admin.describe_configs([node])[node].result(timeout=10)
    assert broker_configs["num.partitions"].value == "1"


def test_watermarks_offsets_for_times_and_seek(broker: BrokerProcess) -> None:
    topic = topic_name("ck-offsets")
    ck.create_topic(broker.bootstrap, topic, partitions=2)
    sent = outgoing(40, 2)  # timestamps BASE + i * 1000 (+ i % 3)
    acked = by_position(
        ck.produce(broker.bootstrap, topic, sent, **{"compression.type": "lz4", "acks": "all"})
    )
    client = ck.consumer(broker.bootstrap)
    try:
        assert client.get_watermark_offsets(TopicPartition(topic, 0), timeout=10) == (0, 20)
        assert client.get_watermark_offsets(TopicPartition(topic, 1), timeout=10) == (0, 20)

        # Record i is in partition i % 2 at offset i // 2 with timestamp BASE + i * 1000 + i % 3.
        # (One partition per request: a partition named twice is an INVALID_REQUEST.)
        def offset_for_time(partition: int, timestamp: int) -> int:
            query = TopicPartition(topic, partition, timestamp)
            (found,) = client.offsets_for_times([query], timeout=10)
            assert found.error is None, found.error
            return int(found.offset)

        assert offset_for_time(0, BASE_TIMESTAMP + 10 * 1000) == 5  # record 10 (ts +1)
        assert offset_for_time(0, BASE_TIMESTAMP + 10 * 1000 + 1) == 5  # exactly record 10
        assert offset_for_time(0, BASE_TIMESTAMP + 10 * 1000 + 2) == 6  # record 12
        assert offset_for_time(1, BASE_TIMESTAMP + 10 * 1000 + 500) == 5  # record 11
        assert offset_for_time(0, 0) == 0
        assert offset_for_time(1, BASE_TIMESTAMP + 10**9) == -1  # after everything
        assert offset_for_time(1, -1) == 20  # LATEST
        assert offset_for_time(1, -2) == 0  # EARLIEST

        # assign() at an offset in the middle of a compressed batch starts exactly there.
        client.assign([TopicPartition(topic, 0, 7)])
        read = ck.poll_until(client, {0: 20})
        assert read == [rec for rec in acked if rec.partition == 0 and rec.offset >= 7]

        client.seek(TopicPartition(topic, 0, 3))
        again = ck.poll_until(client, {0: 20})
        assert again == [rec for rec in acked if rec.partition == 0 and rec.offset >= 3]

        client.assign([TopicPartition(topic, 1, OFFSET_BEGINNING)])
        assert ck.poll_until(client, {1: 20}) == [rec for rec in acked if rec.partition == 1]
    finally:
        client.close()


def test_auto_offset_reset_earliest_latest_and_error(broker: BrokerProcess) -> None:
    """An out-of-range position makes Fetch answer OFFSET_OUT_OF_RANGE, and librdkafka
    resets by ``auto.offset.reset``. (Assigning OFFSET_STORED would need a committed
    offset, which needs the group APIs.)"""
    topic = topic_name("ck-reset")
    ck.create_topic(broker.bootstrap, topic)
    first = ck.produce(broker.bootstrap, topic, outgoing(10, 1, tag="old"))

    earliest = ck.consumer(broker.bootstrap, **{"auto.offset.reset": "earliest"})
    latest = ck.consumer(
        broker.bootstrap, **{"auto.offset.reset": "latest", "enable.partition.eof": True}
    )
    strict = ck.consumer(broker.bootstrap, **{"auto.offset.reset": "error"})
    try:
        earliest.assign([TopicPartition(topic, 0, 1000)])
        assert ck.poll_until(earliest, {0: 10}) == first

        latest.assign([TopicPartition(topic, 0, 1000)])
        assert wait_for(lambda: _end_reached(latest), 10, "partition EOF") == 10
        more = ck.produce(broker.bootstrap, topic, outgoing(5, 1, tag="new"))
        assert [rec.offset for rec in more] == [10, 11, 12, 13, 14]
        assert ck.poll_until(latest, {0: 15}) == more

        latest.assign([TopicPartition(topic, 0, OFFSET_END)])
        assert wait_for(lambda: _end_reached(latest), 10, "partition EOF") == 15

        strict.assign([TopicPartition(topic, 0, 1000)])
        error = wait_for(lambda: _error(strict), 10, "an offset reset error")
        assert error.code() == KafkaError._AUTO_OFFSET_RESET, error
    finally:
        for client in (earliest, latest, strict):
            client.close()


def _end_reached(client: Any) -> int | None:
    """The offset of a partition-EOF event (the position a reset or seek led to)."""
    message = client.poll(0.1)
    if message is None:
        return None
    assert message.error() is not None, f"unexpected record at {message.offset()}"
    assert message.error().code() == KafkaError._PARTITION_EOF, message.error()
    return int(message.offset())


def _error(client: Any) -> Any:
    message = client.poll(0.1)
    if message is None:
        return None
    assert message.error() is not None, "no record was expected"
    return message.error()


@pytest.mark.parametrize("isolation", ["read_committed", "read_uncommitted"])
def test_isolation_levels_read_everything_without_transactions(
    broker: BrokerProcess, isolation: str
) -> None:
    topic = topic_name(f"ck-{isolation}")
    ck.create_topic(broker.bootstrap, topic, partitions=2)
    acked = ck.produce(broker.bootstrap, topic, outgoing(30, 2), **{"enable.idempotence": True})
    read = ck.read_all(broker.bootstrap, topic, 2, **{"isolation.level": isolation})
    assert by_position(read) == by_position(acked)


def test_consumer_waits_for_records_produced_later(broker: BrokerProcess) -> None:
    """A consumer at the end long-polls and receives records as they are produced."""
    topic = topic_name("ck-tail")
    ck.create_topic(broker.bootstrap, topic)
    client = ck.consumer(broker.bootstrap, **{"fetch.wait.max.ms": 500})
    try:
        client.assign([TopicPartition(topic, 0, 0)])
        assert client.poll(0.5) is None
        acked: list[Rec] = []
        for round_ in range(3):
            batch = ck.produce(broker.bootstrap, topic, outgoing(4, 1, tag=f"r{round_}"))
            acked += batch
            assert ck.poll_until(client, {0: len(acked)})[-len(batch) :] == batch
    finally:
        client.close()


def test_idempotent_producer_orders_many_in_flight_batches(broker: BrokerProcess) -> None:
    """Many small batches in flight per partition keep their order (sequence checks pass)."""
    topic = topic_name("ck-inflight")
    ck.create_topic(broker.bootstrap, topic, partitions=2)
    sent = outgoing(600, 2)
    acked = ck.produce(
        broker.bootstrap,
        topic,
        sent,
        **{
            "enable.idempotence": True,
            "linger.ms": 0,
            "batch.num.messages": 3,
            "max.in.flight.requests.per.connection": 5,
            "compression.type": "zstd",
        },
    )
    assert_offsets_follow_send_order(acked, sent)
    read = ck.read_all(broker.bootstrap, topic, 2)
    assert_partition_order(read)
    assert by_position(read) == by_position(acked)


def test_fetch_limits_smaller_than_a_batch_still_progress(broker: BrokerProcess) -> None:
    """KIP-74: the first batch is returned whole even when larger than the fetch limits."""
    topic = topic_name("ck-small-fetch")
    ck.create_topic(broker.bootstrap, topic)
    acked = ck.produce(
        broker.bootstrap,
        topic,
        outgoing(200, 1),
        **{"compression.type": "gzip", "linger.ms": 50, "batch.num.messages": 40},
    )
    batches = stored_batches(broker.bootstrap, topic, 0)
    # Several batches, most larger than max.partition.fetch.bytes below.
    assert len(batches) >= 5
    assert sum(batch.size > 100 for batch in batches) >= 3
    limits = {"fetch.max.bytes": 1000, "message.max.bytes": 1000, "max.partition.fetch.bytes": 100}
    assert ck.read_all(broker.bootstrap, topic, 1, **limits) == acked


def test_many_small_segments_read_back_exactly(broker: BrokerProcess) -> None:
    topic = topic_name("ck-segments")
    ck.create_topic(broker.bootstrap, topic, config={"segment.bytes": "2048"})
    acked = ck.produce(broker.bootstrap, topic, outgoing(300, 1), **{"batch.num.messages": 5})
    assert len(list(broker.partition_dir(topic, 0).glob("*.log"))) > 10
    assert ck.read_all(broker.bootstrap, topic, 1) == acked


def test_message_size_limits_are_enforced(broker: BrokerProcess) -> None:
    topic = topic_name("ck-too-large")
    ck.create_topic(broker.bootstrap, topic, config={"max.message.bytes": "1000"})
    producer = ck.Producer({"bootstrap.servers": broker.bootstrap, "message.max.bytes": 4 << 20})
    reports: list[tuple[str | None, bytes]] = []

    def report(err: Any, msg: Any) -> None:
        reports.append((None if err is None else err.name(), msg.value()[:1]))

    producer.produce(topic, value=b"a" * 2000, on_delivery=report)
    producer.flush(ck.TIMEOUT)
    producer.produce(topic, value=b"b" * 200, on_delivery=report)
    producer.flush(ck.TIMEOUT)
    assert reports == [("MSG_SIZE_TOO_LARGE", b"a"), (None, b"b")]
    (rec,) = ck.read_all(broker.bootstrap, topic, 1)
    assert (rec.offset, rec.value) == (0, b"b" * 200)


def test_broker_default_message_size_limit(broker: BrokerProcess) -> None:
    topic = topic_name("ck-default-limit")
    ck.create_topic(broker.bootstrap, topic)
    producer = ck.Producer({"bootstrap.servers": broker.bootstrap, "message.max.bytes": 4 << 20})
    errors: list[str | None] = []
    producer.produce(
        topic,
        value=bytes(range(256)) * 8192,  # 2 MiB, over the 1048588-byte default
        on_delivery=lambda err, msg: errors.append(None if err is None else err.name()),
    )
    producer.flush(ck.TIMEOUT)
    assert errors == ["MSG_SIZE_TOO_LARGE"]
    assert ck.consumer(broker.bootstrap).get_watermark_offsets(
        TopicPartition(topic, 0), timeout=10
    ) == (0, 0)


def test_log_append_time_topic(broker: BrokerProcess) -> None:
    """With LogAppendTime the broker's time replaces the producer's, in the produce
    response (delivery report) and in what consumers read."""
    topic = topic_name("ck-append-time")
    ck.create_topic(broker.bootstrap, topic, config={"message.timestamp.type": "LogAppendTime"})
    producer = ck.Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5})
    acked: list[Rec] = []

    def report(err: Any, msg: Any) -> None:
        assert err is None, err
        kind, timestamp = msg.timestamp()
        assert kind == TIMESTAMP_LOG_APPEND_TIME
        acked.append(Rec(0, msg.offset(), msg.key(), msg.value(), (), timestamp))

    before = int(time.time() * 1000)
    for i in range(10):
        producer.produce(
            topic, key=b"%d" % i, value=b"v", timestamp=BASE_TIMESTAMP, on_delivery=report
        )
    assert producer.flush(ck.TIMEOUT) == 0
    after = int(time.time() * 1000)
    assert all(before <= rec.timestamp <= after for rec in acked), acked

    client = ck.consumer(broker.bootstrap)
    try:
        client.assign([TopicPartition(topic, 0, 0)])
        read = ck.poll_until(client, {0: 10}, timestamp_type=TIMESTAMP_LOG_APPEND_TIME)
    finally:
        client.close()
    assert read == acked


def test_delete_records_moves_the_log_start(broker: BrokerProcess) -> None:
    topic = topic_name("ck-delete-records")
    ck.create_topic(broker.bootstrap, topic)
    acked = ck.produce(broker.bootstrap, topic, outgoing(50, 1))
    admin = ck.admin(broker.bootstrap)
    (future,) = admin.delete_records([TopicPartition(topic, 0, 20)]).values()
    assert future.result(timeout=10).low_watermark == 20

    client = ck.consumer(broker.bootstrap, **{"auto.offset.reset": "earliest"})
    try:
        assert client.get_watermark_offsets(TopicPartition(topic, 0), timeout=10) == (20, 50)
        client.assign([TopicPartition(topic, 0, 5)])  # below the log start: reset
        assert ck.poll_until(client, {0: 50}) == acked[20:]
    finally:
        client.close()


def test_admin_list_offsets_and_describe_cluster(broker: BrokerProcess) -> None:
    topic = topic_name("ck-list-offsets")
    ck.create_topic(broker.bootstrap, topic)
    ck.produce(broker.bootstrap, topic, outgoing(10, 1))  # record i: ts BASE + i * 1000 + i % 3
    admin = ck.admin(broker.bootstrap)
    tp = TopicPartition(topic, 0)

    def offset_of(spec: OffsetSpec) -> tuple[int, int]:
        (future,) = admin.list_offsets({tp: spec}).values()
        found = future.result(timeout=10)
        return int(found.offset), int(found.timestamp)

    assert offset_of(OffsetSpec.earliest()) == (0, -1)
    assert offset_of(OffsetSpec.latest()) == (10, -1)
    assert offset_of(OffsetSpec.max_timestamp()) == (9, BASE_TIMESTAMP + 9000)
    assert offset_of(OffsetSpec.for_timestamp(BASE_TIMESTAMP + 4500)) == (5, BASE_TIMESTAMP + 5002)

    cluster = admin.describe_cluster().result(timeout=10)
    assert cluster.controller.id == 1
    assert [(node.id, f"{node.host}:{node.port}") for node in cluster.nodes] == [
        (1, broker.bootstrap)
    ]


def test_empty_topic_offsets(broker: BrokerProcess) -> None:
    topic = topic_name("ck-empty")
    ck.create_topic(broker.bootstrap, topic)
    client = ck.consumer(broker.bootstrap)
    try:
        assert client.get_watermark_offsets(TopicPartition(topic, 0), timeout=10) == (0, 0)
        (found,) = client.offsets_for_times([TopicPartition(topic, 0, BASE_TIMESTAMP)], 10)
        assert (found.offset, found.error) == (-1, None)
    finally:
        client.close()


@pytest.mark.parametrize("how", ["restart", "kill"])
def test_idempotent_producer_across_broker_restart(
    broker_factory: Callable[..., BrokerProcess], how: str
) -> None:
    """The broker goes away while batches are in flight; librdkafka retries them, and the
    producer state the broker rebuilds from its log keeps them exactly once, in order."""
    own = broker_factory()
    topic = topic_name(f"ck-{how}")
    ck.create_topic(own.bootstrap, topic, partitions=2)
    sent = outgoing(1200, 2)
    first, second = sent[:600], sent[600:]
    settings = {
        "enable.idempotence": True,
        "linger.ms": 2,
        "batch.num.messages": 10,
        "message.timeout.ms": 30000,
        "compression.type": "snappy",
        "reconnect.backoff.ms": 20,
        "reconnect.backoff.max.ms": 200,
        "retry.backoff.ms": 20,
    }
    producer = ck.Producer({"bootstrap.servers": own.bootstrap, **settings})
    acked: list[Rec] = []
    errors: list[str] = []

    def send(records: list[Outgoing]) -> None:
        for record in records:
            producer.produce(
                topic,
                key=record.key,
                value=record.value,
                partition=record.partition,
                headers=list(record.headers) or None,
                timestamp=record.timestamp,
                on_delivery=lambda err, msg, record=record: (
                    errors.append(str(err)) if err else acked.append(placed(record, msg.offset()))
                ),
            )
        producer.poll(0)

    send(first)
    if how == "kill":
        own.kill()
        own.start()
    else:
        assert own.restart() is own
    send(second)
    assert producer.flush(40) == 0
    assert not errors, errors[:3]
    assert_offsets_follow_send_order(acked, sent)
    read = ck.read_all(own.bootstrap, topic, 2)
    assert_partition_order(read)
    assert by_position(read) == by_position(acked)


def test_timestamp_bounds(broker: BrokerProcess) -> None:
    """message.timestamp.after.max.ms (1 hour) rejects a batch from the future; any past
    timestamp is accepted (before.max.ms is unbounded by default)."""
    topic = topic_name("ck-timestamps")
    ck.create_topic(broker.bootstrap, topic)
    producer = ck.Producer({"bootstrap.servers": broker.bootstrap})
    results: list[tuple[str | None, int | None]] = []

    def send(timestamp: int) -> None:
        producer.produce(
            topic,
            value=b"%d" % timestamp,
            timestamp=timestamp,
            on_delivery=lambda err, msg: results.append(
                (None if err is None else err.name(), msg.offset())
            ),
        )
        assert producer.flush(ck.TIMEOUT) == 0  # one batch each

    now = int(time.time() * 1000)
    send(1)
    send(now + 2 * 3600 * 1000)
    send(now + 60 * 1000)
    assert results == [(None, 0), ("INVALID_TIMESTAMP", None), (None, 1)]
    read = ck.read_all(broker.bootstrap, topic, 1)
    assert [(rec.offset, rec.timestamp) for rec in read] == [(0, 1), (1, now + 60 * 1000)]


def test_assign_does_not_create_topics_but_producing_does(broker: BrokerProcess) -> None:
    """librdkafka consumers send Metadata with allow_auto_topic_creation=false; producers
    with true (auto.create.topics.enable is on by default)."""
    missing, produced = topic_name("ck-missing"), topic_name("ck-auto")
    client = ck.consumer(broker.bootstrap)
    try:
        client.assign([TopicPartition(missing, 0, 0)])
        for _ in range(5):
            message = client.poll(0.1)
            assert message is None or message.error() is not None
    finally:
        client.close()
    admin = ck.admin(broker.bootstrap)
    assert missing not in admin.list_topics(timeout=10).topics

    acked = ck.produce(broker.bootstrap, produced, outgoing(5, 1))
    assert [rec.offset for rec in acked] == [0, 1, 2, 3, 4]
    assert missing not in admin.list_topics(timeout=10).topics
    assert ck.read_all(broker.bootstrap, produced, 1) == acked


def test_one_producer_many_topics(broker: BrokerProcess) -> None:
    """Produce requests that carry several topics and partitions at once."""
    topics = [topic_name(f"ck-multi{i}") for i in range(3)]
    for topic in topics:
        ck.create_topic(broker.bootstrap, topic, partitions=2)
    sent = outgoing(60, 2)
    producer = ck.Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 20})
    acked: dict[str, list[Rec]] = {topic: [] for topic in topics}
    for i, record in enumerate(sent):
        topic = topics[i % 3]
        producer.produce(
            topic,
            key=record.key,
            value=record.value,
            partition=record.partition,
            headers=list(record.headers) or None,
            timestamp=record.timestamp,
            on_delivery=lambda err, msg, topic=topic, record=record: acked[topic].append(
                placed(record, msg.offset())
            ),
        )
    assert producer.flush(ck.TIMEOUT) == 0
    for i, topic in enumerate(topics):
        assert_offsets_follow_send_order(acked[topic], sent[i::3])
        assert by_position(ck.read_all(broker.bootstrap, topic, 2)) == by_position(acked[topic])
