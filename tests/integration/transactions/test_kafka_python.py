"""kafka-python's transactional producer against the broker."""

from __future__ import annotations

import time

from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient
from kafka.structs import OffsetAndMetadata, TopicPartition

from tests.integration.transactions.txn import read_values, transactional_producer
from tests.support.broker import BrokerProcess
from tests.support.clients import create_topic


def test_kafka_python_commit_and_abort(broker: BrokerProcess) -> None:
    create_topic(broker.bootstrap, "kp-txn", partitions=2)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, transactional_id="kafka-python")
    try:
        producer.init_transactions()
        for prefix, commit in ((b"kept", True), (b"dropped", False), (b"also", True)):
            producer.begin_transaction()
            for i in range(20):
                producer.send("kp-txn", value=prefix + b"-%d" % i, partition=i % 2)
            producer.flush()
            if commit:
                producer.commit_transaction()
            else:
                producer.abort_transaction()
    finally:
        producer.close()

    committed = read_values(broker.bootstrap, "kp-txn", 2, "read_committed")
    assert sorted(committed) == sorted(
        p + b"-%d" % i for p in (b"kept", b"also") for i in range(20)
    )
    assert len(read_values(broker.bootstrap, "kp-txn", 2, "read_uncommitted")) == 60


def test_kafka_python_send_offsets_to_transaction(broker: BrokerProcess) -> None:
    create_topic(broker.bootstrap, "kp-offsets", partitions=1)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, transactional_id="kp-offsets")
    try:
        producer.init_transactions()
        producer.begin_transaction()
        producer.send("kp-offsets", value=b"x", partition=0)
        producer.send_offsets_to_transaction(
            {TopicPartition("kp-offsets", 0): OffsetAndMetadata(42, "", -1)}, "kp-group"
        )
        producer.commit_transaction()
    finally:
        producer.close()
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id="kp-group")
    try:
        assert consumer.committed(TopicPartition("kp-offsets", 0)) == 42
    finally:
        consumer.close()


def test_kafka_python_admin_sees_transactions_and_producers(broker: BrokerProcess) -> None:
    """ListTransactions, DescribeTransactions and DescribeProducers as kafka-python's
    admin client (its own protocol code, not kio's) reads them."""
    create_topic(broker.bootstrap, "kp-admin", partitions=1)
    producer = transactional_producer(broker.bootstrap, "kp-admin-id")
    producer.begin_transaction()
    producer.produce("kp-admin", value=b"x")
    producer.flush(30)
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        listed = [t for ts in admin.list_transactions().values() for t in ts]
        assert any(t.transactional_id == "kp-admin-id" for t in listed)
        described = admin.describe_transactions(["kp-admin-id"])["kp-admin-id"]
        assert described.state.value == "Ongoing"
        assert described.topic_partitions == {TopicPartition("kp-admin", 0)}
        states = admin.describe_producers([TopicPartition("kp-admin", 0)])
        (state,) = states[TopicPartition("kp-admin", 0)].active_producers
        assert state.producer_id == described.producer_id
        assert state.current_transaction_start_offset == 0
        producer.commit_transaction(30)
        # EndTxn is answered at PrepareCommit; the markers and CompleteCommit follow.
        deadline = time.monotonic() + 10
        while (
            state_name := admin.describe_transactions(["kp-admin-id"])["kp-admin-id"].state.value
        ) == "PrepareCommit" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert state_name == "CompleteCommit"
    finally:
        admin.close()
