"""kio's native reader allocates nothing for a declared length: seeded bad frames decoded
in a subprocess whose address space may grow by 256 MiB at most (``native_memory``).
Before the declared-length check, the first hostile array count aborted that process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SEED = 5
FRAMES = 2000


def test_bad_frames_under_an_address_space_limit(tmp_path: Path) -> None:
    progress = tmp_path / "case"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.fuzz.native_memory",
            f"--seed={SEED}",
            f"--frames={FRAMES}",
            f"--progress={progress}",
        ],
        cwd=Path(__file__).parents[2],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    last = progress.read_text() if progress.exists() else ""
    assert done.returncode == 0, (
        f"exit {done.returncode} on the case\n{last}\n{done.stderr[-3000:]}{done.stdout}"
    )
    result = json.loads(done.stdout)
    assert result["frames"] == FRAMES
    assert set(result["outcomes"]) <= {"decoded", "rejected"}
