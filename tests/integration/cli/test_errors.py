"""Failures are one ``error: ...`` line on stderr with exit 1 (2 for usage), no traceback."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from tests.integration.cli.runner import error_line, ok, peer_gap, run, topic_name
from tests.support.broker import free_port

UNREACHABLE = [
    ("topics", "list"),
    ("topics", "create", "t"),
    ("produce", "t"),
    ("consume", "t", "-n", "1"),
]


@pytest.mark.parametrize("command", UNREACHABLE, ids=lambda c: "-".join(c[:2]))
def test_unreachable_broker_is_one_line(command: tuple[str, ...]) -> None:
    address = f"127.0.0.1:{free_port()}"  # bound and released: nothing listens there

    result = run(*command, "-b", address, stdin=b"x\n")

    line = error_line(result)
    assert line == (
        f"error: cannot reach a broker at {address} (connection refused) "
        '(is "odradek server" running? use --bootstrap-server)'
    )


def test_bootstrap_server_comes_from_the_environment() -> None:
    address = f"127.0.0.1:{free_port()}"
    result = run("topics", "list", env={"ODRADEK_BOOTSTRAP_SERVERS": address})
    assert f"cannot reach a broker at {address} " in error_line(result)


@peer_gap("tansu", "CreateTopics accepts illegal topic names")
def test_invalid_topic_name_is_one_line_with_the_brokers_message(broker: Any) -> None:
    line = error_line(run("topics", "create", "bad name!", "-b", broker.bootstrap))
    assert line.startswith('error: cannot create topic "bad name!": INVALID_TOPIC_EXCEPTION')


@peer_gap("tansu", "CreateTopics accepts a replication factor above the broker count")
def test_replication_factor_above_broker_count_is_one_line(broker: Any) -> None:
    topic = topic_name("rf")
    line = error_line(run("topics", "create", topic, "-r", "3", "-b", broker.bootstrap))
    assert "INVALID_REPLICATION_FACTOR" in line


def test_unknown_client_property_is_one_line(broker: Any) -> None:
    result = run("topics", "list", "--property", "no.such.thing=1", "-b", broker.bootstrap)
    line = error_line(result)
    assert line.startswith("error: invalid client configuration: ")
    assert "no.such.thing" in line


def test_command_config_file_is_applied(broker: Any, tmp_path: Any) -> None:
    good = tmp_path / "good.properties"
    good.write_text("# comment\nclient.id = from-file\n")
    ok(run("topics", "list", "--command-config", str(good), "-b", broker.bootstrap))

    bad = tmp_path / "bad.properties"
    bad.write_text("not.a.librdkafka.key=1\n")
    result = run("topics", "list", "--command-config", str(bad), "-b", broker.bootstrap)
    assert "not.a.librdkafka.key" in error_line(result)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("topics", "create", "t", "--config", "novalue"), "--config expects KEY=VALUE"),
        (("produce", "t", "--header", "novalue"), "--header expects KEY=VALUE"),
        (("produce", "t", "--key-separator", ""), "--key-separator must not be empty"),
        (("consume", "t", "--format", "{nope}"), "unknown field {nope} in --format"),
        (("consume", "t", "--format", "{value"), "bad --format"),
        (("consume", "t", "--offset", "3"), "--offset needs --partition"),
        (("consume", "t", "-p", "0", "--offset", "x"), "--offset must be a number"),
        (("consume", "t", "--group", "g", "-p", "0"), "--group cannot be combined"),
    ],
)
def test_bad_arguments_are_usage_errors(args: tuple[str, ...], message: str) -> None:
    # Checked before any connection: the address is never contacted.
    address = f"127.0.0.1:{free_port()}"
    line = error_line(run(*args, "-b", address), exit_code=2)
    assert message in line


def test_produce_to_missing_partition_is_one_line(broker: Any) -> None:
    topic = topic_name("parts")
    ok(run("topics", "create", topic, "-p", "2", "-b", broker.bootstrap))
    line = error_line(run("produce", topic, "-p", "5", "-b", broker.bootstrap, stdin=b"x\n"))
    assert line == f'error: partition 5 does not exist: topic "{topic}" has 2 partitions (0-1)'


def test_consume_missing_topic_is_one_line(broker: Any) -> None:
    topic = topic_name("absent")
    line = error_line(run("consume", topic, "-n", "1", "-b", broker.bootstrap))
    assert line == f'error: topic "{topic}" does not exist'


@peer_gap("tansu", "Fetch beyond the log end returns no error instead of OFFSET_OUT_OF_RANGE")
def test_consume_offset_beyond_end_is_one_line(broker: Any) -> None:
    topic = topic_name("beyond")
    ok(run("topics", "create", topic, "-b", broker.bootstrap))
    ok(run("produce", topic, "-b", broker.bootstrap, stdin=b"only\n"))
    args = ("consume", topic, "-p", "0", "--offset", "50", "--timeout-ms", "5000")
    line = error_line(run(*args, "-b", broker.bootstrap))
    assert "offset out of range in partition 0" in line


def test_silent_broker_times_out_with_one_line() -> None:
    """Something listens but never answers: the CLI gives up after its connect timeout."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        line = error_line(run("topics", "list", "-b", address))
    assert line == (
        f"error: cannot reach a broker at {address} within 10s "
        '(is "odradek server" running? use --bootstrap-server)'
    )
