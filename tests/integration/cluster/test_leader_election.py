"""Leader elections on 3 real brokers and a real ZooKeeper: ElectLeaders (preferred and
unclean, Kafka's error codes) through confluent-kafka's AdminClient and ``odradek cluster
elect-leaders``, ``odradek cluster describe``, and the controller's automatic rebalance
back to preferred leaders after a broker restart."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from confluent_kafka import ElectionType, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from tests.integration.cli.runner import error_line, ok, run
from tests.integration.cluster.conftest import Cluster
from tests.integration.cluster.failover import wait_for
from tests.support.broker import free_port
from tests.support.clients import produce_acked
from tests.support.zookeeper import ZooKeeperServer

Factory = Callable[..., Cluster]


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, zookeeper: ZooKeeperServer
) -> Iterator[Cluster]:
    made = Cluster(
        tmp_path_factory.mktemp("elections"),
        f"{zookeeper.connect}/elections",
        {"zookeeper.session.timeout.ms": "6000", "auto.leader.rebalance.enable": "false"},
    )
    try:
        for broker_id in (1, 2, 3):
            made.add(broker_id)
        admin = AdminClient({"bootstrap.servers": made.bootstrap})
        topics = {
            "pref": [[1, 2, 3], [2, 3, 1], [3, 1, 2]],
            "solo": [[3]],
            "pair": [[2, 3]],
        }
        futures = admin.create_topics(
            [NewTopic(n, len(a), replica_assignment=a) for n, a in topics.items()],
            operation_timeout=10,
        )
        for future in futures.values():
            future.result(timeout=30)
        yield made
    finally:
        made.stop()


def leaders(cluster: Cluster, topic: str) -> dict[int, tuple[int, list[int]]]:
    metadata = AdminClient({"bootstrap.servers": cluster.bootstrap}).list_topics(topic, timeout=10)
    return {p.id: (p.leader, sorted(p.isrs)) for p in metadata.topics[topic].partitions.values()}


def elect(
    cluster: Cluster, kind: ElectionType, partitions: list[TopicPartition] | None
) -> dict[tuple[str, int], str | None]:
    """Each partition's result: None, or Kafka's error name."""
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    results = admin.elect_leaders(kind, partitions).result(timeout=30)
    named = {}
    for tp, problem in results.items():
        # confluent-kafka gives a KafkaError (its docs say KafkaException).
        named[tp.topic, tp.partition] = None if problem is None else problem.name()
    return named


def bounce(cluster: Cluster, broker_id: int) -> None:
    """Stop a broker until its leaderships moved, start it, wait until it is back in every
    ISR it belongs to."""
    assert cluster.brokers[broker_id].stop() == 0
    wait_for(lambda: all(lead != broker_id for lead, _ in leaders(cluster, "pref").values()))
    cluster.brokers[broker_id].start()
    wait_for(lambda: all(isr == [1, 2, 3] for _, isr in leaders(cluster, "pref").values()))


def test_preferred_election_through_the_admin_client(cluster: Cluster) -> None:
    produce_acked(cluster.bootstrap, "pref", 300, acks="all", partitions=3)
    bounce(cluster, 1)
    assert leaders(cluster, "pref")[0][0] != 1
    # All partitions: only the ones that needed an election are reported.
    assert elect(cluster, ElectionType.PREFERRED, None) == {("pref", 0): None}
    wait_for(lambda: [lead for lead, _ in leaders(cluster, "pref").values()] == [1, 2, 3])
    assert elect(cluster, ElectionType.PREFERRED, [TopicPartition("pref", 0)]) == {
        ("pref", 0): "ELECTION_NOT_NEEDED"
    }
    assert elect(
        cluster,
        ElectionType.PREFERRED,
        [TopicPartition("pref", 7), TopicPartition("no-such-topic", 0)],
    ) == {("pref", 7): "UNKNOWN_TOPIC_OR_PART", ("no-such-topic", 0): "UNKNOWN_TOPIC_OR_PART"}
    assert elect(cluster, ElectionType.UNCLEAN, [TopicPartition("pref", 1)]) == {
        ("pref", 1): "ELECTION_NOT_NEEDED"
    }


def test_elections_with_a_broker_down(cluster: Cluster) -> None:
    """Broker 3 down: pref-2 (preferred 3) cannot get its preferred leader back, solo-0
    (only on 3) has no replica to elect even uncleanly; pair-0 offline once 2 dies too
    (its ISR is [2]) is brought back by an unclean election of 3."""
    produce_acked(cluster.bootstrap, "pair", 50, acks="all")
    assert cluster.brokers[3].stop() == 0
    wait_for(lambda: leaders(cluster, "pair")[0] == (2, [2]))
    assert elect(cluster, ElectionType.PREFERRED, [TopicPartition("pref", 2)]) == {
        ("pref", 2): "PREFERRED_LEADER_NOT_AVAILABLE"
    }
    assert elect(cluster, ElectionType.UNCLEAN, [TopicPartition("solo", 0)]) == {
        ("solo", 0): "ELIGIBLE_LEADERS_NOT_AVAILABLE"
    }
    describe = ok(run("cluster", "describe", "-b", cluster.brokers[1].bootstrap))
    assert "offline partitions: 1" in describe
    assert "under-replicated partitions: 4" in describe  # pref-0..2 and pair-0
    line = error_line(
        run(
            "cluster",
            "elect-leaders",
            "--topic",
            "pref",
            "--partition",
            "2",
            "-b",
            cluster.brokers[1].bootstrap,
        )
    )
    assert line.startswith(
        "error: cannot elect a leader for pref-2: PREFERRED_LEADER_NOT_AVAILABLE"
    )
    assert cluster.brokers[2].stop() == 0
    cluster.brokers[3].start()
    wait_for(lambda: leaders(cluster, "solo")[0][0] == 3)
    assert leaders(cluster, "pair")[0][0] == -1  # its ISR, [2], is down: no clean leader
    assert elect(cluster, ElectionType.UNCLEAN, [TopicPartition("pair", 0)]) == {("pair", 0): None}
    wait_for(lambda: leaders(cluster, "pair")[0] == (3, [3]))
    cluster.brokers[2].start()
    wait_for(lambda: leaders(cluster, "pair")[0] == (3, [2, 3]))
    wait_for(lambda: all(isr == [1, 2, 3] for _, isr in leaders(cluster, "pref").values()))


def test_cli_describe_and_elect_leaders(cluster: Cluster) -> None:
    bootstrap = cluster.brokers[1].bootstrap
    bounce(cluster, 2)
    described = ok(run("cluster", "describe", "-b", bootstrap))
    lines = described.splitlines()
    assert lines[0].startswith("cluster: ") and " controller: " in lines[0]
    for broker_id in (1, 2, 3):
        port = cluster.brokers[broker_id].port
        assert any(line.split()[:2] == [str(broker_id), f"127.0.0.1:{port}"] for line in lines)
    assert "offline partitions: none" in described
    assert "partitions not led by their preferred replica: " in described
    not_preferred = described.split("partitions not led by their preferred replica: ")[1]
    assert "pref" in not_preferred and not not_preferred.startswith("none")
    elected = ok(run("cluster", "elect-leaders", "--topic", "pref", "-b", bootstrap))
    rows = {tuple(line.split()[:2]): line.split()[2] for line in elected.splitlines()[2:]}
    assert rows[("pref", "1")] == "elected"
    assert rows[("pref", "0")] == "not"  # "not needed (leader already eligible)"
    wait_for(lambda: [lead for lead, _ in leaders(cluster, "pref").values()] == [1, 2, 3])
    # Everything else (after the previous test, pair-0 is led by the replica elected
    # uncleanly there).
    rest = run("cluster", "elect-leaders", "-b", bootstrap)
    assert all(line.split()[2] == "elected" for line in ok(rest).splitlines()[2:])
    again = run("cluster", "elect-leaders", "-b", bootstrap)
    ok(again)
    assert "No partition needed a preferred election." in again.stderr.decode()
    unclean = ok(
        run(
            "cluster",
            "elect-leaders",
            "-t",
            "pref",
            "-p",
            "0",
            "--type",
            "unclean",
            "-b",
            bootstrap,
        )
    )
    assert "not needed" in unclean
    assert "partitions not led by their preferred replica: none" in ok(
        run("cluster", "describe", "-b", bootstrap)
    )


@pytest.mark.parametrize(
    ("args", "message", "code"),
    [
        (("--partition", "0"), "--partition needs --topic", 2),
        (("--topic", "no-such-topic"), 'topic "no-such-topic" does not exist', 1),
        (("--type", "dirty"), "Invalid value for '--type'", 2),
    ],
)
def test_cli_elect_leaders_bad_arguments(
    cluster: Cluster, args: tuple[str, ...], message: str, code: int
) -> None:
    result = run("cluster", "elect-leaders", "-b", cluster.bootstrap, *args)
    if code == 2 and "--type" in args:
        # typer reports its own usage errors in a box, exit 2, no traceback.
        assert result.returncode == 2 and message in result.stderr.decode()
        assert "Traceback" not in result.stderr.decode()
        return
    assert message in error_line(result, exit_code=code)


def test_cli_cluster_commands_with_no_broker() -> None:
    address = f"127.0.0.1:{free_port()}"
    for command in (("describe",), ("elect-leaders",)):
        line = error_line(run("cluster", *command, "-b", address))
        assert line.startswith(f"error: cannot reach a broker at {address} (connection refused)")


def test_auto_rebalance_moves_leadership_back_after_a_restart(cluster_factory: Factory) -> None:
    fresh = cluster_factory(
        3,
        **{"auto.leader.rebalance.enable": "true", "leader.imbalance.check.interval.seconds": "1"},
    )
    admin = AdminClient({"bootstrap.servers": fresh.bootstrap})
    admin.create_topics(
        [NewTopic("balanced", 3, replica_assignment=[[1, 2, 3], [2, 3, 1], [3, 1, 2]])],
        operation_timeout=10,
    )["balanced"].result(timeout=30)
    produce_acked(fresh.bootstrap, "balanced", 300, acks="all", partitions=3)
    assert fresh.brokers[1].stop() == 0
    wait_for(lambda: leaders(fresh, "balanced")[0][0] not in (1, -1))
    fresh.brokers[1].start()
    # Broker 1 rejoins the ISR, then the controller's next check makes it leader again.
    wait_for(lambda: [lead for lead, _ in leaders(fresh, "balanced").values()] == [1, 2, 3])
    assert elect(fresh, ElectionType.PREFERRED, None) == {}
