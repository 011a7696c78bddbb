"""Transactions with confluent-kafka (librdkafka): what a read_committed consumer sees."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from tests.integration.transactions.txn import read_values, transactional_producer
from tests.support.broker import BrokerProcess
from tests.support.clients import create_topic


def _produce(producer: Producer, topic: str, prefix: str, count: int, partitions: int) -> None:
    for i in range(count):
        producer.produce(
            topic, key=b"%d" % i, value=b"%s-%d" % (prefix.encode(), i), partition=i % partitions
        )
    producer.flush(30)


def test_read_committed_sees_only_committed_transactions(broker: BrokerProcess) -> None:
    create_topic(broker.bootstrap, "cac", partitions=3)
    producer = transactional_producer(broker.bootstrap)
    for prefix, commit in (("first", True), ("aborted", False), ("second", True)):
        producer.begin_transaction()
        _produce(producer, "cac", prefix, 30, 3)
        if commit:
            producer.commit_transaction(30)
        else:
            producer.abort_transaction(30)

    committed = read_values(broker.bootstrap, "cac", 3, "read_committed")
    everything = read_values(broker.bootstrap, "cac", 3, "read_uncommitted")
    expected = {b"%s-%d" % (p, i) for p in (b"first", b"second") for i in range(30)}
    assert sorted(committed) == sorted(expected)
    assert len(everything) == 90  # control records never surface as data
    assert set(everything) == expected | {b"aborted-%d" % i for i in range(30)}


def test_open_transaction_holds_read_committed_back(broker: BrokerProcess) -> None:
    """A read_committed consumer stops at the first open transaction (the last stable
    offset) and goes on once it commits; read_uncommitted reads straight through."""
    create_topic(broker.bootstrap, "open", partitions=1)
    producer = transactional_producer(broker.bootstrap)
    producer.begin_transaction()
    _produce(producer, "open", "pending", 5, 1)
    plain = Producer({"bootstrap.servers": broker.bootstrap})
    plain.produce("open", value=b"plain")
    plain.flush(10)

    assert read_values(broker.bootstrap, "open", 1, "read_committed") == []
    assert len(read_values(broker.bootstrap, "open", 1, "read_uncommitted")) == 6
    consumer = Consumer(
        {
            "bootstrap.servers": broker.bootstrap,
            "group.id": "lso",
            "isolation.level": "read_committed",
        }
    )
    try:
        _low, high = consumer.get_watermark_offsets(TopicPartition("open", 0), timeout=10)
        assert high == 0, "read_committed end offset is the last stable offset"
    finally:
        consumer.close()

    producer.commit_transaction(30)
    values = read_values(broker.bootstrap, "open", 1, "read_committed")
    assert values == [b"pending-%d" % i for i in range(5)] + [b"plain"]


def test_second_producer_with_same_id_fences_the_first(broker: BrokerProcess) -> None:
    create_topic(broker.bootstrap, "fenced", partitions=2)
    zombie = transactional_producer(broker.bootstrap, "shared-id")
    zombie.begin_transaction()
    _produce(zombie, "fenced", "zombie", 10, 2)

    successor = transactional_producer(broker.bootstrap, "shared-id")
    successor.begin_transaction()
    _produce(successor, "fenced", "successor", 10, 2)
    successor.commit_transaction(30)

    with pytest.raises(KafkaException) as raised:
        zombie.produce("fenced", value=b"late")
        zombie.flush(10)
        zombie.commit_transaction(10)
    error = raised.value.args[0]
    assert error.fatal() or error.code() in (KafkaError._FENCED, KafkaError.PRODUCER_FENCED), error

    committed = read_values(broker.bootstrap, "fenced", 2, "read_committed")
    assert sorted(committed) == sorted(b"successor-%d" % i for i in range(10))


ABANDON = textwrap.dedent(
    """
    import os, sys
    from confluent_kafka import Producer
    bootstrap, topic = sys.argv[1], sys.argv[2]
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": "abandoned",
                  "transaction.timeout.ms": 3000})
    p.init_transactions(30)
    p.begin_transaction()
    for i in range(10):
        p.produce(topic, value=b"abandoned-%d" % i)
    p.flush(30)
    print("written", flush=True)
    sys.stdin.readline()
    """
)


def test_abandoned_transaction_is_aborted_after_its_timeout(broker: BrokerProcess) -> None:
    create_topic(broker.bootstrap, "abandoned", partitions=1)
    with subprocess.Popen(
        [sys.executable, "-c", ABANDON, broker.bootstrap, "abandoned"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as child:
        try:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "written"
        finally:
            child.kill()  # the producer dies with its transaction open
            child.wait()
    started = time.monotonic()

    later = transactional_producer(broker.bootstrap)
    later.begin_transaction()
    _produce(later, "abandoned", "later", 5, 1)
    later.commit_transaction(30)

    deadline = time.monotonic() + 30
    values: list[bytes] = []
    while time.monotonic() < deadline:
        values = read_values(broker.bootstrap, "abandoned", 1, "read_committed", settle=1.0)
        if values:
            break
    assert values == [b"later-%d" % i for i in range(5)]
    assert time.monotonic() - started < 20
    everything = read_values(broker.bootstrap, "abandoned", 1, "read_uncommitted")
    assert len(everything) == 15


def test_consume_transform_produce_commits_offsets_with_the_output(broker: BrokerProcess) -> None:
    """send_offsets_to_transaction: offsets become visible with the output records, an
    aborted round leaves both the output and the group's offsets as they were."""
    create_topic(broker.bootstrap, "ctp-in", partitions=2)
    create_topic(broker.bootstrap, "ctp-out", partitions=2)
    source = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5})
    for i in range(400):
        source.produce("ctp-in", value=b"%d" % i, partition=i % 2)
    source.flush(30)

    consumer = Consumer(
        {
            "bootstrap.servers": broker.bootstrap,
            "group.id": "copier",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
        }
    )
    producer = transactional_producer(broker.bootstrap)
    consumer.subscribe(["ctp-in"])
    copied = 0
    rounds = 0
    try:
        deadline = time.monotonic() + 60
        while copied < 400 and time.monotonic() < deadline:
            messages = [m for m in consumer.consume(50, timeout=1.0) if not m.error()]
            if not messages:
                continue
            rounds += 1
            producer.begin_transaction()
            for message in messages:
                producer.produce(
                    "ctp-out", value=b"out-" + message.value(), partition=message.partition()
                )
            producer.send_offsets_to_transaction(
                consumer.position(consumer.assignment()), consumer.consumer_group_metadata(), 30
            )
            if rounds == 2:
                # Abort one round: its output vanishes and the group rewinds to the
                # offsets committed before it.
                producer.abort_transaction(30)
                committed = consumer.committed(consumer.assignment(), timeout=10)
                for tp in committed:
                    consumer.seek(
                        TopicPartition(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else 0)
                    )
                continue
            producer.commit_transaction(30)
            copied += len(messages)
        assert copied == 400
        final = consumer.committed([TopicPartition("ctp-in", p) for p in range(2)], timeout=10)
        assert sorted(tp.offset for tp in final) == [200, 200]
    finally:
        consumer.close()

    output = read_values(broker.bootstrap, "ctp-out", 2, "read_committed")
    assert sorted(output) == sorted(b"out-%d" % i for i in range(400))


def test_read_committed_fetch_is_answered_when_the_transaction_commits(
    broker: BrokerProcess,
) -> None:
    """A read_committed fetch parked for up to 10 s is answered once the commit marker
    moves the last stable offset, not at the end of its wait."""
    create_topic(broker.bootstrap, "wake", partitions=1)
    consumer = Consumer(
        {
            "bootstrap.servers": broker.bootstrap,
            "group.id": "wake",
            "isolation.level": "read_committed",
            "fetch.wait.max.ms": 10000,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        consumer.assign([TopicPartition("wake", 0, 0)])
        assert consumer.poll(2.0) is None  # the fetch is now parked
        producer = transactional_producer(broker.bootstrap)
        producer.begin_transaction()
        _produce(producer, "wake", "inside", 3, 1)
        time.sleep(1.0)  # the records are in the log, above the last stable offset
        producer.commit_transaction(30)
        committed_at = time.monotonic()
        message = consumer.poll(15.0)
        assert message is not None and message.error() is None
        assert message.value() == b"inside-0"
        assert time.monotonic() - committed_at < 5.0, "answered at the end of the wait"
    finally:
        consumer.close()
