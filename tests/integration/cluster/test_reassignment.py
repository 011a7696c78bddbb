"""Partition reassignment (KIP-455) on 3 real brokers and a real ZooKeeper: data copied
before the switch, no acknowledged record lost under load, removed replicas deleted,
cancellation, a controller failover in the middle, Kafka's errors for bad input, and the
``odradek cluster reassign`` command. One cluster serves the whole module."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import TopicPartition as KafkaPythonTopicPartition
from kafka.admin import KafkaAdminClient
from kafka.errors import (
    InvalidReplicationAssignmentError,
    KafkaError,
    NoReassignmentInProgressError,
    UnknownTopicOrPartitionError,
)

from tests.integration.cli.runner import error_line, ok, run
from tests.integration.cluster.conftest import Cluster
from tests.integration.cluster.failover import wait_for
from tests.support.broker import BrokerProcess, free_port
from tests.support.clients import Acked, consume_all, produce_acked
from tests.support.zookeeper import ZooKeeperServer


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, zookeeper: ZooKeeperServer
) -> Iterator[Cluster]:
    made = Cluster(
        tmp_path_factory.mktemp("reassign"),
        f"{zookeeper.connect}/reassign",
        {
            "zookeeper.session.timeout.ms": "6000",
            # Followers copy in small steps, so a reassignment is seen under way.
            "replica.fetch.max.bytes": "65536",
            "auto.leader.rebalance.enable": "false",
        },
    )
    try:
        for broker_id in (1, 2, 3):
            made.add(broker_id)
        yield made
    finally:
        made.stop()


def create(cluster: Cluster, name: str, assignment: list[list[int]], **config: str) -> None:
    client = AdminClient({"bootstrap.servers": cluster.bootstrap})
    futures = client.create_topics(
        [NewTopic(name, len(assignment), replica_assignment=assignment, config=config)],
        operation_timeout=10,
    )
    futures[name].result(timeout=30)


def kafka_admin(cluster: Cluster) -> KafkaAdminClient:
    """kafka-python's admin client, bootstrapped from the controller only and connected to
    it before any broker is paused (a metadata request to a paused broker would hang)."""
    address = cluster.brokers[controller_id(cluster)].bootstrap
    client = KafkaAdminClient(bootstrap_servers=address, request_timeout_ms=20000)
    client.list_partition_reassignments()
    return client


def tp(topic: str, partition: int) -> KafkaPythonTopicPartition:
    return KafkaPythonTopicPartition(topic, partition)


def layout(cluster: Cluster, topic: str, partition: int = 0) -> tuple[int, list[int], list[int]]:
    """(leader, replicas, isr) from Metadata."""
    metadata = AdminClient({"bootstrap.servers": cluster.bootstrap}).list_topics(topic, timeout=10)
    p = metadata.topics[topic].partitions[partition]
    return p.leader, list(p.replicas), sorted(p.isrs)


def controller_id(cluster: Cluster) -> int:
    client = AdminClient({"bootstrap.servers": cluster.bootstrap})
    return int(client.describe_cluster(request_timeout=10).result(timeout=15).controller.id)


def roles(cluster: Cluster) -> tuple[int, int, int]:
    """(controller, other, other): a broker paused in a test must not be the controller,
    which takes the admin requests."""
    controller = controller_id(cluster)
    first, second = (b for b in sorted(cluster.brokers) if b != controller)
    return controller, first, second


def ongoing(admin: KafkaAdminClient, topic: str | None = None) -> dict[Any, Any]:
    found = admin.list_partition_reassignments()
    return {k: v for k, v in found.items() if topic is None or k.topic == topic}


def finished(cluster: Cluster, topic: str) -> bool:
    """No reassignment of ``topic`` listed, asked through a new client (kafka-python
    sends to the controller it knew, and brokers learn of a new one one by one)."""
    try:
        admin = kafka_admin(cluster)
    except KafkaError:
        return False
    try:
        return not ongoing(admin, topic)
    except KafkaError:
        return False
    finally:
        admin.close()


def fill(cluster: Cluster, topic: str, megabytes: int) -> list[Acked]:
    """Records for the new replicas to copy."""
    return produce_acked(
        cluster.bootstrap,
        topic,
        megabytes * 64,
        acks="all",
        **{"enable.idempotence": True, "message.max.bytes": 1 << 20},
    )


class Paused:
    """SIGSTOP a broker (it stays registered, its session lives on) until the block ends:
    a replica it should add cannot start copying, so the reassignment stays under way."""

    def __init__(self, broker: BrokerProcess) -> None:
        self.process = broker.process

    def __enter__(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def __exit__(self, *_: object) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)


class LoadProducer(threading.Thread):
    """An idempotent acks=all producer sending numbered records until stopped; keeps what
    was acknowledged and every delivery error."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__(daemon=True)
        self.producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
                "message.timeout.ms": 60000,
            }
        )
        self.topic = topic
        self.acked: list[bytes] = []
        self.errors: list[str] = []
        self.sent = 0
        self._halt = threading.Event()

    def _report(self, err: Any, msg: Any) -> None:
        if err is not None:
            self.errors.append(str(err))
        else:
            self.acked.append(msg.value())

    def run(self) -> None:
        while not self._halt.is_set():
            self.producer.produce(
                self.topic, value=b"load-%08d" % self.sent, on_delivery=self._report
            )
            self.sent += 1
            self.producer.poll(0.001)
        self.producer.flush(60)

    def finish(self) -> None:
        self._halt.set()
        self.join(90)
        assert not self.is_alive()


