"""Storage errors, each carrying the Kafka error code that a client is told.

Kafka's classes of the same names live in ``org.apache.kafka.common.errors``; the codes are
the ones Kafka 4 puts in a Produce / Fetch / ListOffsets / DeleteRecords response.

Record batches with magic 0 or 1 are answered with INVALID_RECORD, as Kafka 4 does
(``ProduceRequest.validateRecords``: produce v3+ may only carry magic 2 batches; Kafka 4
accepts no older produce version), so there is no UNSUPPORTED_FOR_MESSAGE_FORMAT here.
"""

from __future__ import annotations

import errno

from odradek.protocol.errors import ErrorCode, KafkaError

__all__ = [
    "CorruptIndexError",
    "CorruptRecordError",
    "CorruptSnapshotError",
    "InconsistentTopicIdError",
    "InvalidProducerEpochError",
    "InvalidRecordError",
    "InvalidTimestampError",
    "InvalidTxnStateError",
    "KafkaStorageError",
    "LogDirFullError",
    "OffsetOutOfRangeError",
    "OutOfOrderSequenceError",
    "RecordBatchTooLargeError",
    "RecordTooLargeError",
    "TransactionCoordinatorFencedError",
    "UnexpectedAppendOffsetError",
    "storage_error",
]


class CorruptRecordError(KafkaError):
    """A batch fails its CRC or its framing (length fields) is broken."""

    error_code = ErrorCode.corrupt_message


class InvalidRecordError(KafkaError):
    """A batch that parses but breaks a rule: wrong magic, offsets, count, control batch,
    missing key on a compacted topic, ..."""

    error_code = ErrorCode.invalid_record


class RecordTooLargeError(KafkaError):
    """One batch is larger than ``max.message.bytes``."""

    error_code = ErrorCode.message_too_large


class RecordBatchTooLargeError(KafkaError):
    """The records of one append are larger than ``segment.bytes``."""

    error_code = ErrorCode.record_list_too_large


class InvalidTimestampError(KafkaError):
    """A CreateTime timestamp outside ``message.timestamp.{before,after}.max.ms`` of now, or a
    producer that set LogAppendTime itself."""

    error_code = ErrorCode.invalid_timestamp


class OffsetOutOfRangeError(KafkaError):
    error_code = ErrorCode.offset_out_of_range


class OutOfOrderSequenceError(KafkaError):
    error_code = ErrorCode.out_of_order_sequence_number


class InvalidProducerEpochError(KafkaError):
    error_code = ErrorCode.invalid_producer_epoch


class InvalidTxnStateError(KafkaError):
    """A non-transactional batch from a producer whose transaction on this partition is
    still open."""

    error_code = ErrorCode.invalid_txn_state


class TransactionCoordinatorFencedError(KafkaError):
    """A transaction marker from a coordinator older (by coordinator epoch) than the one
    that last wrote a marker for the producer: a zombie coordinator."""

    error_code = ErrorCode.transaction_coordinator_fenced


class KafkaStorageError(KafkaError):
    """An OSError while writing, flushing or reading a log: the log directory is unusable
    and goes offline (``log_dir_failure``), as Kafka takes a log dir offline on any
    IOException. ``LogDirFullError`` is the one exception."""

    error_code = ErrorCode.kafka_storage_error


class LogDirFullError(KafkaStorageError):
    """The disk was full (ENOSPC, EDQUOT) and what was being written was undone: the log
    is exactly as before the write, so its directory stays online and the same write
    succeeds once there is room. Clients get the same KAFKA_STORAGE_ERROR.

    Kafka makes no such distinction (a full disk takes the log dir offline until
    restart); a full disk is common and recoverable, and nothing on it is damaged, so
    here it fails the writes only while it lasts.
    """


OUT_OF_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def storage_error(message: str, cause: OSError, *, undone: bool) -> KafkaStorageError:
    """The error to raise for ``cause``: LogDirFullError when the disk was full and the
    caller undid any partial write (``undone``), else KafkaStorageError (dir failure).

    An fsync failure must never pass ``undone=True``: after a failed fsync the page
    cache may have dropped the data, so nothing is known about what is on disk.
    """
    if undone and cause.errno in OUT_OF_SPACE_ERRNOS:
        return LogDirFullError(f"{message}: {cause}")
    return KafkaStorageError(f"{message}: {cause}")


class InconsistentTopicIdError(KafkaError):
    """The topic id given for a log differs from the one in its ``partition.metadata``."""

    error_code = ErrorCode.inconsistent_topic_id


class UnexpectedAppendOffsetError(KafkaError):
    """A follower append whose first offset is below the log end offset, or whose batches'
    offsets go backwards."""

    error_code = ErrorCode.unknown_server_error


class CorruptIndexError(Exception):
    """An index file failed its sanity check; the caller rebuilds it from the log."""


class CorruptSnapshotError(Exception):
    """A producer state snapshot failed to parse or its CRC; the caller ignores it."""


class LogDirNotFoundError(KafkaError):
    """A log dir named in a request is not one of the broker's ``log.dirs``."""

    error_code = ErrorCode.log_dir_not_found
