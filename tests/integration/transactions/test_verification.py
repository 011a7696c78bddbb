"""Transaction verification on produce (KIP-890 part 1): a transactional batch for a
partition that is not in the producer's transaction is refused with Kafka's error for
the Produce version, and leaves no transaction open behind it; real transactional
producers are not disturbed; leaders can ask with AddPartitionsToTxn v4-v5."""

from __future__ import annotations

from collections.abc import Callable

from confluent_kafka import Consumer, Producer, TopicPartition
from kio.schema.add_partitions_to_txn.v4 import request as add_v4
from kio.schema.add_partitions_to_txn.v5 import request as add_v5
from kio.schema.api_versions.v3.request import ApiVersionsRequest
from kio.schema.describe_producers.v0.request import DescribeProducersRequest, TopicRequest
from kio.static.primitive import i16, i32

from odradek.protocol.errors import ErrorCode
from tests.integration.transactions.raw import RawTxnProducer, coordinator
from tests.integration.transactions.txn import read_values, transactional_producer
from tests.support.broker import BrokerProcess
from tests.support.clients import create_topic, produce_acked
from tests.support.wire import WireClient

NOT_ADDED = "Partition was not added to the transaction"


def _stable_end(bootstrap: str, topic: str, partition: int) -> int:
    """The end offset a read_committed consumer sees (the last stable offset)."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "lso", "isolation.level": "read_committed"}
    )
    try:
        return int(consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)[1])
    finally:
        consumer.close()


def _open_transactions(client: WireClient, topic: str, partition: int) -> list[int]:
    """First offsets of the partition's open transactions (DescribeProducers)."""
    response = client.call(
        DescribeProducersRequest(
            topics=(TopicRequest(name=topic, partition_indexes=(i32(partition),)),)
        )
    )
    (state,) = response.topics[0].partitions
    assert ErrorCode(state.error_code) is ErrorCode.none
    return [
        p.current_txn_start_offset
        for p in state.active_producers
        if p.current_txn_start_offset >= 0
    ]


def test_a_partition_not_added_is_refused_and_nothing_hangs(broker: BrokerProcess) -> None:
    create_topic(broker.bootstrap, "verify", partitions=2)
    with WireClient(broker.bootstrap) as client:
        coordinator(client, "raw-verify")
        producer = RawTxnProducer(client, "raw-verify")
        assert producer.add("verify", 0) == [ErrorCode.none]
        for version in (3, 9, 10):
            old = producer.produce(client, "verify", 1, b"stray", version=version)
            assert ErrorCode(old.error_code) is ErrorCode.invalid_txn_state, version
        assert old.error_message == NOT_ADDED  # v8+ carries the message
        new = producer.produce(client, "verify", 1, b"stray", version=11)
        assert ErrorCode(new.error_code) is ErrorCode.transaction_abortable
        assert _open_transactions(client, "verify", 1) == []

        added = producer.produce(client, "verify", 0, b"in", version=11)
        assert ErrorCode(added.error_code) is ErrorCode.none
        assert _open_transactions(client, "verify", 0) == [added.base_offset]
        assert producer.end(commit=True) is ErrorCode.none

    # A plain record after the refused batches: a read_committed consumer gets to it.
    plain = Producer({"bootstrap.servers": broker.bootstrap})
    plain.produce("verify", value=b"plain", partition=1)
    assert plain.flush(30) == 0
    values = read_values(broker.bootstrap, "verify", 2, "read_committed")
    assert sorted(values) == [b"in", b"plain"]


def test_transactional_producers_still_work(broker: BrokerProcess) -> None:
    create_topic(broker.bootstrap, "verify-ck", partitions=2)
    producer = transactional_producer(broker.bootstrap, "verify-ck")
    for commit, tag in ((True, b"a"), (False, b"b"), (True, b"c")):
        producer.begin_transaction()
        for partition in (0, 1):
            producer.produce("verify-ck", value=tag + b"%d" % partition, partition=partition)
        if commit:
            producer.commit_transaction(30)
        else:
            producer.abort_transaction(30)
    assert sorted(read_values(broker.bootstrap, "verify-ck", 2, "read_committed")) == [
        b"a0",
        b"a1",
        b"c0",
        b"c1",
    ]


