"""Values the transaction coordinator takes and answers with, and what it is given."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from odradek.coordinator.transaction.metadata import NO_PRODUCER_EPOCH, NO_PRODUCER_ID
from odradek.coordinator.transaction.records import TransactionLogKey, TransactionLogValue
from odradek.coordinator.transaction.state import TransactionState
from odradek.protocol.errors import ErrorCode
from odradek.protocol.types import TopicPartition

Record = tuple[TransactionLogKey, TransactionLogValue | None]
RecordWriter = Callable[[Sequence[Record], int], Awaitable[None]]
"""Append records (a None value is a tombstone) with acks=all, waiting at most the given
milliseconds for the ISR; returns once replicated, raises KafkaError with the append's
error code otherwise."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TransactionConfig:
    max_timeout_ms: int = 900_000
    """transaction.max.timeout.ms: the longest transaction timeout a producer may ask for."""
    transactional_id_expiration_ms: int = 604_800_000
    """transactional.id.expiration.ms: idle ids (Empty, Complete*) expire after this."""
    request_timeout_ms: int = 30_000
    """How long a tombstone write waits for the ISR."""
    max_batch_bytes: int = 1_048_588
    """Tombstones are written in batches of at most this size (max.message.bytes)."""
    retry_backoff_ms: int = 100
    """Pause before writing a completion again after COORDINATOR_NOT_AVAILABLE."""
    transaction_version: int = 1
    """The cluster's transaction.version: 1 is V1 with flexible records. Written as the
    client version of the aborts the coordinator starts itself, as Kafka does."""


class ProducerIdAndEpoch(NamedTuple):
    producer_id: int
    epoch: int


@dataclass(frozen=True, slots=True)
class InitProducerIdResult:
    error: ErrorCode
    producer_id: int = NO_PRODUCER_ID
    producer_epoch: int = NO_PRODUCER_EPOCH


@dataclass(frozen=True, slots=True)
class EndTxnResult:
    error: ErrorCode
    producer_id: int = NO_PRODUCER_ID
    producer_epoch: int = NO_PRODUCER_EPOCH


@dataclass(frozen=True, slots=True, kw_only=True)
class TransactionDescription:
    """One entry of DescribeTransactions."""

    transactional_id: str
    error: ErrorCode
    state: str = ""
    timeout_ms: int = 0
    start_timestamp: int = -1
    producer_id: int = NO_PRODUCER_ID
    producer_epoch: int = NO_PRODUCER_EPOCH
    partitions: tuple[TopicPartition, ...] = ()


@dataclass(frozen=True, slots=True)
class TransactionListing:
    """One entry of ListTransactions."""

    transactional_id: str
    producer_id: int
    state: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ListFilter:
    """ListTransactions' filters (KIP-664; duration KIP-994; pattern KIP-1152)."""

    states: frozenset[TransactionState] = frozenset()
    """Only these states (empty: all)."""
    producer_ids: frozenset[int] = frozenset()
    """Only these producer ids (empty: all)."""
    duration_ms: int = -1
    """Only transactions running longer than this (negative: all)."""
    pattern: re.Pattern[str] | None = None
    """Only transactional ids matching this regular expression as a whole."""
