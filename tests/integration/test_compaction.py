"""Log compaction with real clients: a compacted topic read from the beginning holds the
last value of each live key, tombstoned keys vanish once ``delete.retention.ms`` has
passed, and a broker killed (-9) in the middle of cleanings loses nothing."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from odradek.storage.file_records import FileHandle, iter_headers
from tests.support.broker import BrokerProcess
from tests.support.clients import create_topic

CLEANER = {"log.cleaner.backoff.ms": "100"}
TOPIC_CONFIG = {
    "cleanup.policy": "compact",
    "segment.bytes": "16384",
    "segment.ms": "500",
    "min.cleanable.dirty.ratio": "0.01",
    "delete.retention.ms": "3000",
}


def produce(bootstrap: str, topic: str, pairs: list[tuple[bytes, bytes | None]]) -> None:
    errors: list[str] = []

    def report(err: KafkaError | None, _msg: Any) -> None:
        if err is not None:
            errors.append(str(err))

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "batch.size": 8192})
    for key, value in pairs:
        producer.produce(topic, key=key, value=value, on_delivery=report)
        producer.poll(0)
    assert producer.flush(30) == 0
    assert not errors, errors[:3]


def read_from_beginning(
    bootstrap: str, topic: str, isolation: str = "read_uncommitted"
) -> list[tuple[int, bytes, bytes | None]]:
    """(offset, key, value) of every record of partition 0, up to its end."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "compaction-reader",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": isolation,
        }
    )
    try:
        _low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        consumer.assign([TopicPartition(topic, 0, 0)])
        out: list[tuple[int, bytes, bytes | None]] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error():
                if message.error().code() == KafkaError._PARTITION_EOF:
                    if message.offset() >= high:
                        return out
                    continue
                raise AssertionError(message.error())
            out.append((message.offset(), message.key(), message.value()))
        raise AssertionError(f"did not reach offset {high}; read {len(out)} records")
    finally:
        consumer.close()


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def roll_active_segment(bootstrap: str, topic: str) -> None:
    """Past ``segment.ms`` the next append rolls the segment, making what came before
    cleanable; the marker record goes to a key of its own."""
    time.sleep(0.6)
    produce(bootstrap, topic, [(b"~roll", b"%f" % time.time())])


def updates(keys: int, rounds: int) -> list[tuple[bytes, bytes | None]]:
    return [(b"key-%04d" % k, b"value-%d-%d" % (k, n)) for n in range(rounds) for k in range(keys)]


def test_readers_see_the_last_value_of_each_live_key(
    broker_factory: Callable[..., BrokerProcess],
) -> None:
    broker = broker_factory(CLEANER)
    create_topic(broker.bootstrap, "state", config=TOPIC_CONFIG)
    pairs = updates(200, 25)
    dead = [b"key-%04d" % k for k in range(0, 200, 4)]
    pairs += [(key, None) for key in dead]
    produce(broker.bootstrap, "state", pairs)
    roll_active_segment(broker.bootstrap, "state")
    live = {b"key-%04d" % k: b"value-%d-24" % k for k in range(200) if b"key-%04d" % k not in dead}

    def compacted() -> bool:
        records = [r for r in read_from_beginning(broker.bootstrap, "state") if r[1] != b"~roll"]
        return len(records) == 200

    wait_for(compacted, 30, "every key to be left once")
    records = [r for r in read_from_beginning(broker.bootstrap, "state") if r[1] != b"~roll"]
    assert {key: value for _, key, value in records if value is not None} == live
    # Tombstones are still there, so that readers learn of the deletes...
    assert sorted(key for _, key, value in records if value is None) == dead
    offsets = [offset for offset, _, _ in records]
    assert offsets == sorted(offsets)

    # ... until delete.retention.ms (3 s) has passed: then the keys are gone for good.
    def tombstones_gone() -> bool:
        left = read_from_beginning(broker.bootstrap, "state")
        return not any(value is None for _, _, value in left)

    wait_for(tombstones_gone, 30, "the tombstones to be removed")
    records = [r for r in read_from_beginning(broker.bootstrap, "state") if r[1] != b"~roll"]
    assert {key: value for _, key, value in records} == live


