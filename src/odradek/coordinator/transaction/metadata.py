"""One transactional id's state, and its transitions (Kafka's ``TransactionMetadata``).

A change is made in two steps, as Kafka makes it. ``prepare_*`` checks that the target
state may follow the current one, sets ``pending_state`` and returns a ``TxnTransit``
(the whole target state, frozen); the coordinator writes ``transit.to_value()`` to
``__transaction_state`` and, once the write is replicated, applies it with
``complete_transition``. While a state is pending, every other request for the id is
answered CONCURRENT_TRANSACTIONS; a failed write clears it again.

Transactions V1 only: the producer epoch changes at InitProducerId and when a producer
is fenced, never at the end of a transaction. The V2 fields (previous and next producer
id, the client's transaction version) are kept and stored so that V2 (KIP-890, an epoch
bump per transaction) can be added in ``prepare_abort_or_commit`` / ``prepare_complete``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import NoReturn

from odradek.coordinator.transaction.records import TransactionLogValue
from odradek.coordinator.transaction.state import TransactionState
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.protocol.types import TopicPartition

NO_PRODUCER_ID = -1
NO_PRODUCER_EPOCH = -1
MAX_PRODUCER_EPOCH = 32767
"""Short.MaxValue. A client never gets it, so the coordinator can always fence."""


def is_epoch_exhausted(epoch: int) -> bool:
    """No epoch may be handed out after this one (the next is kept for fencing)."""
    return epoch >= MAX_PRODUCER_EPOCH - 1


class IllegalTransitionError(RuntimeError):
    """A transition the state machine forbids: a bug, never a client's doing (Kafka's
    IllegalStateException); requests that hit one are answered UNKNOWN_SERVER_ERROR."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TxnTransit:
    """The state a transactional id is moving to (Kafka's ``TxnTransitMetadata``)."""

    producer_id: int
    previous_producer_id: int
    next_producer_id: int
    producer_epoch: int
    last_producer_epoch: int
    txn_timeout_ms: int
    state: TransactionState
    partitions: frozenset[TopicPartition]
    txn_start_timestamp: int
    txn_last_update_timestamp: int
    client_transaction_version: int = 0

    def to_value(self) -> TransactionLogValue:
        # As Kafka: previous/next producer ids are kept in memory, not written.
        return TransactionLogValue(
            producer_id=self.producer_id,
            producer_epoch=self.producer_epoch,
            transaction_timeout_ms=self.txn_timeout_ms,
            state=self.state,
            partitions=frozenset() if self.state is TransactionState.EMPTY else self.partitions,
            last_update_timestamp_ms=self.txn_last_update_timestamp,
            start_timestamp_ms=self.txn_start_timestamp,
            client_transaction_version=self.client_transaction_version,
        )


