"""The group coordinator as the broker runs it: shards per ``__consumer_offsets`` partition.

A group belongs to partition ``abs(hash(group id)) % offsets.topic.num.partitions`` (Java's
string hash, so a group lands where Kafka would put it), and is served by the broker
leading that partition. This module owns what the pure shards do not: asyncio timers,
writing their records into the partition's log (transactional batches for
TxnOffsetCommit), reading the log back to load a shard when this broker becomes leader
(``loader``), and creating ``__consumer_offsets`` on first use.

Transactions: ``commit_transactional_offsets`` (TxnOffsetCommit) writes a producer's
offsets as pending; the broker calls ``complete_transaction`` once it has appended that
producer's commit or abort marker to the group's partition (WriteTxnMarkers).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from odradek.cluster.controller import Controller
from odradek.cluster.metadata import MetadataStore, TopicMetadata
from odradek.config import BrokerConfig
from odradek.coordinator.group.group_manager import (
    GroupConfig,
    TxnProducer,
    Writer,
    coordinator_error_code,
)
from odradek.coordinator.group.loader import replay_batch
from odradek.coordinator.group.offset_manager import OffsetConfig, OffsetToCommit
from odradek.coordinator.group.records import (
    Key,
    Value,
    encode_key,
    encode_value,
    partition_for,
)
from odradek.coordinator.group.shard import GroupCoordinatorShard
from odradek.coordinator.internal_topics import (
    create_internal_topic,
    read_batches,
    replication_factor,
)
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.protocol.record_codec import BatchSpec, NewRecord, build_batch
from odradek.protocol.types import TopicPartition
from odradek.replication.partition import Partition
from odradek.replication.replica_manager import ProduceResult, ReplicaManager
from odradek.storage.values import AppendOrigin

log = logging.getLogger(__name__)

OFFSETS_TOPIC = "__consumer_offsets"
OFFSET_COMMIT_TIMEOUT_MS = 5000
"""How long a transactional offset commit waits for the ISR (Kafka's default
``offsets.commit.timeout.ms``)."""
OFFSETS_TOPIC_CONFIGS = {
    "cleanup.policy": "compact",
    "segment.bytes": "104857600",
    "compression.type": "producer",
}


class AsyncioTimer:
    """The shards' Timer on the running event loop."""

    def __init__(self) -> None:
        self._handles: dict[str, asyncio.TimerHandle] = {}

    def schedule(self, key: str, delay_ms: int, callback: Callable[[], None]) -> None:
        self.cancel(key)
        loop = asyncio.get_running_loop()
        self._handles[key] = loop.call_later(max(delay_ms, 0) / 1000, self._fire, key, callback)

    def cancel(self, key: str) -> None:
        handle = self._handles.pop(key, None)
        if handle is not None:
            handle.cancel()

    def cancel_all(self) -> None:
        for handle in self._handles.values():
            handle.cancel()
        self._handles.clear()

    def _fire(self, key: str, callback: Callable[[], None]) -> None:
        self._handles.pop(key, None)
        try:
            callback()
        except Exception:
            log.exception("group coordinator timer %s failed", key)


