"""kcat (Debian's, on librdkafka 2.0.2) against a real broker: metadata, produce, consume.

kcat prints records as text, so these records are printable. With ``-Z`` kcat prints
null (and empty) keys and values as ``NULL``; ``%K``/``%S`` (lengths, -1 for null) tell
them apart.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Sequence

import pytest

from tests.integration.compat import ck
from tests.integration.compat.common import (
    BASE_TIMESTAMP,
    CODECS,
    Outgoing,
    Rec,
    assert_stored_with,
    by_position,
    topic_name,
)
from tests.support.broker import BrokerProcess

FORMAT = "%p|%o|%k|%s|%h|%T|%K|%S\\n"


def kcat(broker: BrokerProcess, *args: str, stdin: bytes | None = None) -> str:
    result = subprocess.run(
        ["kcat", "-b", broker.bootstrap, *args],
        input=stdin,
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return result.stdout.decode()


def consume_lines(broker: BrokerProcess, topic: str, *args: str) -> list[str]:
    """Every record from the beginning, kcat's output split per line, per partition."""
    out = kcat(broker, "-C", "-t", topic, "-o", "beginning", "-e", "-Z", "-f", FORMAT, *args)
    lines = out.splitlines()
    # Partitions interleave in kcat's output; within one, offsets must ascend.
    per_partition: dict[str, list[int]] = {}
    for line in lines:
        partition, offset = line.split("|")[:2]
        per_partition.setdefault(partition, []).append(int(offset))
    for partition, offsets in per_partition.items():
        assert offsets == sorted(offsets), f"partition {partition} out of order: {offsets}"
    return sorted(lines, key=lambda line: tuple(int(f) for f in line.split("|")[:2]))


def formatted(rec: Rec) -> str:
    def text(data: bytes | None) -> str:
        return data.decode() if data else "NULL"

    def length(data: bytes | None) -> int:
        return -1 if data is None else len(data)

    headers = ",".join(f"{name}={text(value)}" for name, value in rec.headers)
    return (
        f"{rec.partition}|{rec.offset}|{text(rec.key)}|{text(rec.value)}|{headers}|"
        f"{rec.timestamp}|{length(rec.key)}|{length(rec.value)}"
    )


def printable(count: int, partitions: int) -> list[Outgoing]:
    records = []
    for i in range(count):
        key = None if i % 4 == 1 else f"key-{i}".encode()
        value = None if i % 5 == 2 else f"value {i}: printable".encode()
        headers: tuple[tuple[str, bytes | None], ...] = ()
        if i % 3 == 1:
            headers = (("dup", b"a"), ("dup", b"b"), ("null", None))
        records.append(Outgoing(i % partitions, key, value, headers, BASE_TIMESTAMP + i))
    return records


def test_metadata_listing(broker: BrokerProcess) -> None:
    topic = topic_name("kcat-meta")
    ck.create_topic(broker.bootstrap, topic, partitions=3)
    broker_name = f"{broker.bootstrap}/1"
    assert kcat(broker, "-L", "-t", topic).splitlines() == [
        f"Metadata for {topic} (from broker 1: {broker_name}):",
        " 1 brokers:",
        f"  broker 1 at {broker.bootstrap} (controller)",
        " 1 topics:",
        f'  topic "{topic}" with 3 partitions:',
        "    partition 0, leader 1, replicas: 1, isrs: 1",
        "    partition 1, leader 1, replicas: 1, isrs: 1",
        "    partition 2, leader 1, replicas: 1, isrs: 1",
    ]
    everything = kcat(broker, "-L")
    assert f'  topic "{topic}" with 3 partitions:' in everything.splitlines()


@pytest.mark.parametrize("codec", CODECS)
def test_produce_keys_headers_with_each_codec(broker: BrokerProcess, codec: str) -> None:
    topic = topic_name(f"kcat-{codec}")
    ck.create_topic(broker.bootstrap, topic, partitions=2)
    lines = [b"k1:v1", b"nokey", b":emptykey", b"k4:", b"k5:has:colon"] * 8
    headers = ("-H", "h1=a", "-H", "h1=b", "-H", "h2=")
    before = int(time.time() * 1000)
    for partition in (0, 1):
        data = b"\n".join(lines) + b"\n"
        kcat(
            broker,
            "-P",
            "-t",
            topic,
            "-p",
            str(partition),
            "-K:",
            "-Z",
            "-z",
            codec,
            *headers,
            stdin=data,
        )
    after = int(time.time() * 1000)

    got = consume_lines(broker, topic)
    fields = [line.split("|") for line in got]
    timestamps = {int(f[5]) for f in fields}
    assert all(before <= ts <= after for ts in timestamps), (before, timestamps, after)
    shapes = [
        "k1|v1|2|2",
        "NULL|nokey|-1|5",
        "NULL|emptykey|-1|8",
        "k4|NULL|2|-1",
        "k5|has:colon|2|9",
    ]
    expected = [
        f"{partition}|{offset}|{shapes[offset % 5]}"
        for partition in (0, 1)
        for offset in range(len(lines))
    ]
    without_ts = [f"{f[0]}|{f[1]}|{f[2]}|{f[3]}|{f[6]}|{f[7]}" for f in fields]
    assert without_ts == expected
    assert {f[4] for f in fields} == {"h1=a,h1=b,h2="}
    if codec != "lz4":
        assert_stored_with(broker.bootstrap, topic, 2, codec)


def test_produce_lz4_is_compressed(broker: BrokerProcess) -> None:
    topic = topic_name("kcat-lz4")
    ck.create_topic(broker.bootstrap, topic)
    kcat(broker, "-P", "-t", topic, "-p", "0", "-z", "lz4", stdin=b"same line\n" * 50)
    assert_stored_with(broker.bootstrap, topic, 1, "lz4")


@pytest.mark.parametrize("codec", ["none", "zstd"])
def test_consume_exactly_what_librdkafka_acknowledged(broker: BrokerProcess, codec: str) -> None:
    topic = topic_name(f"kcat-read-{codec}")
    ck.create_topic(broker.bootstrap, topic, partitions=3)
    acked = ck.produce(broker.bootstrap, topic, printable(60, 3), **{"compression.type": codec})
    assert consume_lines(broker, topic) == [formatted(rec) for rec in by_position(acked)]


def test_offsets_by_timestamp_and_start_positions(broker: BrokerProcess) -> None:
    topic = topic_name("kcat-offsets")
    ck.create_topic(broker.bootstrap, topic)
    acked: Sequence[Rec] = by_position(
        ck.produce(broker.bootstrap, topic, printable(30, 1), **{"compression.type": "gzip"})
    )
    # Record i has timestamp BASE + i, offset i.
    query = kcat(broker, "-Q", "-t", f"{topic}:0:{BASE_TIMESTAMP + 17}")
    assert query.strip() == f"{topic} [0] offset 17"

    from_time = consume_lines(broker, topic, "-o", f"s@{BASE_TIMESTAMP + 25}")
    # -o s@ replaces -o beginning (kcat keeps the last -o).
    assert from_time == [formatted(rec) for rec in acked[25:]]
    last_three = consume_lines(broker, topic, "-o", "-3")
    assert last_three == [formatted(rec) for rec in acked[-3:]]
    from_offset = consume_lines(broker, topic, "-o", "11", "-c", "4")
    assert from_offset == [formatted(rec) for rec in acked[11:15]]
