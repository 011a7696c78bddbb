"""Broker-side recompression: a topic's ``compression.type`` is what its log stores,
whatever codec the producer used, and consumers read the same records."""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka import Producer

from odradek.protocol.records import CompressionType
from odradek.storage.file_records import FileHandle, iter_headers
from tests.support.broker import BrokerProcess
from tests.support.clients import consume_all, create_topic


@pytest.mark.parametrize(
    ("topic_codec", "producer_codec", "stored"),
    [
        ("zstd", "none", CompressionType.ZSTD),
        ("uncompressed", "gzip", CompressionType.NONE),
        ("producer", "lz4", CompressionType.LZ4),
    ],
)
def test_topic_codec_is_stored_and_records_read_back(
    broker: BrokerProcess, topic_codec: str, producer_codec: str, stored: CompressionType
) -> None:
    topic = f"codec-{uuid.uuid4().hex[:8]}"
    create_topic(broker.bootstrap, topic, config={"compression.type": topic_codec})
    producer = Producer(
        {
            "bootstrap.servers": broker.bootstrap,
            "compression.type": producer_codec,
            "linger.ms": 20,
            "enable.idempotence": True,
        }
    )
    sent = [(b"k%d" % i, b"value-%d-" % i + b"z" * 200) for i in range(500)]
    for key, value in sent:
        producer.produce(topic, key=key, value=value)
    assert producer.flush(30) == 0
    got = consume_all(broker.bootstrap, topic, 1, expected=len(sent))
    assert [(r.key, r.value) for r in got] == sent
    assert [r.offset for r in got] == list(range(len(sent)))
    path = broker.partition_dir(topic, 0) / "00000000000000000000.log"
    handle = FileHandle.open(str(path), writable=False)
    try:
        codecs = {h.compression for h in iter_headers(handle, 0, path.stat().st_size)}
    finally:
        handle.close()
    assert codecs == {stored}
