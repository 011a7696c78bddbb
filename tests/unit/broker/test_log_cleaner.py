"""The broker's cleaner workers on a real LogManager: they clean compacted logs, leave a
log with a corrupt batch alone until restart (and go on with the others), and stop."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

from odradek.broker.log_cleaner import LogCleaner
from odradek.config import BrokerConfig, LogConfig
from odradek.protocol import records as batch
from odradek.protocol.records import read_header
from odradek.protocol.types import TopicPartition
from odradek.storage.log_manager import LogManager
from tests.unit.storage.helpers import Clock, make_batch, read_all

CONFIG = LogConfig(
    cleanup_policy=("compact",),
    segment_bytes=4096,
    min_cleanable_dirty_ratio=0.01,
    retention_ms=-1,
    index_interval_bytes=256,
)
GOOD, BAD = TopicPartition("good", 0), TopicPartition("bad", 0)


def corrupt_batch() -> bytes:
    """A batch whose CRC is right but whose records do not parse."""
    data = bytearray(make_batch([b"v" * 30], keys=[b"k"]))
    header = read_header(data)
    data[batch.BATCH_HEADER_SIZE] = 0x7E  # the record's length varint: 63, past the end
    header.crc = batch.compute_crc(data, 0, header.size)
    data[batch.CRC_OFFSET : batch.CRC_OFFSET + 4] = header.crc.to_bytes(4, "big")
    return bytes(data)


def fill(manager: LogManager, tp: TopicPartition, *, corrupt: bool) -> None:
    log = manager.get_or_create_log(tp, dataclasses.replace(CONFIG))
    for n in range(30):
        log.append_as_leader(
            make_batch([b"v%d" % n + b"." * 40] * 5, keys=[b"k%d" % k for k in range(5)]), 0
        )
    if corrupt:
        data = corrupt_batch()
        copy = bytearray(data)
        batch.set_base_offset(copy, 0, log.log_end_offset)
        log.append_as_follower(copy)
    log.roll()
    log.update_high_watermark(log.log_end_offset)


def test_workers_clean_and_set_aside_a_corrupt_log(tmp_path: Path) -> None:
    clock = Clock()
    manager = LogManager([tmp_path / "data"], clock=clock)
    fill(manager, GOOD, corrupt=False)
    fill(manager, BAD, corrupt=True)
    config = BrokerConfig({"log.cleaner.backoff.ms": "10"})

    async def run() -> LogCleaner:
        cleaner = LogCleaner(manager, config, clock)
        task = asyncio.get_running_loop().create_task(cleaner.run())
        for _ in range(500):
            if cleaner.cleanings and BAD in manager.cleaner_manager.uncleanable:
                break
            await asyncio.sleep(0.01)
        cleaner.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return cleaner

    cleaner = asyncio.run(run())
    assert cleaner.cleanings >= 1
    assert manager.cleaner_manager.uncleanable == {BAD}
    good = manager.get_log(GOOD)
    assert good is not None and len(read_all(good)) == 5
    # The corrupt log is untouched and its dir still online.
    assert not manager.log_dir_failure_channel.offline_log_dirs
    bad = manager.get_log(BAD)
    assert bad is not None and bad.log_end_offset == 151
    assert not list((tmp_path / "data").rglob("*.cleaned"))
    manager.shutdown()
