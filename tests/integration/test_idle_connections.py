"""``connections.max.idle.ms`` against a real broker process: a connection that sends
nothing, or half a frame, or goes quiet after a request, is closed once it has been quiet
for that long (``odradek.broker.connections``: one sweep a tenth of the limit apart, so
between the limit and 1.1 times it), while a client that keeps talking is never
disconnected and a request the broker is still handling keeps its connection open."""

from __future__ import annotations

import datetime
import os
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer
from kio.schema.api_versions.v3.request import ApiVersionsRequest
from kio.schema.fetch.v12.request import FetchPartition, FetchRequest, FetchTopic
from kio.schema.types import TopicName
from kio.static.primitive import i8, i32, i32Timedelta, i64

from odradek.protocol.errors import ErrorCode
from tests.robustness.load import Producing
from tests.support.broker import BrokerProcess
from tests.support.clients import create_topic
from tests.support.wire import WireClient

Factory = Callable[..., BrokerProcess]

IDLE_MS = 1000
IDLE_CONFIG = {"connections.max.idle.ms": str(IDLE_MS)}
SWEEP = IDLE_MS / 10 / 1000
"""The broker's sweep interval: how late after the limit a quiet connection may close."""


def _connect(broker: BrokerProcess) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", broker.port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _closed_after(sock: socket.socket, since: float, limit: float = 10.0) -> float | None:
    """Seconds from ``since`` until the broker closes ``sock`` (None: still open at
    ``limit``). Nothing is expected to arrive on it before the close."""
    sock.settimeout(limit)
    try:
        data = sock.recv(4096)
    except TimeoutError:
        return None
    except ConnectionResetError:
        data = b""
    assert data == b"", f"unexpected bytes from the broker: {data!r}"
    return time.monotonic() - since


def _broker_sockets(pid: int) -> set[str]:
    """The socket inodes the broker process holds (its listener and connections)."""
    found = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:
            continue
        if target.startswith("socket:"):
            found.add(target)
    return found


def test_silent_and_half_frame_connections_are_closed_after_the_idle_limit(
    broker_factory: Factory,
) -> None:
    broker = broker_factory(IDLE_CONFIG)
    silent, half, answered = _connect(broker), _connect(broker), _connect(broker)
    opened = time.monotonic()
    # A frame that declares 64 bytes and sends 6 of them: the broker waits for the rest.
    half.sendall(struct.pack(">i", 64) + b"\x00\x12\x00\x03\x00\x00")
    client = WireClient.wrap(answered)
    request = ApiVersionsRequest(client_software_name="t", client_software_version="1")
    assert client.call(request).error_code == ErrorCode.none
    last_answer = time.monotonic()
    # Every 0.3 s one byte of a frame: never quiet for the limit, so never closed.
    trickle = _connect(broker)
    trickle.sendall(struct.pack(">i", 100_000))
    stop = threading.Event()
    refused: list[OSError] = []

    def dribble() -> None:
        while not stop.wait(0.3):
            try:
                trickle.sendall(b"\x00")
            except OSError as exc:
                refused.append(exc)
                return

    dribbler = threading.Thread(target=dribble, daemon=True)
    dribbler.start()
    try:
        seen = {
            "silent": _closed_after(silent, opened),
            "half frame": _closed_after(half, opened),
            "quiet after an answer": _closed_after(answered, last_answer),
        }
        for name, seconds in seen.items():
            assert seconds is not None, f"{name} connection still open after 10 s"
            # Not before the limit; at most a sweep late, plus scheduling slack.
            assert IDLE_MS / 1000 - 0.05 <= seconds <= IDLE_MS / 1000 + SWEEP + 0.5, seen
        time.sleep(0.5)  # the trickling connection has now lived 3 x the limit
        trickle.setblocking(False)
        try:
            closed = trickle.recv(1) == b""
        except BlockingIOError:
            closed = False
        except ConnectionResetError:
            closed = True
        assert not closed and not refused, "a connection that kept sending was closed as idle"
    finally:
        stop.set()
        dribbler.join()
        for sock in (silent, half, answered, trickle):
            sock.close()
    assert "Traceback" not in broker.log()