def test_leaders_ask_with_add_partitions_to_txn_v4_and_v5(broker: BrokerProcess) -> None:
    create_topic(broker.bootstrap, "verify-only", partitions=2)
    with WireClient(broker.bootstrap) as client:
        versions = client.call(
            ApiVersionsRequest(client_software_name="test", client_software_version="1")
        )
        (api,) = [a for a in versions.api_keys if a.api_key == 24]
        assert (api.min_version, api.max_version) == (0, 5)

        coordinator(client, "asked")
        producer = RawTxnProducer(client, "asked")
        assert producer.add("verify-only", 0) == [ErrorCode.none]
        answers = {}
        for module in (add_v4, add_v5):
            response = client.call(
                module.AddPartitionsToTxnRequest(
                    transactions=(
                        module.AddPartitionsToTxnTransaction(
                            transactional_id="asked",
                            producer_id=producer.producer_id,
                            producer_epoch=i16(producer.epoch),
                            verify_only=True,
                            topics=(
                                module.AddPartitionsToTxnTopic(
                                    name="verify-only", partitions=(i32(0), i32(1))
                                ),
                            ),
                        ),
                        module.AddPartitionsToTxnTransaction(
                            transactional_id="asked",
                            producer_id=producer.producer_id,
                            producer_epoch=i16(producer.epoch),
                            verify_only=True,
                            topics=(
                                module.AddPartitionsToTxnTopic(
                                    name="verify-only", partitions=(i32(0),)
                                ),
                                module.AddPartitionsToTxnTopic(
                                    name="no-such", partitions=(i32(0),)
                                ),
                            ),
                        ),
                    )
                )
            )
            assert ErrorCode(response.error_code) is ErrorCode.none
            answers[module] = [
                {
                    (t.name, int(p.partition_index)): ErrorCode(p.partition_error_code)
                    for t in result.topic_results
                    for p in t.results_by_partition
                }
                for result in response.results_by_transaction
            ]
        unknown = {
            ("verify-only", 0): ErrorCode.operation_not_attempted,
            ("no-such", 0): ErrorCode.unknown_topic_or_partition,
        }
        assert answers[add_v5] == [
            {
                ("verify-only", 0): ErrorCode.none,
                ("verify-only", 1): ErrorCode.transaction_abortable,
            },
            unknown,
        ]
        assert answers[add_v4] == [
            {("verify-only", 0): ErrorCode.none, ("verify-only", 1): ErrorCode.invalid_txn_state},
            unknown,
        ]
        # verify_only added nothing.
        assert producer.produce(client, "verify-only", 1, b"x", version=11).error_code != 0
        assert producer.end(commit=False) is ErrorCode.none


def test_without_verification_a_stray_batch_hangs(
    txn_broker_factory: Callable[..., BrokerProcess],
) -> None:
    """What the check prevents: with it off, the same batch opens a transaction no
    coordinator knows of, and read_committed consumers stop in front of it."""
    broker = txn_broker_factory({"transaction.partition.verification.enable": "false"})
    create_topic(broker.bootstrap, "unverified", partitions=1)
    with WireClient(broker.bootstrap) as client:
        coordinator(client, "unverified")
        producer = RawTxnProducer(client, "unverified")
        stray = producer.produce(client, "unverified", 0, b"stray", version=11)
        assert ErrorCode(stray.error_code) is ErrorCode.none
        assert _open_transactions(client, "unverified", 0) == [stray.base_offset]
    produce_acked(broker.bootstrap, "unverified", 1)
    assert _stable_end(broker.bootstrap, "unverified", 0) == stray.base_offset
