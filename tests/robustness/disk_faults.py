"""Disk faults against a real broker process, on real file systems (``tests.support.
mounts``), measured: each function runs one campaign and returns its figures;
``tests/integration/test_disk_faults.py`` asserts on them and ``python -m
tests.fuzz.report`` prints them.

- ``full_disk``: a log dir on a 2 MiB tmpfs, filled up (but 512 KiB) by another file,
  then produced to one 4 KB record at a time until a produce fails. That produce and
  the next must fail with KAFKA_STORAGE_ERROR, the partition must stay online, every
  acknowledged record must read back whole; once the filler is deleted, produce works
  again (raw and from confluent-kafka, no restart), a consumer reads every acknowledged
  record, the broker stops with exit code 0 and, restarted, recovers every record.
- ``offline_dir``: a broker with two log dirs, one an ext4 image that fails under it
  (turns read-only, as after an I/O error). The failed dir's partition must answer
  KAFKA_STORAGE_ERROR and show no leader in Metadata, the healthy dir's partition must
  go on taking and serving records, new topics must go to the healthy dir, the broker
  must stay up and stop with exit code 0, and restarted without the failed dir it must
  still hold every record of the healthy partition.
- ``only_dir_fails``: a broker whose single log dir fails keeps answering: ApiVersions
  and Metadata, KAFKA_STORAGE_ERROR where a write or a read of the dir is needed
  (cluster metadata included), COORDINATOR_NOT_AVAILABLE for groups; exit code 0.

Where mounting is impossible (not root, no loop devices, no ``trigger_fs_error``),
``tests.support.mounts`` raises pytest's skip exception before a broker starts (a test
is then skipped, and the report says why). Broken promises are collected in
``failures`` rather than raised, so the report shows all of them; an error that stops a
campaign half-way (a broker that does not start, a client timeout) is raised.
"""

from __future__ import annotations

import datetime
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from kio.schema.api_versions.v3.request import ApiVersionsRequest
from kio.schema.create_topics.v7.request import CreatableTopic, CreateTopicsRequest
from kio.schema.find_coordinator.v4.request import FindCoordinatorRequest
from kio.schema.metadata.v12.request import MetadataRequest, MetadataRequestTopic
from kio.schema.produce.v9.request import PartitionProduceData, ProduceRequest, TopicProduceData
from kio.static.primitive import Records, i8, i16, i32

from odradek.protocol.errors import ErrorCode
from odradek.protocol.record_codec import NewRecord, build_batch, iter_records
from tests.support import mounts
from tests.support.broker import BrokerProcess
from tests.support.clients import consume_all, create_topic, produce_acked
from tests.support.wire import WireClient, fetch_request

Record = tuple[int, bytes, bytes]
"""(offset, key, value) as acknowledged or read back."""

VALUE = b"x" * 4000
TMPFS_KIB = 2048
LEAVE_KIB = 512
"""The filler leaves this much of the tmpfs to the broker."""
STORAGE_ERROR = int(ErrorCode.kafka_storage_error)


@dataclass
class _Run:
    failures: list[str] = field(default_factory=list)
    """One line per broken promise."""
    seconds: float = 0.0
    exit_code: int | None = None
    """The broker's exit code when stopped after the fault."""
    log_errors: int = 0
    """Tracebacks in the broker's log."""

    def expect(self, condition: bool, message: str) -> bool:
        if not condition:
            self.failures.append(message)
        return condition


@dataclass
class FullDiskRun(_Run):
    acknowledged_before_full: int = 0
    errors_while_full: list[int] = field(default_factory=list)
    """Error codes of the refused produce and of one more tried while still full."""
    online_while_full: bool = False
    """Metadata showed the partition with no error and this broker as leader."""
    damaged: dict[str, int] = field(default_factory=dict)
    """Acknowledged records missing or different: while full, after freeing space (read
    by a consumer), after a restart."""
    served_after_freeing: bool = False
    acknowledged_after_freeing: int = 0
    """Records acknowledged after the filler was deleted (one raw, then confluent-kafka)."""
    acknowledged_total: int = 0


@dataclass
class OfflineDirRun(_Run):
    offline_answers: list[tuple[str, int]] = field(default_factory=list)
    """(request, error code) for the failed dir's partition."""
    metadata: list[tuple[int, int, list[int]]] = field(default_factory=list)
    """(error code, leader, offline replicas) of the two partitions after the failure."""
    healthy_acknowledged: int = 0
    """Records acknowledged by the healthy partition, before and after the failure."""
    healthy_intact: bool = False
    """Every one of them read back after the failure (and after a restart without the
    failed dir)."""
    new_topic_acknowledged: int = 0
    """Records acknowledged by a topic created after the failure (in the healthy dir)."""
    alive: bool = False
    """The broker process was still running before it was asked to stop."""