class GroupCoordinator:
    def __init__(
        self,
        config: BrokerConfig,
        *,
        metadata: MetadataStore,
        controller: Controller,
        replica_manager: ReplicaManager,
        clock: Callable[[], int],
        live_brokers: Callable[[], list[int]],
    ) -> None:
        self.config = config
        self.metadata = metadata
        self.controller = controller
        self.replica_manager = replica_manager
        self.clock = clock
        self.live_brokers = live_brokers
        self.timer = AsyncioTimer()
        self.shards: dict[int, GroupCoordinatorShard] = {}
        self.group_config = GroupConfig(
            initial_rebalance_delay_ms=config.get("group.initial.rebalance.delay.ms"),
            min_session_timeout_ms=config.get("group.min.session.timeout.ms"),
            max_session_timeout_ms=config.get("group.max.session.timeout.ms"),
            max_size=config.get("group.max.size"),
        )
        self.offset_config = OffsetConfig(
            metadata_max_bytes=config.get("offset.metadata.max.bytes"),
            retention_ms=config.get("offsets.retention.minutes") * 60_000,
        )
        replica_manager.add_leadership_listener(OFFSETS_TOPIC, self)

    # -- routing ---------------------------------------------------------------------------

    def partition_count(self) -> int:
        topic = self.metadata.topic(OFFSETS_TOPIC)
        if topic is not None:
            return len(topic.partitions)
        return int(self.config.get("offsets.topic.num.partitions"))

    def partition_of(self, group_id: str) -> int:
        return partition_for(group_id, self.partition_count())

    def shard_for(self, group_id: str) -> GroupCoordinatorShard:
        """The shard serving ``group_id``, or NOT_COORDINATOR / COORDINATOR_NOT_AVAILABLE."""
        if self.metadata.topic(OFFSETS_TOPIC) is None:
            raise KafkaError(f"{OFFSETS_TOPIC} does not exist yet", ErrorCode.not_coordinator)
        shard = self.shards.get(self.partition_of(group_id))
        if shard is None:
            raise KafkaError(f"not the coordinator of group {group_id}", ErrorCode.not_coordinator)
        return shard

    # -- transactions ----------------------------------------------------------------------

    async def commit_transactional_offsets(
        self,
        group_id: str,
        *,
        producer_id: int,
        producer_epoch: int,
        member_id: str,
        generation_id: int,
        group_instance_id: str | None,
        offsets: list[OffsetToCommit],
    ) -> dict[TopicPartition, ErrorCode]:
        """TxnOffsetCommit (key 28): write ``offsets`` for the group in one transactional
        batch of the producer, pending until its transaction ends; the error of each
        partition (NOT_COORDINATOR, INVALID_GROUP_ID, membership errors, ...).

        Answered once the batch is replicated to the partition's ISR, as Kafka completes
        the write at the high watermark: the producer commits its transaction only after
        this answer, so offsets the answer confirmed are on every in-sync replica and
        survive a coordinator failover. (The pending offsets apply at once; they are
        invisible until the transaction ends.)"""
        if not group_id:
            return {item.tp: ErrorCode.invalid_group_id for item in offsets}
        try:
            shard = self.shard_for(group_id)
        except KafkaError as exc:
            return {item.tp: exc.error_code for item in offsets}
        errors = shard.commit_transactional_offsets(
            group_id,
            producer=TxnProducer(producer_id, producer_epoch),
            member_id=member_id,
            generation_id=generation_id,
            group_instance_id=group_instance_id,
            offsets=offsets,
        )
        if ErrorCode.none not in errors.values():
            return errors  # nothing was written
        replicated = await self._replicated(self.partition_of(group_id))
        if replicated is ErrorCode.none:
            return errors
        return {tp: replicated if e is ErrorCode.none else e for tp, e in errors.items()}

    async def _replicated(self, index: int) -> ErrorCode:
        """Wait until the ISR of partition ``index`` has everything written to it so far;
        how that went, as a coordinator error."""
        waiting = self.replication_wait(index)
        return waiting if isinstance(waiting, ErrorCode) else await waiting

    def replication_wait(self, index: int) -> ErrorCode | Awaitable[ErrorCode]:
        """What a write to partition ``index`` still waits for: its outcome when the ISR
        already has everything written so far (at once on a single node), else an
        awaitable of it. A coordinator answers an acknowledged write only once it is
        replicated, so that a leader failover cannot lose it."""
        tp = TopicPartition(OFFSETS_TOPIC, index)
        partition = self.replica_manager.partitions.get(tp)
        if partition is None:
            return ErrorCode.not_coordinator
        results = {tp: ProduceResult(required_offset=partition.log.log_end_offset)}
        waiting = self.replica_manager.await_acks(results, OFFSET_COMMIT_TIMEOUT_MS)
        if waiting is None:
            return coordinator_error_code(results[tp].error)

        async def outcome() -> ErrorCode:
            return coordinator_error_code((await waiting)[tp].error)

        return outcome()

    def complete_transaction(
        self,
        offsets_partition: int,
        producer_id: int,
        commit: bool,
        marker_offset: int | None = None,
    ) -> None:
        """A commit/abort marker of ``producer_id`` was appended to partition
        ``offsets_partition`` of ``__consumer_offsets`` (at ``marker_offset``, when
        given): the producer's pending offsets there become committed, or are dropped.
        Nothing to do when this broker does not coordinate that partition: the marker is
        in the log, and loading the partition applies it."""
        shard = self.shards.get(offsets_partition)
        if shard is not None:
            shard.complete_transaction(producer_id, commit, marker_offset)

    def coordinator_of(self, group_id: str) -> int:
        """The broker id leading the group's partition; creates the topic on first use."""
        topic = self.metadata.topic(OFFSETS_TOPIC)
        if topic is None:
            topic = self._create_offsets_topic()
        index = self.partition_of(group_id)
        state = topic.partitions[index]
        # Led from a failed log dir, the partition has no leader (as Metadata says).
        offline = self.replica_manager.is_offline(TopicPartition(OFFSETS_TOPIC, index))
        if state.leader < 0 or offline:
            raise KafkaError(
                "no leader for the group's partition", ErrorCode.coordinator_not_available
            )
        return state.leader

    def _create_offsets_topic(self) -> TopicMetadata:
        return create_internal_topic(
            controller=self.controller,
            metadata=self.metadata,
            name=OFFSETS_TOPIC,
            partitions=int(self.config.get("offsets.topic.num.partitions")),
            factor=replication_factor(
                int(self.config.get("offsets.topic.replication.factor")),
                len(self.live_brokers()),
            ),
            configs=OFFSETS_TOPIC_CONFIGS,
        )

    # -- leadership ------------------------------------------------------------------------

    def became_leader(self, partition: Partition) -> None:
        shard = GroupCoordinatorShard(
            self.group_config,
            self.offset_config,
            self.clock,
            self.timer,
            self._writer(partition),
        )
        loaded = self._load(partition, shard)
        self.shards[partition.tp.partition] = shard
        if loaded:
            log.info("loaded %d records of %s", loaded, partition.tp)

    def resigned(self, tp: TopicPartition) -> None:
        shard = self.shards.pop(tp.partition, None)
        if shard is not None:
            shard.unload()

    def _load(self, partition: Partition, shard: GroupCoordinatorShard) -> int:
        """Replay the partition's records and transaction markers into the shard; the
        number of records read."""
        start = partition.log.log_start_offset
        count = sum(
            replay_batch(shard, data, header, start) for data, header in read_batches(partition.log)
        )
        shard.finish_loading()
        return count

    def _writer(self, partition: Partition) -> Writer:
        def write(
            records: list[tuple[Key, Value | None]], producer: TxnProducer | None = None, /
        ) -> int:
            # As Kafka's coordinator runtime: a transactional batch has sequence 0; the
            # log checks only its producer epoch (AppendOrigin.COORDINATOR).
            spec = (
                None
                if producer is None
                else BatchSpec(
                    producer_id=producer.producer_id,
                    producer_epoch=producer.producer_epoch,
                    base_sequence=0,
                    transactional=True,
                )
            )
            batch = build_batch(
                [
                    NewRecord(
                        key=encode_key(key),
                        value=None if value is None else encode_value(value),
                    )
                    for key, value in records
                ],
                spec,
            )
            # Through the replica manager, so that followers parked in a fetch are woken
            # at once rather than at the end of their wait.
            result = self.replica_manager.append_records(
                -1, [(partition.tp, bytearray(batch))], AppendOrigin.COORDINATOR
            )[partition.tp]
            if result.error is not ErrorCode.none:
                raise KafkaError(result.message or "append failed", result.error)
            return result.base_offset

        return write

    # -- housekeeping ----------------------------------------------------------------------

    def cleanup_expired_offsets(self, now: int) -> None:
        for shard in list(self.shards.values()):
            shard.cleanup_expired_offsets(now)

    def shutdown(self) -> None:
        for shard in self.shards.values():
            shard.unload()
        self.shards.clear()
        self.timer.cancel_all()
