"""``odradek groups`` and ``odradek consume --group`` against a broker with real groups."""

from __future__ import annotations

import datetime
from collections.abc import Iterator

import pytest
from confluent_kafka import ConsumerGroupTopicPartitions, Producer, TopicPartition

from tests.integration.cli.runner import error_line, ok, run
from tests.integration.groups.members import Member, join, name, poll_until
from tests.support.broker import BrokerProcess
from tests.support.clients import admin, create_topic, produce_acked

BASE_MS = 1_700_000_000_000  # record i of a timed topic has timestamp BASE_MS + i s


@pytest.fixture
def members() -> Iterator[list[Member]]:
    started: list[Member] = []
    yield started
    for member in started:
        member.close()


def groups(broker: BrokerProcess, *args: str) -> str:
    return ok(run("groups", *args, "-b", broker.bootstrap))


def table_rows(output: str, first: str) -> list[list[str]]:
    """The rows of the table lines that start with ``first`` (a topic or group), split."""
    return [line.split() for line in output.splitlines() if line.split()[:1] == [first]]


def offsets_table(output: str, topic: str) -> dict[int, tuple[str, str, str]]:
    """describe's partition rows: {partition: (committed, log end, lag)}."""
    return {int(row[1]): (row[2], row[3], row[4]) for row in table_rows(output, topic)}


def plan_table(output: str, topic: str) -> dict[int, tuple[str, str]]:
    """reset-offsets' rows: {partition: (current, new)}."""
    return {int(row[1]): (row[2], row[3]) for row in table_rows(output, topic)}


def committed(broker: BrokerProcess, group: str) -> dict[int, int]:
    client = admin(broker.bootstrap)  # must outlive the future
    fetched = client.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])
    return {tp.partition: tp.offset for tp in fetched[group].result(timeout=30).topic_partitions}


def commit_as_tool(broker: BrokerProcess, group: str, topic: str, offsets: dict[int, int]) -> None:
    """Commit offsets without joining (generation -1): the group exists, Empty."""
    client = admin(broker.bootstrap)
    request = ConsumerGroupTopicPartitions(
        group, [TopicPartition(topic, p, o) for p, o in offsets.items()]
    )
    client.alter_consumer_group_offsets([request])[group].result(timeout=30)


def timed_topic(broker: BrokerProcess, partitions: int = 2, per_partition: int = 10) -> str:
    """Records i = 0.. in each partition at BASE_MS + i seconds."""
    topic = name("cli-timed")
    create_topic(broker.bootstrap, topic, partitions)
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    for p in range(partitions):
        for i in range(per_partition):
            producer.produce(topic, value=b"r%d" % i, partition=p, timestamp=BASE_MS + i * 1000)
    assert producer.flush(30) == 0
    return topic


def test_describe_shows_members_offsets_and_lag(
    broker: BrokerProcess, members: list[Member]
) -> None:
    topic, group = name("cli-lag"), name("cli-lag-g")
    create_topic(broker.bootstrap, topic, 3)
    produce_acked(broker.bootstrap, topic, 30, partitions=3)
    member = join(broker.bootstrap, group, topic, "c", **{"client.id": "lagger"})
    members.append(member)
    poll_until([member], lambda: len(member.records) == 30, timeout=30, what="30 records")
    member.consumer.commit(asynchronous=False)

    out = groups(broker, "describe", group)
    assert f"group: {group}  state: Stable  assignor: range  coordinator: 1" in out
    assert "members: 1" in out
    (row,) = table_rows(out, member.consumer.memberid())
    assert row[1:] == ["-", "lagger", "/127.0.0.1", f"{topic}:0,1,2"]
    assert offsets_table(out, topic) == {p: ("10", "10", "0") for p in range(3)}

    produce_acked(broker.bootstrap, topic, 9, partitions=3)
    out = groups(broker, "describe", group)
    assert offsets_table(out, topic) == {p: ("10", "13", "3") for p in range(3)}
    assert "total lag: 9" in out

    # Empty: no members, the offsets and lag are still shown.
    member.close()
    out = groups(broker, "describe", group)
    assert "state: Empty" in out and "members: 0" in out
    assert "client id" not in out  # no members table
    assert offsets_table(out, topic) == {p: ("10", "13", "3") for p in range(3)}


