"""Crash safety, measured: garbage tails, torn last batches, kill -9 during produce.

Each function runs one campaign and returns a ``CrashRun``; the tests assert on it and
``python -m tests.fuzz.report`` prints its figures, so both measure the same thing.

- ``corrupt_log_rounds``: Kafka's LogLoaderTest.testCorruptLog. Each round writes 50-99
  records to a log of small segments, appends 1-1024 random bytes to the active
  segment's ``.log`` and ``.index``, reopens: the log end offset must equal the record
  count and every record (offset, key, value, timestamp, headers) must be as written.
- ``torn_tail_cuts``: the log's last batch truncated at distinct random byte positions
  (the whole batch, not just its header), each time from the same files: recovery must
  stop exactly at the end of the batch before it, with every earlier record intact.
- ``kill9_produce_rounds``: a broker with ``flush.messages=1`` is SIGKILLed at a random
  moment while a confluent-kafka producer (idempotent, acks=all, keyed and numbered
  records) sends, and restarted; at the end every acknowledged record must be at its
  acknowledged offset with its content, and no acknowledged key may be in the log twice.
"""

from __future__ import annotations

import os
import random
import shutil
import time
from dataclasses import dataclass, field

from odradek.protocol import records as batch
from odradek.protocol.record_codec import Record
from odradek.storage import Log
from tests.robustness.load import Producing, check_acked, read_log
from tests.support.broker import BrokerProcess
from tests.support.clients import create_topic
from tests.unit.storage.helpers import Clock, make_batch, read_all, small_config

CORRUPT_LOG_CONFIG = small_config(
    segment_bytes=1000, index_interval_bytes=1, max_message_bytes=65536
)
TORN_TAIL_CONFIG = small_config(segment_bytes=2500, index_interval_bytes=100)


@dataclass
class CrashRun:
    """What a crash campaign did and lost.

    ``records_written`` counts, over all rounds, the records that must survive (written
    and whole before the corruption, or acknowledged before the kill); ``records_lost``
    those of them missing or different after recovery.
    """

    name: str
    rounds: int = 0
    records_written: int = 0
    records_lost: int = 0
    failures: list[str] = field(default_factory=list)
    """One line per broken promise (a round's wrong log end offset, a lost record...)."""
    seconds: float = 0.0
    notes: dict[str, int] = field(default_factory=dict)
    """Campaign-specific counts (restarts, records not acknowledged, ...)."""

    def fail(self, message: str) -> None:
        self.failures.append(message)


Row = tuple[int, bytes | None, bytes | None, int, tuple[tuple[str, bytes | None], ...]]


def _rows(records: list[Record]) -> list[Row]:
    return [(r.offset, r.key, r.value, r.timestamp, tuple(r.headers)) for r in records]


def _nonsense(rng: random.Random, size: int) -> bytes:
    return bytes(rng.randrange(256) for _ in range(size))


def _append_file(path: str, data: bytes) -> None:
    with open(path, "ab") as file:
        file.write(data)


def _count_lost(expected: list[Row], found: list[Row]) -> int:
    have = set(found)
    return sum(1 for row in expected if row not in have)


# -- garbage appended to .log and .index (LogLoaderTest.testCorruptLog) ----------------------


