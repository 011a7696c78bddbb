"""The latency and scale benchmarks still run end to end (small sizes, Odradek only).

Nothing here is timed: only that every part ran, every record arrived in order, and the
restarts kept every acknowledged record.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def run(script: str, *args: str, results: Path, timeout: int) -> dict:  # type: ignore[type-arg]
    command = [sys.executable, str(REPO / "benchmarks" / script), *args]
    command += ["--no-publish", "--results-dir", str(results)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-5000:]
    (run_dir,) = results.iterdir()
    return json.loads((run_dir / "results.json").read_text())  # type: ignore[no-any-return]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_latency_benchmark_against_odradek(tmp_path: Path) -> None:
    raw = run(
        "latency.py", "--broker", "odradek", "--rounds", "1", "--seconds", "3",
        "--warmup", "1", "--rate", "500", "--max-quiet-wait", "0",
        results=tmp_path, timeout=280,
    )  # fmt: skip
    (sample,) = raw["samples"]
    assert sample["error"] is None, sample
    assert sample["received"] == 1500
    assert 0 < sample["p50_ms"] <= sample["p99_ms"] <= sample["max_ms"]
    assert sample["exit_code"] == 0


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_scale_benchmark_small(tmp_path: Path) -> None:
    raw = run(
        "scale.py", "--partitions", "200", "--connections", "50", "--gb", "0.05",
        "--rounds", "1",
        results=tmp_path, timeout=580,
    )  # fmt: skip
    parts = raw["parts"]
    assert parts["partitions"]["data_check"] is True
    assert [r["stop_code"] for r in parts["partitions"]["restarts"]] == [0]
    assert parts["connections"]["answered"] == 50 and parts["connections"]["failed"] == 0
    restarts = parts["recovery"]["restarts"]
    assert [r["how"] for r in restarts] == ["kill", "clean", "kill-no-checkpoint"]
    assert all(r["data_ok"] for r in restarts), restarts
