"""Development only: run the CLI tests against Tansu, a Kafka-compatible peer broker.

With ``ODRADEK_TEST_PEER=tansu`` this module provides the ``broker`` fixture itself,
starting Tansu (in-memory storage, loopback, OS-assigned port). Otherwise it defines
nothing, and ``broker`` comes from ``tests/integration/conftest.py`` (``odradek server``).
Remove this file once our own broker passes these tests.
"""

from __future__ import annotations

import os

if os.environ.get("ODRADEK_TEST_PEER") == "tansu":
    import socket
    import subprocess
    import time
    from collections.abc import Iterator
    from dataclasses import dataclass
    from pathlib import Path

    import pytest

    from tests.support.broker import free_port

    TANSU = os.environ.get("ODRADEK_TANSU", "/root/.calfkit/bin/tansu-v0.6.0-510f3e2")

    @dataclass(frozen=True)
    class PeerBroker:
        bootstrap: str

    def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"tansu exited with {process.returncode}:\n{log.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        pytest.fail(f"tansu did not listen on {port} within 15s:\n{log.read_text()}")

    @pytest.fixture(scope="module")
    def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PeerBroker]:
        port = free_port()
        url = f"tcp://127.0.0.1:{port}"
        log = tmp_path_factory.mktemp("tansu") / "tansu.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [TANSU, "broker", "--listener-url", url, "--advertised-listener-url", url],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            _wait_for_port(port, process, log)
            yield PeerBroker(bootstrap=f"127.0.0.1:{port}")
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
