"""What was acknowledged survives: restarts, kill -9, garbage on disk, and retention."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from confluent_kafka import Consumer, TopicPartition

from odradek.storage import checkpoints
from tests.support.broker import BrokerProcess
from tests.support.clients import consume_all, create_topic, produce_acked

Factory = Callable[..., BrokerProcess]


def test_kill_9_right_after_acks_loses_nothing(broker_factory: Factory) -> None:
    broker = broker_factory()
    create_topic(broker.bootstrap, "crash", partitions=2)
    sent = produce_acked(
        broker.bootstrap, "crash", 500, partitions=2, acks="all", **{"enable.idempotence": True}
    )
    broker.kill()
    broker.start()
    assert consume_all(broker.bootstrap, "crash", 2) == sent
    more = produce_acked(broker.bootstrap, "crash", 10, partitions=2)
    assert [m.offset for m in more if m.partition == 0] == [250, 251, 252, 253, 254]


def _append_garbage(partition_dir: os.PathLike[str] | str, suffix: str, data: bytes) -> None:
    files = sorted(f for f in os.listdir(partition_dir) if f.endswith(suffix))
    with open(os.path.join(partition_dir, files[-1]), "ab") as handle:
        handle.write(data)


def test_garbage_after_kill_9_is_truncated_and_indexes_rebuilt(broker_factory: Factory) -> None:
    broker = broker_factory({"log.index.interval.bytes": "100"})
    create_topic(broker.bootstrap, "garbage")
    sent = produce_acked(broker.bootstrap, "garbage", 400)
    broker.kill()
    directory = broker.partition_dir("garbage", 0)
    _append_garbage(directory, ".log", os.urandom(777))
    _append_garbage(directory, ".index", os.urandom(13))
    broker.start()
    assert consume_all(broker.bootstrap, "garbage", 1) == sent
    more = produce_acked(broker.bootstrap, "garbage", 3)
    assert [m.offset for m in more] == [400, 401, 402]


def test_garbage_after_clean_shutdown_is_truncated_too(broker_factory: Factory) -> None:
    broker = broker_factory()
    create_topic(broker.bootstrap, "garbage2")
    sent = produce_acked(broker.bootstrap, "garbage2", 200)
    assert broker.stop() == 0
    directory = broker.partition_dir("garbage2", 0)
    _append_garbage(directory, ".log", b"\x00\x00\x00\x00\x00\x00\x00\xc8" + os.urandom(300))
    _append_garbage(directory, ".index", os.urandom(16))
    broker.start()
    assert consume_all(broker.bootstrap, "garbage2", 1) == sent
    assert [m.offset for m in produce_acked(broker.bootstrap, "garbage2", 1)] == [200]


def test_retention_advances_log_start_and_consumers_reset(broker_factory: Factory) -> None:
    broker = broker_factory(
        {"log.retention.check.interval.ms": "200", "log.segment.delete.delay.ms": "0"}
    )
    create_topic(
        broker.bootstrap,
        "retained",
        config={"segment.bytes": "2000", "retention.bytes": "4000", "retention.ms": "-1"},
    )
    produce_acked(broker.bootstrap, "retained", 200, **{"linger.ms": 0, "batch.num.messages": 1})
    consumer = Consumer(
        {
            "bootstrap.servers": broker.bootstrap,
            "group.id": "r",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        tp = TopicPartition("retained", 0)
        deadline = time.monotonic() + 30
        low = 0
        while time.monotonic() < deadline:
            low, _high = consumer.get_watermark_offsets(tp, timeout=5, cached=False)
            if low > 0:
                break
            time.sleep(0.2)
        assert 0 < low < 200, "retention did not delete old segments"
        # Offset 0 is now out of range: the client's reset policy takes it to the start.
        consumer.assign([TopicPartition("retained", 0, 0)])
        first = None
        while first is None and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and not message.error():
                first = message
        assert first is not None and first.offset() == low
    finally:
        consumer.close()


def test_time_retention_deletes_expired_segments_active_one_too(broker_factory: Factory) -> None:
    broker = broker_factory(
        {"log.retention.check.interval.ms": "200", "log.segment.delete.delay.ms": "0"}
    )
    create_topic(broker.bootstrap, "expiring", config={"retention.ms": "500"})
    produce_acked(broker.bootstrap, "expiring", 50)
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "x"})
    try:
        tp = TopicPartition("expiring", 0)
        deadline = time.monotonic() + 30
        watermarks = (0, 0)
        while time.monotonic() < deadline and watermarks != (50, 50):
            watermarks = consumer.get_watermark_offsets(tp, timeout=5, cached=False)
            time.sleep(0.2)
        assert watermarks == (50, 50)
    finally:
        consumer.close()
    assert [m.offset for m in produce_acked(broker.bootstrap, "expiring", 2)] == [50, 51]


def test_reset_to_latest_skips_everything_when_offset_is_out_of_range(
    broker: BrokerProcess,
) -> None:
    create_topic(broker.bootstrap, "reset-latest")
    produce_acked(broker.bootstrap, "reset-latest", 5)
    consumer = Consumer(
        {
            "bootstrap.servers": broker.bootstrap,
            "group.id": "l",
            "enable.auto.commit": False,
            "auto.offset.reset": "latest",
        }
    )
    try:
        consumer.assign([TopicPartition("reset-latest", 0, 1000)])
        assert consumer.poll(2) is None
        produce_acked(broker.bootstrap, "reset-latest", 1)
        deadline = time.monotonic() + 20
        message = None
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and not message.error():
                break
        assert message is not None and message.offset() == 5
    finally:
        consumer.close()


def test_running_broker_checkpoints_high_watermarks_and_recovery_points(
    broker_factory: Factory,
) -> None:
    """The periodic checkpoints are written in a worker thread (``storage.checkpoint_job``):
    a kill -9 finds them on disk, up to date as of the last interval."""
    broker = broker_factory(
        {
            "replica.high.watermark.checkpoint.interval.ms": "100",
            "log.flush.offset.checkpoint.interval.ms": "100",
            "log.flush.interval.messages": "1",
        }
    )
    create_topic(broker.bootstrap, "marks", partitions=2)
    produce_acked(broker.bootstrap, "marks", 300, partitions=2)

    def checkpoint(name: str) -> dict[tuple[str, int], int]:
        found = checkpoints.read_offset_checkpoint(str(broker.data_dir / name))
        return {(tp.topic, tp.partition): offset for tp, offset in found.items()}

    expected = {("marks", 0): 150, ("marks", 1): 150}
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not (
        checkpoint(checkpoints.HIGH_WATERMARK_CHECKPOINT) == expected
        and checkpoint(checkpoints.RECOVERY_POINT_CHECKPOINT) == expected
    ):
        time.sleep(0.1)
    broker.kill()
    assert checkpoint(checkpoints.HIGH_WATERMARK_CHECKPOINT) == expected
    assert checkpoint(checkpoints.RECOVERY_POINT_CHECKPOINT) == expected
    assert not list(broker.data_dir.glob("*.tmp")), "no temporary file is left behind"
    broker.start()
    assert len(consume_all(broker.bootstrap, "marks", 2)) == 300
