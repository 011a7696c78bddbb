"""The server process: readiness, shutdown, restart, start-up errors, request ordering."""

from __future__ import annotations

import datetime
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from confluent_kafka import Consumer
from kio.schema.metadata.v12.request import MetadataRequest, MetadataRequestTopic
from kio.schema.produce.v9.request import PartitionProduceData, ProduceRequest, TopicProduceData
from kio.static.primitive import Records, i16, i32

from odradek.protocol.record_codec import NewRecord, build_batch
from tests.support.broker import BrokerProcess, free_port
from tests.support.clients import admin, consume_all, create_topic, produce_acked
from tests.support.wire import WireClient, fetch_request

Factory = Callable[..., BrokerProcess]


def run_server(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "odradek", "server", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_sigterm_exits_zero_and_restart_keeps_everything(broker_factory: Factory) -> None:
    broker = broker_factory()
    create_topic(broker.bootstrap, "keep", partitions=3)
    sent = produce_acked(broker.bootstrap, "keep", 300, partitions=3)
    broker.restart()
    assert "shut down cleanly" in broker.log()
    assert consume_all(broker.bootstrap, "keep", 3) == sent
    topics = admin(broker.bootstrap).list_topics(timeout=10).topics
    assert len(topics["keep"].partitions) == 3


def test_sigint_also_stops_cleanly(broker_factory: Factory) -> None:
    broker = broker_factory()
    assert broker.process is not None
    broker.process.send_signal(signal.SIGINT)
    assert broker.process.wait(15) == 0


def test_port_in_use_is_one_clear_line(broker_factory: Factory, tmp_path: Path) -> None:
    running = broker_factory()
    result = run_server(
        "--data-dir",
        str(tmp_path / "other"),
        "--listeners",
        f"PLAINTEXT://127.0.0.1:{running.port}",
    )
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "address already in use" in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_second_broker_on_same_data_dir_is_refused(broker_factory: Factory) -> None:
    running = broker_factory()
    result = run_server(
        "--data-dir", str(running.data_dir), "--listeners", f"PLAINTEXT://127.0.0.1:{free_port()}"
    )
    assert result.returncode == 1
    assert "in use by another broker" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_config_value_is_one_clear_line(tmp_path: Path) -> None:
    result = run_server("--data-dir", str(tmp_path), "--override", "num.partitions=many")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "error: Invalid value many for configuration num.partitions: Not a number of type INT"
    )


def test_bad_listener_is_one_clear_line(tmp_path: Path) -> None:
    result = run_server("--data-dir", str(tmp_path), "--listeners", "127.0.0.1:9092")
    assert result.returncode == 1
    assert "is not NAME://host:port" in result.stderr
    assert "Traceback" not in result.stderr


def test_config_file_then_flags_then_override(tmp_path: Path) -> None:
    config = tmp_path / "server.properties"
    config.write_text("num.partitions=4\nlog.dirs=/nonexistent/never-used\n")
    broker = BrokerProcess(tmp_path / "data", {"num.partitions": "2"})
    base = broker.command
    broker.command = lambda: [*base(), "--config", str(config)]  # type: ignore[method-assign]
    broker.start()
    try:
        with WireClient(broker.bootstrap) as client:
            response = client.call(
                MetadataRequest(
                    topics=(MetadataRequestTopic(topic_id=None, name="auto1"),),
                    allow_auto_topic_creation=True,
                    include_topic_authorized_operations=False,
                )
            )
        # --override beats --config for num.partitions; --data-dir beats log.dirs.
        assert len(response.topics[0].partitions) == 2
        assert (tmp_path / "data" / "auto1-0").is_dir()
    finally:
        assert broker.stop() == 0


def test_long_poll_fetch_does_not_stall_requests_behind_it(broker: BrokerProcess) -> None:
    """A produce sent after a waiting fetch on the same connection is processed at once,
    which wakes the fetch; responses still come back in request order."""
    create_topic(broker.bootstrap, "longpoll")
    batch = build_batch([NewRecord(key=b"k", value=b"woken")])
    produce = ProduceRequest(
        transactional_id=None,
        acks=i16(1),
        timeout=datetime.timedelta(seconds=10),
        topic_data=(
            TopicProduceData(
                name="longpoll",
                partition_data=(PartitionProduceData(index=i32(0), records=Records(batch)),),
            ),
        ),
    )
    with WireClient(broker.bootstrap) as client:
        started = time.monotonic()
        client.send_frame(client.request_bytes(fetch_request("longpoll", max_wait_ms=20000)))
        fetch_id = client.correlation_id
        client.send_frame(client.request_bytes(produce))
        first = client.read_frame()
        second = client.read_frame()
        elapsed = time.monotonic() - started
    assert int.from_bytes(first[:4], "big") == fetch_id
    assert int.from_bytes(second[:4], "big") == fetch_id + 1
    assert elapsed < 15, "the fetch waited for its timeout: the produce behind it was stalled"
    assert b"woken" in first


