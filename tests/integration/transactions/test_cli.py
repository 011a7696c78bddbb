"""``odradek transactions``: list, describe, describe-producers, and abort of a hanging
transaction, against a real broker and real transactional producers."""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable

from confluent_kafka import Consumer, TopicPartition
from kio.schema.init_producer_id.v4.request import InitProducerIdRequest
from kio.schema.produce.v9.request import (
    PartitionProduceData,
    ProduceRequest,
    TopicProduceData,
)
from kio.static.primitive import i16, i32, i32Timedelta

from odradek.protocol.record_codec import BatchSpec, NewRecord, build_batch
from tests.integration.cli.runner import error_line, ok, run
from tests.integration.transactions.txn import read_values, transactional_producer
from tests.support.broker import BrokerProcess
from tests.support.clients import create_topic
from tests.support.wire import WireClient


def _stable_end(bootstrap: str, topic: str) -> int:
    """The end offset a read_committed consumer sees (the last stable offset)."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "lso", "isolation.level": "read_committed"}
    )
    try:
        return int(consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[1])
    finally:
        consumer.close()


def test_list_and_describe(broker: BrokerProcess) -> None:
    create_topic(broker.bootstrap, "cli-txn", partitions=2)
    done = transactional_producer(broker.bootstrap, "cli-done")
    done.begin_transaction()
    done.produce("cli-txn", value=b"x", partition=0)
    done.commit_transaction(30)
    open_ = transactional_producer(broker.bootstrap, "cli-open")
    open_.begin_transaction()
    open_.produce("cli-txn", value=b"y", partition=1)
    open_.flush(30)

    deadline = time.monotonic() + 10
    while True:  # the commit completes (markers, CompleteCommit) after EndTxn's answer
        listed = ok(run("transactions", "list", "-b", broker.bootstrap))
        rows = {line.split()[0]: line.split() for line in listed.splitlines()[1:] if line.strip()}
        if rows["cli-done"][-1] != "PrepareCommit" or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert rows["cli-done"][-1] == "CompleteCommit"
    assert rows["cli-open"][-1] == "Ongoing"
    only_open = ok(run("transactions", "list", "--state", "Ongoing", "-b", broker.bootstrap))
    assert "cli-open" in only_open and "cli-done" not in only_open

    described = ok(run("transactions", "describe", "cli-open", "-b", broker.bootstrap))
    assert "Ongoing" in described and "cli-txn-1" in described
    open_.abort_transaction(30)
    # EndTxn is answered at PrepareAbort; the markers and CompleteAbort follow.
    deadline = time.monotonic() + 10
    while (
        "PrepareAbort"
        in (described := ok(run("transactions", "describe", "cli-open", "-b", broker.bootstrap)))
        and time.monotonic() < deadline
    ):
        time.sleep(0.1)
    assert "CompleteAbort" in described

    producers = ok(
        run(
            "transactions",
            "describe-producers",
            "-t",
            "cli-txn",
            "-p",
            "0",
            "-b",
            broker.bootstrap,
        )
    )
    rows = [line for line in producers.strip().splitlines()[2:] if line.strip()]
    assert len(rows) == 1, producers  # the producer that committed


def _hanging_transaction(bootstrap: str, topic: str) -> None:
    """A transactional batch no coordinator knows of: written straight to the partition
    with an idempotent producer id, never added to a transaction (what a lost
    AddPartitionsToTxn round or a coordinator bug can leave behind)."""
    with WireClient(bootstrap) as client:
        init = client.call(
            InitProducerIdRequest(
                transactional_id=None,
                transaction_timeout=i32Timedelta.parse(datetime.timedelta(seconds=60)),
                producer_id=-1,
                producer_epoch=i16(-1),
            )
        )
        batch = build_batch(
            [NewRecord(key=None, value=b"hanging")],
            BatchSpec(
                producer_id=init.producer_id,
                producer_epoch=init.producer_epoch,
                base_sequence=0,
                transactional=True,
            ),
        )
        response = client.call(
            ProduceRequest(
                transactional_id=None,
                acks=i16(-1),
                timeout=i32Timedelta.parse(datetime.timedelta(seconds=10)),
                topic_data=(
                    TopicProduceData(
                        name=topic,
                        partition_data=(PartitionProduceData(index=i32(0), records=batch),),
                    ),
                ),
            )
        )
        assert response.responses[0].partition_responses[0].error_code == 0


def test_abort_a_hanging_transaction(txn_broker_factory: Callable[..., BrokerProcess]) -> None:
    # Without KIP-890 verification (as before Kafka 3.6) a batch of a transaction the
    # coordinator never heard of is taken: the hanging transaction this tool repairs.
    broker = txn_broker_factory({"transaction.partition.verification.enable": "false"})
    create_topic(broker.bootstrap, "hanging", partitions=1)
    _hanging_transaction(broker.bootstrap, "hanging")
    later = transactional_producer(broker.bootstrap)
    later.begin_transaction()
    later.produce("hanging", value=b"later")
    later.commit_transaction(30)
    assert _stable_end(broker.bootstrap, "hanging") == 0, "the hanging transaction holds the LSO"

    producers = ok(
        run(
            "transactions",
            "describe-producers",
            "-t",
            "hanging",
            "-p",
            "0",
            "-b",
            broker.bootstrap,
        )
    )
    starts = [line.split()[-1] for line in producers.strip().splitlines()[2:] if line.strip()]
    assert "0" in starts, producers

    aborted = ok(
        run(
            "transactions",
            "abort",
            "-t",
            "hanging",
            "-p",
            "0",
            "--start-offset",
            "0",
            "-b",
            broker.bootstrap,
        )
    )
    assert "aborted the transaction of producer" in aborted
    deadline = time.monotonic() + 10
    while _stable_end(broker.bootstrap, "hanging") == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert read_values(broker.bootstrap, "hanging", 1, "read_committed") == [b"later"]


def test_bad_input_is_one_line(broker: BrokerProcess) -> None:
    create_topic(broker.bootstrap, "cli-bad", partitions=1)
    line = error_line(run("transactions", "describe", "no-such-id", "-b", broker.bootstrap))
    assert "TRANSACTIONAL_ID_NOT_FOUND" in line
    line = error_line(
        run(
            "transactions",
            "describe-producers",
            "-t",
            "cli-bad",
            "-p",
            "7",
            "-b",
            broker.bootstrap,
        )
    )
    assert "no partition 7" in line
    line = error_line(
        run(
            "transactions",
            "abort",
            "-t",
            "cli-bad",
            "-p",
            "0",
            "--start-offset",
            "5",
            "-b",
            broker.bootstrap,
        )
    )
    assert "no open transaction starts at offset 5" in line
    line = error_line(run("transactions", "list", "-b", "127.0.0.1:1"))
    assert "cannot reach a broker" in line
