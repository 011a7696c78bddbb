"""Transaction verification on produce (KIP-890 part 1, Kafka 3.6+): no transactional
batch opens a transaction in a partition unless the transaction coordinator has that
partition in the producer's transaction.

Without it, a batch that reaches a partition after its transaction ended (a retry
delayed in the network, a producer that skipped AddPartitionsToTxn) opens a transaction
that no coordinator will ever end: a hanging transaction, holding the partition's last
stable offset, so read_committed consumers stop there for good.

``TxnVerifier.append`` is Kafka's ``ReplicaManager.handleProduceAppend`` with the parts of
``AddPartitionsToTxnManager`` it needs. For a Produce request with a transactional id:

- The first batch of each partition is looked at (clients may send only one per
  partition; the log refuses more). Transactional batches of more than one producer
  (id, epoch) in one request: every partition gets INVALID_PRODUCER_ID_MAPPING, as in
  Kafka, whether verification is on or not.
- With ``transaction.partition.verification.enable``, each partition whose leader has no
  open transaction of that producer (id and epoch) gets a guard
  (``storage.verification``); a partition this broker does not lead gets its error
  (NOT_LEADER_OR_FOLLOWER, ...) and is not appended. Partitions with the producer's
  transaction open, and non-transactional data, need nothing: the request is appended
  at once, with no lookup beyond the batch header.
- The coordinator is asked, once per request, whether the guarded partitions are in the
  transaction: with a plain call when it is this broker (the request is then answered
  at once), else with AddPartitionsToTxn v5 ``verify_only`` to the broker leading the
  transactional id's ``__transaction_state`` partition. Questions for one coordinator
  broker leave together in one request, one request in flight at a time; a question
  for a transactional id already waiting to be sent joins it (same producer id and
  epoch), replaces it (the waiting one is fenced: INVALID_PRODUCER_EPOCH, or another
  producer id: NETWORK_EXCEPTION), or is fenced itself (an older epoch). Kafka answers
  the waiting question NETWORK_EXCEPTION where this one joins it.
- Then, in one step with no wait in it, each verified partition is appended if its
  guard is still the producer's current one there, or the producer's transaction is
  open by then; else INVALID_TXN_STATE ("Record was not part of an ongoing
  transaction"): an end marker came in between, and the "yes" was about the
  transaction that marker ended. The whole request is appended together, once.

What the producer is told, per partition (Kafka's mapping):

- not in the transaction: the coordinator says TRANSACTION_ABORTABLE; Produce v11+
  clients get TRANSACTION_ABORTABLE (they abort and go on), v3-v10 INVALID_TXN_STATE
  ("Partition was not added to the transaction"), the code they knew;
- PRODUCER_FENCED: INVALID_PRODUCER_EPOCH (what producers expect from a produce);
- CONCURRENT_TRANSACTIONS, NETWORK_EXCEPTION, COORDINATOR_LOAD_IN_PROGRESS,
  COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR: NOT_ENOUGH_REPLICAS ("Unable to verify
  ..."), retriable and without a metadata refresh, which older clients may not do
  right for the coordinator errors;
- a top-level CLUSTER_AUTHORIZATION_FAILED from the coordinator's broker:
  INVALID_TXN_STATE; anything else (INVALID_PRODUCER_ID_MAPPING, ...) as it came.

TxnOffsetCommit is verified the same way (``verify_offset_commit``, Kafka's
``GroupCoordinator.handleTxnCommitOffsets``): before the group coordinator writes a
producer's offsets, its group's ``__consumer_offsets`` partition must be in the
transaction (AddOffsetsToTxn put it there), unless the producer's transaction is open in
that partition already. The answer reaches the client as Kafka's
``maybeConvertOffsetCommitError`` turns it: PRODUCER_FENCED as INVALID_PRODUCER_EPOCH,
not in the transaction as INVALID_TXN_STATE, NETWORK_EXCEPTION as
COORDINATOR_LOAD_IN_PROGRESS (retried without a coordinator lookup).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Final

from kio.schema.add_partitions_to_txn.v5 import request as add_v5
from kio.schema.types import ProducerId, TopicName, TransactionalId
from kio.static.primitive import i16, i32

from odradek.cluster.metadata import MetadataStore
from odradek.protocol import records as batch
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.protocol.types import TopicPartition
from odradek.replication.broker_client import (
    BrokerClient,
    BrokerConnectionError,
    PeerClient,
    PeerClientFactory,
    reuse_or_connect,
)
from odradek.replication.partition import Partition
from odradek.replication.replica_manager import ProduceResult, ReplicaManager
from odradek.storage.verification import VerificationGuard

log = logging.getLogger(__name__)

Records = bytes | bytearray | memoryview | None
Entries = Sequence[tuple[TopicPartition, Records]]

FIRST_PRODUCE_VERSION_WITH_ABORTABLE: Final = 11
"""Produce v11 clients understand TRANSACTION_ABORTABLE (KIP-890)."""

UNVERIFIABLE: Final = frozenset(
    {
        ErrorCode.concurrent_transactions,
        ErrorCode.network_exception,
        ErrorCode.coordinator_load_in_progress,
        ErrorCode.coordinator_not_available,
        ErrorCode.not_coordinator,
    }
)
"""Coordinator errors a producer is told as NOT_ENOUGH_REPLICAS (retriable)."""

NOT_ADDED_MESSAGE: Final = "Partition was not added to the transaction"
STALE_GUARD_MESSAGE: Final = "Record was not part of an ongoing transaction"

Verdict = dict[TopicPartition, ErrorCode]
LocalVerifier = Callable[[str, int, int, Collection[TopicPartition]], Verdict]
"""(transactional id, producer id, epoch, partitions) -> the coordinator's answer per
partition, when the coordinator is this broker (``verify_partitions_in_txn``)."""
CoordinatorOf = Callable[[str], int | None]
"""The broker id leading a transactional id's ``__transaction_state`` partition, if any."""


