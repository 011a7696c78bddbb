"""Exactly-once copying while brokers and the copier are hard-bounced (as Kafka's
``transactions_test.py``): the output is the input, once, in order per partition."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from tests.integration.cluster.conftest import Cluster
from tests.support.clients import create_topic

Factory = Callable[..., Cluster]
PARTITIONS = 2
REPLICATED = {"min.insync.replicas": "2"}
TRANSACTIONS = 100  # about as many per copy, whatever its size
BOUNCES = 6  # brokers 1, 2 and 3 killed once each and the copier three times, alternately
COMMITTED = re.compile(r"committed (\d+)")


def _start_copier(cluster: Cluster, log_path: Path, max_batch: int) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.integration.transactions.copier",
                cluster.bootstrap,
                "eos-in",
                "eos-out",
                "eos-copier",
                "eos-copier-txn",
                str(max_batch),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def _wait_until_copied(
    log_path: Path, records: int, copier: subprocess.Popen[bytes], deadline: float
) -> None:
    """Until the copiers have committed ``records`` (the last ``committed N`` they
    printed); a copier that exits first failed, since there is more to copy."""
    while time.monotonic() < deadline:
        found = COMMITTED.findall(log_path.read_text())
        if found and int(found[-1]) >= records:
            return
        if copier.poll() is not None:
            raise AssertionError(
                f"the copier exited ({copier.returncode}) before {records} were copied:\n"
                + log_path.read_text()
            )
        time.sleep(0.1)
    raise AssertionError(f"{records} records not copied in time:\n" + log_path.read_text())


def _read_committed_by_partition(bootstrap: str, topic: str) -> dict[int, list[bytes]]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "eos-verifier",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
        }
    )
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
        values: dict[int, list[bytes]] = {p: [] for p in range(PARTITIONS)}
        at_end: set[int] = set()
        deadline = time.monotonic() + 120
        while len(at_end) < PARTITIONS and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    at_end.add(message.partition())
                continue
            at_end.discard(message.partition())
            value = message.value()
            assert value is not None
            values[message.partition()].append(value)
        return values
    finally:
        consumer.close()


@pytest.mark.timeout(900)
@pytest.mark.parametrize(
    "records",
    [
        10_000,
        # Kafka's transactions_test size (-m slow). About 8 minutes here while bounces
        # came on a clock and each ISR change was a ZooKeeper write of its own; 51-72 s
        # since (cfd1371, 015924c), in two runs. Out of CI until it has a longer record.
        pytest.param(100_000, marks=pytest.mark.slow),
    ],
)
def test_copy_exactly_once_through_hard_bounces(cluster_factory: Factory, records: int) -> None:
    cluster = cluster_factory(
        3,
        **{
            "transaction.abort.timed.out.transaction.cleanup.interval.ms": "1000",
            "auto.leader.rebalance.enable": "false",
        },
    )
    create_topic(cluster.bootstrap, "eos-in", PARTITIONS, REPLICATED, replication_factor=3)
    create_topic(cluster.bootstrap, "eos-out", PARTITIONS, REPLICATED, replication_factor=3)
    source = Producer(
        {"bootstrap.servers": cluster.bootstrap, "linger.ms": 20, "enable.idempotence": True}
    )
    for i in range(records):
        source.produce("eos-in", value=b"%d" % i, partition=i % PARTITIONS)
        if i % 10_000 == 0:
            source.poll(0)
    assert source.flush(60) == 0

    log_path = cluster.directory / "copier.log"
    max_batch = records // TRANSACTIONS
    copier = _start_copier(cluster, log_path, max_batch)
    try:
        deadline = time.monotonic() + 600
        for bounce in range(BOUNCES):
            # Each bounce comes at its share of the copy (1/8, 2/8, ... 6/8), so all of
            # them happen however fast the copier runs; with bounces on a clock, a fast
            # copier could finish between two.
            _wait_until_copied(log_path, records * (bounce + 1) // (BOUNCES + 2), copier, deadline)
            if bounce % 2 == 0:
                broker = cluster.brokers[bounce // 2 + 1]
                broker.kill()
                time.sleep(2)
                broker.start()
            else:
                copier.kill()
                copier.wait()
                copier = _start_copier(cluster, log_path, max_batch)
        code = copier.wait(timeout=max(deadline - time.monotonic(), 1))
        assert code == 0, log_path.read_text()
    finally:
        if copier.poll() is None:
            copier.kill()
            copier.wait()

    copied = _read_committed_by_partition(cluster.bootstrap, "eos-out")
    for p in range(PARTITIONS):
        expected = [b"copy-%d" % i for i in range(p, records, PARTITIONS)]
        got = copied[p]
        assert len(got) == len(expected), (
            f"partition {p}: {len(got)} copied ({len(set(got))} distinct) of {len(expected)}"
        )
        assert got == expected, f"partition {p}: output differs from input (order or content)"
