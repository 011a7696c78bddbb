"""The replication benchmark still runs end to end (one quick round of each set-up: one
broker, and ZooKeeper with three brokers).

Nothing here is timed: the benchmark's numbers are not checked, only that every workload
ran, every acknowledged record was read back intact, and every process stopped cleanly.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.zookeeper import zookeeper_available

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_quick_replication_benchmark(tmp_path: Path) -> None:
    problem = zookeeper_available()
    if problem is not None:
        pytest.fail(f"the replication benchmark needs ZooKeeper: {problem}")
    command = [
        sys.executable,
        str(REPO / "benchmarks" / "replication.py"),
        "--quick",
        "--rounds", "1",
        "--max-quiet-wait", "0",
        "--no-publish",
        "--results-dir", str(tmp_path),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=400, check=False)
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-5000:]

    (run_dir,) = tmp_path.iterdir()
    results = json.loads((run_dir / "results.json").read_text())
    samples = results["samples"]
    assert {s["broker"] for s in samples} == {"single", "rf3"}
    assert len(samples) == 2 * 2 * len(results["workloads"])
    for s in samples:
        assert s["error"] is None, s
        assert s["records"] > 0 and s["bytes"] == s["records"] * s["size"], s
    for s in samples:
        expected = 3 if s["broker"] == "rf3" else 1
        assert len(s["broker_cpu_each_s"]) == expected, s
    assert len(results["latency"]) == 2 * len(results["rates"])
    for lat in results["latency"]:
        assert lat["error"] is None and lat["received"] > 0, lat
    assert [r["exit_codes"] for r in results["rounds"]] == [[0], [0, 0, 0]]
    assert all(r["error"] is None for r in results["rounds"])
    report = (run_dir / "BENCHMARKS.md").read_text()
    assert "<!-- begin:replication -->" in report
    assert "| produce 1 KiB · 8p · acks=all |" in report