@dataclass
class OnlyDirRun(_Run):
    answers: list[tuple[str, int]] = field(default_factory=list)
    """(request, error code) after the broker's only log dir failed."""


def full_disk(scratch: Path) -> FullDiskRun:
    run = FullDiskRun()
    started = time.monotonic()
    data = scratch / "full-disk"
    with mounts.tmpfs(data, TMPFS_KIB):
        broker = BrokerProcess(data)
        try:
            broker.start()
            _full_disk(broker, data, run)
        finally:
            _stop(broker)
    run.seconds = time.monotonic() - started
    return run


def _full_disk(broker: BrokerProcess, data: Path, run: FullDiskRun) -> None:
    # Small segments: the disk fills up across rolls (new segment and index files).
    create_topic(broker.bootstrap, "full", config={"segment.bytes": "65536"})
    filler = mounts.fill(data, leave_kib=LEAVE_KIB)
    acked: list[Record] = []
    with WireClient(broker.bootstrap) as client:
        for n in range(10_000):
            key = b"%d" % n
            answer = produce(client, "full", 0, key, VALUE)
            if answer.error_code != ErrorCode.none:
                break
            run.expect(answer.base_offset == len(acked), f"offset {answer.base_offset}")
            acked.append((answer.base_offset, key, VALUE))
        run.acknowledged_before_full = len(acked)
        run.errors_while_full.append(int(answer.error_code))
        run.expect(len(acked) > 50, f"the disk filled up after only {len(acked)} records")
        # Still full: produce keeps failing the same way, the partition stays online.
        run.errors_while_full.append(int(produce(client, "full", 0, b"k", VALUE).error_code))
        run.expect(
            run.errors_while_full == [STORAGE_ERROR] * 2,
            f"produce to a full disk answered {run.errors_while_full}, not 56 twice",
        )
        (partition,) = metadata(client, "full").topics[0].partitions
        run.online_while_full = (partition.error_code, partition.leader_id) == (0, 1)
        run.expect(run.online_while_full, "the partition went offline on a full disk")
        run.damaged["while full"] = _damaged(acked, read_back(client, "full", 0))

        filler.unlink()
        answer = produce(client, "full", 0, b"after", VALUE)
        run.served_after_freeing = (answer.error_code, answer.base_offset) == (0, len(acked))
        if not run.expect(
            run.served_after_freeing,
            f"after freeing space produce answered {answer.error_code} at {answer.base_offset}",
        ):
            return
        acked.append((answer.base_offset, b"after", VALUE))
    more = produce_acked(broker.bootstrap, "full", 100)  # a real client, no restart
    run.expect(
        [m.offset for m in more] == list(range(len(acked), len(acked) + 100)),
        "confluent-kafka's records were not appended right after",
    )
    acked += [(m.offset, m.key or b"", m.value or b"") for m in more]
    run.acknowledged_after_freeing = 1 + len(more)
    run.acknowledged_total = len(acked)
    consumed = consume_all(broker.bootstrap, "full", 1, expected=len(acked))
    run.damaged["after freeing space"] = _damaged(
        acked, [(c.offset, c.key or b"", c.value or b"") for c in consumed]
    )
    run.exit_code = broker.stop()
    run.log_errors = broker.log().count("Traceback")
    run.expect(run.exit_code == 0, f"exit code {run.exit_code}")
    run.expect(run.log_errors == 0, f"{run.log_errors} tracebacks in the broker log")
    broker.start()  # recovery finds every record whole
    with WireClient(broker.bootstrap) as client:
        run.damaged["after a restart"] = _damaged(acked, read_back(client, "full", 0))
    run.expect(broker.stop() == 0, "the restarted broker did not stop cleanly")
    for when, count in run.damaged.items():
        run.expect(count == 0, f"{count} acknowledged records damaged {when}")


def offline_dir(scratch: Path) -> OfflineDirRun:
    run = OfflineDirRun()
    started = time.monotonic()
    healthy = scratch / "healthy"
    with mounts.ext4_image(scratch / "disk", 16) as disk:
        broker = BrokerProcess(healthy, {"log.dirs": f"{healthy},{disk}"})
        try:
            broker.start()
            _offline_dir(broker, healthy, disk, run)
        finally:
            _stop(broker)
    run.seconds = time.monotonic() - started
    return run


