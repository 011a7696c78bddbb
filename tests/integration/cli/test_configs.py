"""``odradek configs`` against a running broker: kafka-configs' options and output for
topics, brokers (by id and the cluster default), clients and users (quotas)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.integration.cli.runner import error_line, ok, run, topic_name
from tests.support.broker import BrokerProcess
from tests.support.clients import create_topic


def configs(broker: BrokerProcess, *args: str) -> str:
    return ok(run("configs", *args, "--bootstrap-server", broker.bootstrap))


@pytest.fixture
def node(broker_factory: Callable[..., BrokerProcess]) -> BrokerProcess:
    return broker_factory({"log.retention.hours": "100"})


def test_topic_configs_altered_and_described(node: BrokerProcess) -> None:
    topic = topic_name("cfg")
    create_topic(node.bootstrap, topic)
    out = configs(
        node,
        "alter",
        "--entity-type",
        "topics",
        "--entity-name",
        topic,
        "--add-config",
        "retention.ms=60000,cleanup.policy=[compact,delete]",
    )
    assert out.strip() == f"Completed updating config for topic {topic}."

    out = configs(node, "describe", "--entity-type", "topics", "--entity-name", topic)
    lines = out.strip().splitlines()
    assert lines[0] == f"Dynamic configs for topic {topic} are:"
    assert "  cleanup.policy=compact,delete sensitive=false synonyms={" in out
    retention = next(line for line in lines if line.startswith("  retention.ms="))
    assert retention == (
        "  retention.ms=60000 sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:retention.ms=60000, "
        "STATIC_BROKER_CONFIG:log.retention.hours=100, DEFAULT_CONFIG:log.retention.hours=168}"
    )
    assert len(lines) == 3  # only the two overrides without --all

    configs(
        node,
        "alter",
        "--entity-type",
        "topics",
        "--entity-name",
        topic,
        "--delete-config",
        "retention.ms",
    )
    out = configs(node, "describe", "--entity-type", "topics", "--entity-name", topic, "--all")
    assert out.startswith(f"All configs for topic {topic} are:")
    assert "  retention.ms=360000000 sensitive=false" in out  # 100 hours, from the broker


def test_broker_id_and_cluster_default(node: BrokerProcess) -> None:
    configs(
        node,
        "alter",
        "--entity-type",
        "brokers",
        "--entity-default",
        "--add-config",
        "log.retention.ms=7200000",
    )
    out = configs(node, "describe", "--entity-type", "brokers", "--entity-default")
    assert out.strip().splitlines() == [
        "Default configs for brokers in the cluster are:",
        "  log.retention.ms=7200000 sensitive=false synonyms={"
        "DYNAMIC_DEFAULT_BROKER_CONFIG:log.retention.ms=7200000, "
        "STATIC_BROKER_CONFIG:log.retention.hours=100, DEFAULT_CONFIG:log.retention.hours=168}",
    ]
    configs(
        node,
        "alter",
        "--entity-type",
        "brokers",
        "--entity-name",
        "1",
        "--add-config",
        "log.retention.ms=3600000",
    )
    out = configs(node, "describe", "--entity-type", "brokers", "--entity-name", "1")
    assert out.strip().splitlines()[0] == "Dynamic configs for broker 1 are:"
    assert (
        "  log.retention.ms=3600000 sensitive=false synonyms={"
        "DYNAMIC_BROKER_CONFIG:log.retention.ms=3600000, "
        "DYNAMIC_DEFAULT_BROKER_CONFIG:log.retention.ms=7200000, "
        "STATIC_BROKER_CONFIG:log.retention.hours=100, DEFAULT_CONFIG:log.retention.hours=168}"
    ) in out
    every = configs(node, "describe", "--entity-type", "brokers").splitlines()
    assert every[0] == "Dynamic configs for broker 1 are:"
    assert every[-2:] == [
        "Default configs for brokers in the cluster are:",
        "  log.retention.ms=7200000 sensitive=false synonyms={"
        "DYNAMIC_DEFAULT_BROKER_CONFIG:log.retention.ms=7200000, "
        "STATIC_BROKER_CONFIG:log.retention.hours=100, DEFAULT_CONFIG:log.retention.hours=168}",
    ]
    out = configs(node, "describe", "--entity-type", "brokers", "--entity-name", "1", "--all")
    assert "  log.dirs=" in out and "  log.retention.hours=100 " in out

    refused = run(
        "configs",
        "alter",
        "--entity-type",
        "brokers",
        "--entity-name",
        "1",
        "--add-config",
        "broker.id=5",
        "--bootstrap-server",
        node.bootstrap,
    )
    assert error_line(refused) == (
        "error: cannot alter broker 1: INVALID_REQUEST: Cannot update these configs "
        "dynamically: Set(broker.id)"
    )


def test_client_and_user_quotas(node: BrokerProcess) -> None:
    configs(
        node,
        "alter",
        "--entity-type",
        "clients",
        "--entity-name",
        "app-1",
        "--add-config",
        "producer_byte_rate=1024,consumer_byte_rate=2048",
    )
    out = configs(node, "describe", "--entity-type", "clients", "--entity-name", "app-1")
    assert out.strip() == (
        "Quota configs for client-id 'app-1' are consumer_byte_rate=2048.0, "
        "producer_byte_rate=1024.0"
    )
    configs(
        node,
        "alter",
        "--entity-type",
        "clients",
        "--entity-name",
        "app-1",
        "--delete-config",
        "consumer_byte_rate",
    )
    out = configs(node, "describe", "--entity-type", "clients", "--entity-name", "app-1")
    assert out.strip() == "Quota configs for client-id 'app-1' are producer_byte_rate=1024.0"

    out = configs(
        node,
        "alter",
        "--entity-type",
        "users",
        "--entity-default",
        "--add-config",
        "request_percentage=50",
    )
    assert out.strip() == "Completed updating default config for users in the cluster."
    out = configs(node, "describe", "--entity-type", "users", "--entity-default")
    assert out.strip() == "Quota configs for the default user are request_percentage=50.0"

    configs(
        node,
        "alter",
        "--entity-type",
        "clients",
        "--entity-default",
        "--add-config",
        "consumer_byte_rate=4096",
    )
    every = configs(node, "describe", "--entity-type", "clients")
    assert every.strip().splitlines() == [
        "Quota configs for client-id 'app-1' are producer_byte_rate=1024.0",
        "Quota configs for the default client-id are consumer_byte_rate=4096.0",
    ]

    bad = run(
        "configs",
        "alter",
        "--entity-type",
        "users",
        "--entity-name",
        "u",
        "--add-config",
        "no_such_quota=1",
        "--bootstrap-server",
        node.bootstrap,
    )
    assert error_line(bad).startswith("error: cannot alter quotas of user: INVALID_REQUEST")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["describe", "--entity-type", "topic", "--entity-name", "t"],
            "--entity-type must be one of topics, brokers, clients, users, got 'topic'",
        ),
        (["alter", "--entity-type", "topics", "--add-config", "a=1"], "--entity-name is required"),
        (
            ["describe", "--entity-type", "topics", "--entity-default"],
            "--entity-default is not supported for topics",
        ),
        (
            ["describe", "--entity-type", "brokers", "--entity-name", "b1"],
            "must be a broker id (an integer)",
        ),
        (["alter", "--entity-type", "topics", "--entity-name", "t"], "alter needs --add-config"),
        (
            ["alter", "--entity-type", "topics", "--entity-name", "t", "--add-config", "x"],
            "--add-config expects KEY=VALUE",
        ),
        (
            [
                "alter",
                "--entity-type",
                "topics",
                "--entity-name",
                "t",
                "--add-config",
                "a=1",
                "--delete-config",
                "a",
            ],
            "a both in --add-config and --delete-config",
        ),
    ],
)
def test_bad_arguments_are_one_line(args: list[str], expected: str) -> None:
    line = error_line(run("configs", *args, "--bootstrap-server", "127.0.0.1:1"), exit_code=2)
    assert expected in line
