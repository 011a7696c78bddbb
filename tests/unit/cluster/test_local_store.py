"""LocalStore's file: every change is persisted, one topic per line, and reads back whole."""

from __future__ import annotations

import json
from pathlib import Path

from odradek.cluster.metadata import METADATA_FILE, LocalStore


def test_changes_round_trip_through_the_file(tmp_path: Path) -> None:
    store = LocalStore(tmp_path, "cluster-a")
    for n in range(5):
        store.create_topic(f"t{n}", [[1]] * (n + 1), {"retention.ms": str(n)})
    store.delete_topic("t2")
    store.add_partitions("t0", [[1], [1]])
    store.set_topic_configs("t4", {"cleanup.policy": "compact"})
    producer_id = store.allocate_producer_id()

    text = (tmp_path / METADATA_FILE).read_text()
    document = json.loads(text)
    assert [t["name"] for t in document["topics"]] == ["t0", "t1", "t3", "t4"]
    assert sum(1 for line in text.splitlines() if line.startswith('{"name":')) == 4

    again = LocalStore(tmp_path, "ignored")
    assert again.cluster_id == "cluster-a"
    assert again.topics() == store.topics()
    assert again.allocate_producer_id() > producer_id


def test_empty_store_file_reads_back(tmp_path: Path) -> None:
    store = LocalStore(tmp_path, "c")
    store.allocate_producer_id()
    again = LocalStore(tmp_path, "other")
    assert again.cluster_id == "c" and not again.topics()
