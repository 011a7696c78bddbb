"""Checks on records before they are appended, and offset assignment (Kafka's
``LogValidator`` with ``UnifiedLog.analyzeAndValidateRecords``).

Input: a records blob, i.e. concatenated magic v2 batches (layout in
``odradek.protocol.records``), in a ``bytearray`` that is patched in place: base offset,
partition leader epoch and, on LogAppendTime topics, attributes + max timestamp + CRC.
The work is per batch (a header unpack, a C-level CRC-32C, a few ``pack_into``); records
are decoded only on compacted topics, whose records must have keys.

Rules, in Kafka's order, with the error each breach raises:

- framing: at least one batch, whole batches only (a trailing partial batch is
  CORRUPT_MESSAGE), batch length >= 49 (CORRUPT_MESSAGE), magic 2 (INVALID_RECORD, as
  Kafka 4's produce path answers older formats); from clients, exactly one batch
  (INVALID_RECORD, ``ProduceRequest.validateRecords``) whose base offset is 0;
- size: each batch <= ``max.message.bytes`` (MESSAGE_TOO_LARGE);
- integrity: CRC-32C (CORRUPT_MESSAGE), a known compression codec (INVALID_RECORD);
- from clients: records_count == last_offset_delta + 1 > 0, no control batch, a
  sequence number when there is a producer id (INVALID_RECORD);
- timestamps: CreateTime topics check the batch's base and max timestamps against
  ``message.timestamp.before/after.max.ms`` (INVALID_TIMESTAMP; Kafka checks every
  record); a producer may not set LogAppendTime itself (INVALID_TIMESTAMP); LogAppendTime
  topics get ``now`` stamped as the batch max timestamp;
- compacted topics: every record has a key (INVALID_RECORD).

Recompression: a topic whose ``compression.type`` is not ``producer`` stores its codec
(``uncompressed`` for none): a client's batch in another codec is rebuilt with it, its
records byte for byte (producer id, epoch, sequence and timestamps kept), and the rebuilt
batch must still fit ``max.message.bytes``. Control batches are kept as written. This is
the one per-record path of a leader append, paid only when the codecs differ. Inner
offsets of compressed batches are not inspected.

Stateless apart from its config; thread-safe.
"""

from __future__ import annotations

from typing import NamedTuple

from odradek.config import LogConfig
from odradek.protocol import records as batch
from odradek.protocol.record_codec import (
    RecordDecodeError,
    batch_payload,
    rebuild_batch,
    scan_records,
)
from odradek.protocol.records import BatchHeader, CompressionType
from odradek.protocol.types import TopicPartition, new_tuple
from odradek.storage.errors import (
    CorruptRecordError,
    InvalidRecordError,
    InvalidTimestampError,
    RecordTooLargeError,
    UnexpectedAppendOffsetError,
)
from odradek.storage.values import AppendOrigin

_MAX_COMPRESSION = max(CompressionType)
_CLIENT = AppendOrigin.CLIENT
_TARGET_CODECS = {
    "uncompressed": CompressionType.NONE,
    "gzip": CompressionType.GZIP,
    "snappy": CompressionType.SNAPPY,
    "lz4": CompressionType.LZ4,
    "zstd": CompressionType.ZSTD,
}
"""``compression.type`` -> the codec a topic stores (``producer``: the batch's own)."""


class ValidationResult(NamedTuple):
    """What validation found and assigned. ``headers`` carry the assigned offsets."""

    headers: list[BatchHeader]
    first_offset: int
    last_offset: int
    max_timestamp: int
    offset_of_max_timestamp: int
    log_append_time: int
    record_count: int
    valid_bytes: int
    records: bytearray | memoryview | None = None
    """What to append when it is not the input buffer (the batches were recompressed)."""


