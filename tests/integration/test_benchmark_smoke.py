"""The throughput benchmark still runs end to end (one quick round, Odradek only).

Nothing here is timed: the benchmark's numbers are not checked, only that every workload
ran and every record produced was read back intact, by each of the phase's load
generators.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_quick_benchmark_against_odradek(tmp_path: Path) -> None:
    command = [
        sys.executable,
        str(REPO / "benchmarks" / "throughput.py"),
        "--quick",
        "--rounds", "1",
        "--broker", "odradek",
        "--max-quiet-wait", "0",
        "--no-publish",
        "--results-dir", str(tmp_path),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=280, check=False)
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-5000:]

    (run_dir,) = tmp_path.iterdir()
    results = json.loads((run_dir / "results.json").read_text())
    samples = results["samples"]
    assert {s["phase"] for s in samples} == {"produce", "consume"}
    assert len(samples) == 2 * len(results["workloads"])
    assert results["load_generators"] == 2
    counts = {
        f"{w['size']}b-p{w['partitions']}-acks{w['acks']}": w["count"] for w in results["workloads"]
    }
    for s in samples:
        assert s["error"] is None, s
        assert s["bytes"] == s["records"] * s["size"], s
        count = counts[f"{s['size']}b-p{s['partitions']}-acks{s['acks']}"]
        # Producers share the records; each consumer reads all of them.
        assert s["records"] == (count if s["phase"] == "produce" else 2 * count), s
    assert [r["exit_code"] for r in results["rounds"]] == [0]
    report = (run_dir / "BENCHMARKS.md").read_text()
    assert "| produce 1 KiB · 8p · acks=1 |" in report
    if shutil.which("perf") is not None:  # the broker's instructions are counted too
        assert all(s["broker_instructions"] > 0 for s in samples), samples
        assert "### Broker instructions per byte moved (perf)" in report
