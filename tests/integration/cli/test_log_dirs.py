"""``odradek log-dirs describe|move`` against a broker with two log dirs."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from kafka import KafkaAdminClient

from tests.integration.cli.runner import error_line, ok, run
from tests.support.broker import BrokerProcess
from tests.support.clients import create_topic, produce_acked


def _describe_json(broker: BrokerProcess, *extra: str) -> dict[str, object]:
    output = ok(run("log-dirs", "describe", "--json", "-b", broker.bootstrap, *extra))
    document: dict[str, object] = json.loads(output)
    return document


def _locations(document: dict[str, object]) -> dict[str, list[tuple[str, bool]]]:
    found: dict[str, list[tuple[str, bool]]] = {}
    for entry in document["brokers"]:  # type: ignore[attr-defined]
        for log_dir in entry["logDirs"]:
            for partition in log_dir["partitions"]:
                found.setdefault(partition["partition"], []).append(
                    (log_dir["logDir"], partition["isFuture"])
                )
    return found


def test_describe_and_move_a_partition(
    broker_factory: Callable[..., BrokerProcess], tmp_path: Path
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    broker = broker_factory({"log.dirs": f"{first},{second}"})
    create_topic(broker.bootstrap, "shown", partitions=2)
    create_topic(broker.bootstrap, "hidden", partitions=1)
    produce_acked(broker.bootstrap, "shown", 100, partitions=2)

    document = _describe_json(broker, "--topics", "shown")
    assert document["version"] == 1
    (entry,) = document["brokers"]  # type: ignore[misc]
    assert [d["logDir"] for d in entry["logDirs"]] == [str(first), str(second)]
    assert all(d["error"] is None and d["totalBytes"] > 0 for d in entry["logDirs"])
    located = _locations(document)
    assert sorted(located) == ["shown-0", "shown-1"]
    assert sorted(where for ((where, _),) in located.values()) == [str(first), str(second)]

    table = ok(run("log-dirs", "describe", "-b", broker.bootstrap))
    assert f"broker {entry['broker']}  {first}" in table
    assert "hidden-0" in table and "shown-1" in table and "free of" in table

    ((origin, _),) = located["shown-0"]
    target = str(second) if origin == str(first) else str(first)
    moved = ok(run("log-dirs", "move", "shown", "0", target, "-b", broker.bootstrap))
    assert f"moving shown-0 to {target}" in moved
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:  # waiting through kafka-python: a CLI run costs an interpreter start

        def where() -> list[str]:
            ((answer,),) = [admin.describe_log_dirs()]
            return [
                result["log_dir"]
                for result in answer["log_dirs"]
                for topic in result["topics"]
                for partition in topic["partitions"]
                if (topic["name"], partition["partition_index"]) == ("shown", 0)
            ]

        deadline = time.monotonic() + 20
        while where() != [target]:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        admin.close()

    refused = error_line(run("log-dirs", "move", "shown", "0", "/nowhere", "-b", broker.bootstrap))
    assert "LOG_DIR_NOT_FOUND" in refused
