"""``odradek transactions``: list, describe, describe-producers, and abort of a hanging
transaction, run as a subprocess against a real broker and real transactional producers;
bad input is one ``error:`` line with exit code 1 (2 for usage), never a traceback."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from confluent_kafka import Consumer, TopicPartition

from odradek.protocol.errors import ErrorCode
from tests.integration.cli.runner import error_line, ok, run
from tests.integration.transactions.raw import RawTxnProducer, coordinator
from tests.integration.transactions.txn import read_values, transactional_producer
from tests.support.broker import BrokerProcess, free_port
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


def _rows(output: str, header: str) -> list[list[str]]:
    """The cells of a table's rows (below its header line and the rule under it)."""
    lines = output.strip().splitlines()
    start = next(i for i, line in enumerate(lines) if line.lstrip().startswith(header))
    return [line.split() for line in lines[start + 2 :] if line.strip()]


def _producers(bootstrap: str, topic: str) -> dict[int, list[str]]:
    """describe-producers of partition 0, by producer id: (epoch, last sequence, last
    timestamp, coordinator epoch, txn start offset)."""
    output = ok(run("transactions", "describe-producers", "-t", topic, "-p", "0", "-b", bootstrap))
    return {int(row[0]): row[1:] for row in _rows(output, "PRODUCER ID")}


def _describe(bootstrap: str, txn_id: str) -> dict[str, str]:
    output = ok(run("transactions", "describe", txn_id, "-b", bootstrap))
    (row,) = _rows(output, "COORDINATOR")
    columns = ("coordinator", "id", "producer id", "epoch", "state", "timeout", "start", "parts")
    return dict(zip(columns, row, strict=True))


def _settled(bootstrap: str, txn_id: str) -> dict[str, str]:
    """describe once the markers of an ended transaction are written (EndTxn is
    answered at PrepareCommit/PrepareAbort, Complete* follows)."""
    for _ in range(100):
        described = _describe(bootstrap, txn_id)
        if not described["state"].startswith("Prepare"):
            return described
    raise AssertionError(f"{txn_id} stays {described['state']}")


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

    assert _settled(broker.bootstrap, "cli-done")["state"] == "CompleteCommit"
    listed = ok(run("transactions", "list", "-b", broker.bootstrap))
    rows = {row[0]: row for row in _rows(listed, "TRANSACTIONAL ID")}
    assert rows["cli-done"][-1] == "CompleteCommit"
    assert rows["cli-open"][-1] == "Ongoing"
    only_open = ok(run("transactions", "list", "--state", "Ongoing", "-b", broker.bootstrap))
    ids = {row[0] for row in _rows(only_open, "TRANSACTIONAL ID")}
    assert "cli-open" in ids and "cli-done" not in ids

    described = _describe(broker.bootstrap, "cli-open")
    assert described["state"] == "Ongoing"
    assert described["parts"] == "cli-txn-1"
    assert described["producer id"] == rows["cli-open"][2]
    assert described["start"] != "-"
    open_.abort_transaction(30)
    described = _settled(broker.bootstrap, "cli-open")
    assert (described["state"], described["parts"]) == ("CompleteAbort", "-")

    # The producer that committed is active in partition 0, with no transaction open.
    producers = _producers(broker.bootstrap, "cli-txn")
    assert list(producers) == [int(rows["cli-done"][2])]
    assert producers[int(rows["cli-done"][2])][-1] == "-"


def _hanging_transaction(bootstrap: str, txn_id: str, topic: str) -> tuple[int, int]:
    """A transactional batch its coordinator never heard of: the producer skips
    AddPartitionsToTxn (as a lost AddPartitionsToTxn round, or a retry arriving after
    the transaction ended, could do before KIP-890's verification). The coordinator
    keeps the id Empty and will never write a marker there; (producer id, offset)."""
    with WireClient(bootstrap) as client:
        coordinator(client, txn_id)
        producer = RawTxnProducer(client, txn_id)
        taken = producer.produce(client, topic, 0, b"hanging")
        assert ErrorCode(taken.error_code) is ErrorCode.none, taken
        return producer.producer_id, int(taken.base_offset)


