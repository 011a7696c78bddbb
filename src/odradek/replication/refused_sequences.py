"""Answers the pipelined successors of a refused idempotent batch as the batch was.

An idempotent producer keeps up to five produce requests per partition in flight. When
the first is refused with a retriable error that leaves nothing written (this broker is
not, or not yet, the leader; the ISR is too small), the ones behind it were sent before
the producer could know. If they reach a broker that by then accepts appends (its
leadership arrived in between, or the ISR grew back), Kafka answers them
OUT_OF_ORDER_SEQUENCE_NUMBER, since their predecessor is missing. librdkafka (up to at
least 2.16, confluentinc/librdkafka#4953) treats that answer for a batch that is not the
oldest in flight by bumping the producer epoch and renumbering every unacknowledged
batch of every partition. A batch of another partition that may already be written, its
answer lost when its leader died, is then sent again under the new epoch, which no
broker can recognise as a retry: an acknowledged record ends up in the log twice.

The window is real here: a client learns a new leader from whichever broker saw the
change first, so its retries can reach the new leader before the leader knows itself
(Kafka's controller narrows this by telling the leader before the other brokers).

So a broker remembers, per partition and producer, the last batch it refused with such
an error, for a short while. A batch that would be out of order only because it starts
right after that one is refused with the same error instead, and becomes the one
remembered: the producer then retries all of them in order, under the same epoch, where
duplicates are recognised. A batch that starts anywhere else is out of order as in
Kafka, and a retry of the refused batch itself is appended normally.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from odradek.protocol import records
from odradek.protocol.errors import ErrorCode
from odradek.protocol.types import TopicPartition

REMEMBERED_MS = 10_000
"""How long a refusal is remembered: time for the requests pipelined behind the refused
one to arrive, even at a busy broker."""

MAX_REMEMBERED = 10_000
"""Refusals remembered at most; beyond it, the expired ones are dropped, then all."""

NOTHING_WRITTEN = frozenset(
    {
        ErrorCode.not_leader_or_follower,
        ErrorCode.not_enough_replicas,
        ErrorCode.unknown_topic_or_partition,
        ErrorCode.kafka_storage_error,
    }
)
"""Refusals after which a producer retries the batch, and the batch was not written."""


class _Refusal(NamedTuple):
    producer_epoch: int
    last_sequence: int
    error: ErrorCode
    expires: int


class RefusedSequences:
    def __init__(self, clock: Callable[[], int]) -> None:
        self._clock = clock
        self._refused: dict[tuple[TopicPartition, int], _Refusal] = {}

    def answer(
        self, tp: TopicPartition, batches: bytes | bytearray | memoryview, error: ErrorCode
    ) -> ErrorCode:
        """The error to answer for ``batches`` of a produce to ``tp`` that failed with
        ``error``: ``error`` itself, or for an out-of-order batch continuing a refused
        one, that refusal's error."""
        if error in NOTHING_WRITTEN:
            self._remember(tp, batches, error)
            return error
        if error is not ErrorCode.out_of_order_sequence_number or not self._refused:
            return error
        first = _first_idempotent(batches)
        if first is None:
            return error
        key = (tp, first.producer_id)
        refusal = self._refused.get(key)
        if (
            refusal is None
            or refusal.expires < self._clock()
            or refusal.producer_epoch != first.producer_epoch
            or first.base_sequence != (refusal.last_sequence + 1) % (1 << 31)
        ):
            return error
        self._remember(tp, batches, refusal.error)
        return refusal.error

    def _remember(
        self, tp: TopicPartition, batches: bytes | bytearray | memoryview, error: ErrorCode
    ) -> None:
        last = None
        for header in records.iter_headers(batches):
            if _is_idempotent(header):
                last = header
        if last is None:
            return
        now = self._clock()
        refused = self._refused
        if len(refused) >= MAX_REMEMBERED:
            for key in [k for k, r in refused.items() if r.expires < now]:
                del refused[key]
            if len(refused) >= MAX_REMEMBERED:
                refused.clear()
        refused[tp, last.producer_id] = _Refusal(
            last.producer_epoch, last.last_sequence, error, now + REMEMBERED_MS
        )


def _first_idempotent(batches: bytes | bytearray | memoryview) -> records.BatchHeader | None:
    header = next(records.iter_headers(batches), None)
    return header if header is not None and _is_idempotent(header) else None


def _is_idempotent(header: records.BatchHeader) -> bool:
    """A data batch (v2) of an idempotent or transactional producer."""
    return header.magic == 2 and header.has_producer_id and not header.is_control
