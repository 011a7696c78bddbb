"""``odradek produce`` then ``odradek consume``: what goes in comes back out, exactly."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from typing import Any

import pytest

from tests.integration.cli.runner import (
    error_line,
    odradek_executable,
    ok,
    peer_gap,
    run,
    topic_name,
)

FULL = "{partition}|{offset}|{key}|{value}|{headers}"


def create(broker: Any, topic: str, partitions: int = 1) -> None:
    ok(run("topics", "create", topic, "--partitions", str(partitions), "-b", broker.bootstrap))


def produce(broker: Any, topic: str, data: bytes, *args: str) -> str:
    """Produce ``data`` (stdin lines); returns the stderr summary."""
    result = run("produce", topic, *args, "-b", broker.bootstrap, stdin=data)
    ok(result)
    return result.stderr.decode().strip()


def consume(broker: Any, topic: str, *args: str) -> list[str]:
    return ok(run("consume", topic, *args, "-b", broker.bootstrap)).splitlines()


def test_issue_example(broker: Any) -> None:
    topic = topic_name("orders")
    create(broker, topic, partitions=6)

    summary = produce(broker, topic, b"k1:hello\nk2:world\n", "--key-separator", ":")
    assert summary == f'2 records delivered to "{topic}"'

    lines = consume(broker, topic, "--from-beginning", "-n", "2", "--format", "{key}={value}")
    assert sorted(lines) == ["k1=hello", "k2=world"]


def test_keys_headers_and_partition_come_back_exactly(broker: Any) -> None:
    topic = topic_name("exact")
    create(broker, topic, partitions=3)
    data = b"k1|first\nk2|second with spaces\n|empty key\nk4|\n"
    headers = ("--header", "trace=abc", "--header", "expr=a=b")
    produce(broker, topic, data, "--key-separator", "|", "--partition", "2", *headers)

    lines = consume(broker, topic, "--from-beginning", "-n", "4", "--format", FULL)
    assert lines == [
        "2|0|k1|first|trace=abc,expr=a=b",
        "2|1|k2|second with spaces|trace=abc,expr=a=b",
        "2|2||empty key|trace=abc,expr=a=b",
        "2|3|k4||trace=abc,expr=a=b",
    ]


def test_lines_without_key_separator_have_null_keys_and_keep_their_bytes(broker: Any) -> None:
    topic = topic_name("plain")
    create(broker, topic)
    produce(broker, topic, b"one\r\n\ntab\there\n\xff\xfeend")  # last line unterminated

    fmt = "{offset}:{key}:{value}:{headers}:{topic}"
    lines = consume(broker, topic, "--from-beginning", "-n", "4", "--format", fmt)
    assert lines == [
        f"0:null:one::{topic}",
        f"1:null:::{topic}",
        f"2:null:tab\there::{topic}",
        f"3:null:\ufffd\ufffdend::{topic}",
    ]


def test_max_messages_stops_after_n(broker: Any) -> None:
    topic = topic_name("bounded")
    create(broker, topic)
    produce(broker, topic, b"".join(b"r%d\n" % i for i in range(5)))

    started = time.monotonic()
    result = run("consume", topic, "--from-beginning", "-n", "2", "-b", broker.bootstrap)
    assert ok(result).splitlines() == ["r0", "r1"]
    assert "Processed a total of 2 messages" in result.stderr.decode()
    assert time.monotonic() - started < 30


def test_timeout_ms_stops_when_idle(broker: Any) -> None:
    topic = topic_name("idle")
    create(broker, topic)
    produce(broker, topic, b"a\nb\n")

    assert consume(broker, topic, "--from-beginning", "--timeout-ms", "1500") == ["a", "b"]


@peer_gap("tansu", "ListOffsets latest (where a consumer starts) counts batches, not records")
def test_without_from_beginning_only_new_records_are_read(broker: Any) -> None:
    topic = topic_name("latest")
    create(broker, topic)
    produce(broker, topic, b"old-1\nold-2\n")

    assert consume(broker, topic, "--timeout-ms", "1500") == []

    args = [odradek_executable(), "consume", topic, "-n", "1", "-b", broker.bootstrap]
    with subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as consumer:
        try:
            # The consumer starts at the end at some moment we cannot see; keep writing
            # new records until it has printed one.
            for i in range(60):
                produce(broker, topic, b"new-%d\n" % i)
                try:
                    out, err = consumer.communicate(timeout=0.5)
                    break
                except subprocess.TimeoutExpired:
                    continue
            else:
                pytest.fail("consumer printed nothing while new records were produced")
        finally:
            if consumer.poll() is None:
                consumer.kill()
    assert consumer.returncode == 0, err
    assert out.decode().startswith("new-"), out
    assert len(out.decode().splitlines()) == 1


def test_offset_in_partition(broker: Any) -> None:
    topic = topic_name("offset")
    create(broker, topic, partitions=2)
    produce(broker, topic, b"p1-a\np1-b\np1-c\n", "--partition", "1")

    lines = consume(broker, topic, "-p", "1", "--offset", "1", "-n", "2", "--format", FULL)
    assert lines == ["1|1|null|p1-b|", "1|2|null|p1-c|"]


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_compression_round_trip(broker: Any, codec: str) -> None:
    topic = topic_name(f"codec-{codec}")
    create(broker, topic)
    data = b"".join(b"%s record %d %s\n" % (codec.encode(), i, b"x" * 100) for i in range(50))
    produce(broker, topic, data, "--compression", codec, "--acks", "all")

    lines = consume(broker, topic, "--from-beginning", "-n", "50")
    assert lines == data.decode().splitlines()


def test_group_consumer_commits_its_position(broker: Any) -> None:
    topic = topic_name("grouped")
    group = topic_name("group")
    create(broker, topic, partitions=2)
    produce(broker, topic, b"g1\ng2\ng3\n")
    # A short session timeout keeps group joins quick on brokers that wait for members.
    fast = ("--property", "session.timeout.ms=6000")

    first = consume(broker, topic, "--group", group, "--from-beginning", "-n", "3", *fast)
    assert sorted(first) == ["g1", "g2", "g3"]

    again = consume(
        broker, topic, "--group", group, "--from-beginning", "--timeout-ms", "2000", *fast
    )
    assert again == []


def test_line_without_separator_fails_with_its_number_after_earlier_lines(broker: Any) -> None:
    topic = topic_name("badline")
    create(broker, topic)

    result = run(
        "produce", topic, "--key-separator", ":", "-b", broker.bootstrap,
        stdin=b"k1:v1\nk2:v2\nno separator here\nk4:v4\n",
    )  # fmt: skip
    line = error_line(result)
    assert "line 3 has no key separator ':'" in line
    assert f'2 records delivered to "{topic}"' in line

    lines = consume(
        broker, topic, "--from-beginning", "--timeout-ms", "1500", "--format", "{key}:{value}"
    )
    assert lines == ["k1:v1", "k2:v2"]


def test_consumer_exits_cleanly_when_stdout_closes(broker: Any) -> None:
    topic = topic_name("piped")
    create(broker, topic)
    record = b"y" * 1000 + b"\n"
    produce(broker, topic, record * 2000)  # ~2 MB: more than a pipe buffer holds

    args = [odradek_executable(), "consume", topic, "--from-beginning", "-b", broker.bootstrap]
    with subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as consumer:
        assert consumer.stdout is not None and consumer.stderr is not None
        assert consumer.stdout.readline() == record
        consumer.stdout.close()  # like `| head -1`
        try:
            code = consumer.wait(timeout=30)
        finally:
            if consumer.poll() is None:
                consumer.kill()
        stderr = consumer.stderr.read().decode()
    assert code == 0, stderr
    assert "Traceback" not in stderr
    assert "BrokenPipe" not in stderr


def interruptible(args: list[str]) -> list[str]:
    """``args`` run with SIGINT at its default disposition: a test run started in the
    background by a non-interactive shell (``./scripts/test &``) ignores SIGINT, children
    inherit that, and a Ctrl-C at a terminal finds the default."""
    reset = "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    return [sys.executable, "-c", reset + "os.execv(sys.argv[1], sys.argv[1:])", *args]


def test_ctrl_c_stops_consumer_cleanly(broker: Any) -> None:
    topic = topic_name("sigint-consume")
    create(broker, topic)
    produce(broker, topic, b"first\n")

    args = [odradek_executable(), "consume", topic, "--from-beginning", "-b", broker.bootstrap]
    args = interruptible(args)
    with subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as consumer:
        assert consumer.stdout is not None
        try:
            assert consumer.stdout.readline() == b"first\n"
            consumer.send_signal(signal.SIGINT)
            out, err = consumer.communicate(timeout=30)
        finally:
            if consumer.poll() is None:
                consumer.kill()
    assert consumer.returncode == 0, err
    assert out == b""
    assert err.decode().strip() == "Processed a total of 1 messages"


def test_ctrl_c_stops_producer_with_a_summary(broker: Any) -> None:
    topic = topic_name("sigint-produce")
    create(broker, topic)

    args = interruptible([odradek_executable(), "produce", topic, "-b", broker.bootstrap])
    with subprocess.Popen(
        args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as producer:
        assert producer.stdin is not None and producer.stderr is not None
        try:
            producer.stdin.write(b"typed\n")
            producer.stdin.flush()
            # Wait until the record is in the topic, so the producer sits reading stdin.
            assert consume(broker, topic, "--from-beginning", "-n", "1") == ["typed"]
            producer.send_signal(signal.SIGINT)
            code = producer.wait(timeout=30)
        finally:
            if producer.poll() is None:
                producer.kill()
        err = producer.stderr.read().decode()
    assert code == 130, err
    assert err.strip() == f'1 record delivered to "{topic}" (interrupted)'