def test_kill_during_cleaning_loses_nothing(
    broker_factory: Callable[..., BrokerProcess], tmp_path: Path
) -> None:
    broker = broker_factory(CLEANER)
    config = dict(TOPIC_CONFIG, **{"segment.bytes": "65536", "delete.retention.ms": "86400000"})
    create_topic(broker.bootstrap, "survivor", config=config)
    rng = random.Random(7)
    latest: dict[bytes, bytes] = {}
    for round_ in range(6):
        pairs: list[tuple[bytes, bytes | None]] = [
            (b"key-%05d" % rng.randrange(3000), b"round-%d-%d-" % (round_, i) + b"x" * 100)
            for i in range(8000)
        ]
        produce(broker.bootstrap, "survivor", pairs)
        latest.update((k, v) for k, v in pairs if v is not None)
        roll_active_segment(broker.bootstrap, "survivor")
        # Kill somewhere in the cleaning that the new dirt sets off.
        time.sleep(rng.uniform(0.05, 1.5))
        broker.kill()
        broker.start()

    def data() -> list[tuple[int, bytes, bytes | None]]:
        return [r for r in read_from_beginning(broker.bootstrap, "survivor") if r[1] != b"~roll"]

    wait_for(lambda: len(data()) == len(latest), 60, "the log to be compacted")
    assert {key: value for _, key, value in data()} == latest
    directory = broker.partition_dir("survivor", 0)
    assert not [p for p in directory.iterdir() if p.suffix in (".cleaned", ".swap")]


def test_consumer_offsets_are_compacted_and_reload_after_restart(
    broker_factory: Callable[..., BrokerProcess],
) -> None:
    """``__consumer_offsets`` is a compacted topic like any other: after many commits the
    cleaner leaves one record per group and partition, and the coordinator, loading the
    compacted partition after a restart, serves the last commits."""
    broker = broker_factory(
        {
            **CLEANER,
            "offsets.topic.num.partitions": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.segment.bytes": "8192",
        }
    )
    create_topic(broker.bootstrap, "input", partitions=3)
    consumer = Consumer(
        {
            "bootstrap.servers": broker.bootstrap,
            "group.id": "committer",
            "enable.auto.commit": False,
        }
    )
    try:
        for n in range(1, 301):
            consumer.commit(
                offsets=[TopicPartition("input", p, n * 10 + p) for p in range(3)],
                asynchronous=False,
            )
    finally:
        consumer.close()
    directory = broker.partition_dir("__consumer_offsets", 0)

    def records_on_disk() -> int:
        count = 0
        for path in directory.glob("*.log"):
            handle = FileHandle.open(str(path), writable=False)
            try:
                count += sum(h.records_count for h in iter_headers(handle, 0, path.stat().st_size))
            finally:
                handle.close()
        return count

    # Commits go on into the active segment; what was rolled shrinks to a few records.
    wait_for(lambda: records_on_disk() < 150, 30, "__consumer_offsets to be compacted")
    broker.restart()
    reader = Consumer(
        {
            "bootstrap.servers": broker.bootstrap,
            "group.id": "committer",
            "enable.auto.commit": False,
        }
    )
    try:
        committed = reader.committed([TopicPartition("input", p) for p in range(3)], timeout=30)
    finally:
        reader.close()
    assert [(tp.partition, tp.offset) for tp in committed] == [(p, 3000 + p) for p in range(3)]


def test_aborted_transactions_vanish_and_committed_ones_compact(
    broker_factory: Callable[..., BrokerProcess],
) -> None:
    """The cleaner drops the records of aborted transactions (and, in time, their
    markers); committed transactional records compact like any other, and both
    isolation levels then read the same, committed, last values."""
    broker = broker_factory(CLEANER)
    create_topic(broker.bootstrap, "txns", config=TOPIC_CONFIG)
    producer = Producer(
        {"bootstrap.servers": broker.bootstrap, "transactional.id": "compactor", "linger.ms": 5}
    )
    producer.init_transactions(30)
    latest: dict[bytes, bytes] = {}
    for n in range(30):
        producer.begin_transaction()
        pairs = [(b"key-%02d" % k, b"txn-%d-%d" % (n, k)) for k in range(20)]
        for key, value in pairs:
            producer.produce("txns", key=key, value=value)
        if n % 3 == 2:
            producer.abort_transaction(30)
        else:
            producer.commit_transaction(30)
            latest.update(pairs)
    roll_active_segment(broker.bootstrap, "txns")

    def read(isolation: str) -> list[tuple[int, bytes, bytes | None]]:
        return [
            r for r in read_from_beginning(broker.bootstrap, "txns", isolation) if r[1] != b"~roll"
        ]

    wait_for(lambda: len(read("read_uncommitted")) == 20, 30, "the aborted records to go")
    for isolation in ("read_committed", "read_uncommitted"):
        assert {key: value for _, key, value in read(isolation)} == latest
