"""What every client compatibility test compares: records as the broker acknowledged them.

A :class:`Rec` is one record at its place in the log. Producers' acknowledgements give
partition and offset; the test knows what it sent; consumers must read back exactly those
records, in offset order within each partition, and nothing else. :func:`stored_batches`
reads the batch headers the broker stored (through a raw Fetch), which shows that the
codec a client was asked to use really reached the log.
"""

from __future__ import annotations

import datetime
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple, TypeVar

from kio.schema.fetch.v12.request import FetchPartition, FetchRequest, FetchTopic

from odradek.protocol.records import BatchHeader, CompressionType, iter_headers
from tests.support.wire import WireClient

Headers = tuple[tuple[str, bytes | None], ...]
T = TypeVar("T")

CODECS = ("none", "gzip", "snappy", "lz4", "zstd")
CODEC_IDS = {name: CompressionType[name.upper()] for name in CODECS}
BASE_TIMESTAMP = 1_700_000_000_000


class Rec(NamedTuple):
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers
    timestamp: int


class Outgoing(NamedTuple):
    """A record a test sends: everything but the offset the broker assigns."""

    partition: int
    key: bytes | None
    value: bytes | None
    headers: Headers
    timestamp: int


def topic_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def outgoing(
    count: int,
    partitions: int,
    *,
    tag: str = "",
    null_header_values: bool = True,
    null_key_and_value: bool = True,
) -> list[Outgoing]:
    """Records with every shape a client must carry unchanged.

    Null keys, empty keys, tombstones (null values), both null, empty values, binary
    bytes, no headers, repeated header keys, null header values and distinct explicit
    timestamps, round-robin over ``partitions``. Some clients cannot send null header
    values (empty ones are sent instead) or records with neither key nor value (an
    empty key instead).
    """
    records = []
    for i in range(count):
        key: bytes | None = f"key-{i}".encode()
        if i % 7 == 3:
            key = None
        elif i % 11 == 5:
            key = b""
        value: bytes | None = f"{tag}value-{i}-".encode() + bytes(range(i % 32)) * 3
        if i % 5 == 4:
            value = None
        elif i % 13 == 6:
            value = b""
        headers: Headers = ()
        if i % 3 == 1:
            headers = (("trace", f"t{i}".encode()),)
        elif i % 3 == 2:
            second: bytes | None = None if null_header_values else b""
            headers = (("dup", b"one"), ("dup", b"two"), ("nul", second), ("bin", b"\x00\xff"))
        if not null_key_and_value and key is None and value is None:
            key = b""
        records.append(
            Outgoing(i % partitions, key, value, headers, BASE_TIMESTAMP + i * 1000 + i % 3)
        )
    return records


def placed(record: Outgoing, offset: int) -> Rec:
    return Rec(record.partition, offset, record.key, record.value, record.headers, record.timestamp)


def assert_offsets_follow_send_order(acked: Sequence[Rec], sent: Sequence[Outgoing]) -> None:
    """Per partition, acknowledged offsets are 0, 1, 2, ... in the order records were sent."""
    by_partition: dict[int, list[int]] = {}
    for rec in acked:
        by_partition.setdefault(rec.partition, []).append(rec.offset)
    for partition, offsets in by_partition.items():
        assert offsets == list(range(len(offsets))), f"partition {partition}: {offsets}"
    assert len(acked) == len(sent)


def assert_partition_order(read: Sequence[Rec]) -> None:
    """Records of each partition arrived in increasing offset order, without gaps."""
    last: dict[int, int] = {}
    for rec in read:
        previous = last.get(rec.partition, -1)
        assert rec.offset == previous + 1, f"partition {rec.partition}: {previous} -> {rec.offset}"
        last[rec.partition] = rec.offset


def by_position(records: Iterable[Rec]) -> list[Rec]:
    return sorted(records, key=lambda rec: (rec.partition, rec.offset))


def wait_for(probe: Callable[[], T | None], timeout: float, what: str) -> T:
    """Call ``probe`` until it returns something other than None/False, or fail."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def stored_batches(bootstrap: str, topic: str, partition: int) -> list[BatchHeader]:
    """The record batch headers of one partition, read with raw Fetch v12 requests."""
    headers: list[BatchHeader] = []
    offset = 0
    with WireClient(bootstrap) as client:
        while True:
            response = client.call(_fetch(topic, partition, offset))
            data = response.responses[0].partitions[0]
            assert data.error_code == 0, f"fetch {topic}-{partition}@{offset}: {data.error_code}"
            found = list(iter_headers(bytes(data.records or b"")))
            found = [header for header in found if header.next_offset > offset]
            if not found:
                return headers
            headers.extend(found)
            offset = found[-1].next_offset
            if offset >= data.high_watermark:
                return headers


def all_stored_batches(bootstrap: str, topic: str, partitions: int) -> list[BatchHeader]:
    return [
        header
        for partition in range(partitions)
        for header in stored_batches(bootstrap, topic, partition)
    ]


def stored_codecs(bootstrap: str, topic: str, partitions: int) -> set[str]:
    names = {int(ident): name for name, ident in CODEC_IDS.items()}
    return {
        names[header.compression] for header in all_stored_batches(bootstrap, topic, partitions)
    }


def assert_idempotent_batches(bootstrap: str, topic: str, partitions: int) -> None:
    """Every stored batch carries a producer id and sequence: the producer was idempotent."""
    batches = all_stored_batches(bootstrap, topic, partitions)
    assert batches
    assert all(h.producer_id >= 0 and h.base_sequence >= 0 for h in batches), batches


def assert_stored_with(bootstrap: str, topic: str, partitions: int, codec: str) -> None:
    """The log holds batches compressed with ``codec``, and no other codec.

    Producers may send a batch uncompressed when compressing would make it larger
    (librdkafka does, for one small record), so "none" is allowed alongside.
    """
    stored = stored_codecs(bootstrap, topic, partitions)
    assert codec in stored, f"no {codec} batches stored, only {stored}"
    assert stored <= {codec, "none"}, stored


def _fetch(topic: str, partition: int, offset: int) -> FetchRequest:
    return FetchRequest(
        max_wait=datetime.timedelta(0),
        min_bytes=0,
        max_bytes=1 << 20,
        isolation_level=0,
        session_id=0,
        session_epoch=-1,
        topics=(
            FetchTopic(
                topic=topic,
                partitions=(
                    FetchPartition(
                        partition=partition,
                        fetch_offset=offset,
                        log_start_offset=-1,
                        partition_max_bytes=1 << 20,
                    ),
                ),
            ),
        ),
        forgotten_topics_data=(),
        rack_id="",
    )
