"""What the coordinators do alike with their internal topics.

``__consumer_offsets`` and ``__transaction_state`` are both created on first use, with a
replication factor capped by the live brokers (a single node works out of the box); both
are read back from the start of a partition, batch by batch (``read_batches``; the group
coordinator needs transaction markers and producer ids, the transaction coordinator only
records, ``read_records``), when this broker becomes its leader; and the
transaction coordinator appends to its partitions with acks=all, answering only once the
ISR has the records.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence

from odradek.cluster.controller import Controller
from odradek.cluster.metadata import MetadataStore, TopicExistsError, TopicMetadata
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.protocol.record_codec import NewRecord, build_batch, decode_records
from odradek.protocol.records import BatchHeader, iter_headers
from odradek.protocol.types import TopicPartition
from odradek.replication.replica_manager import ReplicaManager
from odradek.storage.log import Log
from odradek.storage.values import AppendOrigin

log = logging.getLogger(__name__)

LOAD_CHUNK_BYTES = 4 * 1024 * 1024


def replication_factor(configured: int, live_brokers: int) -> int:
    """The factor an internal topic is created with: the configured one, at most the
    live brokers, at least 1 (Kafka refuses instead when too few brokers are up)."""
    return max(min(configured, live_brokers), 1)


def create_internal_topic(
    *,
    controller: Controller,
    metadata: MetadataStore,
    name: str,
    partitions: int,
    factor: int,
    configs: Mapping[str, str],
) -> TopicMetadata:
    """Create ``name`` (or take it as another broker just created it); on failure
    KafkaError COORDINATOR_NOT_AVAILABLE, which clients retry."""
    try:
        created = controller.create_topic(name, partitions, factor, configs=configs)
    except TopicExistsError:
        created = metadata.topic(name)
    except KafkaError as exc:
        raise KafkaError(
            f"cannot create {name}: {exc}", ErrorCode.coordinator_not_available
        ) from exc
    if created is None:
        raise KafkaError(f"{name} is not there", ErrorCode.coordinator_not_available)
    log.info("created %s: %d partitions, replication factor %d", name, partitions, factor)
    return created


def read_batches(
    partition_log: Log, chunk_bytes: int = LOAD_CHUNK_BYTES
) -> Iterator[tuple[bytes, BatchHeader]]:
    """Every whole batch from the log start to the log end, control batches included,
    as (the bytes read, the batch's header in them): what a coordinator replays when it
    loads the partition, ``chunk_bytes`` at a time (a larger first batch is read whole).
    The first batch may begin before the log start offset; its records there are not
    the partition's any more."""
    offset = partition_log.log_start_offset
    end = partition_log.log_end_offset
    while offset < end:
        info = partition_log.read(offset, chunk_bytes, max_offset=end)
        if info.records is None:
            return
        data = info.records.read()
        next_offset = offset
        for header in iter_headers(data):
            if header.next_offset <= offset:
                continue
            next_offset = header.next_offset
            yield data, header
        if next_offset <= offset:
            return
        offset = next_offset


def read_records(
    partition_log: Log, chunk_bytes: int = LOAD_CHUNK_BYTES
) -> Iterator[tuple[int, bytes | None, bytes | None]]:
    """(offset, key, value) of every record from the log start to the log end, control
    batches skipped: what a coordinator replays when it loads the partition."""
    start = partition_log.log_start_offset
    for data, header in read_batches(partition_log, chunk_bytes):
        if header.is_control:
            continue
        for record in decode_records(data, header):
            if record.offset >= start:
                yield record.offset, record.key, record.value


async def append_replicated(
    replica_manager: ReplicaManager,
    tp: TopicPartition,
    records: Sequence[NewRecord],
    timeout_ms: int,
) -> None:
    """Append ``records`` as one batch to ``tp`` (led here) with acks=all and return once
    the ISR has them; KafkaError with the produce error code otherwise (Kafka's
    coordinator appends through ``ReplicaManager.appendRecords`` the same way)."""
    results = replica_manager.append_records(
        -1, [(tp, bytearray(build_batch(records)))], AppendOrigin.COORDINATOR
    )
    waiting = replica_manager.await_acks(results, timeout_ms)
    if waiting is not None:
        results = await waiting
    result = results[tp]
    if result.error is not ErrorCode.none:
        raise KafkaError(result.message or f"append to {tp} failed", result.error)