def test_describe_of_an_unknown_group_fails(broker: BrokerProcess) -> None:
    line = error_line(run("groups", "describe", "no-such-group", "-b", broker.bootstrap))
    assert line == 'error: group "no-such-group" does not exist'


def test_list_shows_groups_with_state_and_protocol_type(
    broker: BrokerProcess, members: list[Member]
) -> None:
    topic, live_group, idle_group = name("cli-list"), name("cli-live"), name("cli-idle")
    create_topic(broker.bootstrap, topic, 1)
    commit_as_tool(broker, idle_group, topic, {0: 0})
    member = join(broker.bootstrap, live_group, topic, "c")
    members.append(member)
    poll_until([member], lambda: bool(member.assignment()), timeout=20, what="an assignment")

    out = groups(broker, "list")
    assert table_rows(out, live_group) == [[live_group, "Stable", "consumer"]]
    assert table_rows(out, idle_group) == [[idle_group, "Empty", "-"]]
    out = groups(broker, "list", "--state", "empty")
    assert table_rows(out, idle_group) and not table_rows(out, live_group)


def test_reset_offsets_dry_run_then_execute(broker: BrokerProcess) -> None:
    topic, group = timed_topic(broker), name("cli-reset")
    commit_as_tool(broker, group, topic, {0: 5, 1: 5})

    dry = run(
        "groups", "reset-offsets", group, "-t", topic, "--to-earliest", "-b", broker.bootstrap
    )
    assert plan_table(ok(dry), topic) == {0: ("5", "0"), 1: ("5", "0")}
    assert "Dry run" in dry.stderr.decode()
    assert committed(broker, group) == {0: 5, 1: 5}

    def reset(*how: str) -> dict[int, tuple[str, str]]:
        out = groups(broker, "reset-offsets", group, "-t", topic, *how, "--execute")
        return plan_table(out, topic)

    assert reset("--to-earliest") == {0: ("5", "0"), 1: ("5", "0")}
    assert committed(broker, group) == {0: 0, 1: 0}
    assert reset("--to-latest", "--partition", "1") == {1: ("0", "10")}
    assert committed(broker, group) == {0: 0, 1: 10}
    assert reset("--shift-by", "3") == {0: ("0", "3"), 1: ("10", "10")}  # clamped to the end
    assert reset("--shift-by", "-100") == {0: ("3", "0"), 1: ("10", "0")}  # and the start
    assert reset("--to-offset", "7") == {0: ("0", "7"), 1: ("0", "7")}
    # Record 4 is at +4 s: the first record at or after +3.5 s.
    at = datetime.datetime.fromtimestamp((BASE_MS + 3500) / 1000, tz=datetime.UTC)
    assert reset("--to-datetime", at.isoformat()) == {0: ("7", "4"), 1: ("7", "4")}
    later = datetime.datetime.fromtimestamp(BASE_MS / 1000 + 3600, tz=datetime.UTC)
    assert reset("--to-datetime", later.isoformat().replace("+00:00", "Z")) == {
        0: ("4", "10"),
        1: ("4", "10"),
    }
    assert committed(broker, group) == {0: 10, 1: 10}

    # Records before offset 3 deleted: the log start is 3 now, and resets respect it.
    client = admin(broker.bootstrap)
    deleted = client.delete_records([TopicPartition(topic, 0, 3)])
    for future in deleted.values():
        future.result(timeout=30)
    assert reset("--to-offset", "1", "-p", "0") == {0: ("10", "3")}
    assert reset("--to-earliest", "-p", "0") == {0: ("3", "3")}


