"""Transaction verification across brokers (KIP-890 part 1): the leader of a partition
asks the transaction coordinator on another broker (AddPartitionsToTxn v5, verify_only)
before a producer's first transactional batch goes in."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from confluent_kafka.admin import NewTopic
from kio.schema.find_coordinator.v3.request import FindCoordinatorRequest
from kio.static.primitive import i8

from odradek.protocol.errors import ErrorCode
from tests.integration.cluster.conftest import Cluster
from tests.integration.transactions.raw import RawTxnProducer, call
from tests.integration.transactions.txn import read_values, transactional_producer
from tests.support.clients import admin
from tests.support.wire import WireClient

Factory = Callable[..., Cluster]
TOPIC = "verified"
SETTLING = {
    ErrorCode.unknown_topic_or_partition,
    ErrorCode.not_leader_or_follower,
    ErrorCode.leader_not_available,
    ErrorCode.not_enough_replicas,  # the leader has not learnt who the coordinator is yet
}


def _coordinator_id(cluster: Cluster, txn_id: str) -> int:
    with WireClient(cluster.brokers[1].bootstrap) as client:
        found = call(client, FindCoordinatorRequest(key=txn_id, key_type=i8(1)))
    assert ErrorCode(found.error_code) is ErrorCode.none, found
    return int(found.node_id)


def _produce(
    producer: RawTxnProducer, leader: WireClient, partition: int, value: bytes, version: int
) -> Any:
    """The partition's answer once leadership and the coordinator are known everywhere."""
    deadline = time.monotonic() + 30
    while True:
        result = producer.produce(leader, TOPIC, partition, value, version=version)
        if ErrorCode(result.error_code) not in SETTLING or time.monotonic() > deadline:
            return result
        time.sleep(0.2)


def test_the_leader_asks_a_coordinator_on_another_broker(cluster_factory: Factory) -> None:
    cluster = cluster_factory(2)
    # Partition 0 on broker 1, partition 1 on broker 2.
    client = admin(cluster.bootstrap)  # must outlive the future
    futures = client.create_topics(
        [NewTopic(TOPIC, 2, replica_assignment=[[1], [2]])], operation_timeout=10
    )
    futures[TOPIC].result(timeout=30)

    txn_id = "cross-broker"
    coordinator = _coordinator_id(cluster, txn_id)
    remote = 1 if coordinator == 1 else 0  # the partition led by the other broker
    leader_id = 2 if coordinator == 1 else 1
    with (
        WireClient(cluster.brokers[coordinator].bootstrap) as to_coordinator,
        WireClient(cluster.brokers[leader_id].bootstrap) as to_leader,
    ):
        producer = RawTxnProducer(to_coordinator, txn_id)
        assert producer.add(TOPIC, 1 - remote) == [ErrorCode.none]
        refused = _produce(producer, to_leader, remote, b"stray", version=9)
        assert ErrorCode(refused.error_code) is ErrorCode.invalid_txn_state
        assert refused.error_message == "Partition was not added to the transaction"
        refused = _produce(producer, to_leader, remote, b"stray", version=11)
        assert ErrorCode(refused.error_code) is ErrorCode.transaction_abortable

        assert producer.add(TOPIC, remote) == [ErrorCode.none]
        taken = _produce(producer, to_leader, remote, b"remote", version=11)
        assert ErrorCode(taken.error_code) is ErrorCode.none
        local = _produce(producer, to_coordinator, 1 - remote, b"local", version=11)
        assert ErrorCode(local.error_code) is ErrorCode.none
        assert producer.end(commit=True) is ErrorCode.none

    real = transactional_producer(cluster.bootstrap, "real-cross-broker")
    real.begin_transaction()
    for partition in (0, 1):
        real.produce(TOPIC, value=b"real-%d" % partition, partition=partition)
    real.commit_transaction(30)

    values = read_values(cluster.bootstrap, TOPIC, 2, "read_committed")
    assert sorted(values) == [b"local", b"real-0", b"real-1", b"remote"]
