"""Disk faults against a real broker process (issue #5), on real file systems
(``tests.support.mounts``): a log dir on a small tmpfs that fills up, and a log dir on
ext4 that fails and turns read-only under the running broker.

Error codes are read from the wire (``WireClient``): a full disk answers produce with
KAFKA_STORAGE_ERROR, damages nothing, and produce works again once space is freed; a
failed log dir goes offline (KAFKA_STORAGE_ERROR for its partitions, no leader in
Metadata) while the broker keeps answering everything else and still shuts down with
exit code 0. The rules are in ``odradek.storage.log_dir_failure``.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kio.schema.api_versions.v3.request import ApiVersionsRequest
from kio.schema.create_topics.v7.request import CreatableTopic, CreateTopicsRequest
from kio.schema.fetch.v12.request import FetchPartition, FetchRequest, FetchTopic
from kio.schema.find_coordinator.v4.request import FindCoordinatorRequest
from kio.schema.metadata.v12.request import MetadataRequest, MetadataRequestTopic
from kio.schema.produce.v9.request import PartitionProduceData, ProduceRequest, TopicProduceData
from kio.static.primitive import Records, i8, i16, i32

from odradek.protocol.errors import ErrorCode
from odradek.protocol.record_codec import NewRecord, build_batch, iter_records
from tests.support import mounts
from tests.support.broker import BrokerProcess
from tests.support.clients import consume_all, create_topic, produce_acked
from tests.support.wire import WireClient

Record = tuple[int, bytes, bytes]
"""(offset, key, value) as acknowledged or read back."""

VALUE = b"x" * 4000


@pytest.fixture
def running() -> Iterator[list[BrokerProcess]]:
    """Brokers a test starts; stopped (or killed) before its mounts are undone."""
    started: list[BrokerProcess] = []
    yield started
    for broker in started:
        try:
            broker.stop()
        except Exception:
            broker.kill()


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
    request = FetchRequest(
        max_wait=datetime.timedelta(0),
        min_bytes=1,
        max_bytes=1 << 22,
        isolation_level=0,
        session_id=0,
        session_epoch=-1,
        topics=(
            FetchTopic(
                topic=topic,
                partitions=(
                    FetchPartition(
                        partition=i32(partition),
                        fetch_offset=offset,
                        log_start_offset=-1,
                        partition_max_bytes=1 << 22,
                    ),
                ),
            ),
        ),
        forgotten_topics_data=(),
        rack_id="",
    )
    return client.call(request).responses[0].partitions[0]


def read_back(client: WireClient, topic: str, partition: int) -> list[Record]:
    """Every record of a partition, fetched from offset 0 to the high watermark."""
    found: list[Record] = []
    while True:
        answer = fetch(client, topic, partition, len(found))
        assert answer.error_code == ErrorCode.none
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


def assert_clean_log(broker: BrokerProcess) -> None:
    text = broker.log()
    assert "Traceback" not in text, text


def test_full_disk_fails_produce_damages_nothing_and_recovers_once_space_is_freed(
    tmp_path: Path, running: list[BrokerProcess]
) -> None:
    data = tmp_path / "data"
    with mounts.tmpfs(data, 2048):
        broker = BrokerProcess(data)
        running.append(broker)
        broker.start()
        # Small segments: the disk fills up across rolls (new segment and index files).
        create_topic(broker.bootstrap, "full", config={"segment.bytes": "65536"})
        filler = mounts.fill(data, leave_kib=512)
        acked: list[Record] = []
        with WireClient(broker.bootstrap) as client:
            for n in range(10_000):
                key = b"%d" % n
                answer = produce(client, "full", 0, key, VALUE)
                if answer.error_code != ErrorCode.none:
                    break
                assert answer.base_offset == len(acked)
                acked.append((answer.base_offset, key, VALUE))
            assert answer.error_code == ErrorCode.kafka_storage_error
            assert len(acked) > 50, "the disk filled up before the test began"
            # Still full: produce keeps failing the same way, the partition stays online.
            assert produce(client, "full", 0, b"k", VALUE).error_code == 56
            (partition,) = metadata(client, "full").topics[0].partitions
            assert (partition.error_code, partition.leader_id) == (ErrorCode.none, 1)
            assert read_back(client, "full", 0) == acked, "acknowledged records damaged"

            filler.unlink()
            answer = produce(client, "full", 0, b"after", VALUE)
            assert (answer.error_code, answer.base_offset) == (ErrorCode.none, len(acked))
            acked.append((answer.base_offset, b"after", VALUE))
        more = produce_acked(broker.bootstrap, "full", 100)  # a real client, no restart
        assert [m.offset for m in more] == list(range(len(acked), len(acked) + 100))
        acked += [(m.offset, m.key or b"", m.value or b"") for m in more]

        consumed = consume_all(broker.bootstrap, "full", 1, expected=len(acked))
        assert [(c.offset, c.key, c.value) for c in consumed] == acked
        assert broker.stop() == 0
        assert_clean_log(broker)
        broker.start()  # recovery finds every record whole
        with WireClient(broker.bootstrap) as client:
            assert read_back(client, "full", 0) == acked
        assert broker.stop() == 0


def test_failed_log_dir_goes_offline_and_the_broker_serves_the_rest(
    tmp_path: Path, running: list[BrokerProcess]
) -> None:
    healthy = tmp_path / "healthy"
    with mounts.ext4_image(tmp_path / "disk", 16) as disk:
        broker = BrokerProcess(healthy, {"log.dirs": f"{healthy},{disk}"})
        running.append(broker)
        broker.start()
        create_topic(broker.bootstrap, "split", partitions=2)  # one partition per dir
        assert (disk / "split-1").is_dir() and (healthy / "split-0").is_dir()
        acked: dict[int, list[Record]] = {0: [], 1: []}
        with WireClient(broker.bootstrap) as client:
            for n in range(20):
                for p in (0, 1):
                    answer = produce(client, "split", p, b"%d" % n, b"before-%d" % n)
                    assert answer.error_code == ErrorCode.none
                    acked[p].append((answer.base_offset, b"%d" % n, b"before-%d" % n))

            mounts.fail_ext4(disk)
            for _ in range(2):  # the first meets the failure, the next finds it offline
                answer = produce(client, "split", 1, b"k", b"after")
                assert answer.error_code == ErrorCode.kafka_storage_error
            assert fetch(client, "split", 1, 0).error_code == ErrorCode.kafka_storage_error
            partitions = metadata(client, "split").topics[0].partitions
            assert [(p.error_code, p.leader_id, list(p.offline_replicas)) for p in partitions] == [
                (ErrorCode.none, 1, []),
                (ErrorCode.leader_not_available, -1, [1]),
            ]

            answer = produce(client, "split", 0, b"k", b"after")
            assert answer.error_code == ErrorCode.none
            acked[0].append((answer.base_offset, b"k", b"after"))
            assert read_back(client, "split", 0) == acked[0]
        assert api_versions_answer(broker.bootstrap) == ErrorCode.none
        create_topic(broker.bootstrap, "later")  # placed in the healthy dir
        assert (healthy / "later-0").is_dir()
        assert len(produce_acked(broker.bootstrap, "later", 10)) == 10
        assert broker.process is not None and broker.process.poll() is None
        assert broker.stop() == 0
        assert_clean_log(broker)

        broker.overrides["log.dirs"] = str(healthy)  # the failed disk is replaced
        broker.start()
        with WireClient(broker.bootstrap) as client:
            assert read_back(client, "split", 0) == acked[0]
        assert broker.stop() == 0


def test_the_only_log_dir_failing_leaves_a_broker_that_answers_and_stops_cleanly(
    tmp_path: Path, running: list[BrokerProcess]
) -> None:
    """Kafka halts when its last log dir fails; this broker keeps answering (with
    KAFKA_STORAGE_ERROR where a write is needed, cluster metadata included)."""
    with mounts.ext4_image(tmp_path, 16) as disk:
        broker = BrokerProcess(disk / "data", {"offsets.topic.num.partitions": "1"})
        running.append(broker)
        broker.start()
        create_topic(broker.bootstrap, "solo")
        with WireClient(broker.bootstrap) as client:
            assert produce(client, "solo", 0, b"k", b"v").error_code == ErrorCode.none
            found = client.call(FindCoordinatorRequest(key_type=i8(0), coordinator_keys=("g",)))
            assert found.coordinators[0].error_code == ErrorCode.none

            mounts.fail_ext4(disk)
            assert produce(client, "solo", 0, b"k", b"v").error_code == 56
            assert fetch(client, "solo", 0, 0).error_code == ErrorCode.kafka_storage_error
            (partition,) = metadata(client, "solo").topics[0].partitions
            assert (partition.error_code, partition.leader_id) == (
                ErrorCode.leader_not_available,
                -1,
            )
            created = create_topics(client, "refused")  # cluster-metadata.json is read-only
            assert created.error_code == ErrorCode.kafka_storage_error
            assert metadata(client, "refused").topics[0].error_code == (
                ErrorCode.unknown_topic_or_partition
            )
            # The coordinator's partition is offline too (the dir failure is found on
            # the first write there, or when the whole dir went offline above).
            found = client.call(FindCoordinatorRequest(key_type=i8(0), coordinator_keys=("g",)))
            assert found.coordinators[0].error_code == ErrorCode.coordinator_not_available
        assert api_versions_answer(broker.bootstrap) == ErrorCode.none
        assert broker.stop() == 0
        assert_clean_log(broker)