def _offline_dir(broker: BrokerProcess, healthy: Path, disk: Path, run: OfflineDirRun) -> None:
    create_topic(broker.bootstrap, "split", partitions=2)  # one partition per dir
    if not run.expect(
        (disk / "split-1").is_dir() and (healthy / "split-0").is_dir(),
        "the two partitions were not placed one in each log dir",
    ):
        return
    acked: dict[int, list[Record]] = {0: [], 1: []}
    with WireClient(broker.bootstrap) as client:
        for n in range(20):
            for p in (0, 1):
                answer = produce(client, "split", p, b"%d" % n, b"before-%d" % n)
                run.expect(answer.error_code == 0, f"produce before the failure: {answer}")
                acked[p].append((answer.base_offset, b"%d" % n, b"before-%d" % n))

        mounts.fail_ext4(disk)
        for attempt in ("first", "second"):  # the first meets the failure, the next finds it
            code = int(produce(client, "split", 1, b"k", b"after").error_code)
            run.offline_answers.append((f"Produce ({attempt})", code))
        run.offline_answers.append(("Fetch", int(fetch(client, "split", 1, 0).error_code)))
        bad = [(what, code) for what, code in run.offline_answers if code != STORAGE_ERROR]
        run.expect(not bad, f"the offline partition answered {bad}")
        partitions = metadata(client, "split").topics[0].partitions
        run.metadata = [
            (int(p.error_code), int(p.leader_id), [int(r) for r in p.offline_replicas])
            for p in partitions
        ]
        run.expect(
            run.metadata == [(0, 1, []), (int(ErrorCode.leader_not_available), -1, [1])],
            f"Metadata after the failure: {run.metadata}",
        )
        answer = produce(client, "split", 0, b"k", b"after")
        run.expect(answer.error_code == 0, f"the healthy partition answered {answer}")
        if answer.error_code == 0:
            acked[0].append((answer.base_offset, b"k", b"after"))
        run.healthy_acknowledged = len(acked[0])
        run.healthy_intact = not _damaged(acked[0], read_back(client, "split", 0))
    api_versions = api_versions_answer(broker.bootstrap)
    run.expect(api_versions == 0, f"ApiVersions answered {api_versions}")
    create_topic(broker.bootstrap, "later")
    run.expect((healthy / "later-0").is_dir(), "a new topic was not placed in the healthy dir")
    run.new_topic_acknowledged = len(produce_acked(broker.bootstrap, "later", 10))
    run.alive = broker.process is not None and broker.process.poll() is None
    run.exit_code = broker.stop()
    run.log_errors = broker.log().count("Traceback")
    run.expect(run.alive and run.exit_code == 0, f"alive {run.alive}, exit {run.exit_code}")
    run.expect(run.log_errors == 0, f"{run.log_errors} tracebacks in the broker log")

    broker.overrides["log.dirs"] = str(healthy)  # the failed disk is replaced
    broker.start()
    with WireClient(broker.bootstrap) as client:
        run.healthy_intact &= not _damaged(acked[0], read_back(client, "split", 0))
    run.expect(run.healthy_intact, "records of the healthy partition damaged")
    run.expect(broker.stop() == 0, "the restarted broker did not stop cleanly")


def only_dir_fails(scratch: Path) -> OnlyDirRun:
    """Kafka halts when its last log dir fails; this broker keeps answering."""
    run = OnlyDirRun()
    started = time.monotonic()
    with mounts.ext4_image(scratch / "only", 16) as disk:
        broker = BrokerProcess(disk / "data", {"offsets.topic.num.partitions": "1"})
        try:
            broker.start()
            _only_dir_fails(broker, disk, run)
        finally:
            _stop(broker)
    run.seconds = time.monotonic() - started
    return run


def _only_dir_fails(broker: BrokerProcess, disk: Path, run: OnlyDirRun) -> None:
    create_topic(broker.bootstrap, "solo")
    with WireClient(broker.bootstrap) as client:
        run.expect(produce(client, "solo", 0, b"k", b"v").error_code == 0, "first produce")
        found = client.call(FindCoordinatorRequest(key_type=i8(0), coordinator_keys=("g",)))
        run.expect(found.coordinators[0].error_code == 0, "FindCoordinator before the failure")

        mounts.fail_ext4(disk)
        answers = run.answers
        answers.append(("Produce", int(produce(client, "solo", 0, b"k", b"v").error_code)))
        answers.append(("Fetch", int(fetch(client, "solo", 0, 0).error_code)))
        (partition,) = metadata(client, "solo").topics[0].partitions
        answers.append(("Metadata (partition)", int(partition.error_code)))
        run.expect(partition.leader_id == -1, f"leader {partition.leader_id} while offline")
        # cluster-metadata.json is read-only: the topic must not be created.
        answers.append(("CreateTopics", int(create_topics(client, "refused").error_code)))
        answers.append(
            ("Metadata (refused topic)", int(metadata(client, "refused").topics[0].error_code))
        )
        # The coordinator's partition is offline too.
        found = client.call(FindCoordinatorRequest(key_type=i8(0), coordinator_keys=("g",)))
        answers.append(("FindCoordinator", int(found.coordinators[0].error_code)))
    answers.append(("ApiVersions", api_versions_answer(broker.bootstrap)))
    expected = [
        ("Produce", STORAGE_ERROR),
        ("Fetch", STORAGE_ERROR),
        ("Metadata (partition)", int(ErrorCode.leader_not_available)),
        ("CreateTopics", STORAGE_ERROR),
        ("Metadata (refused topic)", int(ErrorCode.unknown_topic_or_partition)),
        ("FindCoordinator", int(ErrorCode.coordinator_not_available)),
        ("ApiVersions", 0),
    ]
    run.expect(answers == expected, f"answers after the only dir failed: {answers}")
    run.exit_code = broker.stop()
    run.log_errors = broker.log().count("Traceback")
    run.expect(run.exit_code == 0, f"exit code {run.exit_code}")
    run.expect(run.log_errors == 0, f"{run.log_errors} tracebacks in the broker log")


