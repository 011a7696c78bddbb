"""``odradek dump-log`` on the files of a running broker: batches, records, keys and
values, transaction markers, indexes and bad arguments."""

from __future__ import annotations

import re
import uuid

from confluent_kafka import Producer

from tests.integration.cli.runner import run
from tests.support.broker import BrokerProcess
from tests.support.clients import create_topic


def test_dump_log_shows_batches_records_and_markers(broker: BrokerProcess) -> None:
    topic = f"dump-{uuid.uuid4().hex[:8]}"
    create_topic(broker.bootstrap, topic)
    plain = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0})
    plain.produce(topic, key=b"k1", value=b"hello")
    plain.produce(topic, key=b"k2", value=None)
    assert plain.flush(10) == 0
    txn = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": topic})
    txn.init_transactions(10)
    txn.begin_transaction()
    txn.produce(topic, key=b"k3", value=b"in-txn", headers=[("h", b"v")])
    txn.commit_transaction(10)

    segment = broker.partition_dir(topic, 0) / "00000000000000000000.log"
    result = run("dump-log", str(segment), "--print-data-log")
    assert result.returncode == 0, result.stderr.decode()
    out = result.stdout.decode()
    assert out.startswith(f"Dumping {segment}\nLog starting offset: 0\n")
    batches = [line for line in out.splitlines() if line.startswith("baseOffset:")]
    assert all("isvalid: true" in line and "magic: 2" in line for line in batches)
    assert any("isTransactional: true isControl: true" in line for line in batches)
    assert "| offset: 0 CreateTime:" in out
    assert "key: k1 payload: hello" in out
    assert re.search(r"keySize: 2 valueSize: -1 .* key: k2 payload: null", out)
    assert "headerKeys: [h] key: k3 payload: in-txn" in out
    assert "endTxnMarker: COMMIT coordinatorEpoch:" in out

    shallow = run("dump-log", str(segment)).stdout.decode()
    assert "baseOffset: 0" in shallow and "| offset:" not in shallow

    index = run(
        "dump-log", str(segment.with_suffix(".timeindex")), str(segment.with_suffix(".index"))
    )
    assert index.returncode == 0, index.stderr.decode()


def test_dump_log_refuses_what_it_cannot_read(broker: BrokerProcess) -> None:
    missing = run("dump-log", "/nonexistent/00000000000000000000.log")
    assert missing.returncode == 2
    assert missing.stderr.decode().strip().splitlines() == [
        "error: /nonexistent/00000000000000000000.log is not a file; give segment files "
        "such as 00000000000000000000.log"
    ]
    topic = f"dump-{uuid.uuid4().hex[:8]}"
    create_topic(broker.bootstrap, topic)
    other = broker.partition_dir(topic, 0) / "partition.metadata"
    unknown = run("dump-log", str(other))
    assert unknown.returncode == 2
    assert "unknown file kind" in unknown.stderr.decode()
