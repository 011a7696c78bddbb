"""kafkajs 2.x against a real broker, through ``tests/compat/kafkajs/compat.js``.

kafkajs consumers only work in consumer groups, which this broker does not serve yet, so
kafkajs administers and produces here (createTopics, fetchTopicMetadata, send with keys,
headers and timestamps, fetchTopicOffsets, fetchTopicOffsetsByTimestamp, deleteTopics)
and librdkafka reads back what kafkajs's produce responses acknowledged. kafkajs has
gzip built in; its other codecs need plugins, so it is tested with none and gzip.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.integration.compat import ck
from tests.integration.compat.common import (
    BASE_TIMESTAMP,
    Outgoing,
    Rec,
    assert_idempotent_batches,
    assert_offsets_follow_send_order,
    assert_partition_order,
    assert_stored_with,
    by_position,
    outgoing,
    placed,
    topic_name,
)
from tests.support.broker import BrokerProcess

SCRIPT_DIR = Path(__file__).resolve().parents[2] / "compat" / "kafkajs"


def b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()


def run_kafkajs(job: dict[str, Any]) -> dict[str, Any]:
    assert (SCRIPT_DIR / "node_modules" / "kafkajs").is_dir(), (
        f"run `npm ci` in {SCRIPT_DIR} (./scripts/test does)"
    )
    env = dict(os.environ, KAFKAJS_NO_PARTITIONER_WARNING="1")
    result = subprocess.run(
        ["node", "compat.js"],
        cwd=SCRIPT_DIR,
        input=json.dumps(job).encode(),
        capture_output=True,
        timeout=60,
        env=env,
        check=False,
    )
    stderr = result.stderr.decode(errors="replace")
    assert result.returncode == 0, stderr
    output: dict[str, Any] = json.loads(result.stdout)
    return output


def job(
    broker: BrokerProcess, topic: str, partitions: int, records: list[Outgoing], **extra: Any
) -> dict[str, Any]:
    return {
        "bootstrap": broker.bootstrap,
        "topic": topic,
        "partitions": partitions,
        "idempotent": False,
        "acks": -1,
        "compression": "none",
        "records": [
            {
                "partition": r.partition,
                "key": b64(r.key),
                "value": b64(r.value),
                "headers": [[name, b64(value)] for name, value in r.headers],
                "timestamp": r.timestamp,
            }
            for r in records
        ],
        "timestamps": [],
        "delete": False,
        **extra,
    }


def acknowledged(result: dict[str, Any], records: list[Outgoing]) -> list[Rec]:
    """Each partition's records got consecutive offsets from that partition's base offset."""
    base = {row["partition"]: row["baseOffset"] for row in result["produced"]}
    assert {row["errorCode"] for row in result["produced"]} == {0}
    next_offset = dict(base)
    acked = []
    for record in records:
        acked.append(placed(record, next_offset[record.partition]))
        next_offset[record.partition] += 1
    return acked


@pytest.mark.parametrize(
    ("compression", "idempotent"), [("none", False), ("gzip", False), ("gzip", True)]
)
def test_admin_and_produce_then_read_back(
    broker: BrokerProcess, compression: str, idempotent: bool
) -> None:
    topic = topic_name(f"kjs-{compression}")
    records = outgoing(60, 3, tag="kafkajs", null_header_values=False)
    result = run_kafkajs(
        job(broker, topic, 3, records, compression=compression, idempotent=idempotent)
    )

    assert result["created"] is True
    assert result["createdAgain"] is False  # kafkajs: false when the topic already exists
    assert result["metadata"] == [
        {
            "name": topic,
            "partitions": [{"partition": p, "leader": 1, "replicas": [1]} for p in range(3)],
        }
    ]
    assert [row["baseOffset"] for row in result["produced"]] == [0, 0, 0]
    acked = acknowledged(result, records)
    assert_offsets_follow_send_order(acked, records)
    assert [(row["partition"], int(row["low"]), int(row["high"])) for row in result["offsets"]] == [
        (0, 0, 20),
        (1, 0, 20),
        (2, 0, 20),
    ]

    read = ck.read_all(broker.bootstrap, topic, 3)
    assert_partition_order(read)
    assert by_position(read) == by_position(acked)
    assert_stored_with(broker.bootstrap, topic, 3, compression)
    if idempotent:
        assert_idempotent_batches(broker.bootstrap, topic, 3)


def test_offsets_by_timestamp_configs_partitions_delete(broker: BrokerProcess) -> None:
    topic = topic_name("kjs-times")
    records = outgoing(20, 2, null_header_values=False)
    # Record i: partition i % 2, offset i // 2, timestamp BASE + i * 1000 + i % 3.
    probes = [BASE_TIMESTAMP, BASE_TIMESTAMP + 9 * 1000 + 1, BASE_TIMESTAMP + 10**9]
    result = run_kafkajs(job(broker, topic, 2, records, timestamps=probes, delete=True))

    assert result["offsetsByTimestamp"] == {
        str(BASE_TIMESTAMP): [{"partition": 0, "offset": 0}, {"partition": 1, "offset": 0}],
        # partition 0: record 10 (offset 5); partition 1: record 11 (offset 5, not 4: 9 is
        # at +9000).
        str(BASE_TIMESTAMP + 9001): [
            {"partition": 0, "offset": 5},
            {"partition": 1, "offset": 5},
        ],
        # No record that late: kafkajs falls back to the partition's end.
        str(BASE_TIMESTAMP + 10**9): [
            {"partition": 0, "offset": 10},
            {"partition": 1, "offset": 10},
        ],
    }
    host, port = broker.bootstrap.rsplit(":", 1)
    assert result["cluster"] == {
        "brokers": [{"nodeId": 1, "host": host, "port": int(port)}],
        "controller": 1,
    }
    assert result["configs"] == [
        {"errorCode": 0, "name": topic, "entries": [["cleanup.policy", "delete", True]]}
    ]
    assert result["partitionsAfterGrow"] == 3
    assert result["topicsAfterDelete"] == []