class TransactionMetadata:
    """Mutable; owned by one shard on the event loop (no locking)."""

    __slots__ = (
        "client_transaction_version",
        "has_failed_epoch_fence",
        "last_producer_epoch",
        "next_producer_id",
        "partitions",
        "pending_state",
        "previous_producer_id",
        "producer_epoch",
        "producer_id",
        "state",
        "transactional_id",
        "txn_last_update_timestamp",
        "txn_start_timestamp",
        "txn_timeout_ms",
    )

    def __init__(
        self,
        transactional_id: str,
        *,
        producer_id: int,
        txn_timeout_ms: int,
        txn_last_update_timestamp: int,
        producer_epoch: int = NO_PRODUCER_EPOCH,
        last_producer_epoch: int = NO_PRODUCER_EPOCH,
        previous_producer_id: int = NO_PRODUCER_ID,
        next_producer_id: int = NO_PRODUCER_ID,
        state: TransactionState = TransactionState.EMPTY,
        partitions: Iterable[TopicPartition] = (),
        txn_start_timestamp: int = -1,
        client_transaction_version: int = 0,
    ) -> None:
        self.transactional_id = transactional_id
        self.producer_id = producer_id
        self.previous_producer_id = previous_producer_id
        self.next_producer_id = next_producer_id
        self.producer_epoch = producer_epoch
        self.last_producer_epoch = last_producer_epoch
        self.txn_timeout_ms = txn_timeout_ms
        self.state = state
        self.partitions: set[TopicPartition] = set(partitions)
        self.txn_start_timestamp = txn_start_timestamp
        self.txn_last_update_timestamp = txn_last_update_timestamp
        self.client_transaction_version = client_transaction_version
        self.pending_state: TransactionState | None = None
        self.has_failed_epoch_fence = False
        """A fence's bumped epoch may not have been written: do not bump it again."""

    @classmethod
    def from_value(cls, transactional_id: str, value: TransactionLogValue) -> TransactionMetadata:
        """As loaded from the log (the last epoch is not stored: unknown after a load)."""
        return cls(
            transactional_id,
            producer_id=value.producer_id,
            previous_producer_id=value.previous_producer_id,
            next_producer_id=value.next_producer_id,
            producer_epoch=value.producer_epoch,
            txn_timeout_ms=value.transaction_timeout_ms,
            state=value.state,
            partitions=value.partitions,
            txn_start_timestamp=value.start_timestamp_ms,
            txn_last_update_timestamp=value.last_update_timestamp_ms,
            client_transaction_version=value.client_transaction_version,
        )

    def __repr__(self) -> str:
        return (
            f"TransactionMetadata({self.transactional_id!r}, producer {self.producer_id}"
            f"/{self.producer_epoch} (last epoch {self.last_producer_epoch}), "
            f"{self.state.kafka_name}, pending {self.pending_state}, "
            f"{len(self.partitions)} partitions, timeout {self.txn_timeout_ms} ms)"
        )

    @property
    def pending_transition_in_progress(self) -> bool:
        return self.pending_state is not None

    @property
    def is_producer_epoch_exhausted(self) -> bool:
        return is_epoch_exhausted(self.producer_epoch)

    # -- preparing transitions -------------------------------------------------------------

    def prepare_fence_producer_epoch(self) -> TxnTransit:
        """Ongoing -> PrepareEpochFence with the epoch bumped: the open transaction is
        then aborted under the new epoch, which fences its producer."""
        if self.producer_epoch >= MAX_PRODUCER_EPOCH:
            raise IllegalTransitionError(
                f"cannot fence producer {self.producer_id}: epoch {self.producer_epoch} "
                "would overflow"
            )
        # A fence whose write failed already bumped the epoch (never given to a client).
        epoch = self.producer_epoch if self.has_failed_epoch_fence else self.producer_epoch + 1
        return self._prepare(
            TransactionState.PREPARE_EPOCH_FENCE,
            producer_epoch=epoch,
            last_producer_epoch=NO_PRODUCER_EPOCH,
        )

    def prepare_increment_producer_epoch(
        self, txn_timeout_ms: int, expected_epoch: int | None, now: int
    ) -> TxnTransit:
        """InitProducerId on an idle id: the next epoch (KIP-360 when the producer names
        the epoch it had). PRODUCER_FENCED if that epoch is neither current nor last."""
        if self.is_producer_epoch_exhausted:
            raise IllegalTransitionError(f"no epochs left for producer {self.producer_id}")
        bumped = self.producer_epoch + 1
        if expected_epoch is None:
            # A new producer instance (epoch -1 for a new id: it gets 0).
            epoch, last_epoch = bumped, NO_PRODUCER_EPOCH
        elif self.producer_epoch in (NO_PRODUCER_EPOCH, expected_epoch):
            # The producer recovers from an error and nobody else took the id.
            epoch, last_epoch = bumped, self.producer_epoch
        elif expected_epoch == self.last_producer_epoch:
            # A retry of a bump whose answer was lost: the same epoch again.
            epoch, last_epoch = self.producer_epoch, self.last_producer_epoch
        else:
            raise KafkaError(
                f"epoch {expected_epoch} is neither the current ({self.producer_epoch}) nor "
                f"the last ({self.last_producer_epoch}) of producer {self.producer_id}",
                ErrorCode.producer_fenced,
            )
        return self._prepare(
            TransactionState.EMPTY,
            producer_epoch=epoch,
            last_producer_epoch=last_epoch,
            txn_timeout_ms=txn_timeout_ms,
            partitions=frozenset(),
            txn_start_timestamp=-1,
            now=now,
        )

    def prepare_producer_id_rotation(
        self, new_producer_id: int, txn_timeout_ms: int, now: int, *, record_last_epoch: bool
    ) -> TxnTransit:
        """InitProducerId when the epochs of the producer id are exhausted: a new id at
        epoch 0 (the old epoch kept as last epoch when the producer named it)."""
        if self.state in (
            TransactionState.ONGOING,
            TransactionState.PREPARE_COMMIT,
            TransactionState.PREPARE_ABORT,
        ):
            raise IllegalTransitionError("cannot rotate the producer id of an open transaction")
        return self._prepare(
            TransactionState.EMPTY,
            producer_id=new_producer_id,
            producer_epoch=0,
            last_producer_epoch=self.producer_epoch if record_last_epoch else NO_PRODUCER_EPOCH,
            txn_timeout_ms=txn_timeout_ms,
            partitions=frozenset(),
            txn_start_timestamp=-1,
            now=now,
        )

    def prepare_add_partitions(self, added: Iterable[TopicPartition], now: int) -> TxnTransit:
        """-> Ongoing with ``added`` in; a transaction starts when it leaves an idle state."""
        starting = self.state in (
            TransactionState.EMPTY,
            TransactionState.COMPLETE_COMMIT,
            TransactionState.COMPLETE_ABORT,
        )
        return self._prepare(
            TransactionState.ONGOING,
            partitions=frozenset(self.partitions) | frozenset(added),
            txn_start_timestamp=now if starting else self.txn_start_timestamp,
            now=now,
        )

    def prepare_abort_or_commit(
        self, new_state: TransactionState, now: int, *, client_transaction_version: int = 0
    ) -> TxnTransit:
        """Ongoing -> PrepareCommit / PrepareAbort (V1: the epoch stays)."""
        return self._prepare(
            new_state,
            now=now,
            client_transaction_version=client_transaction_version,
        )

    def prepare_complete(self, now: int) -> TxnTransit:
        """PrepareCommit/PrepareAbort -> CompleteCommit/CompleteAbort, once every
        partition has its marker."""
        self.has_failed_epoch_fence = False
        new_state = (
            TransactionState.COMPLETE_COMMIT
            if self.state is TransactionState.PREPARE_COMMIT
            else TransactionState.COMPLETE_ABORT
        )
        return self._prepare(
            new_state,
            next_producer_id=NO_PRODUCER_ID,
            last_producer_epoch=self.producer_epoch,
            partitions=frozenset(),
            now=now,
            client_transaction_version=self.client_transaction_version,
        )

    def prepare_dead(self) -> TxnTransit:
        """-> Dead: the id expired; a tombstone removes it."""
        return self._prepare(
            TransactionState.DEAD,
            partitions=frozenset(),
            now=self.txn_last_update_timestamp,
        )

    def _prepare(
        self,
        state: TransactionState,
        *,
        now: int | None = None,
        producer_id: int | None = None,
        next_producer_id: int = NO_PRODUCER_ID,
        producer_epoch: int | None = None,
        last_producer_epoch: int | None = None,
        txn_timeout_ms: int | None = None,
        partitions: frozenset[TopicPartition] | None = None,
        txn_start_timestamp: int | None = None,
        client_transaction_version: int = 0,
    ) -> TxnTransit:
        """Kafka's ``prepareTransitionTo``: check the transition, set the pending state."""
        if self.pending_state is not None:
            raise IllegalTransitionError(
                f"{self.transactional_id}: transition to {state.kafka_name} while "
                f"{self.pending_state.kafka_name} is pending"
            )
        transit = TxnTransit(
            producer_id=self.producer_id if producer_id is None else producer_id,
            previous_producer_id=self.producer_id,
            next_producer_id=next_producer_id,
            producer_epoch=self.producer_epoch if producer_epoch is None else producer_epoch,
            last_producer_epoch=(
                self.last_producer_epoch if last_producer_epoch is None else last_producer_epoch
            ),
            txn_timeout_ms=self.txn_timeout_ms if txn_timeout_ms is None else txn_timeout_ms,
            state=state,
            partitions=frozenset(self.partitions) if partitions is None else partitions,
            txn_start_timestamp=(
                self.txn_start_timestamp if txn_start_timestamp is None else txn_start_timestamp
            ),
            txn_last_update_timestamp=self.txn_last_update_timestamp if now is None else now,
            client_transaction_version=client_transaction_version,
        )
        if transit.producer_id < 0:
            raise IllegalTransitionError(f"illegal producer id {transit.producer_id}")
        if state is not TransactionState.DEAD and transit.producer_epoch < 0:
            raise IllegalTransitionError(f"illegal producer epoch {transit.producer_epoch}")
        if self.state not in state.valid_previous_states:
            raise IllegalTransitionError(
                f"{self.transactional_id}: {self.state.kafka_name} -> {state.kafka_name} "
                "is not a valid transition"
            )
        self.pending_state = state
        return transit

    # -- completing them -------------------------------------------------------------------

    def complete_transition(self, transit: TxnTransit) -> None:
        """Apply ``transit`` once its record is replicated (Kafka's
        ``completeTransitionTo``, with the same consistency checks)."""
        to_state = self.pending_state
        if to_state is None or to_state is not transit.state:
            self._fail(transit)
        if to_state is TransactionState.EMPTY:
            bumped = transit.producer_epoch == self.producer_epoch + 1 or (
                transit.producer_epoch == 0 and transit.producer_id != self.producer_id
            )
            if (
                (transit.producer_epoch != self.producer_epoch and not bumped)
                or transit.partitions
                or transit.txn_start_timestamp != -1
            ):
                self._fail(transit)
            self.txn_timeout_ms = transit.txn_timeout_ms
            self.producer_epoch = transit.producer_epoch
            self.last_producer_epoch = transit.last_producer_epoch
            self.producer_id = transit.producer_id
            self.previous_producer_id = transit.previous_producer_id
        elif to_state is TransactionState.ONGOING:
            if (
                not self._same_producer(transit)
                or not self.partitions <= transit.partitions
                or self.txn_timeout_ms != transit.txn_timeout_ms
            ):
                self._fail(transit)
            self.txn_start_timestamp = transit.txn_start_timestamp
            self.partitions |= transit.partitions
        elif to_state.is_prepare:
            if (
                not self._same_producer(transit)
                or self.partitions != transit.partitions
                or self.txn_timeout_ms != transit.txn_timeout_ms
                or self.txn_start_timestamp != transit.txn_start_timestamp
            ):
                self._fail(transit)
        elif to_state in (TransactionState.COMPLETE_COMMIT, TransactionState.COMPLETE_ABORT):
            if (
                not self._same_producer(transit)
                or self.txn_timeout_ms != transit.txn_timeout_ms
                or transit.txn_start_timestamp == -1
            ):
                self._fail(transit)
            self.txn_start_timestamp = transit.txn_start_timestamp
            self.partitions.clear()
        else:
            # PrepareEpochFence turns into PrepareAbort before any write; Dead ends in a
            # tombstone that removes the id. Neither is ever completed.
            self._fail(transit)
        self.client_transaction_version = transit.client_transaction_version
        self.txn_last_update_timestamp = transit.txn_last_update_timestamp
        self.pending_state = None
        self.state = to_state

    def _same_producer(self, transit: TxnTransit) -> bool:
        return (
            transit.producer_epoch == self.producer_epoch
            and transit.producer_id == self.producer_id
        )

    def _fail(self, transit: TxnTransit) -> NoReturn:
        raise IllegalTransitionError(f"{self!r} cannot complete the transition to {transit}")

    def remove_partition(self, tp: TopicPartition) -> None:
        """A marker landed in ``tp`` (only while the transaction is being completed)."""
        if not self.state.is_prepare:
            raise IllegalTransitionError(
                f"{self.transactional_id}: removing {tp} in state {self.state.kafka_name}"
            )
        self.partitions.discard(tp)

    def as_transit(self) -> TxnTransit:
        """The current state as a transit (what a record of it holds)."""
        return TxnTransit(
            producer_id=self.producer_id,
            previous_producer_id=self.previous_producer_id,
            next_producer_id=self.next_producer_id,
            producer_epoch=self.producer_epoch,
            last_producer_epoch=self.last_producer_epoch,
            txn_timeout_ms=self.txn_timeout_ms,
            state=self.state,
            partitions=frozenset(self.partitions),
            txn_start_timestamp=self.txn_start_timestamp,
            txn_last_update_timestamp=self.txn_last_update_timestamp,
            client_transaction_version=self.client_transaction_version,
        )
