"""The group coordinator as the broker runs it: shards per ``__consumer_offsets`` partition.

A group belongs to partition ``abs(hash(group id)) % offsets.topic.num.partitions`` (Java's
string hash, so a group lands where Kafka would put it), and is served by the broker
leading that partition. This module owns what the pure shards do not: asyncio timers,
writing their records into the partition's log (transactional batches for
TxnOffsetCommit), holding the answer to a request that wrote until the partition's ISR
has the write, reading the log back to load a shard when this broker becomes leader
(``loader``), and creating ``__consumer_offsets`` on first use.

Transactions: ``commit_transactional_offsets`` (TxnOffsetCommit) writes a producer's
offsets as pending; the broker calls ``complete_transaction`` once it has appended that
producer's commit or abort marker to the group's partition (WriteTxnMarkers).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

from odradek.cluster.controller import Controller
from odradek.cluster.metadata import MetadataStore, TopicMetadata
from odradek.config import BrokerConfig
from odradek.coordinator.group.group import JoinCallback, JoinResult, SyncCallback, SyncResult
from odradek.coordinator.group.group_manager import (
    GroupConfig,
    JoinRequest,
    SyncRequest,
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
"""How long an answer waits for the ISR to have a write (Kafka's default
``offsets.commit.timeout.ms``)."""
OFFSETS_TOPIC_CONFIGS = {"cleanup.policy": "compact", "compression.type": "producer"}
"""Plus ``segment.bytes`` from ``offsets.topic.segment.bytes``."""


class _Answer(Protocol):
    @property
    def error(self) -> Any: ...


AnswerT = TypeVar("AnswerT", bound=_Answer)


def _failed_writes(
    errors: dict[TopicPartition, ErrorCode], outcome: ErrorCode
) -> dict[TopicPartition, ErrorCode]:
    """``errors`` of written offsets, those written getting the replication's error."""
    if outcome is ErrorCode.none:
        return errors
    return {tp: outcome if error is ErrorCode.none else error for tp, error in errors.items()}


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

    # -- requests that write: answered once the partition's ISR has the write ------------
    #
    # The shard applies a write as soon as it is in the leader's log; the answer waits
    # until the high watermark passes the log end offset of then (Kafka's coordinator
    # runtime holds a write operation's response until its records, or the last records
    # written before it, are committed), so an acknowledged commit, assignment or
    # deletion survives a failover to another replica. On a single node the high
    # watermark is always at the log end, and every answer is given at once.

    def join_group(self, request: JoinRequest, respond: JoinCallback) -> None:
        """JoinGroup (key 11); a static member's rejoin writes the group."""
        try:
            shard = self.shard_for(request.group_id)
        except KafkaError as exc:
            respond(JoinResult(exc.error_code, request.member_id))
            return
        index = self.partition_of(request.group_id)
        shard.join_group(
            request,
            self._held(index, respond, lambda result, error: JoinResult(error, result.member_id)),
        )

    def sync_group(self, request: SyncRequest, respond: SyncCallback) -> None:
        """SyncGroup (key 14); the leader's sync writes the group's assignment, which
        every member then gets."""
        try:
            shard = self.shard_for(request.group_id)
        except KafkaError as exc:
            respond(SyncResult(exc.error_code))
            return
        index = self.partition_of(request.group_id)
        shard.sync_group(request, self._held(index, respond, lambda _, error: SyncResult(error)))

    def commit_offsets(
        self,
        group_id: str,
        wanted: list[OffsetToCommit],
        respond: Callable[[dict[TopicPartition, ErrorCode]], None],
        *,
        member_id: str,
        instance_id: str | None,
        generation_id: int,
    ) -> None:
        """OffsetCommit (key 8): the error of each partition."""
        try:
            shard = self.shard_for(group_id)
        except KafkaError as exc:
            respond({item.tp: exc.error_code for item in wanted})
            return
        errors = shard.commit_offsets(group_id, member_id, instance_id, generation_id, wanted)
        if ErrorCode.none not in errors.values():
            respond(errors)  # nothing was written
            return
        self.when_replicated(
            self.partition_of(group_id), lambda error: respond(_failed_writes(errors, error))
        )

    def delete_groups(
        self, group_ids: Sequence[str], respond: Callable[[list[ErrorCode]], None]
    ) -> None:
        """DeleteGroups (key 42): the error of each group, in the order asked."""
        errors: list[ErrorCode] = []
        written: dict[int, list[int]] = {}  # partition -> positions of its deleted groups
        for group_id in group_ids:
            try:
                error = self.shard_for(group_id).delete_group(group_id)
            except KafkaError as exc:
                error = exc.error_code
            if error is ErrorCode.none:
                written.setdefault(self.partition_of(group_id), []).append(len(errors))
            errors.append(error)
        waiting = len(written)
        if not waiting:
            respond(errors)
            return

        def replicated(positions: list[int], error: ErrorCode) -> None:
            nonlocal waiting
            if error is not ErrorCode.none:
                for position in positions:
                    errors[position] = error
            waiting -= 1
            if not waiting:
                respond(errors)

        for index, positions in written.items():
            self.when_replicated(index, functools.partial(replicated, positions))

    def delete_offsets(
        self,
        group_id: str,
        partitions: list[TopicPartition],
        respond: Callable[[tuple[ErrorCode, dict[TopicPartition, ErrorCode]]], None],
    ) -> None:
        """OffsetDelete (key 47): the group's error, and each partition's."""
        try:
            shard = self.shard_for(group_id)
        except KafkaError as exc:
            respond((exc.error_code, {}))
            return
        answer = shard.delete_offsets(group_id, partitions)
        if answer[0] is not ErrorCode.none:
            respond(answer)
            return
        self.when_replicated(
            self.partition_of(group_id),
            lambda error: respond(answer if error is ErrorCode.none else (error, {})),
        )

    def when_replicated(self, index: int, then: Callable[[ErrorCode], None]) -> None:
        """Call ``then`` once the ISR of partition ``index`` has every record written to
        it so far -- at once if it already has -- with how that went as a coordinator
        error: NOT_COORDINATOR when leadership moved meanwhile, COORDINATOR_NOT_AVAILABLE
        when the ISR fell below ``min.insync.replicas`` or did not catch up within
        ``offsets.commit.timeout.ms`` (the client retries). No task: a callback on the
        replica manager's wait for acks=all."""
        tp = TopicPartition(OFFSETS_TOPIC, index)
        partition = self.replica_manager.partitions.get(tp)
        if partition is None:
            then(ErrorCode.not_coordinator)
            return
        end = partition.log.log_end_offset
        if partition.log.high_watermark >= end:
            then(ErrorCode.none)
            return
        results = {tp: ProduceResult(required_offset=end)}
        waiting = self.replica_manager.await_acks(results, OFFSET_COMMIT_TIMEOUT_MS)
        if waiting is None:
            then(coordinator_error_code(results[tp].error))
            return
        waiting.add_done_callback(
            lambda done: then(coordinator_error_code(done.result()[tp].error))
        )

    def _held(
        self,
        index: int,
        respond: Callable[[AnswerT], None],
        failed: Callable[[AnswerT, ErrorCode], AnswerT],
    ) -> Callable[[AnswerT], None]:
        """``respond`` for a shard's JoinGroup or SyncGroup answers: an error goes out at
        once, a success once partition ``index`` has replicated what was written (else
        ``failed(answer, error)``)."""

        def held(answer: AnswerT) -> None:
            if answer.error is not ErrorCode.none:
                respond(answer)
                return
            self.when_replicated(
                index,
                lambda error: respond(answer if error is ErrorCode.none else failed(answer, error)),
            )

        return held

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
        outcome: asyncio.Future[ErrorCode] = asyncio.get_running_loop().create_future()
        self.when_replicated(
            self.partition_of(group_id),
            lambda error: None if outcome.done() else outcome.set_result(error),
        )
        return _failed_writes(errors, await outcome)

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
            configs={
                **OFFSETS_TOPIC_CONFIGS,
                "segment.bytes": str(self.config.get("offsets.topic.segment.bytes")),
            },
        )

    # -- leadership ------------------------------------------------------------------------

    def became_leader(self, partition: Partition) -> None:
        """Load the partition's groups and serve them; nothing to do when they are
        served here already (a new leader epoch: the shard's state does not depend on
        it, as Kafka keeps a loaded group coordinator on a new epoch)."""
        if partition.tp.partition in self.shards:
            return
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