class LogValidator:
    """Validates one partition's appends under its current ``LogConfig``."""

    def __init__(self, topic_partition: TopicPartition, config: LogConfig) -> None:
        self.topic_partition = topic_partition
        self.config = config

    def validate_and_assign_offsets(
        self,
        buffer: bytearray | memoryview,
        *,
        first_offset: int,
        leader_epoch: int,
        now: int,
        origin: AppendOrigin = AppendOrigin.CLIENT,
    ) -> ValidationResult:
        """Validate every batch in ``buffer`` and give them offsets from ``first_offset``."""
        headers = self.analyze(buffer, origin=origin)
        config = self.config
        recompressed = (
            None if config.compression_type == "producer" else self._recompress(buffer, headers)
        )
        if recompressed is not None:
            buffer = recompressed
            headers = list(batch.iter_headers(buffer))
            for header in headers:
                self._check_size(header)
        log_append_time = config.message_timestamp_type == "LogAppendTime"
        compact = config.compact
        next_offset = first_offset
        max_timestamp = batch.NO_TIMESTAMP
        offset_of_max_timestamp = -1
        record_count = 0
        for header in headers:
            self._check_timestamps(header, now, log_append_time)
            if compact:
                self._check_keys(buffer, header)
            header.base_offset = next_offset
            header.partition_leader_epoch = leader_epoch
            batch.assign_offset_and_epoch(buffer, header)
            if log_append_time:
                batch.set_log_append_time(buffer, header, now)
            next_offset += header.last_offset_delta + 1
            record_count += header.records_count
            if header.max_timestamp > max_timestamp:
                max_timestamp = header.max_timestamp
                offset_of_max_timestamp = next_offset - 1
        return new_tuple(  # one per append
            ValidationResult,
            (
                headers,
                first_offset,
                next_offset - 1,  # last offset
                max_timestamp,
                offset_of_max_timestamp,
                now if log_append_time else batch.NO_TIMESTAMP,
                record_count,
                len(buffer),  # valid bytes
                recompressed,
            ),
        )

    def _recompress(
        self, buffer: bytearray | memoryview, headers: list[BatchHeader]
    ) -> bytearray | None:
        """The batches rebuilt with the topic's codec, or None when they already have it."""
        target = _TARGET_CODECS.get(self.config.compression_type)
        if target is None or all(h.compression == target or h.is_control for h in headers):
            return None
        out = bytearray()
        view = memoryview(buffer)
        for header in headers:
            raw = view[header.position : header.position + header.size]
            if header.is_control or header.compression == target:
                out += raw
                continue
            local = batch.read_header(raw)
            try:
                payload = batch_payload(raw, local)
                spans = scan_records(payload, local.records_count)
            except RecordDecodeError as exc:
                raise CorruptRecordError(
                    f"cannot decode records in {self.topic_partition}: {exc}"
                ) from exc
            out += rebuild_batch(local, payload, spans, compression=target)
        return out

    def analyze_follower_records(self, records: bytes | bytearray | memoryview) -> ValidationResult:
        """Framing, size and CRC of batches copied from the leader, whose offsets must not
        go backwards (UnexpectedAppendOffsetError); nothing is patched."""
        headers = self.analyze(records, origin=AppendOrigin.REPLICATION)
        next_offset = -1
        max_timestamp, offset_of_max_timestamp = batch.NO_TIMESTAMP, -1
        for header in headers:
            if header.base_offset < next_offset:
                raise UnexpectedAppendOffsetError(
                    f"out of order offsets in the append to {self.topic_partition}"
                )
            next_offset = header.next_offset
            if header.max_timestamp > max_timestamp:
                max_timestamp, offset_of_max_timestamp = header.max_timestamp, header.last_offset
        return ValidationResult(
            headers=headers,
            first_offset=headers[0].base_offset,
            last_offset=headers[-1].last_offset,
            max_timestamp=max_timestamp,
            offset_of_max_timestamp=offset_of_max_timestamp,
            log_append_time=batch.NO_TIMESTAMP,
            record_count=sum(h.records_count for h in headers),
            valid_bytes=len(records),
        )

    def analyze(
        self, buffer: bytes | bytearray | memoryview, *, origin: AppendOrigin
    ) -> list[BatchHeader]:
        """Framing, size, CRC and client rules of every batch; their headers."""
        end = len(buffer)
        headers: list[BatchHeader] = []
        position = 0
        client = origin is _CLIENT
        while position < end:
            if end - position < batch.LOG_OVERHEAD + 5:
                raise CorruptRecordError(
                    f"trailing partial batch in the append to {self.topic_partition}"
                )
            magic = buffer[position + batch.MAGIC_OFFSET]
            if magic != 2:
                raise InvalidRecordError(
                    f"record batches with magic {magic} are not accepted in the append to "
                    f"{self.topic_partition}; only magic 2 is"
                )
            if end - position < batch.BATCH_HEADER_SIZE:
                raise CorruptRecordError(
                    f"trailing partial batch in the append to {self.topic_partition}"
                )
            header = batch.read_header(buffer, position)
            if header.batch_length < batch.MIN_BATCH_LENGTH:
                raise CorruptRecordError(
                    f"record batch length {header.batch_length} is below the minimum "
                    f"{batch.MIN_BATCH_LENGTH} in the append to {self.topic_partition}"
                )
            size = header.size
            if position + size > end:
                raise CorruptRecordError(
                    f"trailing partial batch in the append to {self.topic_partition}"
                )
            self._check_batch(buffer, header, client)
            headers.append(header)
            position += size
        if not headers:
            raise InvalidRecordError(
                f"the append to {self.topic_partition} has no record batch at all"
            )
        if client and len(headers) > 1:
            raise InvalidRecordError(
                "a produce request may carry exactly one record batch per partition "
                f"({self.topic_partition})"
            )
        return headers

    def _check_batch(
        self, buffer: bytes | bytearray | memoryview, header: BatchHeader, client: bool
    ) -> None:
        if client and header.base_offset != 0:
            raise InvalidRecordError(
                f"the baseOffset of the record batch in the append to {self.topic_partition} "
                f"should be 0, but it is {header.base_offset}"
            )
        self._check_size(header)
        if batch.compute_crc(buffer, header.position, header.size) != header.crc:
            raise CorruptRecordError(
                f"record is corrupt (stored crc = {header.crc}) in topic partition "
                f"{self.topic_partition}"
            )
        attributes = header.attributes
        if attributes & batch.COMPRESSION_MASK > _MAX_COMPRESSION:
            raise InvalidRecordError(
                f"unknown compression type {header.compression} ({self.topic_partition})"
            )
        if not client:
            return
        records_count = header.records_count
        if records_count <= 0 or header.last_offset_delta + 1 != records_count:
            self._refuse_count(header)
        if attributes & batch.CONTROL_FLAG:
            raise InvalidRecordError(
                f"clients are not allowed to write control records in {self.topic_partition}"
            )
        if header.producer_id > batch.NO_PRODUCER_ID and header.base_sequence < 0:
            raise InvalidRecordError(
                f"invalid sequence number {header.base_sequence} in record batch with "
                f"producerId {header.producer_id} in topic partition {self.topic_partition}"
            )

    def _refuse_count(self, header: BatchHeader) -> None:
        """Raise the error Kafka gives a client batch whose record count is not positive
        or disagrees with its offset range (checked in Kafka's order)."""
        if header.last_offset_delta + 1 <= 0:
            raise InvalidRecordError(
                f"batch has an invalid offset range: [0, {header.last_offset_delta}] in "
                f"{self.topic_partition}"
            )
        if header.records_count <= 0:
            raise InvalidRecordError(
                f"invalid reported count for record batch: {header.records_count} in "
                f"{self.topic_partition}"
            )
        raise InvalidRecordError(
            f"inconsistent batch offset range [0, {header.last_offset_delta}] and count "
            f"of records {header.records_count} in topic partition {self.topic_partition}"
        )

    def _check_size(self, header: BatchHeader) -> None:
        if header.size > self.config.max_message_bytes:
            raise RecordTooLargeError(
                f"the record batch size in the append to {self.topic_partition} is "
                f"{header.size} bytes which exceeds the maximum configured value of "
                f"{self.config.max_message_bytes}"
            )

    def _check_timestamps(self, header: BatchHeader, now: int, log_append_time: bool) -> None:
        if header.attributes & batch.TIMESTAMP_TYPE_MASK:
            raise InvalidTimestampError(
                "invalid timestamp type in the batch: producers should not set the timestamp "
                "type to LogAppendTime"
            )
        if log_append_time:
            return
        earliest = now - self.config.message_timestamp_before_max_ms
        latest = now + self.config.message_timestamp_after_max_ms
        for timestamp in (header.base_timestamp, header.max_timestamp):
            if not earliest <= timestamp <= latest and timestamp != batch.NO_TIMESTAMP:
                raise InvalidTimestampError(
                    f"timestamp {timestamp} of the batch at offset {header.base_offset} is out "
                    f"of range; it should be within [{earliest}, {latest}]"
                )

    def _check_keys(self, buffer: bytes | bytearray | memoryview, header: BatchHeader) -> None:
        try:
            spans = scan_records(batch_payload(buffer, header), header.records_count)
        except RecordDecodeError as exc:
            raise CorruptRecordError(
                f"cannot decode records in {self.topic_partition}: {exc}"
            ) from exc
        if any(span.key is None for span in spans):
            raise InvalidRecordError(
                "compacted topic cannot accept message without key in topic partition "
                f"{self.topic_partition}"
            )