def test_reassignment_under_load_loses_nothing_and_deletes_the_removed_replica(
    cluster: Cluster,
) -> None:
    controller, stays, joins = roles(cluster)
    create(cluster, "moving", [[controller, stays]], **{"min.insync.replicas": "2"})
    before = fill(cluster, "moving", 2)
    load = LoadProducer(cluster.bootstrap, "moving")
    load.start()
    wait_for(lambda: len(load.acked) > 200)
    admin = kafka_admin(cluster)
    try:
        with Paused(cluster.brokers[joins]):
            assert admin.alter_partition_reassignments({tp("moving", 0): [joins, stays]}) == {
                tp("moving", 0): None
            }
            listed = ongoing(admin, "moving")
            assert listed == {
                tp("moving", 0): {
                    "replicas": [joins, stays, controller],
                    "adding_replicas": [joins],
                    "removing_replicas": [controller],
                }
            }
            acked_while_paused = len(load.acked)
            wait_for(lambda: len(load.acked) > acked_while_paused + 100)
        wait_for(lambda: not ongoing(admin, "moving"), timeout=60)
        # Leadership left the removed broker; the producer follows it.
        after_switch = len(load.acked)
        wait_for(lambda: len(load.acked) > after_switch + 200)
    finally:
        load.finish()
        admin.close()
    leader, replicas, isr = layout(cluster, "moving")
    assert (replicas, isr) == ([joins, stays], sorted([joins, stays]))
    assert leader in (joins, stays)
    wait_for(lambda: not cluster.brokers[controller].partition_dir("moving", 0).exists())
    assert cluster.brokers[joins].partition_dir("moving", 0).exists()
    assert not load.errors, load.errors[:3]
    read = consume_all(cluster.bootstrap, "moving", 1, expected=len(before) + len(load.acked))
    values = [r.value for r in read]
    assert len(values) == len(set(values)), "duplicates"
    assert set(values) == {r.value for r in before} | set(load.acked)


def test_cancel_restores_the_original_replicas(cluster: Cluster) -> None:
    source, target, _ = roles(cluster)
    create(cluster, "cancelled", [[source]])
    written = fill(cluster, "cancelled", 1)
    admin = kafka_admin(cluster)
    try:
        with Paused(cluster.brokers[target]):
            admin.alter_partition_reassignments({tp("cancelled", 0): [target]})
            # Every broker answers Metadata from its own view, which may lag a moment.
            wait_for(lambda: layout(cluster, "cancelled")[1] == [target, source])
            assert admin.alter_partition_reassignments({tp("cancelled", 0): None}) == {
                tp("cancelled", 0): None
            }
            assert not ongoing(admin, "cancelled")
        result = admin.alter_partition_reassignments({tp("cancelled", 0): None})
        assert result == {tp("cancelled", 0): NoReassignmentInProgressError}
    finally:
        admin.close()
    wait_for(lambda: layout(cluster, "cancelled") == (source, [source], [source]))
    # The broker that was being added drops what it had started to copy.
    wait_for(lambda: not cluster.brokers[target].partition_dir("cancelled", 0).exists())
    assert consume_all(cluster.bootstrap, "cancelled", 1, expected=len(written)) == written


