"""A follower's replica moved to another log dir of its broker while the leader takes
acks=all writes (the follower keeps fetching into the log being copied), and
AlterReplicaLogDirs for a partition the broker does not host."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from kafka import KafkaAdminClient
from kafka.errors import NoError, ReplicaNotAvailableError

from tests.integration.cluster.conftest import Cluster
from tests.integration.cluster.test_reassignment import LoadProducer, create
from tests.support.clients import consume_all


def _where(admin: KafkaAdminClient, broker_id: int, topic: str) -> list[tuple[str, bool]]:
    (answer,) = admin.describe_log_dirs(brokers=[broker_id])
    return sorted(
        (result["log_dir"], partition["is_future_key"])
        for result in answer["log_dirs"]
        for entry in result["topics"]
        if entry["name"] == topic
        for partition in entry["partitions"]
    )


def test_a_follower_moves_its_replica_while_the_leader_takes_writes(
    cluster_factory: Callable[..., Cluster], tmp_path: Path
) -> None:
    cluster = cluster_factory(1, **{"auto.leader.rebalance.enable": "false"})
    dirs = [tmp_path / "follower-a", tmp_path / "follower-b"]
    cluster.add(
        2,
        **{
            "log.dirs": ",".join(map(str, dirs)),
            "replica.alter.log.dirs.io.max.bytes.per.second": "50000",
        },
    )
    create(cluster, "followed", [[1, 2]], **{"min.insync.replicas": "2"})
    create(cluster, "elsewhere", [[1]])
    admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap, request_timeout_ms=20000)
    load = LoadProducer(cluster.bootstrap, "followed")
    load.start()
    try:
        deadline = time.monotonic() + 20
        while len(load.acked) < 3000:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        ((origin, _),) = _where(admin, 2, "followed")
        target = str(dirs[1]) if origin == str(dirs[0]) else str(dirs[0])
        answer = admin.alter_replica_log_dirs(
            {("followed", 0, 2): target, ("elsewhere", 0, 2): target}
        )
        assert {key.topic: error for key, error in answer.items()} == {
            "followed": NoError,
            "elsewhere": ReplicaNotAvailableError,  # not hosted there (remembered)
        }
        assert (target, True) in _where(admin, 2, "followed")
        deadline = time.monotonic() + 30
        while _where(admin, 2, "followed") != [(target, False)]:
            assert time.monotonic() < deadline, _where(admin, 2, "followed")
            time.sleep(0.1)
        time.sleep(0.5)  # the follower goes on fetching into its moved log
    finally:
        load.finish()
        admin.close()
    assert not load.errors, load.errors[:3]
    # The moved follower takes over with everything that was acknowledged.
    assert cluster.brokers[1].stop() == 0
    read = consume_all(cluster.brokers[2].bootstrap, "followed", 1, timeout=60)
    values = {record.value for record in read}
    assert set(load.acked) <= values
    assert not (Path(origin) / "followed-0").exists()
