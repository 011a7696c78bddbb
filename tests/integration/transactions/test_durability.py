"""Transactions across broker restarts: aborted data stays hidden, open ones get ended."""

from __future__ import annotations

import time
from collections.abc import Callable

from tests.integration.transactions.txn import read_values, transactional_producer
from tests.support.broker import BrokerProcess
from tests.support.clients import create_topic


def test_aborted_records_stay_hidden_after_kill_9(
    txn_broker_factory: Callable[..., BrokerProcess],
) -> None:
    broker = txn_broker_factory()
    # Small segments: the aborted transactions' index entries spread over several files.
    create_topic(broker.bootstrap, "durable", partitions=1, config={"segment.bytes": "4096"})
    producer = transactional_producer(broker.bootstrap, "durable-id")
    for round_ in range(6):
        producer.begin_transaction()
        for i in range(20):
            producer.produce("durable", value=b"r%d-%d" % (round_, i))
        if round_ % 2:
            producer.abort_transaction(30)
        else:
            producer.commit_transaction(30)
    expected = sorted(b"r%d-%d" % (r, i) for r in (0, 2, 4) for i in range(20))
    assert sorted(read_values(broker.bootstrap, "durable", 1, "read_committed")) == expected

    broker.kill()
    broker.start()
    assert sorted(read_values(broker.bootstrap, "durable", 1, "read_committed")) == expected

    # The transactional id survives too: its next producer fences this one and goes on.
    successor = transactional_producer(broker.bootstrap, "durable-id")
    successor.begin_transaction()
    successor.produce("durable", value=b"after")
    successor.commit_transaction(30)
    assert b"after" in read_values(broker.bootstrap, "durable", 1, "read_committed")


def test_transaction_open_at_a_crash_is_aborted_by_its_timeout(
    txn_broker_factory: Callable[..., BrokerProcess],
) -> None:
    broker = txn_broker_factory()
    create_topic(broker.bootstrap, "crash-open", partitions=1)
    producer = transactional_producer(
        broker.bootstrap, "crash-open-id", **{"transaction.timeout.ms": 3000}
    )
    producer.begin_transaction()
    for i in range(10):
        producer.produce("crash-open", value=b"open-%d" % i)
    producer.flush(30)
    broker.kill()
    broker.start()

    later = transactional_producer(broker.bootstrap)
    later.begin_transaction()
    later.produce("crash-open", value=b"later")
    later.commit_transaction(30)
    deadline = time.monotonic() + 30
    values: list[bytes] = []
    while time.monotonic() < deadline and not values:
        values = read_values(broker.bootstrap, "crash-open", 1, "read_committed", settle=1.0)
    assert values == [b"later"]