def test_a_new_controller_completes_a_reassignment_its_predecessor_started(
    cluster: Cluster,
) -> None:
    controller = controller_id(cluster)
    source, target = (b for b in (1, 2, 3) if b != controller)
    create(cluster, "handover", [[source]])
    written = fill(cluster, "handover", 1)
    admin = kafka_admin(cluster)
    try:
        with Paused(cluster.brokers[target]):
            admin.alter_partition_reassignments({tp("handover", 0): [target]})
            assert cluster.brokers[controller].stop() == 0
        wait_for(lambda: controller_id(cluster) not in (controller, -1))
    finally:
        admin.close()
    try:
        wait_for(lambda: finished(cluster, "handover"), timeout=60)
    finally:
        cluster.brokers[controller].start()
    assert layout(cluster, "handover") == (target, [target], [target])
    wait_for(lambda: not cluster.brokers[source].partition_dir("handover", 0).exists())
    assert consume_all(cluster.bootstrap, "handover", 1, expected=len(written)) == written


def test_bad_reassignments_get_kafkas_errors(cluster: Cluster) -> None:
    create(cluster, "fixed", [[1, 2]])
    admin = kafka_admin(cluster)
    try:
        result = admin.alter_partition_reassignments(
            {
                tp("no-such-topic", 0): [1],
                tp("fixed", 7): [1],
                tp("fixed", 0): [1, 9],
            }
        )
        assert result == {
            tp("no-such-topic", 0): UnknownTopicOrPartitionError,
            tp("fixed", 7): UnknownTopicOrPartitionError,
            tp("fixed", 0): InvalidReplicationAssignmentError,
        }
        # (kafka-python refuses an empty list itself; the CLI test sends one.)
        assert admin.alter_partition_reassignments({tp("fixed", 0): [2, 2]}) == {
            tp("fixed", 0): InvalidReplicationAssignmentError
        }
        # Unknown names are left out of a listing, as Kafka does.
        assert admin.list_partition_reassignments({"no-such-topic": [0], "fixed": [0, 5]}) == {}
    finally:
        admin.close()
    assert layout(cluster, "fixed") == (1, [1, 2], [1, 2])


def test_cli_reassign_list_and_cancel(cluster: Cluster) -> None:
    source, joins, _ = roles(cluster)
    create(cluster, "by-cli", [[source]])
    fill(cluster, "by-cli", 1)
    base = ("cluster", "reassign", "-b", cluster.brokers[source].bootstrap)
    assert "No reassignment in progress." in run(*base, "--list").stderr.decode()
    target = f"{joins},{source}"
    with Paused(cluster.brokers[joins]):
        started = run(*base, "--topic", "by-cli", "--partition", "0", "--replicas", target)
        ok(started)
        assert f"Reassigning by-cli-0 to {target}" in started.stderr.decode()
        table = ok(run(*base, "--list", "--topic", "by-cli"))
        row = next(line for line in table.splitlines() if line.startswith("by-cli"))
        assert row.split() == ["by-cli", "0", target, str(joins), "-"]
    wait_for(lambda: "No reassignment" in run(*base, "--list").stderr.decode())
    assert layout(cluster, "by-cli")[1] == [joins, source]
    line = error_line(run(*base, "--topic", "by-cli", "--partition", "0", "--cancel"))
    assert line.startswith("error: cannot cancel the reassignment of by-cli-0: ")
    assert "NO_REASSIGNMENT_IN_PROGRESS" in line
    line = error_line(run(*base, "--topic", "by-cli", "--partition", "0", "--replicas", "1,9"))
    assert line.startswith("error: cannot reassign by-cli-0: INVALID_REPLICA_ASSIGNMENT: ")
    assert "broker 9" in line
    line = error_line(run(*base, "--topic", "by-cli", "--partition", "0", "--replicas", ""))
    assert "INVALID_REPLICA_ASSIGNMENT" in line and "empty replica list" in line
    line = error_line(run(*base, "--topic", "nope", "--partition", "0", "--replicas", "1"))
    assert "UNKNOWN_TOPIC_OR_PARTITION" in line


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "give exactly one of --replicas IDS, --list or --cancel"),
        (("--list", "--cancel"), "give exactly one of --replicas IDS, --list or --cancel"),
        (("--replicas", "1,2"), "--replicas needs --topic and --partition"),
        (("--topic", "t", "--partition", "0", "--replicas", "1,x"), "--replicas expects"),
    ],
)
def test_cli_reassign_usage_errors(cluster: Cluster, args: tuple[str, ...], message: str) -> None:
    line = error_line(run("cluster", "reassign", "-b", cluster.bootstrap, *args), exit_code=2)
    assert message in line


def test_cli_reassign_unreachable_broker() -> None:
    address = f"127.0.0.1:{free_port()}"
    line = error_line(run("cluster", "reassign", "--list", "-b", address))
    assert line.startswith(f"error: cannot reach a broker at {address} (connection refused)")