def producer_error(coordinator_error: ErrorCode, produce_version: int) -> ErrorCode:
    """The coordinator's answer for a partition, as a producer of ``produce_version`` is
    to understand it (Kafka's AddPartitionsToTxnManager)."""
    if coordinator_error is ErrorCode.producer_fenced:
        return ErrorCode.invalid_producer_epoch
    if (
        coordinator_error is ErrorCode.transaction_abortable
        and produce_version < FIRST_PRODUCE_VERSION_WITH_ABORTABLE
    ):
        return ErrorCode.invalid_txn_state
    return coordinator_error


def refusal(error: ErrorCode) -> ProduceResult:
    """A partition's produce result when verification failed with ``error`` (from
    ``producer_error``): Kafka's messages, retriable coordinator trouble as
    NOT_ENOUGH_REPLICAS."""
    if error is ErrorCode.invalid_txn_state:
        return ProduceResult(error=error, message=NOT_ADDED_MESSAGE)
    if error in UNVERIFIABLE:
        return ProduceResult(
            error=ErrorCode.not_enough_replicas,
            message=(
                "Unable to verify the partition has been added to the transaction. "
                f"Underlying error: {error.name.upper()}"
            ),
        )
    return ProduceResult(error=error)


@dataclass(frozen=True, slots=True)
class TxnBatch:
    """The producer of a partition's transactional batch."""

    producer_id: int
    producer_epoch: int
    base_sequence: int


def transactional_batches(entries: Entries) -> dict[TopicPartition, TxnBatch]:
    """The partitions whose (first) batch is transactional data, read from its header."""
    found: dict[TopicPartition, TxnBatch] = {}
    for tp, records in entries:
        if (
            records is None
            or len(records) < batch.BATCH_HEADER_SIZE
            or records[batch.MAGIC_OFFSET] != 2
        ):
            continue  # the log refuses it, with the right error
        # The flags sit in the low byte of the big-endian attributes.
        flags = records[batch.ATTRIBUTES_OFFSET + 1]
        if flags & batch.TRANSACTIONAL_FLAG and not flags & batch.CONTROL_FLAG:
            header = batch.read_header(records)
            found[tp] = TxnBatch(header.producer_id, header.producer_epoch, header.base_sequence)
    return found


@dataclass(slots=True)
class _Guarded:
    partition: Partition
    guard: VerificationGuard