def _stop(broker: BrokerProcess) -> None:
    """Stop (or kill) a broker before its mount is undone."""
    try:
        broker.stop()
    except Exception:
        broker.kill()


def _damaged(acked: list[Record], found: list[Record]) -> int:
    """Acknowledged records not found, identical, at their offset."""
    present = {offset: (key, value) for offset, key, value in found}
    return sum(present.get(offset) != (key, value) for offset, key, value in acked)


# -- raw requests ------------------------------------------------------------------------


def produce(client: WireClient, topic: str, partition: int, key: bytes, value: bytes) -> Any:
    """One batch of one record; the partition's response (error_code, base_offset)."""
    request = ProduceRequest(
        transactional_id=None,
        acks=i16(1),
        timeout=datetime.timedelta(seconds=10),
        topic_data=(
            TopicProduceData(
                name=topic,
                partition_data=(
                    PartitionProduceData(
                        index=i32(partition),
                        records=Records(build_batch([NewRecord(key=key, value=value)])),
                    ),
                ),
            ),
        ),
    )
    return client.call(request).responses[0].partition_responses[0]


def fetch(client: WireClient, topic: str, partition: int, offset: int) -> Any:
    request = fetch_request(topic, partition, offset, max_bytes=1 << 22)
    return client.call(request).responses[0].partitions[0]


def read_back(client: WireClient, topic: str, partition: int) -> list[Record]:
    """Every record of a partition, fetched from offset 0 to the high watermark (a fetch
    error ends the read: what was read so far is returned)."""
    found: list[Record] = []
    while True:
        answer = fetch(client, topic, partition, len(found))
        if answer.error_code != ErrorCode.none:
            return found
        records = [r for r in iter_records(answer.records or b"") if r.offset >= len(found)]
        if not records:
            return found
        found += [(r.offset, r.key or b"", r.value or b"") for r in records]


def metadata(client: WireClient, *topics: str) -> Any:
    return client.call(
        MetadataRequest(
            topics=tuple(MetadataRequestTopic(topic_id=uuid.UUID(int=0), name=t) for t in topics),
            allow_auto_topic_creation=False,
            include_topic_authorized_operations=False,
        )
    )


def create_topics(client: WireClient, name: str) -> Any:
    request = CreateTopicsRequest(
        topics=(
            CreatableTopic(
                name=name,
                num_partitions=i32(1),
                replication_factor=i16(1),
                assignments=(),
                configs=(),
            ),
        ),
        timeout=datetime.timedelta(seconds=10),
        validate_only=False,
    )
    return client.call(request).topics[0]


def api_versions_answer(bootstrap: str) -> int:
    with WireClient(bootstrap) as client:
        request = ApiVersionsRequest(client_software_name="t", client_software_version="1")
        return int(client.call(request).error_code)


@dataclass
class DiskFaultRuns:
    """The three campaigns as the report runs them; ``not_run`` says, for a campaign
    that has no figures, why (the machine cannot mount, or it stopped with an error)."""

    full: FullDiskRun | None = None
    offline: OfflineDirRun | None = None
    only: OnlyDirRun | None = None
    not_run: dict[str, str] = field(default_factory=dict)


def run_disk_faults(scratch: Path) -> DiskFaultRuns:
    """Every campaign once, each in its own directory of ``scratch``; none raises."""
    runs = DiskFaultRuns()
    for name, campaign in (("full", full_disk), ("offline", offline_dir), ("only", only_dir_fails)):
        directory = scratch / f"disk-{name}"
        directory.mkdir()
        try:
            setattr(runs, name, campaign(directory))
        except pytest.skip.Exception as exc:
            runs.not_run[name] = f"not run: {exc.msg}"
        except Exception as exc:
            runs.not_run[name] = f"FAILED: {type(exc).__name__}: {exc}"
    return runs
