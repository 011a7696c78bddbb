"""Run the installed ``odradek`` console script as a subprocess, and read its output."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

PEER = os.environ.get("ODRADEK_TEST_PEER", "")


def peer_gap(peer: str, reason: str) -> pytest.MarkDecorator:
    """Expected failure against a peer broker that lacks a Kafka behaviour we test."""
    return pytest.mark.xfail(peer == PEER, reason=f"{peer}: {reason}", strict=True)


def odradek_executable() -> str:
    beside = Path(sys.executable).with_name("odradek")
    if beside.exists():
        return str(beside)
    found = shutil.which("odradek")
    if found is None:
        pytest.fail("the odradek console script is not installed (pip install -e .)")
    return found


def run(
    *args: str,
    stdin: bytes = b"",
    timeout: float = 60,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run ``odradek ARGS`` to completion with ``stdin``; never inherits a bootstrap env var."""
    environment = {k: v for k, v in os.environ.items() if k != "ODRADEK_BOOTSTRAP_SERVERS"}
    environment.update(env or {})
    return subprocess.run(
        [odradek_executable(), *args],
        input=stdin,
        capture_output=True,
        timeout=timeout,
        env=environment,
        check=False,
    )


def ok(result: subprocess.CompletedProcess[bytes]) -> str:
    """Assert success and return stdout as text."""
    assert result.returncode == 0, (
        f"exit {result.returncode}\nstdout: {result.stdout!r}\nstderr: {result.stderr!r}"
    )
    return result.stdout.decode()


def error_line(result: subprocess.CompletedProcess[bytes], exit_code: int = 1) -> str:
    """Assert the command failed with exactly one ``error: ...`` line on stderr; return it."""
    stderr = result.stderr.decode()
    assert result.returncode == exit_code, f"exit {result.returncode}, stderr: {stderr!r}"
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got: {stderr!r}"
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


def topic_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"