class TxnVerifier:
    def __init__(
        self,
        *,
        broker_id: int,
        replica_manager: ReplicaManager,
        metadata: MetadataStore,
        enabled: bool,
        coordinator_of: CoordinatorOf,
        local: LocalVerifier,
        request_timeout_ms: int = 30_000,
        client_factory: PeerClientFactory = BrokerClient,
    ) -> None:
        self.broker_id = broker_id
        self.replica_manager = replica_manager
        self.metadata = metadata
        self.enabled = enabled
        self.coordinator_of = coordinator_of
        self.local = local
        self.request_timeout_ms = request_timeout_ms
        self._client_factory = client_factory
        self._destinations: dict[int, _Destination] = {}
        self._last_warning = 0.0

    def append(
        self, transactional_id: str, acks: int, entries: Entries, produce_version: int
    ) -> dict[TopicPartition, ProduceResult] | Awaitable[dict[TopicPartition, ProduceResult]]:
        """Append a Produce request that names ``transactional_id``: the results at once,
        or, while the coordinator on another broker is asked, an awaitable of them."""
        batches = transactional_batches(entries)
        if not batches:
            return self.replica_manager.append_records(acks, entries)
        producers = {(b.producer_id, b.producer_epoch) for b in batches.values()}
        if len(producers) > 1:
            refused = ProduceResult(
                error=ErrorCode.invalid_producer_id_mapping,
                message="Transactional records contained more than one producer ID",
            )
            return {tp: refused for tp, _ in entries}
        if not self.enabled:
            return self.replica_manager.append_records(acks, entries)
        ((producer_id, producer_epoch),) = producers
        refused_now: dict[TopicPartition, ProduceResult] = {}
        guarded: dict[TopicPartition, _Guarded] = {}
        now = self.replica_manager.clock()
        for tp, found in batches.items():
            try:
                partition = self.replica_manager.get_partition(tp)
                if not partition.is_leader:
                    raise KafkaError(
                        f"broker {self.broker_id} is not the leader of {tp}",
                        ErrorCode.not_leader_or_follower,
                    )
            except KafkaError as exc:
                refused_now[tp] = ProduceResult(error=exc.error_code, message=exc.message or None)
                continue
            guard = partition.log.producer_state.maybe_start_verification(
                producer_id, found.base_sequence, producer_epoch, now
            )
            if guard is not None:
                guarded[tp] = _Guarded(partition, guard)
        if not guarded:
            return self._append(acks, entries, refused_now)

        def complete(answers: Verdict) -> dict[TopicPartition, ProduceResult]:
            for tp, item in guarded.items():
                error = producer_error(
                    answers.get(tp, ErrorCode.unknown_server_error), produce_version
                )
                if error is not ErrorCode.none:
                    refused_now[tp] = refusal(error)
                elif not self._guard_holds(tp, item, producer_id, producer_epoch):
                    refused_now[tp] = ProduceResult(
                        error=ErrorCode.invalid_txn_state, message=STALE_GUARD_MESSAGE
                    )
            return self._append(acks, entries, refused_now)

        partitions = list(guarded)
        coordinator = self.coordinator_of(transactional_id)
        if coordinator == self.broker_id:
            return complete(self.local(transactional_id, producer_id, producer_epoch, partitions))
        if coordinator is None or coordinator not in self.metadata.brokers():
            return complete(dict.fromkeys(partitions, ErrorCode.coordinator_not_available))
        destination = self._destinations.get(coordinator)
        if destination is None:
            destination = self._destinations[coordinator] = _Destination(self, coordinator)
        answer = destination.submit(transactional_id, producer_id, producer_epoch, partitions)
        return _then(answer, complete)

    async def verify_offset_commit(
        self, transactional_id: str, producer_id: int, producer_epoch: int, tp: TopicPartition
    ) -> ErrorCode:
        """Whether the producer may write transactional offsets to ``tp`` (its group's
        ``__consumer_offsets`` partition): NONE, or the error for TxnOffsetCommit. A
        partition not led here passes: the group coordinator answers NOT_COORDINATOR."""
        if not self.enabled:
            return ErrorCode.none
        partition = self.replica_manager.partitions.get(tp)
        if partition is None or not partition.is_leader:
            return ErrorCode.none
        guard = partition.log.producer_state.maybe_start_verification(
            producer_id, batch.NO_SEQUENCE, producer_epoch, self.replica_manager.clock()
        )
        if guard is None:
            return ErrorCode.none
        coordinator = self.coordinator_of(transactional_id)
        if coordinator == self.broker_id:
            answers = self.local(transactional_id, producer_id, producer_epoch, [tp])
        elif coordinator is None or coordinator not in self.metadata.brokers():
            answers = {tp: ErrorCode.coordinator_not_available}
        else:
            destination = self._destinations.get(coordinator)
            if destination is None:
                destination = self._destinations[coordinator] = _Destination(self, coordinator)
            answers = await destination.submit(transactional_id, producer_id, producer_epoch, [tp])
        # TxnOffsetCommit clients (up to v4) do not know TRANSACTION_ABORTABLE.
        error = producer_error(answers.get(tp, ErrorCode.unknown_server_error), 0)
        if error is ErrorCode.none and not self._guard_holds(
            tp, _Guarded(partition, guard), producer_id, producer_epoch
        ):
            error = ErrorCode.invalid_txn_state
        if error is ErrorCode.network_exception:
            return ErrorCode.coordinator_load_in_progress
        return error

    def _guard_holds(self, tp: TopicPartition, item: _Guarded, pid: int, epoch: int) -> bool:
        """Whether a verified partition may take the batch now: the producer's transaction
        is open there, or its verification is still the one the batch was verified
        under. A partition no longer led here passes: its append says so."""
        partition = self.replica_manager.partitions.get(tp)
        if partition is None or not partition.is_leader:
            return True
        state = partition.log.producer_state
        return state.has_ongoing_transaction(pid, epoch) or state.verification_guard(pid) is (
            item.guard
        )

    def _append(
        self, acks: int, entries: Entries, refused: dict[TopicPartition, ProduceResult]
    ) -> dict[TopicPartition, ProduceResult]:
        if not refused:
            return self.replica_manager.append_records(acks, entries)
        results = self.replica_manager.append_records(
            acks, [(tp, records) for tp, records in entries if tp not in refused]
        )
        results.update(refused)
        return results

    def _client(self, broker_id: int, current: PeerClient | None) -> PeerClient | None:
        return reuse_or_connect(
            self.metadata,
            broker_id,
            current,
            factory=self._client_factory,
            client_id=f"broker-{self.broker_id}-txn-verification",
            timeout_ms=self.request_timeout_ms,
        )

    def _warn(self, message: str) -> None:
        now = time.monotonic()
        if now - self._last_warning > 10:
            self._last_warning = now
            log.warning("%s", message)

    async def close(self) -> None:
        """Stop asking; produce requests still waiting get NETWORK_EXCEPTION's answer."""
        destinations = list(self._destinations.values())
        self._destinations.clear()
        for destination in destinations:
            await destination.close()