def test_a_parked_long_poll_fetch_keeps_its_connection_open(broker_factory: Factory) -> None:
    """A Fetch that waits 2.5 times the idle limit for data is a request in progress:
    its connection is not idle, gets the answer, and is closed only once quiet after it."""
    broker = broker_factory(IDLE_CONFIG)
    create_topic(broker.bootstrap, "empty")
    wait = datetime.timedelta(milliseconds=int(IDLE_MS * 2.5))
    request = FetchRequest(
        max_wait=i32Timedelta.parse(wait),
        min_bytes=i32(1),
        max_bytes=i32(1 << 20),
        isolation_level=i8(0),
        session_id=i32(0),
        session_epoch=i32(-1),
        topics=(
            FetchTopic(
                topic=TopicName("empty"),
                partitions=(
                    FetchPartition(
                        partition=i32(0),
                        fetch_offset=i64(0),
                        log_start_offset=i64(-1),
                        partition_max_bytes=i32(1 << 20),
                    ),
                ),
            ),
        ),
        forgotten_topics_data=(),
        rack_id="",
    )
    with WireClient(broker.bootstrap) as client:
        sent = time.monotonic()
        answer = client.call(request)
        answered = time.monotonic()
        assert answer.error_code == ErrorCode.none
        assert answer.responses[0].partitions[0].error_code == ErrorCode.none
        assert answered - sent >= wait.total_seconds() - 0.05, "the fetch did not wait"
        closed = _closed_after(client.sock, answered)
    assert closed is not None and IDLE_MS / 1000 - 0.05 <= closed <= IDLE_MS / 1000 + 0.6


def test_an_active_consumer_is_never_disconnected(broker_factory: Factory) -> None:
    """A confluent-kafka group consumer polling while a producer produces, for 5 times
    the idle limit: none of the broker's sockets open at the start of the watch is
    closed, the client reports no disconnection, and it reads every record. (Its
    heartbeats and metadata refreshes are made more frequent than the limit, as with
    Kafka: a consumer connection quiet for longer is closed there too.)"""
    broker = broker_factory({"connections.max.idle.ms": "1500"})
    assert broker.process is not None
    create_topic(broker.bootstrap, "busy", partitions=2)
    producer = Producing(broker.bootstrap, "busy", 2, seed=5, rate=200)
    client_logs: list[str] = []
    errors: list[str] = []

    class _Log:
        def log(self, level: int, fmt: str, *args: Any) -> None:
            client_logs.append(fmt % args if args else fmt)

    consumer = Consumer(
        {
            "bootstrap.servers": broker.bootstrap,
            "group.id": "idle-test",
            "auto.offset.reset": "earliest",
            "heartbeat.interval.ms": 300,
            "session.timeout.ms": 6000,
            "topic.metadata.refresh.interval.ms": 500,
            "fetch.wait.max.ms": 200,
            "log.connection.close": True,
            "error_cb": lambda err: errors.append(str(err)),
        },
        logger=_Log(),
    )
    consumer.subscribe(["busy"])
    producer.start()
    received: set[tuple[int, int]] = set()

    def poll_until(done: Callable[[], bool], seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not done() and time.monotonic() < deadline:
            message = consumer.poll(0.1)
            if message is not None and message.error() is None:
                received.add((message.partition(), message.offset()))

    try:
        poll_until(lambda: bool(received), 30)
        assert received, "the consumer never got a record"
        before = _broker_sockets(broker.process.pid)
        poll_until(lambda: False, 7.5)
        after = _broker_sockets(broker.process.pid)
        producer.stop()
        poll_until(lambda: received >= set(producer.acked), 10)
    finally:
        producer.stop()
        consumer.close()
    assert before - after == set(), f"broker closed {len(before - after)} of the client's sockets"
    assert not [e for e in errors if "_TRANSPORT" in e or "isconnect" in e], errors
    assert not [line for line in client_logs if "isconnect" in line], client_logs
    assert not producer.errors and not producer.unflushed
    assert len(producer.acked) > 1000 and set(producer.acked) <= received
    assert len(before) >= 3  # listener, and the consumer's and producer's connections
