"""What the failover tests share: who leads and controls, waiting for the cluster to
settle, and the check that every acknowledged record is there exactly once."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from odradek.protocol import records
from tests.integration.cluster.conftest import Cluster
from tests.robustness.load import Producing, check_acked, read_log

REPLICATED = {"min.insync.replicas": "2"}


def wait_for(check: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except KafkaException:
            pass
        assert time.monotonic() < deadline, f"{what} not met within {timeout:.0f}s"
        time.sleep(0.1)


def live_bootstrap(cluster: Cluster) -> str:
    return ",".join(
        b.bootstrap for b in cluster.brokers.values() if b.process and b.process.poll() is None
    )


def partition_states(bootstrap: str, topic: str) -> dict[int, tuple[int, list[int]]]:
    """(leader, sorted ISR) by partition, as the broker asked sees them: empty while its
    metadata lacks a topic just created (Metadata lists it with no partitions yet)."""
    metadata = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=10)
    return {p.id: (p.leader, sorted(p.isrs)) for p in metadata.topics[topic].partitions.values()}


def controller_id(bootstrap: str) -> int:
    return int(AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10).controller_id)


def fully_replicated(bootstrap: str, topic: str, brokers: list[int]) -> bool:
    states = partition_states(bootstrap, topic)
    return bool(states) and all(
        leader in brokers and isr == sorted(brokers) for leader, isr in states.values()
    )


def watermarks_ready(bootstrap: str, topic: str, partitions: int) -> bool:
    """Every partition answers ListOffsets (a new leader answers OFFSET_NOT_AVAILABLE
    until its high watermark reaches the start of its epoch, KIP-207)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "watermarks"})
    try:
        for p in range(partitions):
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=5)
    except KafkaException:
        return False
    finally:
        consumer.close()
    return True


def check_no_loss(cluster: Cluster, producer: Producing, topic: str, partitions: int) -> None:
    """Stop the producer; every acknowledged record is in the log once, none twice."""
    producer.stop()
    assert not producer.unflushed, f"{producer.unflushed} records never answered"
    assert not producer.duplicate_acks, producer.duplicate_acks[:3]
    bootstrap = live_bootstrap(cluster)
    wait_for(lambda: watermarks_ready(bootstrap, topic, partitions), what="watermarks")
    log = read_log(bootstrap, topic, partitions)
    check = check_acked(dict(producer.acked), log)
    if check.duplicated:
        check.failures.extend(
            batches_holding(cluster, topic, sorted(set(check.duplicate_places))[:6])
        )
    assert check.lost == 0 and check.duplicated == 0, check.failures
    assert check.acknowledged > 0


def batches_holding(cluster: Cluster, topic: str, places: list[tuple[int, int]]) -> list[str]:
    """For a failure message: the batches of every broker's replica that hold these
    (partition, offset) places, with what tells a retry from a re-sent batch (leader
    epoch, producer id and epoch, base sequence)."""
    lines = []
    for broker_id, broker in sorted(cluster.brokers.items()):
        for partition in sorted({partition for partition, _ in places}):
            offsets = [offset for p, offset in places if p == partition]
            for h in replica_headers(broker.data_dir, topic, partition):
                last = h.base_offset + h.last_offset_delta
                if any(h.base_offset <= offset <= last for offset in offsets):
                    lines.append(
                        f"broker {broker_id} {topic}-{partition}: batch {h.base_offset}.."
                        f"{last} leader epoch {h.partition_leader_epoch} producer "
                        f"{h.producer_id} epoch {h.producer_epoch} base sequence "
                        f"{h.base_sequence}"
                    )
    return lines


def replica_headers(data_dir: Path, topic: str, partition: int) -> list[records.BatchHeader]:
    """The header of every batch of one replica, read from its segment files (a stopped
    broker's, so the files are complete)."""
    directory = data_dir / f"{topic}-{partition}"
    content = b"".join(path.read_bytes() for path in sorted(directory.glob("*.log")))
    return list(records.iter_headers(content))


def replica_batches(data_dir: Path, topic: str, partition: int) -> list[tuple[int, int, int, int]]:
    """(base offset, last offset, leader epoch, CRC) of every batch of one replica."""
    return [
        (h.base_offset, h.base_offset + h.last_offset_delta, h.partition_leader_epoch, h.crc)
        for h in replica_headers(data_dir, topic, partition)
    ]