async def _then(
    answer: Awaitable[dict[TopicPartition, ErrorCode]],
    complete: Callable[[dict[TopicPartition, ErrorCode]], dict[TopicPartition, ProduceResult]],
) -> dict[TopicPartition, ProduceResult]:
    return complete(await answer)


Answer = asyncio.Future[dict[TopicPartition, ErrorCode]]


@dataclass(slots=True)
class _Question:
    """One transactional id's question to its coordinator, and who waits on it."""

    transactional_id: str
    producer_id: int
    producer_epoch: int
    partitions: set[TopicPartition]
    waiters: list[Answer] = field(default_factory=list)

    @property
    def wanted(self) -> bool:
        return any(not waiter.done() for waiter in self.waiters)

    def answer(self, errors: dict[TopicPartition, ErrorCode]) -> None:
        for waiter in self.waiters:
            if not waiter.done():
                waiter.set_result(errors)

    def fail(self, error: ErrorCode) -> None:
        self.answer(dict.fromkeys(self.partitions, error))


class _Destination:
    """The questions for one coordinator broker: one request in flight at a time, the
    questions asked meanwhile sent together in the next (Kafka's
    ``AddPartitionsToTxnManager``, one per node)."""

    def __init__(self, verifier: TxnVerifier, broker_id: int) -> None:
        self.verifier = verifier
        self.broker_id = broker_id
        self.queue: dict[str, _Question] = {}
        self.client: PeerClient | None = None
        self.task: asyncio.Task[None] | None = None

    def submit(
        self,
        transactional_id: str,
        producer_id: int,
        producer_epoch: int,
        partitions: Collection[TopicPartition],
    ) -> Answer:
        loop = asyncio.get_running_loop()
        waiter: Answer = loop.create_future()
        queued = self.queue.get(transactional_id)
        if queued is not None:
            if (queued.producer_id, queued.producer_epoch) == (producer_id, producer_epoch):
                queued.partitions.update(partitions)
                queued.waiters.append(waiter)
                return waiter
            if queued.producer_epoch > producer_epoch:
                waiter.set_result(dict.fromkeys(partitions, ErrorCode.invalid_producer_epoch))
                return waiter
            queued.fail(
                ErrorCode.invalid_producer_epoch
                if queued.producer_epoch < producer_epoch
                else ErrorCode.network_exception
            )
        self.queue[transactional_id] = _Question(
            transactional_id, producer_id, producer_epoch, set(partitions), [waiter]
        )
        if self.task is None or self.task.done():
            self.task = loop.create_task(self._run())
        return waiter

    async def _run(self) -> None:
        while self.queue:
            questions = [q for q in self.queue.values() if q.wanted]
            self.queue = {}
            if not questions:
                continue
            try:
                answers = await self._request(questions)
            except asyncio.CancelledError:
                for question in questions:
                    question.fail(ErrorCode.network_exception)
                raise
            except Exception as exc:
                self.verifier._warn(
                    f"cannot verify transactions with broker {self.broker_id}: {exc}"
                )
                for question in questions:
                    question.fail(ErrorCode.network_exception)
                continue
            for question in questions:
                question.answer(answers.get(question.transactional_id, {}))

    async def _request(self, questions: list[_Question]) -> dict[str, Verdict]:
        self.client = self.verifier._client(self.broker_id, self.client)
        if self.client is None:
            raise BrokerConnectionError(f"broker {self.broker_id} is not registered")
        response = await self.client.call(_request(questions))
        top = ErrorCode(response.error_code)
        if top is not ErrorCode.none:
            log.info("transaction verification by broker %d failed: %s", self.broker_id, top.name)
            if top is ErrorCode.cluster_authorization_failed:
                # Not the producer's business: say the partition could not be verified.
                top = ErrorCode.invalid_txn_state
            return {q.transactional_id: dict.fromkeys(q.partitions, top) for q in questions}
        answers: dict[str, dict[TopicPartition, ErrorCode]] = defaultdict(dict)
        for result in response.results_by_transaction:
            errors = answers[str(result.transactional_id)]
            for topic in result.topic_results:
                for partition in topic.results_by_partition:
                    errors[TopicPartition(topic.name, int(partition.partition_index))] = ErrorCode(
                        partition.partition_error_code
                    )
        return answers

    async def close(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()
            await asyncio.wait({self.task}, timeout=1)
        for question in self.queue.values():
            question.fail(ErrorCode.network_exception)
        self.queue = {}
        if self.client is not None:
            self.client.close()
            self.client = None


def _request(questions: list[_Question]) -> add_v5.AddPartitionsToTxnRequest:
    transactions = []
    for question in questions:
        by_topic: dict[str, list[int]] = defaultdict(list)
        for tp in question.partitions:
            by_topic[tp.topic].append(tp.partition)
        transactions.append(
            add_v5.AddPartitionsToTxnTransaction(
                transactional_id=TransactionalId(question.transactional_id),
                producer_id=ProducerId(question.producer_id),
                producer_epoch=i16(question.producer_epoch),
                verify_only=True,
                topics=tuple(
                    add_v5.AddPartitionsToTxnTopic(
                        name=TopicName(topic), partitions=tuple(i32(p) for p in sorted(indexes))
                    )
                    for topic, indexes in sorted(by_topic.items())
                ),
            )
        )
    return add_v5.AddPartitionsToTxnRequest(transactions=tuple(transactions))
