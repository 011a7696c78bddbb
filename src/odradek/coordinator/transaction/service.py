"""The transaction coordinator as the broker runs it: shards per ``__transaction_state``
partition.

A transactional id belongs to partition ``abs(hash(id)) % partitions`` (Java's string
hash, as Kafka) and is served by the broker leading that partition. This module owns
what the pure shards do not: routing, creating ``__transaction_state`` on first use,
loading a shard from its partition when this broker becomes leader (the partition's
leader epoch is the shard's coordinator epoch), writing the shards' records with
acks=all, the marker channel, and the two periodic jobs (abort timed-out transactions,
expire idle transactional ids). Everything runs on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from odradek.cluster.controller import Controller
from odradek.cluster.metadata import MetadataStore, TopicMetadata
from odradek.config import BrokerConfig
from odradek.coordinator.group.service import OFFSETS_TOPIC
from odradek.coordinator.internal_topics import (
    append_replicated,
    create_internal_topic,
    read_records,
    replication_factor,
)
from odradek.coordinator.transaction.markers import (
    LocalMarkerWriter,
    MarkerSender,
    TxnMarkerChannel,
)
from odradek.coordinator.transaction.records import (
    RecordFormatError,
    decode_key,
    decode_value,
    encode_key,
    encode_value,
    partition_for,
)
from odradek.coordinator.transaction.shard import TransactionCoordinatorShard
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
from odradek.protocol.record_codec import NewRecord
from odradek.protocol.types import TopicPartition
from odradek.replication.partition import Partition
from odradek.replication.replica_manager import ReplicaManager

log = logging.getLogger(__name__)

TRANSACTION_STATE_TOPIC = "__transaction_state"


def setting(config: BrokerConfig, name: str) -> int:
    return int(config.get(name))


@dataclass(frozen=True, slots=True)
class TransactionList:
    """ListTransactions' answer from this broker."""

    error: ErrorCode
    transactions: tuple[TransactionListing, ...] = ()
    unknown_state_filters: tuple[str, ...] = ()


