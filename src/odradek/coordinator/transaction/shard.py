"""All transactional ids of one ``__transaction_state`` partition.

Kafka's ``TransactionCoordinator`` with the part of ``TransactionStateManager`` that
serves one partition. Everything it touches is injected: the clock, the record writer
(an acks=all append that returns once replicated), the producer id allocator, the
marker sender and a ``sleep`` for back-offs, so tests drive it with fakes and a manual
clock. The coordinator epoch is the leader epoch of the partition when this broker
became its leader; it travels with every marker so that partition leaders can tell a
stale coordinator from the current one.

A request that changes a transactional id prepares the change (``TransactionMetadata``:
the target state becomes pending), writes it, and applies it once the write is
replicated; requests meeting a pending state get CONCURRENT_TRANSACTIONS. Ending a
transaction (Transactions V1)::

    EndTxn   Ongoing -> PrepareCommit|PrepareAbort written -> answer NONE
    then     markers to every partition -> CompleteCommit|CompleteAbort written

The second line runs as a task owned by the shard (cancelled by ``unload``); so do the
aborts of timed-out transactions and the completions resumed after loading.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Coroutine
from typing import Any

from odradek.coordinator.transaction.errors import append_error
from odradek.coordinator.transaction.markers import MarkerSender
from odradek.coordinator.transaction.metadata import (
    MAX_PRODUCER_EPOCH,
    NO_PRODUCER_EPOCH,
    IllegalTransitionError,
    TransactionMetadata,
    TxnTransit,
    is_epoch_exhausted,
)
from odradek.coordinator.transaction.records import TransactionLogKey, TransactionLogValue
from odradek.coordinator.transaction.state import TransactionState
from odradek.coordinator.transaction.values import (
    EndTxnResult,
    InitProducerIdResult,
    ListFilter,
    ProducerIdAndEpoch,
    Record,
    RecordWriter,
    TransactionConfig,
    TransactionDescription,
    TransactionListing,
)
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.protocol.types import TopicPartition

log = logging.getLogger(__name__)

_TOMBSTONE_OVERHEAD = 32
"""Bytes a tombstone takes in a batch besides its key (record framing, generously)."""
_BATCH_OVERHEAD = 61


class TransactionCoordinatorShard:
    def __init__(
        self,
        *,
        partition: int,
        coordinator_epoch: int,
        config: TransactionConfig,
        clock: Callable[[], int],
        writer: RecordWriter,
        markers: MarkerSender,
        producer_ids: Callable[[], int],
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.partition = partition
        self.coordinator_epoch = coordinator_epoch
        self.config = config
        self.clock = clock
        self.writer = writer
        self.markers = markers
        self.producer_ids = producer_ids
        self.sleep = sleep
        self.transactions: dict[str, TransactionMetadata] = {}
        self.active = True
        """False once unloaded: writes then answer NOT_COORDINATOR."""
        self._tasks: set[asyncio.Task[None]] = set()

    # -- InitProducerId --------------------------------------------------------------------

    async def init_producer_id(
        self,
        transactional_id: str,
        transaction_timeout_ms: int,
        expected: ProducerIdAndEpoch | None = None,
    ) -> InitProducerIdResult:
        """A producer id and epoch for ``transactional_id``; ``expected`` is what the
        producer had (KIP-360), None for a new producer instance."""
        if not transactional_id:
            return InitProducerIdResult(ErrorCode.invalid_request)
        if not 0 < transaction_timeout_ms <= self.config.max_timeout_ms:
            return InitProducerIdResult(ErrorCode.invalid_transaction_timeout)
        if not self.active:
            return InitProducerIdResult(ErrorCode.not_coordinator)
        metadata = self.transactions.get(transactional_id)
        if metadata is None:
            try:
                producer_id = self._allocate_producer_id()
            except KafkaError as exc:
                return InitProducerIdResult(exc.error_code)
            metadata = TransactionMetadata(
                transactional_id,
                producer_id=producer_id,
                txn_timeout_ms=transaction_timeout_ms,
                txn_last_update_timestamp=self.clock(),
            )
            self.transactions[transactional_id] = metadata
        try:
            transit = self._prepare_init(metadata, transaction_timeout_ms, expected)
        except KafkaError as exc:
            return InitProducerIdResult(exc.error_code)
        except IllegalTransitionError:
            log.exception("InitProducerId of %s", transactional_id)
            return InitProducerIdResult(ErrorCode.unknown_server_error)
        if transit.state is TransactionState.PREPARE_EPOCH_FENCE:
            # Abort the open transaction under a bumped epoch (which fences its producer),
            # and have this producer retry once that is done.
            log.info(
                "%s: fencing producer %s to abort its open transaction",
                transactional_id,
                metadata.producer_id,
            )
            ended = await self._end_transaction(
                transactional_id,
                transit.producer_id,
                transit.producer_epoch,
                commit=False,
                from_client=False,
            )
            if ended.error is ErrorCode.none:
                return InitProducerIdResult(ErrorCode.concurrent_transactions)
            return InitProducerIdResult(ended.error)
        written = await self._append(metadata, transit)
        if written is not ErrorCode.none:
            log.info("%s: InitProducerId answered %s", transactional_id, written.name)
            return InitProducerIdResult(written)
        log.info(
            "%s: producer id %d epoch %d (partition %d)",
            transactional_id,
            transit.producer_id,
            transit.producer_epoch,
            self.partition,
        )
        return InitProducerIdResult(ErrorCode.none, transit.producer_id, transit.producer_epoch)

    def _prepare_init(
        self,
        metadata: TransactionMetadata,
        timeout_ms: int,
        expected: ProducerIdAndEpoch | None,
    ) -> TxnTransit:
        if metadata.pending_transition_in_progress:
            raise KafkaError("a transition is in progress", ErrorCode.concurrent_transactions)
        if expected is not None and not (
            # The id was only just created (a producer recovering from UNKNOWN_PRODUCER_ID
            # may take the new producer id), or the producer id is the current one (the
            # epoch is checked below), or it is the previous one and this is a retry of a
            # bump that exhausted its epochs.
            metadata.producer_epoch == NO_PRODUCER_EPOCH
            or expected.producer_id == metadata.producer_id
            or (
                expected.producer_id == metadata.previous_producer_id
                and is_epoch_exhausted(expected.epoch)
            )
        ):
            raise KafkaError(
                f"producer {expected.producer_id} is not the current producer of "
                f"{metadata.transactional_id}",
                ErrorCode.producer_fenced,
            )
        state = metadata.state
        now = self.clock()
        if state.is_prepare:
            raise KafkaError(f"{state.kafka_name} in progress", ErrorCode.concurrent_transactions)
        if state in (
            TransactionState.EMPTY,
            TransactionState.COMPLETE_COMMIT,
            TransactionState.COMPLETE_ABORT,
        ):
            if metadata.is_producer_epoch_exhausted and (
                expected is None or expected.epoch == metadata.producer_epoch
            ):
                return metadata.prepare_producer_id_rotation(
                    self._allocate_producer_id(),
                    timeout_ms,
                    now,
                    record_last_epoch=expected is not None,
                )
            return metadata.prepare_increment_producer_epoch(
                timeout_ms, None if expected is None else expected.epoch, now
            )
        if state is TransactionState.ONGOING:
            return metadata.prepare_fence_producer_epoch()
        raise IllegalTransitionError(
            f"{metadata.transactional_id} is {state.kafka_name}, a state it can never be in"
        )

    def _allocate_producer_id(self) -> int:
        try:
            return self.producer_ids()
        except KafkaError as exc:
            log.warning("cannot allocate a producer id: %s", exc)
            raise KafkaError(
                f"cannot allocate a producer id: {exc}", ErrorCode.coordinator_not_available
            ) from exc

    # -- AddPartitionsToTxn / AddOffsetsToTxn ----------------------------------------------

    async def add_partitions(
        self,
        transactional_id: str,
        producer_id: int,
        producer_epoch: int,
        partitions: Collection[TopicPartition],
    ) -> ErrorCode:
        """Add ``partitions`` to the producer's transaction, which starts if none is open."""
        if not transactional_id:
            return ErrorCode.invalid_request
        if not self.active:
            return ErrorCode.not_coordinator
        metadata = self.transactions.get(transactional_id)
        if metadata is None or metadata.producer_id != producer_id:
            return ErrorCode.invalid_producer_id_mapping
        if metadata.producer_epoch != producer_epoch:
            return ErrorCode.producer_fenced
        if metadata.pending_transition_in_progress or metadata.state.is_prepare:
            return ErrorCode.concurrent_transactions
        if metadata.state is TransactionState.ONGOING and metadata.partitions.issuperset(
            partitions
        ):
            return ErrorCode.none
        try:
            transit = metadata.prepare_add_partitions(partitions, self.clock())
        except IllegalTransitionError:
            log.exception("AddPartitionsToTxn of %s", transactional_id)
            return ErrorCode.unknown_server_error
        return await self._append(metadata, transit)

    def verify_partitions(
        self,
        transactional_id: str,
        producer_id: int,
        producer_epoch: int,
        partitions: Collection[TopicPartition],
    ) -> dict[TopicPartition, ErrorCode]:
        """Whether each partition is in the producer's ongoing transaction (KIP-890's
        verification, AddPartitionsToTxn v4+ with verify_only): NONE if so,
        TRANSACTION_ABORTABLE if not. Writes nothing."""
        metadata = self.transactions.get(transactional_id) if self.active else None
        error = ErrorCode.none
        if not transactional_id:
            error = ErrorCode.invalid_request
        elif not self.active:
            error = ErrorCode.not_coordinator
        elif metadata is None or metadata.producer_id != producer_id:
            error = ErrorCode.invalid_producer_id_mapping
        elif metadata.producer_epoch != producer_epoch:
            error = ErrorCode.producer_fenced
        elif metadata.state.is_prepare:
            error = ErrorCode.concurrent_transactions
        if error is not ErrorCode.none or metadata is None:
            return dict.fromkeys(partitions, error)
        return {
            tp: ErrorCode.none if tp in metadata.partitions else ErrorCode.transaction_abortable
            for tp in partitions
        }

    # -- EndTxn ----------------------------------------------------------------------------

    async def end_transaction(
        self, transactional_id: str, producer_id: int, producer_epoch: int, *, commit: bool
    ) -> EndTxnResult:
        """EndTxn from a client (V1): answered once PrepareCommit/PrepareAbort is written;
        the markers and the Complete* record follow in the background."""
        return await self._end_transaction(
            transactional_id, producer_id, producer_epoch, commit=commit, from_client=True
        )

    async def _end_transaction(
        self,
        transactional_id: str,
        producer_id: int,
        producer_epoch: int,
        *,
        commit: bool,
        from_client: bool,
    ) -> EndTxnResult:
        if not transactional_id:
            return EndTxnResult(ErrorCode.invalid_request)
        if not self.active:
            return EndTxnResult(ErrorCode.not_coordinator)
        metadata = self.transactions.get(transactional_id)
        if metadata is None:
            return EndTxnResult(ErrorCode.invalid_producer_id_mapping)
        try:
            prepared = self._prepare_end(
                metadata, producer_id, producer_epoch, commit=commit, from_client=from_client
            )
        except KafkaError as exc:
            return EndTxnResult(exc.error_code)
        except IllegalTransitionError:
            log.exception("EndTxn of %s", transactional_id)
            return EndTxnResult(ErrorCode.unknown_server_error)
        if isinstance(prepared, EndTxnResult):
            return prepared
        transit, epoch_fence = prepared
        error = await self._append(metadata, transit)
        if error is not ErrorCode.none:
            if epoch_fence and self._owns(metadata):
                # The bumped epoch is kept in memory but was never given to anybody: the
                # next fence reuses it instead of bumping again.
                metadata.has_failed_epoch_fence = True
                log.warning(
                    "%s: writing the epoch fence failed (%s); epoch %d kept unreturned",
                    transactional_id,
                    error.name,
                    transit.producer_epoch,
                )
            return EndTxnResult(error)
        try:
            complete = self._prepare_markers(metadata, producer_id, producer_epoch, commit)
        except KafkaError as exc:
            return EndTxnResult(exc.error_code)
        except IllegalTransitionError:
            log.exception("EndTxn of %s", transactional_id)
            return EndTxnResult(ErrorCode.unknown_server_error)
        self._spawn(self._complete_transaction(metadata, complete, commit=commit))
        return EndTxnResult(ErrorCode.none, metadata.producer_id, metadata.producer_epoch)

    def _prepare_end(
        self,
        metadata: TransactionMetadata,
        producer_id: int,
        producer_epoch: int,
        *,
        commit: bool,
        from_client: bool,
    ) -> tuple[TxnTransit, bool] | EndTxnResult:
        """The transition to write and whether it fences an epoch, or the answer now."""
        if metadata.producer_id != producer_id:
            raise KafkaError("producer id mismatch", ErrorCode.invalid_producer_id_mapping)
        # V1: a client must name the current epoch; the coordinator's own aborts name
        # the epoch it is fencing with, which is higher.
        valid_epoch = (
            not from_client or producer_epoch == metadata.producer_epoch
        ) and producer_epoch >= metadata.producer_epoch
        if not valid_epoch:
            raise KafkaError(
                f"epoch {producer_epoch} is not the current {metadata.producer_epoch}",
                ErrorCode.producer_fenced,
            )
        pending = metadata.pending_state
        if pending is not None and pending is not TransactionState.PREPARE_EPOCH_FENCE:
            raise KafkaError(f"{pending.kafka_name} in progress", ErrorCode.concurrent_transactions)
        state = metadata.state
        wanted = TransactionState.PREPARE_COMMIT if commit else TransactionState.PREPARE_ABORT
        done = TransactionState.COMPLETE_COMMIT if commit else TransactionState.COMPLETE_ABORT
        if state is TransactionState.ONGOING:
            epoch_fence = False
            if not commit and pending is TransactionState.PREPARE_EPOCH_FENCE:
                # The fence becomes the abort: bump the epoch now, write PrepareAbort.
                epoch_fence = True
                metadata.pending_state = None
                metadata.producer_epoch = producer_epoch
                metadata.last_producer_epoch = NO_PRODUCER_EPOCH
            client_version = 0 if from_client else self.config.transaction_version
            transit = metadata.prepare_abort_or_commit(
                wanted, self.clock(), client_transaction_version=client_version
            )
            return transit, epoch_fence
        if state is done:
            # A retry of an end that completed: the same answer.
            return EndTxnResult(ErrorCode.none, metadata.producer_id, metadata.producer_epoch)
        if state is wanted:
            raise KafkaError(f"{state.kafka_name} in progress", ErrorCode.concurrent_transactions)
        if state in (
            TransactionState.EMPTY,
            TransactionState.PREPARE_COMMIT,
            TransactionState.PREPARE_ABORT,
            TransactionState.COMPLETE_COMMIT,
            TransactionState.COMPLETE_ABORT,
        ):
            raise KafkaError(
                f"cannot {'commit' if commit else 'abort'} in state {state.kafka_name}",
                ErrorCode.invalid_txn_state,
            )
        raise IllegalTransitionError(
            f"{metadata.transactional_id} is {state.kafka_name}, a state it can never be in"
        )

    def _prepare_markers(
        self, metadata: TransactionMetadata, producer_id: int, producer_epoch: int, commit: bool
    ) -> TxnTransit:
        """After Prepare* is written: still ours and unchanged? Then Complete* pending."""
        if not self._owns(metadata):
            raise KafkaError("partition moved", ErrorCode.not_coordinator)
        if metadata.producer_id != producer_id:
            raise KafkaError("producer id changed", ErrorCode.invalid_producer_id_mapping)
        if metadata.producer_epoch != producer_epoch:
            raise KafkaError("producer epoch changed", ErrorCode.producer_fenced)
        if metadata.pending_transition_in_progress:
            raise KafkaError("a transition is in progress", ErrorCode.concurrent_transactions)
        wanted = TransactionState.PREPARE_COMMIT if commit else TransactionState.PREPARE_ABORT
        if metadata.state is not wanted:
            raise KafkaError(f"state is {metadata.state.kafka_name}", ErrorCode.invalid_txn_state)
        return metadata.prepare_complete(self.clock())

    async def _complete_transaction(
        self, metadata: TransactionMetadata, transit: TxnTransit, *, commit: bool
    ) -> None:
        """Write the markers, then CompleteCommit/CompleteAbort (Complete* is pending)."""
        transactional_id = metadata.transactional_id
        try:
            await self.markers.write_markers(
                metadata.producer_id,
                metadata.producer_epoch,
                commit,
                self.coordinator_epoch,
                frozenset(metadata.partitions),
            )
        except KafkaError as exc:
            # As Kafka: the transaction stays prepared until its coordinator moves and
            # the next one completes it.
            log.warning(
                "%s: gave up writing %s markers: %s",
                transactional_id,
                "commit" if commit else "abort",
                exc,
            )
            return
        if not self._owns(metadata):
            return
        for tp in list(metadata.partitions):
            metadata.remove_partition(tp)
        while True:
            error = await self._append(metadata, transit, retry_unavailable=True)
            if error is ErrorCode.none:
                log.debug(
                    "%s: transaction of producer %d epoch %d %s",
                    transactional_id,
                    metadata.producer_id,
                    metadata.producer_epoch,
                    "committed" if commit else "aborted",
                )
                return
            if error is not ErrorCode.coordinator_not_available or not self._owns(metadata):
                log.info("%s: completion not written: %s", transactional_id, error.name)
                return
            await self.sleep(self.config.retry_backoff_ms / 1000)

    # -- writing ---------------------------------------------------------------------------

    def _owns(self, metadata: TransactionMetadata) -> bool:
        return self.active and self.transactions.get(metadata.transactional_id) is metadata

    async def _append(
        self, metadata: TransactionMetadata, transit: TxnTransit, *, retry_unavailable: bool = False
    ) -> ErrorCode:
        """Write ``transit`` (pending in ``metadata``) and apply it once replicated; on
        failure the pending state is dropped (kept for a retry of COORDINATOR_NOT_AVAILABLE
        when ``retry_unavailable``)."""
        if not self._owns(metadata):
            return ErrorCode.not_coordinator
        key = TransactionLogKey(metadata.transactional_id)
        try:
            await self.writer([(key, transit.to_value())], transit.txn_timeout_ms)
        except KafkaError as exc:
            error = append_error(exc.error_code)
            log.debug("%s: write of %s failed: %s", key.transactional_id, transit.state, exc)
        except Exception:
            log.exception("%s: write of %s failed", key.transactional_id, transit.state)
            error = ErrorCode.unknown_server_error
        else:
            error = ErrorCode.none
        if not self._owns(metadata):
            # Unloaded meanwhile (another coordinator epoch): the new owner reloads.
            return ErrorCode.not_coordinator
        if error is ErrorCode.none:
            try:
                metadata.complete_transition(transit)
            except IllegalTransitionError:
                log.exception("%s: written but not applied", key.transactional_id)
                metadata.pending_state = None
                return ErrorCode.unknown_server_error
            return ErrorCode.none
        if not (retry_unavailable and error is ErrorCode.coordinator_not_available):
            metadata.pending_state = None
        return error

    # -- housekeeping ----------------------------------------------------------------------

    def abort_timed_out_transactions(self) -> list[str]:
        """Start aborting every Ongoing transaction open longer than its timeout, under a
        bumped epoch (Kafka's ``abortTimedOutTransactions``); the ids being aborted."""
        now = self.clock()
        timed_out = [
            metadata.transactional_id
            for metadata in self.transactions.values()
            if self._timed_out(metadata, now)
        ]
        for transactional_id in timed_out:
            self._spawn(self._abort_timed_out(transactional_id))
        return timed_out

    @staticmethod
    def _timed_out(metadata: TransactionMetadata, now: int) -> bool:
        return (
            metadata.pending_state is None
            and metadata.state is TransactionState.ONGOING
            and metadata.txn_start_timestamp + metadata.txn_timeout_ms < now
        )

    async def _abort_timed_out(self, transactional_id: str) -> None:
        metadata = self.transactions.get(transactional_id)
        if metadata is None or not self.active or not self._timed_out(metadata, self.clock()):
            return
        if metadata.producer_epoch >= MAX_PRODUCER_EPOCH:
            log.warning("%s: cannot fence epoch %d", transactional_id, metadata.producer_epoch)
            return
        fence = metadata.prepare_fence_producer_epoch()
        log.info(
            "%s: aborting the transaction of producer %d, open longer than %d ms",
            transactional_id,
            metadata.producer_id,
            metadata.txn_timeout_ms,
        )
        # No await between the fence and the abort's write: nothing can slip in.
        result = await self._end_transaction(
            transactional_id,
            fence.producer_id,
            fence.producer_epoch,
            commit=False,
            from_client=False,
        )
        if result.error is not ErrorCode.none:
            log.info("%s: timed-out abort not started: %s", transactional_id, result.error.name)

    async def remove_expired_transactional_ids(self) -> list[str]:
        """Tombstone the ids idle for ``transactional_id_expiration_ms`` in Empty or
        Complete*; the ids removed."""
        horizon = self.clock() - self.config.transactional_id_expiration_ms
        expiring = [
            (metadata, metadata.prepare_dead())
            for metadata in list(self.transactions.values())
            if metadata.pending_state is None
            and metadata.state.expiration_allowed
            and metadata.txn_last_update_timestamp <= horizon
        ]
        removed: list[str] = []
        for chunk in self._batches(expiring):
            records: list[Record] = [
                (TransactionLogKey(m.transactional_id), None) for m, _ in chunk
            ]
            error = ErrorCode.none
            try:
                await self.writer(records, self.config.request_timeout_ms)
            except KafkaError as exc:
                error = exc.error_code
                log.warning("cannot expire %d transactional ids: %s", len(chunk), exc)
            for metadata, transit in chunk:
                if not self._owns(metadata):
                    continue
                if (
                    error is ErrorCode.none
                    and metadata.pending_state is TransactionState.DEAD
                    and metadata.producer_epoch == transit.producer_epoch
                ):
                    del self.transactions[metadata.transactional_id]
                    removed.append(metadata.transactional_id)
                else:
                    metadata.pending_state = None
        if removed:
            log.info("expired %d transactional ids of partition %d", len(removed), self.partition)
        return removed

    def _batches(
        self, expiring: list[tuple[TransactionMetadata, TxnTransit]]
    ) -> list[list[tuple[TransactionMetadata, TxnTransit]]]:
        batches: list[list[tuple[TransactionMetadata, TxnTransit]]] = []
        size = self.config.max_batch_bytes
        for item in expiring:
            record_size = len(item[0].transactional_id.encode()) + _TOMBSTONE_OVERHEAD
            if not batches or size + record_size > self.config.max_batch_bytes:
                batches.append([])
                size = _BATCH_OVERHEAD
            batches[-1].append(item)
            size += record_size
        return batches

    # -- admin -----------------------------------------------------------------------------

    def describe(self, transactional_id: str) -> TransactionDescription:
        if not transactional_id:
            return TransactionDescription(
                transactional_id=transactional_id, error=ErrorCode.invalid_request
            )
        if not self.active:
            return TransactionDescription(
                transactional_id=transactional_id, error=ErrorCode.not_coordinator
            )
        metadata = self.transactions.get(transactional_id)
        if metadata is None or metadata.state is TransactionState.DEAD:
            return TransactionDescription(
                transactional_id=transactional_id, error=ErrorCode.transactional_id_not_found
            )
        return TransactionDescription(
            transactional_id=transactional_id,
            error=ErrorCode.none,
            state=metadata.state.kafka_name,
            timeout_ms=metadata.txn_timeout_ms,
            start_timestamp=metadata.txn_start_timestamp,
            producer_id=metadata.producer_id,
            producer_epoch=metadata.producer_epoch,
            partitions=tuple(sorted(metadata.partitions)),
        )

    def list_transactions(self, filters: ListFilter) -> list[TransactionListing]:
        now = self.clock()
        listings = []
        for metadata in self.transactions.values():
            if metadata.state is TransactionState.DEAD:
                continue
            if filters.producer_ids and metadata.producer_id not in filters.producer_ids:
                continue
            if filters.states and metadata.state not in filters.states:
                continue
            if (
                filters.duration_ms >= 0
                and now - metadata.txn_start_timestamp <= filters.duration_ms
            ):
                continue
            if filters.pattern is not None and not filters.pattern.fullmatch(
                metadata.transactional_id
            ):
                continue
            listings.append(
                TransactionListing(
                    metadata.transactional_id, metadata.producer_id, metadata.state.kafka_name
                )
            )
        return listings

    # -- loading ---------------------------------------------------------------------------

    def replay(self, key: TransactionLogKey, value: TransactionLogValue | None) -> None:
        """Apply one record of the partition, in log order (loading): the latest value
        of an id is its state; a tombstone removes it."""
        if value is None:
            self.transactions.pop(key.transactional_id, None)
        else:
            self.transactions[key.transactional_id] = TransactionMetadata.from_value(
                key.transactional_id, value
            )

    def finish_loading(self) -> list[str]:
        """After replay: transactions left prepared get their markers and completion
        (Kafka's ``loadTransactionsForTxnTopicPartition``); their ids. On the event loop."""
        resumed = []
        now = self.clock()
        for metadata in list(self.transactions.values()):
            if metadata.state.is_prepare:
                commit = metadata.state is TransactionState.PREPARE_COMMIT
                transit = metadata.prepare_complete(now)
                self._spawn(self._complete_transaction(metadata, transit, commit=commit))
                resumed.append(metadata.transactional_id)
        if resumed:
            log.info(
                "partition %d: completing %d prepared transactions", self.partition, len(resumed)
            )
        return resumed

    def unload(self) -> list[asyncio.Task[None]]:
        """Stop serving (leadership moved or the broker stops): forget every id, cancel
        the background work; the tasks cancelled (for the caller to wait on)."""
        self.active = False
        self.transactions.clear()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        return tasks

    # -- background tasks ------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("transaction coordinator task failed", exc_info=task.exception())

    async def wait_idle(self) -> None:
        """Until no background work is left (tests; shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
