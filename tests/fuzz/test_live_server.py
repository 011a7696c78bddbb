"""Bad frames against a real broker on loopback: each bad connection is closed or answered
within a second, the broker logs no traceback, allocates nothing for declared sizes, and
a fresh client can still create, produce and consume afterwards. Fixed seed."""

from __future__ import annotations

import datetime
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kio.schema.errors import ErrorCode

from odradek.protocol import codec
from tests.fuzz.frames import header, targets, uvarint
from tests.fuzz.live import (
    DEADLINE,
    populate,
    run_live,
    send_and_watch,
    summary,
    unexpected_incidents,
    vm_status,
)
from tests.support.broker import BrokerProcess
from tests.support.clients import consume_all, create_topic, produce_acked
from tests.support.wire import WireClient

SEED = 1
FRAMES = 800
MAX_REQUEST = 104857600  # socket.request.max.bytes' default
ADDRESS_SPACE_GROWTH_KIB = 256 * 1024
"""The broker's peak address space may grow by this much over the run; honouring one
declared length (INT32_MAX elements) would take 16 GiB."""


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    process = BrokerProcess(tmp_path_factory.mktemp("fuzz") / "data")
    process.start()
    populate(process.bootstrap)
    targets()  # build the valid requests before any timing starts
    yield process
    code = process.stop()
    assert code == 0, f"broker did not shut down cleanly ({code}):\n{process.log()}"


def address(broker: BrokerProcess) -> tuple[str, int]:
    return ("127.0.0.1", broker.port)


def log_since(broker: BrokerProcess, offset: int) -> str:
    with broker.log_path.open("rb") as log:
        log.seek(offset)
        return log.read().decode(errors="replace")


def test_seeded_bad_frames(broker: BrokerProcess) -> None:
    assert broker.process is not None
    run = run_live(address(broker), broker.process.pid, broker.log_path, seed=SEED, count=FRAMES)
    report = summary(run)
    assert run.frames == FRAMES
    assert not run.failures, "\n".join(run.failures[:20])
    assert not unexpected_incidents(run), f"{report}\n" + "\n".join(run.log_lines[:20])
    assert run.slowest < DEADLINE
    growth = run.vm_after["VmPeak"] - run.vm_before["VmPeak"]
    assert growth < ADDRESS_SPACE_GROWTH_KIB, report
    assert broker.process.poll() is None

    create_topic(broker.bootstrap, "after-fuzz", partitions=2)
    acked = produce_acked(broker.bootstrap, "after-fuzz", 20, partitions=2)
    assert len(acked) == 20
    consumed = consume_all(broker.bootstrap, "after-fuzz", 2, expected=20)
    assert sorted((r.key, r.value) for r in consumed) == sorted((r.key, r.value) for r in acked)


