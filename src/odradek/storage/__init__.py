"""Partition logs on local disk, in Kafka's on-disk format. No sockets, no asyncio.

Modules follow Kafka's ``storage/.../internals/log`` split: ``segment`` (LogSegment),
``offset_index`` / ``time_index`` / ``txn_index``, ``local_log`` (LogSegments, LocalLog), ``log``
(UnifiedLog), ``loader`` (LogLoader), ``validator`` (LogValidator), ``producer_state``,
``leader_epoch``, ``checkpoints``, ``log_manager``.
"""

from odradek.storage.errors import (
    CorruptRecordError,
    InconsistentTopicIdError,
    InvalidProducerEpochError,
    InvalidRecordError,
    InvalidTimestampError,
    InvalidTxnStateError,
    KafkaStorageError,
    OffsetOutOfRangeError,
    OutOfOrderSequenceError,
    RecordBatchTooLargeError,
    RecordTooLargeError,
    TransactionCoordinatorFencedError,
    UnexpectedAppendOffsetError,
)
from odradek.storage.file_records import FileHandle, FileRegion, HandleCache
from odradek.storage.log import (
    EARLIEST_TIMESTAMP,
    LATEST_TIMESTAMP,
    MAX_TIMESTAMP,
    Log,
)
from odradek.storage.log_manager import LogManager
from odradek.storage.values import (
    AbortedTxn,
    ActiveProducer,
    AppendOrigin,
    FetchDataInfo,
    LogAppendInfo,
    LogOffsetMetadata,
    TimestampAndOffset,
)

__all__ = [
    "EARLIEST_TIMESTAMP",
    "LATEST_TIMESTAMP",
    "MAX_TIMESTAMP",
    "AbortedTxn",
    "ActiveProducer",
    "AppendOrigin",
    "CorruptRecordError",
    "FetchDataInfo",
    "FileHandle",
    "FileRegion",
    "HandleCache",
    "InconsistentTopicIdError",
    "InvalidProducerEpochError",
    "InvalidRecordError",
    "InvalidTimestampError",
    "InvalidTxnStateError",
    "KafkaStorageError",
    "Log",
    "LogAppendInfo",
    "LogManager",
    "LogOffsetMetadata",
    "OffsetOutOfRangeError",
    "OutOfOrderSequenceError",
    "RecordBatchTooLargeError",
    "RecordTooLargeError",
    "TimestampAndOffset",
    "TransactionCoordinatorFencedError",
    "UnexpectedAppendOffsetError",
]
