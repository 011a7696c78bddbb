"""Log dirs as an administrator sees them (issue #8): DescribeLogDirs and
AlterReplicaLogDirs through kafka-python's admin client against a broker with several
``log.dirs``, a replica moved while a producer keeps producing, a broker killed mid-move,
and a log dir unusable at start-up.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from kafka import KafkaAdminClient
from kafka.errors import (
    KafkaStorageError,
    LogDirNotFoundError,
    NoError,
    UnknownTopicOrPartitionError,
)

from odradek.protocol.errors import ErrorCode
from tests.integration.test_compaction import (
    CLEANER,
    TOPIC_CONFIG,
    produce,
    read_from_beginning,
    roll_active_segment,
    updates,
    wait_for,
)
from tests.support.broker import BrokerProcess
from tests.support.clients import Acked, consume_all, create_topic, produce_acked

BrokerFactory = Callable[..., BrokerProcess]
SMALL_BATCHES = {"acks": "all", "batch.size": 16384}
"""Batches well below the 64 KiB segments these tests use to have several segments."""


def _dirs(tmp_path: Path, count: int) -> list[Path]:
    return [tmp_path / f"dir{i}" for i in range(count)]


@contextmanager
def _admin(broker: BrokerProcess) -> Iterator[KafkaAdminClient]:
    client = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=10_000)
    try:
        yield client
    finally:
        client.close()


def _describe(admin: KafkaAdminClient, topics: Any = None) -> dict[str, dict[str, Any]]:
    """log dir -> its result, from the one broker."""
    (answer,) = admin.describe_log_dirs(topic_partitions=topics)
    return {result["log_dir"]: result for result in answer["log_dirs"]}


def _node(admin: KafkaAdminClient) -> int:
    (answer,) = admin.describe_log_dirs()
    return int(answer["broker"])


def _partitions(result: dict[str, Any]) -> dict[tuple[str, int], dict[str, Any]]:
    return {
        (topic["name"], partition["partition_index"]): partition
        for topic in result["topics"]
        for partition in topic["partitions"]
    }


def _where(admin: KafkaAdminClient, topic: str, partition: int) -> list[tuple[str, bool]]:
    """(log dir, is future) of every log of the partition."""
    return sorted(
        (log_dir, entry["is_future_key"])
        for log_dir, result in _describe(admin).items()
        for key, entry in _partitions(result).items()
        if key == (topic, partition)
    )


def _read_partition(bootstrap: str, topic: str, partition: int, expected: int) -> list[Acked]:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "log-dirs", "enable.auto.commit": False}
    )
    try:
        consumer.assign([TopicPartition(topic, partition, 0)])
        got: list[Acked] = []
        deadline = time.monotonic() + 15
        while len(got) < expected and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is not None and not message.error():
                got.append(Acked(partition, message.offset(), message.key(), message.value()))
        return got
    finally:
        consumer.close()


def test_describe_log_dirs_lists_each_dir_its_partitions_and_volume(
    broker_factory: BrokerFactory, tmp_path: Path
) -> None:
    dirs = _dirs(tmp_path, 3)
    broker = broker_factory({"log.dirs": ",".join(map(str, dirs))})
    create_topic(broker.bootstrap, "described", partitions=3)
    create_topic(broker.bootstrap, "other", partitions=1)
    produce_acked(broker.bootstrap, "described", 300, partitions=3)
    with _admin(broker) as admin:
        results = _describe(admin)
        assert sorted(results) == sorted(str(d) for d in dirs)
        placed: dict[tuple[str, int], str] = {}
        for log_dir, result in results.items():
            assert result["error_code"] == 0
            assert result["total_bytes"] > result["usable_bytes"] > 0
            for key, entry in _partitions(result).items():
                placed[key] = log_dir
                assert entry["offset_lag"] == 0 and entry["is_future_key"] is False
                expected = sum(
                    f.stat().st_size for f in Path(log_dir, f"{key[0]}-{key[1]}").glob("*.log")
                )
                assert entry["partition_size"] == expected
                if key[0] == "described":
                    assert expected > 0
        # New partitions go to the dir with the fewest: one of "described" in each.
        assert sorted(placed[("described", p)] for p in range(3)) == sorted(map(str, dirs))
        assert set(placed) == {("described", 0), ("described", 1), ("described", 2), ("other", 0)}

        filtered = _describe(admin, {"described": [1]})
        listed = [key for result in filtered.values() for key in _partitions(result)]
        assert listed == [("described", 1)]


def test_a_replica_moves_to_another_dir_while_a_producer_keeps_producing(
    broker_factory: BrokerFactory, tmp_path: Path
) -> None:
    source, target = _dirs(tmp_path, 2)
    broker = broker_factory(
        {
            "log.dirs": f"{source},{target}",
            "log.segment.bytes": "65536",
            # About a second of copying, with appends going on all along.
            "replica.alter.log.dirs.io.max.bytes.per.second": "100000",
        }
    )
    create_topic(broker.bootstrap, "moving", partitions=2)
    with _admin(broker) as admin:
        (here,) = _where(admin, "moving", 0)
        origin = Path(here[0])
        destination = target if origin == source else source
        acked = produce_acked(broker.bootstrap, "moving", 3000, partitions=1, **SMALL_BATCHES)

        stop = threading.Event()
        more: list[Acked] = []
        errors: list[str] = []

        def keep_producing() -> None:
            producer = Producer(
                {
                    "bootstrap.servers": broker.bootstrap,
                    "linger.ms": 1,
                    # Its sequence numbers go on across the swap: the moved log keeps
                    # the producer state (else OUT_OF_ORDER_SEQUENCE).
                    "enable.idempotence": True,
                    **SMALL_BATCHES,
                }
            )

            def report(err: Any, msg: Any) -> None:
                if err is not None:
                    errors.append(str(err))
                else:
                    more.append(Acked(msg.partition(), msg.offset(), msg.key(), msg.value()))

            i = 0
            while not stop.is_set():
                producer.produce(
                    "moving",
                    partition=0,
                    key=b"m%d" % i,
                    value=b"during-%d" % i,
                    on_delivery=report,
                )
                producer.poll(0.001)
                i += 1
            assert producer.flush(30) == 0

        thread = threading.Thread(target=keep_producing)
        thread.start()
        try:
            time.sleep(0.3)
            answer = admin.alter_replica_log_dirs({("moving", 0, _node(admin)): str(destination)})
            assert list(answer.values()) == [NoError]
            assert (str(destination), True) in _where(admin, "moving", 0)  # under way
            deadline = time.monotonic() + 30
            while _where(admin, "moving", 0) != [(str(destination), False)]:
                assert time.monotonic() < deadline, _where(admin, "moving", 0)
                time.sleep(0.05)
            time.sleep(0.3)  # appends to the moved log
        finally:
            stop.set()
            thread.join(60)
    assert not errors, errors[:3]
    assert len(more) > 100
    everything = sorted(acked + more)
    read = consume_all(broker.bootstrap, "moving", 1, expected=len(everything))
    assert read == everything
    assert not (origin / "moving-0").exists()
    assert list((destination / "moving-0").glob("*.log"))
    assert len(list((destination / "moving-0").glob("*.log"))) >= 2  # rolled
    assert not [
        p for d in (source, target) for p in d.iterdir() if p.name.endswith(("-future", "-delete"))
    ]
    # The moved log is the one a restart loads, with everything in it.
    assert broker.restart()
    assert consume_all(broker.bootstrap, "moving", 1, expected=len(everything)) == everything


def test_kill_during_a_move_loses_nothing_and_the_move_completes_after_restart(
    broker_factory: BrokerFactory, tmp_path: Path
) -> None:
    source, target = _dirs(tmp_path, 2)
    broker = broker_factory(
        {
            "log.dirs": f"{source},{target}",
            "log.segment.bytes": "65536",
            "replica.alter.log.dirs.io.max.bytes.per.second": "30000",
        }
    )
    create_topic(broker.bootstrap, "killed", partitions=1)
    acked = produce_acked(broker.bootstrap, "killed", 4000, **SMALL_BATCHES)
    with _admin(broker) as admin:
        ((origin, _),) = _where(admin, "killed", 0)
        destination = target if Path(origin) == source else source
        answer = admin.alter_replica_log_dirs({("killed", 0, _node(admin)): str(destination)})
        assert list(answer.values()) == [NoError]
        time.sleep(0.5)
        assert _where(admin, "killed", 0) == sorted([(origin, False), (str(destination), True)])
        lag = _partitions(_describe(admin)[str(destination)])[("killed", 0)]["offset_lag"]
        assert lag > 0
    broker.kill()
    assert [p.name for p in destination.iterdir() if p.name.endswith("-future")]
    broker.start()
    assert consume_all(broker.bootstrap, "killed", 1, expected=len(acked)) == acked
    with _admin(broker) as admin:
        deadline = time.monotonic() + 30
        while _where(admin, "killed", 0) != [(str(destination), False)]:
            assert time.monotonic() < deadline, _where(admin, "killed", 0)
            time.sleep(0.1)
    assert consume_all(broker.bootstrap, "killed", 1, expected=len(acked)) == acked


def test_a_log_dir_unusable_at_start_up_is_offline_and_the_broker_serves_the_others(
    broker_factory: BrokerFactory, tmp_path: Path
) -> None:
    first, second = _dirs(tmp_path, 2)
    broker = broker_factory({"log.dirs": f"{first},{second}"})
    create_topic(broker.bootstrap, "spread", partitions=2)
    acked = produce_acked(broker.bootstrap, "spread", 200, partitions=2, acks="all")
    assert broker.stop() == 0
    # The second disk is gone: a regular file where the dir was.
    lost = tmp_path / "lost-disk"
    shutil.move(second, lost)
    second.write_bytes(b"not a directory")
    broker.start()
    with _admin(broker) as admin:
        results = _describe(admin)
        assert results[str(second)]["error_code"] == ErrorCode.kafka_storage_error
        assert results[str(second)]["topics"] == []
        assert results[str(first)]["error_code"] == 0
        ((topic, index),) = _partitions(results[str(first)])
        assert topic == "spread"
        # A move to the offline dir: KAFKA_STORAGE_ERROR; to a dir not configured:
        # LOG_DIR_NOT_FOUND; of a partition that does not exist: UNKNOWN_TOPIC_OR_PARTITION.
        answer = admin.alter_replica_log_dirs(
            {
                ("spread", index, _node(admin)): str(second),
                ("spread", 1 - index, _node(admin)): str(first),
                ("spread", 7, _node(admin)): str(tmp_path / "elsewhere"),
            }
        )
        assert {key.partition: error for key, error in answer.items()} == {
            index: KafkaStorageError,
            1 - index: KafkaStorageError,  # offline partition
            7: LogDirNotFoundError,
        }
    served = [a for a in acked if a.partition == index]
    assert _read_partition(broker.bootstrap, "spread", index, len(served)) == served
    # The partition of the lost dir is offline here, not made anew in the live dir.
    assert not (first / f"spread-{1 - index}").exists()
    create_topic(broker.bootstrap, "fresh", partitions=2)
    assert len(produce_acked(broker.bootstrap, "fresh", 20, partitions=2)) == 20
    assert broker.stop() == 0
    # The disk comes back: everything is served again.
    second.unlink()
    shutil.move(lost, second)
    broker.start()
    assert consume_all(broker.bootstrap, "spread", 2, expected=len(acked)) == acked


def test_a_move_asked_before_the_partition_exists_places_it_when_created(
    broker_factory: BrokerFactory, tmp_path: Path
) -> None:
    first, second = _dirs(tmp_path, 2)
    broker = broker_factory({"log.dirs": f"{first},{second}"})
    with _admin(broker) as admin:
        answer = admin.alter_replica_log_dirs(
            {("later", 0, _node(admin)): str(second), ("later", 1, _node(admin)): str(second)}
        )
        assert set(answer.values()) == {UnknownTopicOrPartitionError}
        create_topic(broker.bootstrap, "later", partitions=2)
        assert _where(admin, "later", 0) == [(str(second), False)]
        assert _where(admin, "later", 1) == [(str(second), False)]
        # A move to where the replica is already: nothing to do.
        answer = admin.alter_replica_log_dirs({("later", 0, _node(admin)): str(second)})
        assert list(answer.values()) == [NoError]
        assert _where(admin, "later", 0) == [(str(second), False)]
    assert os.path.isdir(second / "later-0")


def test_a_broker_whose_first_log_dir_is_unusable_does_not_start(tmp_path: Path) -> None:
    """The first log dir holds a single node's cluster metadata (as KRaft's metadata log
    dir, whose failure stops Kafka)."""
    first, second = _dirs(tmp_path, 2)
    first.write_bytes(b"not a directory")
    broker = BrokerProcess(tmp_path / "data", {"log.dirs": f"{first},{second}"})
    with pytest.raises(RuntimeError, match="holds this node's cluster metadata"):
        broker.start()


def test_a_compacted_log_moves_while_the_cleaner_cleans_it(
    broker_factory: BrokerFactory, tmp_path: Path
) -> None:
    """The cleaner may swap segments of the log being copied, or finish a cleaning of
    the log that was swapped away: neither breaks the move nor the broker, and the moved
    log is compacted to the last value of each key."""
    source, target = _dirs(tmp_path, 2)
    broker = broker_factory(
        {
            **CLEANER,
            "log.dirs": f"{source},{target}",
            # Slow enough (a copy of about 6 s) that a cleaning lands inside it even
            # when a loaded machine delays the cleaner.
            "replica.alter.log.dirs.io.max.bytes.per.second": "25000",
        }
    )
    create_topic(broker.bootstrap, "state", config=TOPIC_CONFIG)
    produce(broker.bootstrap, "state", updates(200, 25))
    wait_for(lambda: "cleaned state-0" in broker.log(), 10, "a first cleaning")
    with _admin(broker) as admin:
        ((origin, _),) = _where(admin, "state", 0)
        destination = str(target) if Path(origin) == source else str(source)
        answer = admin.alter_replica_log_dirs({("state", 0, _node(admin)): destination})
        assert list(answer.values()) == [NoError]
        # Segments roll and are cleaned while the copy goes on.
        produce(broker.bootstrap, "state", updates(200, 25))
        produce(broker.bootstrap, "state", updates(200, 2))  # rounds 0 and 1 last
        wait_for(lambda: _where(admin, "state", 0) == [(destination, False)], 30, "the move")
    during = broker.log().split("moving state-0", 1)[1].split("moved state-0", 1)[0]
    assert "cleaned state-0" in during
    roll_active_segment(broker.bootstrap, "state")
    last = {b"key-%04d" % k: b"value-%d-1" % k for k in range(200)}

    def compacted() -> bool:
        records = [r for r in read_from_beginning(broker.bootstrap, "state") if r[1] != b"~roll"]
        return len(records) == 200

    wait_for(compacted, 30, "every key to be left once")
    records = read_from_beginning(broker.bootstrap, "state")
    assert {key: value for _, key, value in records if key != b"~roll"} == last
    assert "ERROR" not in broker.log() and "Traceback" not in broker.log()