def test_fetch_woken_by_a_produce_in_the_same_tcp_segment(broker: BrokerProcess) -> None:
    """Both requests in one write: the produce is handled before the fetch starts waiting,
    and the fetch must still see it instead of sleeping its whole max wait."""
    create_topic(broker.bootstrap, "same-segment")
    batch = build_batch([NewRecord(key=b"k", value=b"together")])
    produce = ProduceRequest(
        transactional_id=None,
        acks=i16(1),
        timeout=datetime.timedelta(seconds=10),
        topic_data=(
            TopicProduceData(
                name="same-segment",
                partition_data=(PartitionProduceData(index=i32(0), records=Records(batch)),),
            ),
        ),
    )
    with WireClient(broker.bootstrap) as client:
        fetch_frame = client.request_bytes(fetch_request("same-segment", max_wait_ms=20000))
        produce_frame = client.request_bytes(produce)
        started = time.monotonic()
        client.send_raw(
            len(fetch_frame).to_bytes(4, "big")
            + fetch_frame
            + len(produce_frame).to_bytes(4, "big")
            + produce_frame
        )
        first = client.read_frame()
        client.read_frame()
        elapsed = time.monotonic() - started
    assert b"together" in first
    assert elapsed < 15


def test_advertised_listener_is_what_metadata_returns(tmp_path: Path) -> None:
    broker = BrokerProcess(tmp_path / "data")
    base = broker.command
    broker.command = lambda: [  # type: ignore[method-assign]
        *base(),
        "--advertised-listeners",
        "PLAINTEXT://broker.example:19999",
    ]
    broker.start()
    try:
        with WireClient(broker.bootstrap) as client:
            response = client.call(
                MetadataRequest(
                    topics=None,
                    allow_auto_topic_creation=False,
                    include_topic_authorized_operations=False,
                )
            )
        assert [(b.host, b.port) for b in response.brokers] == [("broker.example", 19999)]
    finally:
        assert broker.stop() == 0


def test_sigterm_answers_a_waiting_fetch_before_exiting(broker_factory: Factory) -> None:
    broker = broker_factory()
    create_topic(broker.bootstrap, "draining")
    with WireClient(broker.bootstrap) as client:
        client.send_frame(client.request_bytes(fetch_request("draining", max_wait_ms=30000)))
        time.sleep(0.5)  # let the fetch park
        assert broker.process is not None
        broker.process.send_signal(signal.SIGTERM)
        response = client.read_frame()
        assert int.from_bytes(response[:4], "big") == client.correlation_id
    assert broker.process.wait(15) == 0


def test_sigterm_with_a_busy_consumer_group_exits_within_ten_seconds(
    broker_factory: Factory,
) -> None:
    """Consumers keep sending fetches and heartbeats; shutdown must not wait on them."""
    broker = broker_factory({"group.initial.rebalance.delay.ms": "0"})
    create_topic(broker.bootstrap, "busy", partitions=2)
    produce_acked(broker.bootstrap, "busy", 20, partitions=2)
    consumer = Consumer(
        {
            "bootstrap.servers": broker.bootstrap,
            "group.id": "busy-group",
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": 100,
            # Closing after the broker is gone must not wait on a final commit.
            "enable.auto.commit": False,
            "session.timeout.ms": 6000,
        }
    )
    try:
        consumer.subscribe(["busy"])
        deadline = time.monotonic() + 30
        received = 0
        while received < 20 and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is not None and not message.error():
                received += 1
        assert received == 20
        assert broker.process is not None
        started = time.monotonic()
        broker.process.send_signal(signal.SIGTERM)
        while broker.process.poll() is None and time.monotonic() - started < 15:
            consumer.poll(0.1)
        assert broker.process.returncode == 0
        assert time.monotonic() - started < 10, "the issue asks for exit within 10 s"
    finally:
        consumer.close()


def test_requests_before_a_bad_size_prefix_are_answered(broker: BrokerProcess) -> None:
    with WireClient(broker.bootstrap) as client:
        metadata = client.request_bytes(
            MetadataRequest(
                topics=None,
                allow_auto_topic_creation=False,
                include_topic_authorized_operations=False,
            )
        )
        client.send_raw(len(metadata).to_bytes(4, "big") + metadata + b"\x7f\xff\xff\xff")
        response = client.read_frame()
        assert int.from_bytes(response[:4], "big") == client.correlation_id
        assert client.is_closed_by_peer(timeout=2.0)