class TransactionCoordinator:
    def __init__(
        self,
        config: BrokerConfig,
        *,
        metadata: MetadataStore,
        controller: Controller,
        replica_manager: ReplicaManager,
        clock: Callable[[], int],
        live_brokers: Callable[[], list[int]],
        producer_ids: Callable[[], int],
        offsets_partition_of: Callable[[str], int],
        local_markers: LocalMarkerWriter,
        markers: MarkerSender | None = None,
    ) -> None:
        """``producer_ids`` allocates a new producer id (MetadataStore.allocate_producer_id);
        ``offsets_partition_of`` gives a group's ``__consumer_offsets`` partition
        (GroupCoordinator.partition_of); ``local_markers`` appends markers to partitions
        this broker leads and waits for their ISR."""
        self.config = config
        self.metadata = metadata
        self.controller = controller
        self.replica_manager = replica_manager
        self.clock = clock
        self.live_brokers = live_brokers
        self.producer_ids = producer_ids
        self.offsets_partition_of = offsets_partition_of
        self.txn_config = TransactionConfig(
            max_timeout_ms=setting(config, "transaction.max.timeout.ms"),
            transactional_id_expiration_ms=setting(config, "transactional.id.expiration.ms"),
            request_timeout_ms=setting(config, "request.timeout.ms"),
            max_batch_bytes=setting(config, "message.max.bytes"),
        )
        self._channel: TxnMarkerChannel | None = None
        if markers is None:
            markers = self._channel = TxnMarkerChannel(
                broker_id=replica_manager.broker_id,
                metadata=metadata,
                local=local_markers,
                request_timeout_ms=self.txn_config.request_timeout_ms,
            )
        self.markers = markers
        self.shards: dict[int, TransactionCoordinatorShard] = {}
        self._jobs: list[asyncio.Task[None]] = []
        self._stopping: list[asyncio.Task[None]] = []
        self.active = True
        replica_manager.add_leadership_listener(TRANSACTION_STATE_TOPIC, self)

    # -- routing ---------------------------------------------------------------------------

    def partition_count(self) -> int:
        topic = self.metadata.topic(TRANSACTION_STATE_TOPIC)
        if topic is not None:
            return len(topic.partitions)
        return setting(self.config, "transaction.state.log.num.partitions")

    def partition_of(self, transactional_id: str) -> int:
        return partition_for(transactional_id, self.partition_count())

    def shard_for(self, transactional_id: str) -> TransactionCoordinatorShard:
        """The shard serving ``transactional_id``; KafkaError NOT_COORDINATOR if it is
        not served here."""
        if self.metadata.topic(TRANSACTION_STATE_TOPIC) is None:
            raise KafkaError(
                f"{TRANSACTION_STATE_TOPIC} does not exist yet", ErrorCode.not_coordinator
            )
        shard = self.shards.get(self.partition_of(transactional_id))
        if shard is None:
            raise KafkaError(
                f"not the coordinator of transactional id {transactional_id}",
                ErrorCode.not_coordinator,
            )
        return shard

    def coordinator_of(self, transactional_id: str) -> int:
        """FindCoordinator (key type 1): the broker id leading the id's partition; creates
        the topic on first use. KafkaError COORDINATOR_NOT_AVAILABLE while it has no
        leader."""
        topic = self.metadata.topic(TRANSACTION_STATE_TOPIC)
        if topic is None:
            topic = self._create_topic()
        index = partition_for(transactional_id, len(topic.partitions))
        state = topic.partitions[index]
        offline = self.replica_manager.is_offline(TopicPartition(TRANSACTION_STATE_TOPIC, index))
        if state.leader < 0 or offline:
            raise KafkaError(
                "no leader for the transactional id's partition",
                ErrorCode.coordinator_not_available,
            )
        return state.leader

    def current_coordinator(self, transactional_id: str) -> int | None:
        """The broker leading the id's ``__transaction_state`` partition now; None while
        the topic does not exist or the partition has no leader (nothing is created)."""
        topic = self.metadata.topic(TRANSACTION_STATE_TOPIC)
        if topic is None or not topic.partitions:
            return None
        leader = topic.partitions[partition_for(transactional_id, len(topic.partitions))].leader
        return leader if leader >= 0 else None

    def _create_topic(self) -> TopicMetadata:
        factor = replication_factor(
            setting(self.config, "transaction.state.log.replication.factor"),
            len(self.live_brokers()),
        )
        min_isr = min(setting(self.config, "transaction.state.log.min.isr"), factor)
        return create_internal_topic(
            controller=self.controller,
            metadata=self.metadata,
            name=TRANSACTION_STATE_TOPIC,
            partitions=setting(self.config, "transaction.state.log.num.partitions"),
            factor=factor,
            configs={
                "cleanup.policy": "compact",
                "compression.type": "uncompressed",
                "segment.bytes": str(setting(self.config, "transaction.state.log.segment.bytes")),
                "min.insync.replicas": str(min_isr),
                "unclean.leader.election.enable": "false",
            },
        )

    # -- requests --------------------------------------------------------------------------

    async def init_producer_id(
        self,
        transactional_id: str,
        transaction_timeout_ms: int,
        producer_id: int = -1,
        producer_epoch: int = -1,
    ) -> InitProducerIdResult:
        """InitProducerId with a transactional id. ``producer_id``/``producer_epoch``
        (v3+, KIP-360) are what the producer had, -1/-1 for a new producer."""
        if (producer_id < 0) != (producer_epoch < 0) or not transactional_id:
            return InitProducerIdResult(ErrorCode.invalid_request)
        if not 0 < transaction_timeout_ms <= self.txn_config.max_timeout_ms:
            return InitProducerIdResult(ErrorCode.invalid_transaction_timeout)
        expected = None if producer_id < 0 else ProducerIdAndEpoch(producer_id, producer_epoch)
        try:
            shard = self.shard_for(transactional_id)
        except KafkaError as exc:
            return InitProducerIdResult(exc.error_code)
        return await shard.init_producer_id(transactional_id, transaction_timeout_ms, expected)

    async def add_partitions_to_txn(
        self,
        transactional_id: str,
        producer_id: int,
        producer_epoch: int,
        partitions: Collection[TopicPartition],
        rejected: Mapping[TopicPartition, ErrorCode] | None = None,
    ) -> dict[TopicPartition, ErrorCode]:
        """AddPartitionsToTxn v0-v3 (a client's). ``rejected`` are the partitions the
        handler refused (UNKNOWN_TOPIC_OR_PARTITION, an authorization error): then none
        is added, they keep their error and the others get OPERATION_NOT_ATTEMPTED."""
        if rejected:
            answer = dict.fromkeys(partitions, ErrorCode.operation_not_attempted)
            answer.update(rejected)
            return answer
        try:
            shard = self.shard_for(transactional_id)
        except KafkaError as exc:
            return dict.fromkeys(partitions, exc.error_code)
        error = await shard.add_partitions(
            transactional_id, producer_id, producer_epoch, partitions
        )
        return dict.fromkeys(partitions, error)

    def verify_partitions_in_txn(
        self,
        transactional_id: str,
        producer_id: int,
        producer_epoch: int,
        partitions: Collection[TopicPartition],
    ) -> dict[TopicPartition, ErrorCode]:
        """AddPartitionsToTxn v4+ with verify_only (a leader checking, KIP-890)."""
        try:
            shard = self.shard_for(transactional_id)
        except KafkaError as exc:
            return dict.fromkeys(partitions, exc.error_code)
        return shard.verify_partitions(transactional_id, producer_id, producer_epoch, partitions)

    async def add_offsets_to_txn(
        self, transactional_id: str, producer_id: int, producer_epoch: int, group_id: str
    ) -> ErrorCode:
        """AddOffsetsToTxn: the group's ``__consumer_offsets`` partition joins the
        transaction (its TxnOffsetCommit goes to the group coordinator next)."""
        tp = TopicPartition(OFFSETS_TOPIC, self.offsets_partition_of(group_id))
        try:
            shard = self.shard_for(transactional_id)
        except KafkaError as exc:
            return exc.error_code
        return await shard.add_partitions(transactional_id, producer_id, producer_epoch, [tp])

    async def end_txn(
        self, transactional_id: str, producer_id: int, producer_epoch: int, *, commit: bool
    ) -> EndTxnResult:
        """EndTxn v0-v4 (Transactions V1): answered once the decision is replicated; the
        markers follow."""
        try:
            shard = self.shard_for(transactional_id)
        except KafkaError as exc:
            return EndTxnResult(exc.error_code)
        return await shard.end_transaction(
            transactional_id, producer_id, producer_epoch, commit=commit
        )

    def describe_transactions(
        self, transactional_ids: Iterable[str]
    ) -> list[TransactionDescription]:
        """DescribeTransactions: one description per id, in order."""
        out = []
        for transactional_id in transactional_ids:
            error: ErrorCode | None = None
            if not self.active:
                error = ErrorCode.coordinator_not_available
            elif not transactional_id:
                error = ErrorCode.invalid_request
            else:
                try:
                    out.append(self.shard_for(transactional_id).describe(transactional_id))
                    continue
                except KafkaError as exc:
                    error = exc.error_code
            out.append(TransactionDescription(transactional_id=transactional_id, error=error))
        return out

    def list_transactions(
        self,
        *,
        states: Iterable[str] = (),
        producer_ids: Iterable[int] = (),
        duration_ms: int = -1,
        pattern: str | None = None,
    ) -> TransactionList:
        """ListTransactions: the transactions of the partitions this broker leads."""
        if not self.active:
            return TransactionList(ErrorCode.coordinator_not_available)
        known: set[TransactionState] = set()
        unknown: list[str] = []
        for name in states:
            state = TransactionState.from_kafka_name(name)
            if state is None:
                unknown.append(name)
            else:
                known.add(state)
        compiled = None
        if pattern:
            try:
                compiled = re.compile(pattern)
            except re.error:
                return TransactionList(ErrorCode.invalid_regular_expression)
        filters = ListFilter(
            states=frozenset(known),
            producer_ids=frozenset(producer_ids),
            duration_ms=duration_ms,
            pattern=compiled,
        )
        if unknown and not known:
            # Every state asked for is unknown: nothing can match (Kafka: empty filter
            # set after dropping the unknown names still filters everything out).
            return TransactionList(ErrorCode.none, (), tuple(unknown))
        listings = [
            listing
            for index in sorted(self.shards)
            for listing in self.shards[index].list_transactions(filters)
        ]
        return TransactionList(ErrorCode.none, tuple(listings), tuple(unknown))

    # -- leadership ------------------------------------------------------------------------

    def became_leader(self, partition: Partition) -> None:
        """Load the partition's transactional ids and serve them (on the event loop)."""
        if not self.active:
            return
        index = partition.tp.partition
        self.resigned(partition.tp)
        shard = TransactionCoordinatorShard(
            partition=index,
            coordinator_epoch=partition.leader_epoch,
            config=self.txn_config,
            clock=self.clock,
            writer=self._writer(partition.tp),
            markers=self.markers,
            producer_ids=self.producer_ids,
        )
        loaded = self._load(partition, shard)
        self.shards[index] = shard
        resumed = shard.finish_loading()
        log.info(
            "transaction coordinator for %s at epoch %d: %d records, %d ids, %d to complete",
            partition.tp,
            partition.leader_epoch,
            loaded,
            len(shard.transactions),
            len(resumed),
        )

    def resigned(self, tp: TopicPartition) -> None:
        shard = self.shards.pop(tp.partition, None)
        if shard is not None:
            # Cancelled tasks finish on their own; kept only for shutdown to wait on.
            self._stopping = [t for t in self._stopping if not t.done()] + shard.unload()
            log.info("transaction coordinator for %s unloaded", tp)

    def _load(self, partition: Partition, shard: TransactionCoordinatorShard) -> int:
        count = 0
        chunk = setting(self.config, "transaction.state.log.load.buffer.size")
        for offset, key_bytes, value_bytes in read_records(partition.log, chunk):
            if key_bytes is None:
                log.warning("%s: record at %d has no key; skipped", partition.tp, offset)
                continue
            try:
                key = decode_key(key_bytes)
                shard.replay(key, decode_value(value_bytes))
            except RecordFormatError as exc:
                log.warning("%s: skipping unreadable record at %d: %s", partition.tp, offset, exc)
                continue
            count += 1
        return count

    def _writer(self, tp: TopicPartition) -> RecordWriter:
        replica_manager = self.replica_manager
        clock = self.clock

        async def write(records: Sequence[Record], timeout_ms: int) -> None:
            now = clock()
            await append_replicated(
                replica_manager,
                tp,
                [
                    NewRecord(
                        key=encode_key(key),
                        value=None if value is None else encode_value(value),
                        timestamp=now,
                    )
                    for key, value in records
                ],
                timeout_ms,
            )

        return write

    # -- housekeeping ----------------------------------------------------------------------

    def abort_timed_out_transactions(self) -> list[str]:
        """Start aborting the transactions past their timeout; their ids."""
        return [
            transactional_id
            for shard in list(self.shards.values())
            for transactional_id in shard.abort_timed_out_transactions()
        ]

    async def remove_expired_transactional_ids(self) -> list[str]:
        removed = []
        for shard in list(self.shards.values()):
            removed.extend(await shard.remove_expired_transactional_ids())
        return removed

    def start(self) -> None:
        """Start the periodic jobs (on the event loop)."""
        loop = asyncio.get_running_loop()
        self._jobs = [
            loop.create_task(
                self._every(
                    setting(
                        self.config, "transaction.abort.timed.out.transaction.cleanup.interval.ms"
                    ),
                    self._abort_job,
                    "abort of timed-out transactions",
                )
            ),
            loop.create_task(
                self._every(
                    setting(
                        self.config, "transaction.remove.expired.transaction.cleanup.interval.ms"
                    ),
                    self.remove_expired_transactional_ids,
                    "expiry of transactional ids",
                )
            ),
        ]

    async def _abort_job(self) -> None:
        self.abort_timed_out_transactions()

    @staticmethod
    async def _every(interval_ms: int, job: Callable[[], Awaitable[Any]], name: str) -> None:
        interval = max(interval_ms, 10) / 1000
        while True:
            await asyncio.sleep(interval)
            try:
                await job()
            except Exception:
                log.exception("transaction coordinator job %s failed", name)

    async def shutdown(self) -> None:
        """Stop: periodic jobs, every shard's background work, the marker channel."""
        self.active = False
        tasks = list(self._jobs) + self._stopping
        self._jobs = []
        self._stopping = []
        for job in tasks:
            job.cancel()
        for shard in self.shards.values():
            tasks.extend(shard.unload())
        self.shards.clear()
        if self._channel is not None:
            await self._channel.close()
        pending = [task for task in tasks if not task.done()]
        if pending:
            await asyncio.wait(pending, timeout=2)
