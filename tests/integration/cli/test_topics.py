"""``odradek topics ...`` against a running broker (the ``broker`` fixture)."""

from __future__ import annotations

from typing import Any

from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType  # type: ignore[attr-defined]

from tests.integration.cli.runner import error_line, ok, peer_gap, run, topic_name


def topics(broker: Any, *args: str) -> list[str]:
    return [*args, "-b", broker.bootstrap]


def list_rows(broker: Any, *extra: str) -> dict[str, tuple[int, int]]:
    """``topics list`` as {topic: (partitions, replication)}."""
    out = ok(run("topics", "list", *extra, "-b", broker.bootstrap))
    lines = out.splitlines()
    assert lines[0].split() == ["topic", "partitions", "replication"], out
    rows: dict[str, tuple[int, int]] = {}
    for line in lines[2:]:  # header, rule, then rows
        name, partitions, replication = line.split()
        rows[name] = (int(partitions), int(replication))
    return rows


def describe_rows(broker: Any, topic: str) -> tuple[list[list[str]], dict[str, str]]:
    """``topics describe`` as (partition rows, {config: value})."""
    out = ok(run("topics", "describe", topic, "-b", broker.bootstrap))
    lines = out.splitlines()
    assert lines[0].startswith(f"topic: {topic} "), out
    assert lines[1].split()[:4] == ["partition", "leader", "replicas", "isr"], out
    partitions: list[list[str]] = []
    configs: dict[str, str] = {}
    index = 3
    while index < len(lines) and lines[index].split()[0].isdigit():
        partitions.append(lines[index].split())
        index += 1
    rest = lines[index:]
    if rest and rest[0].split() == ["config", "value", "source"]:
        for line in rest[2:]:
            name, value, _source = line.split()
            configs[name] = value
    else:
        assert rest == ["configs: (all defaults)"], out
    return partitions, configs


def admin_config(broker: Any, topic: str) -> dict[str, tuple[str | None, bool]]:
    """A topic's configs as the broker reports them: {name: (value, is_default)}."""
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    resource = ConfigResource(ResourceType.TOPIC, topic)
    entries = admin.describe_configs([resource])[resource].result(timeout=30)
    return {name: (entry.value, entry.is_default) for name, entry in entries.items()}


def test_create_then_list_shows_partitions_and_replication(broker: Any) -> None:
    topic = topic_name("listed")
    result = run(*topics(broker, "topics", "create", topic, "--partitions", "3"))
    ok(result)
    assert f'Created topic "{topic}"' in result.stderr.decode()

    rows = list_rows(broker)
    assert rows[topic] == (3, 1)


def test_create_existing_topic_fails_unless_if_not_exists(broker: Any) -> None:
    topic = topic_name("twice")
    ok(run(*topics(broker, "topics", "create", topic, "--partitions", "2")))

    line = error_line(run(*topics(broker, "topics", "create", topic, "--partitions", "2")))
    assert f'cannot create topic "{topic}": TOPIC_ALREADY_EXISTS' in line
    assert "--if-not-exists" in line

    ok(run(*topics(broker, "topics", "create", topic, "--if-not-exists")))
    assert list_rows(broker)[topic] == (2, 1)


def test_list_hides_internal_topics_unless_asked(broker: Any) -> None:
    internal = f"__{topic_name('internal')}"
    ok(run(*topics(broker, "topics", "create", internal, "--partitions", "1")))

    assert internal not in list_rows(broker)
    assert list_rows(broker, "--internal")[internal] == (1, 1)


def test_describe_shows_each_partition_with_leader_replicas_and_isr(broker: Any) -> None:
    topic = topic_name("described")
    ok(run(*topics(broker, "topics", "create", topic, "--partitions", "3")))

    partitions, _ = describe_rows(broker, topic)
    assert [row[0] for row in partitions] == ["0", "1", "2"]
    for _partition, leader, replicas, isr, _start, _end in partitions:
        assert leader.isdigit()
        assert replicas == leader
        assert isr == leader


@peer_gap("tansu", "ListOffsets end offset counts batches, and set configs are is_default")
def test_describe_shows_offsets_and_non_default_configs(broker: Any) -> None:
    topic = topic_name("offsets")
    create = ("topics", "create", topic, "-p", "2", "--config", "retention.ms=123456")
    ok(run(*topics(broker, *create)))
    ok(run("produce", topic, "-p", "0", "-b", broker.bootstrap, stdin=b"a\nb\nc\n"))
    ok(run("produce", topic, "-p", "1", "-b", broker.bootstrap, stdin=b"d\n"))

    partitions, configs = describe_rows(broker, topic)
    assert [(row[0], row[4], row[5]) for row in partitions] == [("0", "0", "3"), ("1", "0", "1")]
    assert configs == {"retention.ms": "123456"}


def test_alter_config_sets_and_deletes(broker: Any) -> None:
    topic = topic_name("altered")
    create = ("topics", "create", topic, "--config", "cleanup.policy=compact")
    ok(run(*topics(broker, *create)))

    alter = ("topics", "alter-config", topic, "--set", "retention.ms=5000")
    result = run(*topics(broker, *alter, "--delete", "cleanup.policy"))
    ok(result)
    assert "set retention.ms=5000; deleted cleanup.policy" in result.stderr.decode()

    configs = admin_config(broker, topic)
    assert configs["retention.ms"][0] == "5000"
    value, is_default = configs.get("cleanup.policy", (None, True))
    assert value != "compact" or is_default


def test_alter_config_needs_a_change(broker: Any) -> None:
    line = error_line(run(*topics(broker, "topics", "alter-config", "x")), exit_code=2)
    assert "--set" in line
    assert "--delete" in line


@peer_gap("tansu", "IncrementalAlterConfigs on a missing topic succeeds")
def test_alter_config_of_missing_topic_fails(broker: Any) -> None:
    topic = topic_name("missing")
    alter = ("topics", "alter-config", topic, "--set", "retention.ms=5000")
    line = error_line(run(*topics(broker, *alter)))
    assert f'cannot alter configs of topic "{topic}"' in line
    assert "UNKNOWN_TOPIC_OR_PART" in line


def test_delete_removes_topic_and_if_exists_tolerates_missing(broker: Any) -> None:
    topic = topic_name("deleted")
    ok(run(*topics(broker, "topics", "create", topic)))
    assert topic in list_rows(broker)

    ok(run(*topics(broker, "topics", "delete", topic)))
    assert topic not in list_rows(broker)

    line = error_line(run(*topics(broker, "topics", "delete", topic)))
    assert f'cannot delete topic "{topic}": UNKNOWN_TOPIC_OR_PART' in line
    assert "--if-exists" in line
    ok(run(*topics(broker, "topics", "delete", topic, "--if-exists")))


def test_describe_missing_topic_is_one_line(broker: Any) -> None:
    topic = topic_name("nowhere")
    line = error_line(run(*topics(broker, "topics", "describe", topic)))
    assert f'cannot describe topic "{topic}": UNKNOWN_TOPIC_OR_PART' in line
