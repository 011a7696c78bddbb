"""A log dir failing under a broker of a 3-broker cluster with a real ZooKeeper (issue #5).

Broker 3 has two log dirs, the second an ext4 image that the kernel turns read-only
under it, as after an I/O error (``tests.support.mounts``; skipped where the machine
cannot mount). It leads two partitions of RF 3 and ``min.insync.replicas=2``, one in
each dir, while a confluent-kafka producer (acks=all, idempotent) writes to the one in
the failing dir. Once the dir fails, broker 3 reports its offline replica in its
registration and the controller moves leadership to another ISR member and takes broker
3 out of the ISR: every broker's Metadata says so (broker 3 among the offline
replicas), the producer carries on, every acknowledged record reads back intact, and
broker 3 goes on leading the partition in its healthy dir.

Then broker 3 restarts twice: with the dir still failed, it reports the replica again
and stays out of the ISR; with the dir replaced (gone from ``log.dirs``), nothing is
reported and its replica catches up into the ISR again. The preferred-leader rebalance
runs every second throughout, so it has its chances to hand the partition back to the
offline replica, its preferred leader; the checks above would see it.

A controller failover is checked on the metadata stores alone (no broker processes): an
offline replica reported while the controller is not acting is handled by the next one,
which reads it from the registrations.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

from odradek.cluster.leadership import LeadershipController
from odradek.config import BrokerConfig
from tests.integration.cluster.conftest import Cluster
from tests.integration.cluster.failover import check_no_loss, wait_for
from tests.integration.cluster.test_metadata_store import Stores, eventually, run
from tests.integration.cluster.test_reassignment import create
from tests.robustness.disk_faults import metadata
from tests.robustness.load import Producing
from tests.support import mounts
from tests.support.broker import BrokerProcess
from tests.support.clients import consume_all, produce_acked
from tests.support.wire import WireClient
from tests.support.zookeeper import ZooKeeperServer
from tests.unit.cluster.helpers import single_broker

FAILING = 3
"""The broker whose second log dir fails."""
SETTINGS = {
    "offsets.topic.num.partitions": "1",
    "auto.leader.rebalance.enable": "true",
    "leader.imbalance.check.interval.seconds": "1",
}
LEADERSHIP_MOVES_WITHIN = 10.0
"""Seconds from the failure until every broker names another leader."""


class Layout(NamedTuple):
    """Partition 0 of a topic as one broker's Metadata answers it."""

    error: int
    leader: int
    isr: list[int]
    offline: list[int]
    live: list[int]


def layout(broker: BrokerProcess, topic: str) -> Layout:
    with WireClient(broker.bootstrap) as client:
        answer = metadata(client, topic)
    (partition,) = answer.topics[0].partitions
    return Layout(
        int(partition.error_code),
        int(partition.leader_id),
        sorted(int(r) for r in partition.isr_nodes),
        sorted(int(r) for r in partition.offline_replicas),
        sorted(int(b.node_id) for b in answer.brokers),
    )


def everywhere(cluster: Cluster, topic: str, check: Callable[[Layout], bool]) -> bool:
    """``check`` holds in the Metadata answer of every running broker."""
    running = [b for b in cluster.brokers.values() if b.process and b.process.poll() is None]
    return all(check(layout(b, topic)) for b in running)


def test_failed_log_dir_moves_leadership_and_isr_off_the_broker(
    cluster_factory: Callable[..., Cluster], tmp_path: Path
) -> None:
    with mounts.ext4_image(tmp_path / "disk", 16) as disk:
        cluster = cluster_factory(2, **SETTINGS)
        try:
            _scenario(cluster, disk)
        finally:
            cluster.stop()  # before the mount goes


