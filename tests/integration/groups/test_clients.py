"""Groups of kafka-python, aiokafka and kafkajs consumers: every record once, then committed.

Each client runs two members of one group. Records are produced only once the group has
settled (each member owns its share), so nothing is read twice across a rebalance; the
test then checks that every acknowledged record was consumed exactly once and that the
group's committed offsets are the log end offsets.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer
from confluent_kafka import ConsumerGroupTopicPartitions
from kafka import KafkaConsumer

from tests.integration.groups.members import HEARTBEAT_MS, SESSION_TIMEOUT_MS, name
from tests.support.broker import BrokerProcess
from tests.support.clients import admin, create_topic, produce_acked

PARTITIONS = 4
COUNT = 80
KAFKAJS_DIR = Path(__file__).resolve().parents[2] / "compat" / "kafkajs"


def committed_offsets(bootstrap: str, group: str) -> dict[int, int]:
    client = admin(bootstrap)
    request = ConsumerGroupTopicPartitions(group)
    fetched = client.list_consumer_group_offsets([request])[group].result(timeout=30)
    return {tp.partition: tp.offset for tp in fetched.topic_partitions}


def end_offsets(acked: list[Any]) -> dict[int, int]:
    ends: dict[int, int] = {}
    for record in acked:
        ends[record.partition] = max(ends.get(record.partition, 0), record.offset + 1)
    return ends


def assert_exactly_once(consumed: list[tuple[int, int]], acked: list[Any]) -> None:
    counts = Counter(consumed)
    twice = [position for position, n in counts.items() if n > 1]
    assert not twice, f"read more than once: {twice[:5]}"
    assert set(counts) == {(r.partition, r.offset) for r in acked}


def settled(assignments: list[set[int]]) -> bool:
    owned = [p for assignment in assignments for p in assignment]
    return all(assignments) and sorted(owned) == list(range(PARTITIONS))


def test_kafka_python_group(broker: BrokerProcess) -> None:
    topic, group = name("kpy"), name("kpy-g")
    create_topic(broker.bootstrap, topic, PARTITIONS)
    # One thread per consumer, each always inside poll(): kafka-python 3.0.12 drops a
    # JoinGroup/SyncGroup round that completes between two poll() calls and joins again,
    # and as leader that rejoin starts another rebalance (as it would on Kafka).
    lock = threading.Lock()
    consumed: list[tuple[int, int]] = []
    assignments: dict[int, set[int]] = {}
    stop = threading.Event()

    def member(i: int) -> None:
        consumer = KafkaConsumer(
            bootstrap_servers=broker.bootstrap,
            group_id=group,
            client_id=f"kpy-{i}",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            session_timeout_ms=SESSION_TIMEOUT_MS,
            heartbeat_interval_ms=HEARTBEAT_MS,
        )
        try:
            consumer.subscribe([topic])
            while not stop.is_set():
                batches = consumer.poll(timeout_ms=200)
                with lock:
                    for records in batches.values():
                        consumed.extend((r.partition, r.offset) for r in records)
                    assignments[i] = {tp.partition for tp in consumer.assignment()}
            consumer.commit()
        finally:
            consumer.close()

    def wait(condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + 30
        while True:
            with lock:
                if condition():
                    return
            assert time.monotonic() < deadline, f"kafka-python: {what}"
            time.sleep(0.02)

    with ThreadPoolExecutor(2) as pool:
        workers = [pool.submit(member, i) for i in range(2)]
        try:
            wait(lambda: len(assignments) == 2 and settled(list(assignments.values())), "settle")
            acked = produce_acked(broker.bootstrap, topic, COUNT, partitions=PARTITIONS)
            wait(lambda: len(consumed) >= COUNT, f"consume {COUNT}")
        finally:
            stop.set()
            for worker in workers:
                worker.result(timeout=30)

    assert_exactly_once(consumed, acked)
    assert committed_offsets(broker.bootstrap, group) == end_offsets(acked)


def test_aiokafka_group(broker: BrokerProcess) -> None:
    topic, group = name("aio"), name("aio-g")
    create_topic(broker.bootstrap, topic, PARTITIONS)

    async def run() -> tuple[list[tuple[int, int]], list[Any]]:
        consumers = [
            AIOKafkaConsumer(
                topic,
                bootstrap_servers=broker.bootstrap,
                group_id=group,
                client_id=f"aio-{i}",
                auto_offset_reset="earliest",
                enable_auto_commit=False,
                session_timeout_ms=SESSION_TIMEOUT_MS,
                heartbeat_interval_ms=HEARTBEAT_MS,
            )
            for i in range(2)
        ]
        consumed: list[tuple[int, int]] = []
        try:
            for consumer in consumers:
                await consumer.start()

            async def poll_all() -> None:
                batches = await asyncio.gather(*(c.getmany(timeout_ms=50) for c in consumers))
                for batch in batches:
                    for records in batch.values():
                        consumed.extend((r.partition, r.offset) for r in records)

            deadline = time.monotonic() + 30
            while not settled([{tp.partition for tp in c.assignment()} for c in consumers]):
                assert time.monotonic() < deadline, "aiokafka group did not settle"
                await poll_all()
            acked = await asyncio.to_thread(
                produce_acked, broker.bootstrap, topic, COUNT, partitions=PARTITIONS
            )
            deadline = time.monotonic() + 30
            while len(consumed) < COUNT:
                assert time.monotonic() < deadline, f"consumed {len(consumed)} of {COUNT}"
                await poll_all()
            for consumer in consumers:
                await consumer.commit()
        finally:
            for consumer in consumers:
                await consumer.stop()
        return consumed, acked

    consumed, acked = asyncio.run(run())
    assert_exactly_once(consumed, acked)
    assert committed_offsets(broker.bootstrap, group) == end_offsets(acked)


def test_kafkajs_group(broker: BrokerProcess) -> None:
    assert (KAFKAJS_DIR / "node_modules" / "kafkajs").is_dir(), (
        f"run `npm ci` in {KAFKAJS_DIR} (./scripts/test does)"
    )
    topic, group = name("kjs"), name("kjs-g")
    create_topic(broker.bootstrap, topic, PARTITIONS)
    job = {
        "bootstrap": broker.bootstrap,
        "topic": topic,
        "partitions": PARTITIONS,
        "group": group,
        "consumers": 2,
        "count": COUNT,
    }
    completed = subprocess.run(
        ["node", "group.js"],
        cwd=KAFKAJS_DIR,
        input=json.dumps(job).encode(),
        capture_output=True,
        timeout=90,
        env=dict(os.environ, KAFKAJS_NO_PARTITIONER_WARNING="1"),
        check=False,
    )
    assert completed.returncode == 0, completed.stderr.decode(errors="replace")
    result = json.loads(completed.stdout)

    consumed = [(row["partition"], row["offset"]) for row in result["consumed"]]
    assert len(consumed) == COUNT and len(set(consumed)) == COUNT, "a record was read twice"
    assert {row["member"] for row in result["consumed"]} == {0, 1}  # both took a share
    # kafkajs produced them round-robin over the partitions, offsets from 0.
    per_partition = COUNT // PARTITIONS
    assert set(consumed) == {(p, o) for p in range(PARTITIONS) for o in range(per_partition)}
    expected = {p: per_partition for p in range(PARTITIONS)}
    assert {row["partition"]: row["offset"] for row in result["committed"]} == expected
    assert committed_offsets(broker.bootstrap, group) == expected
