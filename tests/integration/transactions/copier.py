"""A consume-transform-produce copier, run as its own process so tests can kill -9 it.

``python -m tests.integration.transactions.copier BOOTSTRAP INPUT OUTPUT GROUP TXN_ID
[MAX_BATCH]`` copies every record of INPUT partition p to OUTPUT partition p (value
prefixed with ``copy-``), one transaction per batch of at most MAX_BATCH (500) records,
committing the consumed offsets inside the same transaction
(``send_offsets_to_transaction``) and printing ``committed N`` after each, N the
records consumed up to that commit. It reads with read_committed and starts
from the group's committed offsets, so a restarted copier carries on where the last
committed transaction ended; its ``init_transactions`` fences a killed predecessor.
It exits 0 once it has copied up to the end offsets INPUT had when it started.
Partitions are assigned, not subscribed: a restart does not wait for the dead
predecessor's group session to expire (offsets are committed as a simple consumer).
"""

from __future__ import annotations

import sys
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition


def main() -> int:
    bootstrap, source, target, group, txn_id = sys.argv[1:6]
    max_batch = int(sys.argv[6]) if len(sys.argv) > 6 else 500
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
        }
    )
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "transactional.id": txn_id,
            "linger.ms": 5,
            # Kafka's default, 60 s, as its system tests' copier: a broker that stalls
            # for seconds (a ZooKeeper write on a loaded machine) must not time the
            # transaction out. A killed copier's transaction is aborted by its
            # successor's init_transactions, without waiting for the timeout.
        }
    )
    producer.init_transactions(60)
    metadata = consumer.list_topics(source, timeout=30)
    partitions = sorted(metadata.topics[source].partitions)
    ends = {p: _end_offset(consumer, TopicPartition(source, p)) for p in partitions}
    committed = _committed(consumer, [TopicPartition(source, p) for p in partitions])
    positions = {tp.partition: max(tp.offset, 0) for tp in committed}
    consumer.assign([TopicPartition(source, p, positions[p]) for p in partitions])
    print(f"copier {txn_id}: from {positions} to {ends}", flush=True)
    group_metadata = consumer.consumer_group_metadata()
    while any(positions[p] < ends[p] for p in partitions):
        messages = [m for m in consumer.consume(max_batch, timeout=1.0) if m.error() is None]
        if not messages:
            continue
        try:
            producer.begin_transaction()
            for message in messages:
                producer.produce(
                    target, value=b"copy-" + message.value(), partition=message.partition()
                )
            batch_positions = dict(positions)
            for message in messages:
                batch_positions[message.partition()] = message.offset() + 1
            producer.send_offsets_to_transaction(
                [TopicPartition(source, p, o) for p, o in batch_positions.items()],
                group_metadata,
                60,
            )
            _commit(producer)
            positions = batch_positions
            print(f"copier {txn_id}: committed {sum(positions.values())}", flush=True)
        except KafkaException as exc:
            error: KafkaError = exc.args[0]
            if error.fatal():
                raise
            print(f"copier {txn_id}: aborting after {error}", flush=True)
            if error.txn_requires_abort():
                producer.abort_transaction(60)
            # Go back to what the last committed transaction covers.
            for p in partitions:
                consumer.seek(TopicPartition(source, p, positions[p]))
            time.sleep(0.2)
    print(f"copier {txn_id}: done at {positions}", flush=True)
    consumer.close()
    return 0


def _end_offset(consumer: Consumer, tp: TopicPartition) -> int:
    """The partition's high watermark, asked again while a new leader cannot tell it yet
    (OFFSET_NOT_AVAILABLE just after a broker bounce, KIP-207) or another retriable error."""
    deadline = time.monotonic() + 120
    while True:
        try:
            return int(consumer.get_watermark_offsets(tp, timeout=30)[1])
        except KafkaException as exc:
            code = exc.args[0].code()
            if time.monotonic() > deadline or not (
                exc.args[0].retriable() or code == KafkaError.OFFSET_NOT_AVAILABLE
            ):
                raise
            time.sleep(0.5)


def _committed(consumer: Consumer, wanted: list[TopicPartition]) -> list[TopicPartition]:
    """The group's committed offsets, asked again while the answer is retriable (the
    group's coordinator moving while a broker is down)."""
    deadline = time.monotonic() + 120
    while True:
        try:
            return list(consumer.committed(wanted, timeout=30))
        except KafkaException as exc:
            if not exc.args[0].retriable() and exc.args[0].code() != KafkaError.NOT_COORDINATOR:
                raise
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _commit(producer: Producer) -> None:
    """commit_transaction, retried while librdkafka says the error is retriable (a
    timeout while a broker is down: the outcome is still unknown, retrying finds it)."""
    while True:
        try:
            producer.commit_transaction(60)
            return
        except KafkaException as exc:
            if not exc.args[0].retriable():
                raise


if __name__ == "__main__":
    sys.exit(main())