def _scenario(cluster: Cluster, disk: Path) -> None:
    healthy = cluster.directory / f"broker{FAILING}"  # its data dir, as Cluster.add makes it
    failing = cluster.add(FAILING, **{"log.dirs": f"{healthy},{disk}"})
    # The first topic goes to broker 3's first dir, the second to the emptier ext4 one.
    for topic, where in (("healthy", healthy), ("failing", disk)):
        create(cluster, topic, [[3, 1, 2]], **{"min.insync.replicas": "2"})
        wait_for((where / f"{topic}-0").is_dir, what=f"{topic}-0 in {where}")
    before = Layout(0, 3, [1, 2, 3], [], [1, 2, 3])
    for topic in ("healthy", "failing"):
        wait_for(lambda t=topic: everywhere(cluster, t, lambda m: m == before), what=topic)

    producer = Producing(cluster.bootstrap, "failing", 1, seed=5, rate=1000)
    producer.start()
    try:
        assert producer.wait_for_acks(500, timeout=20), "acks=all before the failure"
        mounts.fail_ext4(disk)
        # The next append finds the dir failed; the controller moves leadership and the
        # ISR off broker 3's replica, and every broker lists it as offline.
        wait_for(
            lambda: everywhere(
                cluster,
                "failing",
                lambda m: (
                    m.error == 0
                    and m.leader in (1, 2)
                    and m.isr == [1, 2]
                    and m.offline == [FAILING]
                ),
            ),
            timeout=LEADERSHIP_MOVES_WITHIN,
            what="leadership and ISR moved off the failed dir",
        )
        acked_at_move = len(producer.acked)
        assert producer.wait_for_acks(acked_at_move + 1000, timeout=20), "acks=all after"
        assert not producer.errors, producer.errors[:3]
    finally:
        producer.stop()
    check_no_loss(cluster, producer, "failing", 1)

    # Broker 3 goes on leading the partition in its healthy dir, acks=all included.
    assert everywhere(cluster, "healthy", lambda m: m == before)
    acked = produce_acked(failing.bootstrap, "healthy", 200, acks="all")
    read = consume_all(cluster.bootstrap, "healthy", 1, expected=200)
    assert [(a.offset, a.key, a.value) for a in acked] == [(r.offset, r.key, r.value) for r in read]

    # Restarted with the dir still failed, broker 3 reports its replica again: alive,
    # yet offline for that partition, out of the ISR, not its leader.
    failing.restart()
    wait_for(
        lambda: everywhere(
            cluster,
            "failing",
            lambda m: (
                m.leader in (1, 2)
                and (m.error, m.isr, m.offline, m.live) == (0, [1, 2], [FAILING], [1, 2, 3])
            ),
        ),
        what="the replica reported offline again after a restart",
    )
    # Restarted without it (the disk replaced), the replica is made anew, copies the
    # partition from its leader and joins the ISR again.
    assert failing.stop() == 0
    failing.overrides["log.dirs"] = str(healthy)
    failing.start()
    wait_for(
        lambda: everywhere(
            cluster,
            "failing",
            lambda m: m.isr == [1, 2, 3] and m.offline == [] and m.live == [1, 2, 3],
        ),
        what="the replaced replica back in the ISR",
    )
    check_no_loss(cluster, producer, "failing", 1)
    for broker_id, broker in cluster.brokers.items():
        assert "Traceback" not in broker.log_path.read_text(), f"broker {broker_id} log"


def test_a_new_controller_acts_on_offline_replicas_reported_before_it_took_over(
    tmp_path: Path, zookeeper: ZooKeeperServer
) -> None:
    stores = Stores("zookeeper", tmp_path, zookeeper)

    async def body() -> None:
        # Broker 1 is elected controller but never acts (as one that dies before it
        # could); brokers 2 and 3 would.
        one = await stores.open(1)
        two = await stores.open(2)
        three = await stores.open(3)
        for store in (two, three):
            store.add_listener(LeadershipController(store, BrokerConfig({})))
        topic = one.create_topic("t", [[3, 1, 2]], {})
        await eventually(lambda: two.topic("t") == topic == three.topic("t"))
        reported = replace(single_broker(3), offline_replicas=frozenset({(topic.topic_id, 0)}))
        three.update_registration(reported)
        await eventually(lambda: two.brokers().get(3) == reported)
        assert two.topic("t") == topic, "nobody acted while broker 1 was the controller"
        stores.opened.remove(one)
        one.close()  # the controller goes; 2 or 3 takes over
        # Broker 1 is dead and broker 3's replica is offline: 2 leads alone.
        await eventually(lambda: two.controller_id in (2, 3), timeout=15)

        def leader_and_isr() -> tuple[int, tuple[int, ...]] | None:
            now = two.topic("t")
            return None if now is None else (now.partitions[0].leader, now.partitions[0].isr)

        await eventually(lambda: leader_and_isr() == (2, (2,)), timeout=15)

    try:
        run(body)
    finally:
        stores.close_all()