def corrupt_log_rounds(
    directory: str, seed: int, *, rounds: int = 10, clean_shutdown: bool = False
) -> CrashRun:
    """``rounds`` of: write 50-99 records, append 1-1024 random bytes to the active
    segment's ``.log`` and ``.index``, reopen (after a crash: recovery from offset 50; or
    after a clean shutdown, where only the active segment's tail is checked), compare;
    then append one record and reopen with full recovery, which must keep it."""
    run = CrashRun(
        "garbage appended to .log and .index, after "
        + ("a clean shutdown" if clean_shutdown else "a crash")
    )
    rng = random.Random(seed)
    started = time.monotonic()
    for round_number in range(rounds):
        log = Log.open(directory, CORRUPT_LOG_CONFIG, clock=Clock())
        count = 50 + rng.randrange(50)
        for n in range(count):
            value = b"test-%d-" % n + _nonsense(rng, rng.randrange(20))
            log.append_as_leader(make_batch([value], keys=[b"key-%d" % n]), leader_epoch=0)
        expected = _rows(read_all(log))
        if log.number_of_segments < 2:
            run.fail(f"round {round_number}: {count} records fit one segment; nothing to test")
        active = log.active_segment
        log.flush()
        log.close()
        _append_file(active.offset_index.path, _nonsense(rng, rng.randrange(1024) + 1))
        _append_file(active.log_path, _nonsense(rng, rng.randrange(1024) + 1))
        log = Log.open(
            directory,
            CORRUPT_LOG_CONFIG,
            clock=Clock(),
            recovery_point=count if clean_shutdown else 50,
            clean_shutdown=clean_shutdown,
        )
        found = _rows(read_all(log))
        run.rounds += 1
        run.records_written += count
        run.records_lost += _count_lost(expected, found)
        if log.log_end_offset != count:
            run.fail(f"round {round_number}: log end offset {log.log_end_offset} != {count}")
        if found != expected:
            run.fail(
                f"round {round_number}: {len(found)} records read back differ from the "
                f"{count} written"
            )
        size = os.path.getsize(log.active_segment.log_path)
        if not _whole_batches_only(log.active_segment.log_path):
            run.fail(f"round {round_number}: active segment ({size} bytes) keeps a partial batch")
        # the log keeps working: an append lands right after the recovered data and
        # survives a full recovery
        log.append_as_leader(make_batch([b"after"]), 0)
        log.close()
        log = Log.open(directory, CORRUPT_LOG_CONFIG, clock=Clock(), recovery_point=0)
        after = [r.value for r in read_all(log, count)]
        if after != [b"after"] or log.log_end_offset != count + 1:
            run.fail(f"round {round_number}: append after recovery read back as {after!r}")
        log.close()
        shutil.rmtree(directory)
    run.seconds = time.monotonic() - started
    return run


def _whole_batches_only(path: str) -> bool:
    with open(path, "rb") as file:
        content = file.read()
    ends = [h.position + h.size for h in batch.iter_headers(content)]
    return bool(ends) and ends[-1] == len(content)


# -- the last batch truncated at random positions -------------------------------------------


def torn_tail_cuts(directory: str, seed: int, *, cuts: int = 1000) -> CrashRun:
    """Build a log of three segments whose active one ends with a ~1.6 KB batch, then,
    ``cuts`` times: put every file of the partition back as it was, truncate the last
    batch at a fresh random byte position (``random.sample``: no position twice),
    recover from the active segment's base offset, and check that the log ends exactly
    at the previous batch: log end offset, the active segment's size, every segment file
    byte for byte as written up to there, and the active segment's records read back
    through the log. Every 100th cut also reads the whole log record by record, appends,
    and reopens with full recovery."""
    run = CrashRun("last batch truncated at random positions")
    rng = random.Random(seed)
    started = time.monotonic()
    log = Log.open(directory, TORN_TAIL_CONFIG, clock=Clock())
    n = 0
    while log.number_of_segments < 3 or log.active_segment.size < 300:
        size = rng.randrange(1, 5)
        values = [b"v%d-" % (n + i) + _nonsense(rng, rng.randrange(40)) for i in range(size)]
        log.append_as_leader(make_batch(values, keys=[b"k%d" % (n + i) for i in range(size)]), 0)
        n += size
    kept = log.log_end_offset
    expected = _rows(read_all(log))
    last = [b"last-%d-" % i + _nonsense(rng, 110) for i in range(12)]
    log.append_as_leader(make_batch(last), 0)
    active = log.active_segment
    recovery_point = active.base_offset
    active_path = active.log_path
    segment_count = log.number_of_segments
    log.flush()
    log.close()
    saved = {name: _read(os.path.join(directory, name)) for name in os.listdir(directory)}
    content = saved[os.path.basename(active_path)]
    headers = list(batch.iter_headers(content))
    last_start = headers[-1].position
    if len(content) - last_start < cuts or last_start + headers[-1].size != len(content):
        raise ValueError(
            f"last batch of {len(content) - last_start} bytes: cannot cut it at {cuts} positions"
        )
    if segment_count < 3 or log.number_of_segments != segment_count:
        raise ValueError("the last batch must end the third segment")
    # what every .log file must hold after recovery
    want = {name: data for name, data in saved.items() if name.endswith(".log")}
    want[os.path.basename(active_path)] = content[:last_start]
    active_rows = [row for row in expected if row[0] >= recovery_point]
    for index, cut in enumerate(rng.sample(range(last_start, len(content)), cuts)):
        _restore(directory, saved)
        os.truncate(active_path, cut)
        log = Log.open(directory, TORN_TAIL_CONFIG, clock=Clock(), recovery_point=recovery_point)
        run.rounds += 1
        run.records_written += len(expected)
        full = index % 100 == 0
        found = _rows(read_all(log, None if full else recovery_point))
        files_ok = all(_read(os.path.join(directory, name)) == data for name, data in want.items())
        rows_ok = found == (expected if full else active_rows)
        size = log.active_segment.size
        if log.log_end_offset != kept or size != last_start or not files_ok or not rows_ok:
            run.records_lost += _count_lost(expected, _rows(read_all(log)))
            run.fail(
                f"cut at byte {cut} (last batch {last_start}-{len(content)}): log end offset "
                f"{log.log_end_offset} (want {kept}), active segment {size} bytes (want "
                f"{last_start}), segment files {'' if files_ok else 'NOT '}as written, "
                f"records {'' if rows_ok else 'NOT '}as written"
            )
        if full:
            log.append_as_leader(make_batch([b"after-%d" % cut]), 0)
            log.close()
            log = Log.open(directory, TORN_TAIL_CONFIG, clock=Clock(), recovery_point=0)
            tail = [(r.offset, r.value) for r in read_all(log, kept)]
            if tail != [(kept, b"after-%d" % cut)]:
                run.fail(f"cut at byte {cut}: append after recovery read back as {tail!r}")
        log.close()
    run.notes = {
        "records before the last batch": kept,
        "last batch bytes": len(content) - last_start,
    }
    run.seconds = time.monotonic() - started
    return run


