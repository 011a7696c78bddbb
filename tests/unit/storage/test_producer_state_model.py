"""Idempotence across everything that rewrites a replica's producer state: a leader and a
follower log driven at random by an idempotent producer (new batches, retries of recent
ones), follower fetches cut at random byte limits, failovers with truncation of the old
leader, rolls, flushes and restarts (clean, or as after kill -9).

After every step, each replica's producer state must equal the state a restart would
rebuild from its segment files alone, and no log may hold the same (producer epoch, base
sequence) twice: a stale state is how a retry gets written a second time."""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import pytest

from odradek.protocol import records
from odradek.storage import Log
from odradek.storage.errors import OutOfOrderSequenceError

from .helpers import Clock, make_batch, small_config

PID = 7
STEPS = 150


def state(log: Log) -> dict[int, tuple[int, int, int]]:
    return {
        pid: (entry.producer_epoch, entry.last_seq, entry.last_data_offset)
        for pid, entry in log.producer_state.producers.items()
    }


def rebuilt_state(log: Log, scratch: Path) -> dict[int, tuple[int, int, int]]:
    """The state recovery computes from the segments, with no snapshot to start from."""
    shutil.rmtree(scratch, ignore_errors=True)
    copy = scratch / os.path.basename(log.dir)
    shutil.copytree(
        log.dir, copy, ignore=shutil.ignore_patterns("*.snapshot", "*.index", "*.timeindex")
    )
    reopened = Log.open(str(copy), log.config, clock=Clock(), log_start_offset=log.log_start_offset)
    try:
        return state(reopened)
    finally:
        reopened.close()


def batch_keys(log: Log) -> list[tuple[int, int, int]]:
    """(producer epoch, base sequence, base offset) of every idempotent batch."""
    keys = []
    for segment in log.segments:
        for header in records.iter_headers(Path(segment.log_path).read_bytes()):
            if header.has_producer_id:
                keys.append((header.producer_epoch, header.base_sequence, header.base_offset))
    return keys


def check(log: Log, scratch: Path, where: str) -> None:
    assert state(log) == rebuilt_state(log, scratch), where
    seen: dict[tuple[int, int], int] = {}
    for epoch, sequence, offset in batch_keys(log):
        assert (epoch, sequence) not in seen, f"{where}: batch at {offset} repeats {seen}"
        seen[epoch, sequence] = offset


def batch(sequence: int, count: int) -> bytearray:
    values = [b"v%d" % (sequence + i) for i in range(count)]
    return bytearray(make_batch(values, producer_id=PID, producer_epoch=0, base_sequence=sequence))


@pytest.mark.parametrize("seed", range(4))
def test_producer_state_survives_failovers_truncations_and_restarts(
    tmp_path: Path, seed: int
) -> None:
    rng = random.Random(seed)
    clock = Clock()
    config = small_config(
        segment_bytes=rng.choice([600, 1500, 4000]), index_interval_bytes=rng.choice([64, 256])
    )
    dirs = [str(tmp_path / f"replica{i}" / "t-0") for i in range(2)]
    logs = [Log.open(d, config, clock=clock) for d in dirs]
    leader, leader_epoch = 0, 0
    sent: list[tuple[int, int]] = []  # (base sequence, count) of every batch sent
    next_sequence = 0

    def append(log: Log, sequence: int, count: int) -> None:
        log.append_as_leader(batch(sequence, count), leader_epoch)

    try:
        for step in range(STEPS):
            op = rng.random()
            current, other = logs[leader], logs[1 - leader]
            if op < 0.45:  # a new batch; after a failover, first what the leader lacks
                count = rng.randint(1, 4)
                try:
                    append(current, next_sequence, count)
                except OutOfOrderSequenceError:
                    entry = current.producer_state.producers.get(PID)
                    last = entry.last_seq if entry is not None else -1
                    for sequence, n in sent:
                        if sequence > last:
                            append(current, sequence, n)
                    append(current, next_sequence, count)
                sent.append((next_sequence, count))
                next_sequence += count
                clock.advance(1)
            elif op < 0.55 and sent:  # the last few batches again, in order
                for sequence, count in sent[-rng.randint(1, min(5, len(sent))) :]:
                    try:
                        append(current, sequence, count)
                    except OutOfOrderSequenceError:
                        break
            elif op < 0.8:  # the follower fetches, cut at a byte limit
                offset = other.log_end_offset
                if offset < current.log_end_offset:
                    info = current.read(offset, rng.choice([100, 300, 1 << 20]))
                    if info.records is not None and info.records.size:
                        data = info.records.read()
                        whole = records.complete_batches_size(data)
                        if whole:
                            other.append_as_follower(bytes(data[:whole]))
            elif op < 0.86:  # failover: the old leader drops what the new one lacks
                leader_epoch += 1
                leader = 1 - leader
                logs[leader].leader_epoch_cache.assign(leader_epoch, logs[leader].log_end_offset)
                old = logs[1 - leader]
                if old.log_end_offset > logs[leader].log_end_offset:
                    old.truncate_to(logs[leader].log_end_offset)
            elif op < 0.9:
                current.roll()
            elif op < 0.95:  # a restart, clean or as after kill -9
                i = rng.randrange(2)
                log = logs[i]
                if rng.random() < 0.5:
                    log.flush()
                    end = log.log_end_offset
                    log.close()
                    logs[i] = Log.open(
                        dirs[i], config, clock=clock, recovery_point=end, clean_shutdown=True
                    )
                else:
                    recovery_point = log.recovery_point
                    log.close_handlers()
                    logs[i] = Log.open(dirs[i], config, clock=clock, recovery_point=recovery_point)
            else:
                logs[rng.randrange(2)].flush()
            for i, log in enumerate(logs):
                check(log, tmp_path / "scratch", f"seed {seed} step {step} replica {i}")
    finally:
        for log in logs:
            log.close()