@pytest.mark.parametrize(
    "prefix",
    [
        pytest.param(struct.pack(">i", MAX_REQUEST + 1), id="over-socket.request.max.bytes"),
        pytest.param(struct.pack(">i", 2**31 - 1), id="int32-max"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: localhost\r\n", id="http-get-headers"),
        pytest.param(
            b"POST /topics/x HTTP/1.1\r\nContent-Length: 1048576\r\n\r\n", id="http-post-no-body"
        ),
        pytest.param(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", id="tls-client-hello"),
    ],
)
def test_oversized_frames_close_before_their_body(broker: BrokerProcess, prefix: bytes) -> None:
    """Only a size prefix (or the start of an HTTP request, whose first four bytes read as
    a size of 1.1 GB and more) is sent: the broker must close without waiting for a body,
    and without reserving memory for it."""
    assert broker.process is not None
    before = vm_status(broker.process.pid)
    outcome, seconds, _response = send_and_watch(address(broker), prefix)
    assert outcome == "closed" and seconds < DEADLINE
    after = vm_status(broker.process.pid)
    assert after["VmPeak"] - before["VmPeak"] < ADDRESS_SPACE_GROWTH_KIB


# Frames that once did real damage (see test_declared_lengths): on the wire they close
# their own connection and nothing else.
KILLERS = {
    "compact-array-2^32-aborted-the-process": header(3, 12, flexible=True)
    + uvarint(2**32 - 1)
    + b"\x00" * 4,
    "legacy-array-int32-max-reserved-16-gib": header(3, 4, flexible=False)
    + struct.pack(">i", 2**31 - 1)
    + b"\x00" * 4,
    "produce-v2-negative-name-looped-2^31-times": header(0, 2, flexible=False)
    + struct.pack(">hii", 1, 1000, 2**31 - 1)
    + struct.pack(">hih", 0, -1, -6),
    "null-non-nullable-array-crashed-the-handler": header(20, 3, flexible=False)
    + struct.pack(">ii", -1, 1000),
}


@pytest.mark.parametrize("frame", KILLERS.values(), ids=KILLERS.keys())
def test_frames_that_did_damage_close_only_their_connection(
    broker: BrokerProcess, frame: bytes
) -> None:
    offset = broker.log_path.stat().st_size
    outcome, seconds, _response = send_and_watch(
        address(broker), struct.pack(">i", len(frame)) + frame
    )
    assert outcome == "closed" and seconds < DEADLINE
    assert "Traceback" not in log_since(broker, offset)
    with WireClient(broker.bootstrap) as wire:
        assert wire.call(_metadata(12, None)).brokers


def _metadata(version: int, topics: Any) -> Any:
    cls = codec.request_class(3, version)
    return codec.build(
        cls,
        topics=topics,
        allow_auto_topic_creation=False,
        include_cluster_authorized_operations=False,
        include_topic_authorized_operations=False,
    )


@pytest.mark.parametrize("version", [10, 11])
def test_metadata_v10_topic_without_a_name_is_invalid_request(
    broker: BrokerProcess, version: int
) -> None:
    """v10-11 requests may name a topic by id only; their responses cannot carry a null
    name. The response failed to encode and the connection was dropped with a traceback;
    Kafka refuses topic ids before v12."""
    module = __import__(codec.request_class(3, version).__module__, fromlist=["_"])
    topic = module.MetadataRequestTopic(topic_id=None, name=None)
    offset = broker.log_path.stat().st_size
    with WireClient(broker.bootstrap) as wire:
        response = wire.call(_metadata(version, (topic,)))
        assert [t.error_code for t in response.topics] == [ErrorCode.invalid_request]
        assert wire.call(_metadata(version, None)).brokers
    assert "Traceback" not in log_since(broker, offset)


def _fetch(partition_max_bytes: int, max_bytes: int) -> Any:
    cls = codec.request_class(1, 12)
    module = __import__(cls.__module__, fromlist=["_"])
    partition = module.FetchPartition(
        partition=0, fetch_offset=0, partition_max_bytes=partition_max_bytes
    )
    return cls(
        max_wait=datetime.timedelta(milliseconds=10),
        min_bytes=1,
        max_bytes=max_bytes,
        isolation_level=0,
        session_id=0,
        session_epoch=-1,
        topics=(module.FetchTopic(topic="negative-max", partitions=(partition,)),),
        forgotten_topics_data=(),
        rack_id="",
    )


@pytest.mark.parametrize(
    ("partition_max_bytes", "max_bytes"),
    [(-1, 1 << 20), (1 << 20, -1)],
    ids=["partition", "request"],
)
def test_fetch_with_negative_max_bytes_is_answered(
    tmp_path: Path, partition_max_bytes: int, max_bytes: int
) -> None:
    broker = BrokerProcess(tmp_path / "data").start()
    try:
        create_topic(broker.bootstrap, "negative-max")
        produce_acked(broker.bootstrap, "negative-max", 1)
        with WireClient(broker.bootstrap) as wire:
            response = wire.call(_fetch(partition_max_bytes, max_bytes))
        # Kafka's readFromLog turns the storage error into the partition's error code.
        assert response.responses[0].partitions[0].error_code is ErrorCode.unknown_server_error
        assert "Traceback" not in broker.log()
    finally:
        broker.stop()