def test_abort_a_hanging_transaction(txn_broker_factory: Callable[..., BrokerProcess]) -> None:
    # Transaction verification (KIP-890, on by default) refuses the stray batch; without
    # it, as before Kafka 3.6, the batch is taken and hangs the partition.
    broker = txn_broker_factory({"transaction.partition.verification.enable": "false"})
    bootstrap = broker.bootstrap
    create_topic(bootstrap, "hanging", partitions=1)
    producer_id, start = _hanging_transaction(bootstrap, "hanging-id", "hanging")
    later = transactional_producer(bootstrap)
    later.begin_transaction()
    later.produce("hanging", value=b"later", partition=0)
    later.commit_transaction(30)

    # A read_committed consumer is stuck in front of the hanging transaction, and no
    # transaction timeout will free it: the coordinator never heard of the partition.
    assert _stable_end(bootstrap, "hanging") == start
    assert read_values(bootstrap, "hanging", 1, "read_committed", settle=1.0) == []
    assert read_values(bootstrap, "hanging", 1, "read_uncommitted", settle=1.0) == [
        b"hanging",
        b"later",
    ]
    assert _describe(bootstrap, "hanging-id")["state"] == "Empty"
    producers = _producers(bootstrap, "hanging")
    assert producers[producer_id][-1] == str(start)

    aborted = ok(
        run(
            "transactions",
            "abort",
            "-t",
            "hanging",
            "-p",
            "0",
            "--start-offset",
            str(start),
            "-b",
            bootstrap,
        )
    )
    assert aborted.strip() == (
        f"aborted the transaction of producer {producer_id} (epoch "
        f"{producers[producer_id][0]}) starting at offset {start} of hanging-0"
    )
    assert read_values(bootstrap, "hanging", 1, "read_committed") == [b"later"]
    assert _producers(bootstrap, "hanging")[producer_id][-1] == "-"
    # Nothing is left to abort there.
    again = ("abort", "-t", "hanging", "-p", "0", "--start-offset", str(start), "-b", bootstrap)
    line = error_line(run("transactions", *again))
    assert f"no open transaction starts at offset {start} of hanging-0" in line


def test_bad_input_is_one_line(broker: BrokerProcess) -> None:
    create_topic(broker.bootstrap, "cli-bad", partitions=1)
    bootstrap = broker.bootstrap
    line = error_line(run("transactions", "describe", "no-such-id", "-b", bootstrap))
    assert line == "error: cannot describe no-such-id: TRANSACTIONAL_ID_NOT_FOUND"

    for topic, partition in (("cli-bad", "7"), ("no-such-topic", "0")):
        line = error_line(
            run("transactions", "describe-producers", "-t", topic, "-p", partition, "-b", bootstrap)
        )
        assert line == f"error: no partition {partition} of topic {topic}"
        line = error_line(
            run(
                "transactions",
                "abort",
                "-t",
                topic,
                "-p",
                partition,
                "--start-offset",
                "0",
                "-b",
                bootstrap,
            )
        )
        assert line == f"error: no partition {partition} of topic {topic}"

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
            bootstrap,
        )
    )
    assert line == (
        "error: no open transaction starts at offset 5 of cli-bad-0 "
        "(see odradek transactions describe-producers)"
    )

    line = error_line(run("transactions", "list", "--state", "Bogus", "-b", bootstrap), exit_code=2)
    assert "unknown state Bogus" in line


@pytest.mark.parametrize(
    "command",
    [
        ("list",),
        ("describe", "some-id"),
        ("describe-producers", "-t", "t", "-p", "0"),
        ("abort", "-t", "t", "-p", "0", "--start-offset", "0"),
    ],
    ids=lambda command: command[0],
)
def test_unreachable_broker_is_one_line(command: tuple[str, ...]) -> None:
    address = f"127.0.0.1:{free_port()}"  # bound and released: nothing listens there
    line = error_line(run("transactions", *command, "-b", address))
    assert line.startswith(f"error: cannot reach a broker at {address} ")