def test_reset_offsets_is_refused_while_the_group_has_members(
    broker: BrokerProcess, members: list[Member]
) -> None:
    topic, group = name("cli-busy"), name("cli-busy-g")
    create_topic(broker.bootstrap, topic, 2)
    member = join(broker.bootstrap, group, topic, "c")
    members.append(member)
    poll_until([member], lambda: bool(member.assignment()), timeout=20, what="an assignment")

    for execute in ((), ("--execute",)):
        result = run(
            "groups", "reset-offsets", group, "-t", topic, "--to-earliest", *execute,
            "-b", broker.bootstrap,
        )  # fmt: skip
        assert error_line(result) == (
            f'error: assignments can only be reset if the group "{group}" is inactive, but the '
            "current state is Stable (stop its consumers first)"
        )
    assert committed(broker, group) == {}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--to-earliest", "--to-latest"), "give exactly one of"),
        ((), "give exactly one of"),
        (("--to-datetime", "yesterday"), "--to-datetime expects an ISO-8601 date-time"),
    ],
)
def test_reset_offsets_usage_errors(
    broker: BrokerProcess, args: tuple[str, ...], message: str
) -> None:
    result = run("groups", "reset-offsets", "g", "-t", "t", *args, "-b", broker.bootstrap)
    assert message in error_line(result, exit_code=2)


def test_reset_offsets_of_a_missing_topic_or_partition_fails(broker: BrokerProcess) -> None:
    topic = name("cli-two")
    create_topic(broker.bootstrap, topic, 2)
    result = run(
        "groups", "reset-offsets", "g", "-t", "nope", "--to-earliest", "-b", broker.bootstrap
    )
    assert error_line(result) == 'error: topic "nope" does not exist'
    result = run(
        "groups", "reset-offsets", "g", "-t", topic, "-p", "5", "--to-earliest",
        "-b", broker.bootstrap,
    )  # fmt: skip
    assert (
        error_line(result) == f'error: partition 5 does not exist: topic "{topic}" has 2 partitions'
    )


def test_delete_refuses_a_group_with_members_then_deletes_it_empty(
    broker: BrokerProcess, members: list[Member]
) -> None:
    topic, group = name("cli-del"), name("cli-del-g")
    create_topic(broker.bootstrap, topic, 1)
    member = join(broker.bootstrap, group, topic, "c")
    members.append(member)
    poll_until([member], lambda: bool(member.assignment()), timeout=20, what="an assignment")
    member.consumer.commit(offsets=[TopicPartition(topic, 0, 0)], asynchronous=False)

    line = error_line(run("groups", "delete", group, "-b", broker.bootstrap))
    assert line == (
        f'error: cannot delete group "{group}": NON_EMPTY_GROUP: Broker: The group is not empty'
    )
    member.close()
    result = run("groups", "delete", group, "-b", broker.bootstrap)
    ok(result)
    assert result.stderr.decode() == f'Deleted group "{group}".\n'
    assert not table_rows(groups(broker, "list"), group)
    assert committed(broker, group) == {}

    line = error_line(run("groups", "delete", group, "-b", broker.bootstrap))
    assert "GROUP_ID_NOT_FOUND" in line


def test_consume_with_group_commits_and_resumes(broker: BrokerProcess) -> None:
    topic, group = name("cli-resume"), name("cli-resume-g")
    create_topic(broker.bootstrap, topic, 1)
    ok(
        run(
            "produce", topic, "-b", broker.bootstrap, stdin=b"".join(b"m%d\n" % i for i in range(6))
        )
    )
    fast = ("--property", "session.timeout.ms=6000", "-b", broker.bootstrap)

    first = ok(run("consume", topic, "--group", group, "--from-beginning", "-n", "4", *fast))
    assert first.split() == ["m0", "m1", "m2", "m3"]
    assert offsets_table(groups(broker, "describe", group), topic) == {0: ("4", "6", "2")}
    rest = ok(run("consume", topic, "--group", group, "--timeout-ms", "1500", *fast))
    assert rest.split() == ["m4", "m5"]
    assert offsets_table(groups(broker, "describe", group), topic) == {0: ("6", "6", "0")}