def _read(path: str) -> bytes:
    with open(path, "rb") as file:
        return file.read()


def _restore(directory: str, saved: dict[str, bytes]) -> None:
    """Put the partition's files back as ``saved``: remove new files, and write back
    what differs in the others (in place: truncating a file is slow on some systems)."""
    for name in os.listdir(directory):
        if name not in saved:
            os.unlink(os.path.join(directory, name))
    for name, data in saved.items():
        path = os.path.join(directory, name)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            current = os.pread(fd, len(data) + 1, 0)
            if current == data:
                continue
            same = 0
            while same < min(len(current), len(data)) and current[same] == data[same]:
                same += 1
            os.pwrite(fd, data[same:], same)
            if len(current) > len(data):
                os.ftruncate(fd, len(data))
        finally:
            os.close(fd)


# -- kill -9 while a producer sends ----------------------------------------------------------

KILL9_TOPIC = "crash-loop"
KILL9_PARTITIONS = 3
KILL9_BROKER_CONFIG = {"log.flush.interval.messages": "1"}
"""``flush.messages=1`` for every topic: Kafka's broker-level name (the topic-level name,
``flush.messages``, is also set on the topic the campaign creates)."""


def kill9_produce_rounds(
    broker: BrokerProcess, seed: int, *, rounds: int, topic: str = KILL9_TOPIC
) -> CrashRun:
    """``rounds`` times, while ``_Producing`` sends: wait until records are being
    acknowledged, wait a random 0-500 ms more, SIGKILL the broker, start it again (same
    data dir and port). Then stop the producer, read every partition from offset 0 and
    check each acknowledged (partition, offset): the record is there, with the key and
    value acknowledged, and its key is nowhere else in the log (the idempotent producer's
    retries of unacknowledged batches must not write twice). ``broker`` must run with
    ``KILL9_BROKER_CONFIG``."""
    run = CrashRun("kill -9 during produce, flush.messages=1")
    rng = random.Random(seed)
    started = time.monotonic()
    create_topic(broker.bootstrap, topic, KILL9_PARTITIONS, config={"flush.messages": "1"})
    producer = Producing(broker.bootstrap, topic, KILL9_PARTITIONS, seed)
    producer.start()
    try:
        for round_number in range(rounds):
            if not producer.wait_for_acks(len(producer.acked) + 50, timeout=30):
                run.fail(
                    f"round {round_number}: no acknowledgements after restart "
                    f"({producer.errors[-1:] or 'no errors'})"
                )
                break
            time.sleep(rng.uniform(0, 0.5))
            broker.kill()
            run.rounds += 1
            broker.start()
        if not producer.wait_for_acks(len(producer.acked) + 50, timeout=30):
            run.fail("no acknowledgements after the last restart")
    finally:
        producer.stop()
    acked = dict(producer.acked)
    log = read_log(broker.bootstrap, topic, KILL9_PARTITIONS)
    check = check_acked(acked, log)
    run.records_written = check.acknowledged
    run.records_lost = check.lost
    run.failures.extend(check.failures)
    run.failures.extend(producer.duplicate_acks)
    if producer.unflushed:
        run.fail(f"{producer.unflushed} records neither acknowledged nor failed at the end")
    run.notes = {
        "records sent": producer.sent,
        "records acknowledged": len(acked),
        "acknowledged records written twice": check.duplicated,
        "delivery failures reported to the producer": len(producer.errors),
        "records in the log": len(log),
    }
    run.seconds = time.monotonic() - started
    return run
