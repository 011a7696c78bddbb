"""The partitions this broker hosts, and the produce and fetch paths across them.

Kafka's ReplicaManager: appends a produce request's records partition by partition, reads
a fetch request's partitions within its byte budgets (KIP-74), and parks a fetch that
found fewer than ``min_bytes`` until enough data arrives or ``max_wait_ms`` passes (the
fetch purgatory). Appends wake the fetches waiting on their partition.

Partitions whose log dir failed (``storage.log_dir_failure``) are offline, as Kafka's
``HostedPartition.Offline``: every request naming one gets KAFKA_STORAGE_ERROR, their
coordinators resign, parked fetches on them are answered at once, and Metadata lists
them with no leader and this broker among the offline replicas. They stay offline until
the broker restarts. ``offline_replicas`` is what the broker reports to the controller
(through its registration), which moves leadership and the ISR off them; listeners added
with ``add_offline_listener`` are told whenever the set changes.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import NamedTuple, Protocol

from odradek.cluster.brokers import BrokerRegistration, ReplicaKey
from odradek.cluster.metadata import MetadataListener, MetadataStore, TopicMetadata
from odradek.config import BrokerConfig, LogConfig, validate_topic_configs
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.protocol.types import TopicPartition, new_tuple
from odradek.replication.alter_log_dirs import LogDirMover
from odradek.replication.delayed_produce import DelayedProduce
from odradek.replication.fetch_expiry import FetchExpiry
from odradek.replication.fetcher import ReplicaFetcherManager
from odradek.replication.partition import AcksOutcome, Partition, PartitionRead
from odradek.replication.refused_sequences import RefusedSequences
from odradek.storage.errors import InconsistentTopicIdError, KafkaStorageError
from odradek.storage.log_manager import LogManager
from odradek.storage.values import AppendOrigin

log = logging.getLogger(__name__)


class UnknownTopicOrPartitionError(KafkaError):
    error_code = ErrorCode.unknown_topic_or_partition


class ProduceResult(NamedTuple):
    error: ErrorCode = ErrorCode.none
    base_offset: int = -1
    log_append_time: int = -1
    log_start_offset: int = -1
    message: str | None = None
    required_offset: int = -1
    """acks=all: the high watermark this append waits for (-1: nothing to wait for)."""


class FetchPartition(NamedTuple):
    """One partition of a fetch request."""

    tp: TopicPartition
    fetch_offset: int
    max_bytes: int
    current_leader_epoch: int = -1


class FetchResult(NamedTuple):
    tp: TopicPartition
    error: ErrorCode
    read: PartitionRead | None = None


class ParkedFetch:
    """A fetch waiting in the purgatory (Kafka's ``DelayedFetch``).

    Completes once, by calling ``on_complete``: when ``needed`` more bytes were appended
    to its partitions, when its partitions go away, at ``max_wait_ms``, or at shutdown.
    Made by ``ReplicaManager.park_fetch``; ``cancel`` forgets it without completing it
    (the client went away). No task, no coroutine and no timer of its own: its deadline
    is on the manager's ``FetchExpiry``.
    """

    __slots__ = (
        "_manager",
        "_on_complete",
        "done",
        "follower",
        "needed",
        "partitions",
        "stable_offsets",
    )

    def __init__(
        self,
        manager: ReplicaManager,
        needed: int,
        partitions: list[TopicPartition],
        on_complete: Callable[[], None],
        *,
        follower: bool = False,
        stable_offsets: dict[TopicPartition, int] | None = None,
    ) -> None:
        self._manager = manager
        self.follower = follower
        """A follower's fetch sees appends at once; a consumer's only as the high
        watermark passes them."""
        self.stable_offsets = stable_offsets
        """read_committed: each partition's last stable offset when parked. Records
        appended inside an open transaction are invisible to this fetch, so it is woken
        only once the LSO has moved (Kafka's DelayedFetch reads up to the LSO)."""
        self._on_complete: Callable[[], None] | None = on_complete
        self.needed = needed
        self.partitions = partitions
        self.done = False

    def wake(self) -> None:
        """Complete now (enough data, a partition went away, expiry or shutdown)."""
        on_complete = self._on_complete
        if self.cancel() and on_complete is not None:
            on_complete()

    def cancel(self) -> bool:
        """Leave the purgatory without completing; False if already gone."""
        if self.done:
            return False
        self.done = True
        # Done, it may wait on the expiry heap until its deadline: without the callback
        # (and the request it holds).
        self._on_complete = None
        self._manager._forget(self)
        return True


class LeadershipListener(Protocol):
    """Told when this broker starts or stops leading a partition of a topic it watches
    (coordinators load their state from the partitions they lead).

    ``became_leader`` is also called when this broker goes on leading a partition at a
    new leader epoch (a reassignment bumps it and may keep the leader), as Kafka calls
    a coordinator's ``onElection`` for every epoch it leads at: the coordinator epoch is
    the partition's leader epoch."""

    def became_leader(self, partition: Partition) -> None: ...
    def resigned(self, tp: TopicPartition) -> None: ...


class IsrChange(NamedTuple):
    """A new ISR the leader wants written for ``partition``, and why (for the log)."""

    partition: Partition
    isr: tuple[int, ...]
    why: str


class ReplicaManager(MetadataListener):
    def __init__(
        self,
        broker_id: int,
        config: BrokerConfig,
        log_manager: LogManager,
        metadata: MetadataStore,
        clock: Callable[[], int],
    ) -> None:
        self.broker_id = broker_id
        self.config = config
        self.log_manager = log_manager
        self.metadata = metadata
        self.clock = clock
        self.partitions: dict[TopicPartition, Partition] = {}
        self.offline_partitions: dict[TopicPartition, uuid.UUID] = {}
        """Hosted here, but in a failed log dir (or their log could not be created);
        each with its topic id."""
        self._offline_listeners: list[Callable[[], object]] = []
        self._waiters: dict[TopicPartition, set[ParkedFetch]] = {}
        self._fetch_expiry = FetchExpiry()
        self._produce_waiters: dict[TopicPartition, set[DelayedProduce]] = {}
        self._refused_sequences = RefusedSequences(clock)
        self.fetchers = ReplicaFetcherManager(self, config)
        self.log_dir_mover = LogDirMover(self)
        """Moves replicas between log dirs (AlterReplicaLogDirs)."""
        self._leadership_listeners: dict[str, list[LeadershipListener]] = {}
        self._suspended = False
        self._started = False
        """Metadata arrives (ZooKeeper) before the logs are loaded; hosting waits for
        ``startup``, which takes the whole metadata as it is then."""
        log_manager.log_dir_failure_channel.add_listener(self.handle_log_dir_failure)

    def add_leadership_listener(self, topic: str, listener: LeadershipListener) -> None:
        self._leadership_listeners.setdefault(topic, []).append(listener)

    def add_offline_listener(self, listener: Callable[[], object]) -> None:
        """``listener()`` is called after ``offline_replicas`` changed (on the loop)."""
        self._offline_listeners.append(listener)

    @property
    def offline_replicas(self) -> frozenset[ReplicaKey]:
        """The replicas hosted here that cannot serve, by topic id and partition."""
        return frozenset(
            (topic_id, tp.partition) for tp, topic_id in self.offline_partitions.items()
        )

    def _offline_changed(self) -> None:
        for listener in self._offline_listeners:
            listener()

    # -- hosting partitions ----------------------------------------------------------------

    def startup(self) -> None:
        self._started = True
        self._delete_older_incarnations()
        for topic in self.metadata.topics().values():
            self._host(topic, 0, is_new=False)
        hosted = set(self.partitions)
        for tp, stray in list(self.log_manager.logs.items()):
            if tp in hosted:
                continue
            known = self.metadata.topic(tp.topic)
            if (
                known is not None
                and known.topic_id == stray.topic_id
                and tp.partition < len(known.partitions)
                and self.broker_id not in known.partitions[tp.partition].replicas
            ):
                # Kafka's stray replica: a reassignment moved it off this broker while
                # the broker was away.
                log.info("deleting %s: this broker is no longer one of its replicas", tp)
                self.log_manager.delete_log(tp)
            else:
                log.warning("log %s belongs to no known topic; left on disk untouched", tp)
        for tp, log_dir in self.log_manager.interrupted_moves.items():
            self.log_dir_mover.resume(tp, log_dir)
        self.log_manager.interrupted_moves.clear()

    def _delete_older_incarnations(self) -> None:
        """Logs of a topic that was deleted and created again (same name, new topic id)
        while this broker was away: Kafka deletes such stray logs. Hosting them would
        fail with INCONSISTENT_TOPIC_ID and keep the new topic's replica here offline."""
        for tp, existing in list(self.log_manager.logs.items()):
            known = self.metadata.topic(tp.topic)
            if (
                known is not None
                and existing.topic_id is not None
                and existing.topic_id != known.topic_id
            ):
                log.info(
                    "deleting %s: its topic id %s belongs to a deleted topic of that name",
                    tp,
                    existing.topic_id,
                )
                self.log_manager.delete_log(tp)

    def log_config(self, topic: TopicMetadata) -> LogConfig:
        return LogConfig.build(self.config, validate_topic_configs(topic.configs))

    def _host(
        self, topic: TopicMetadata, first: int, last: int | None = None, *, is_new: bool = True
    ) -> None:
        """Host the partitions ``first``..``last`` (inclusive; all after ``first`` if
        None) of ``topic`` that have this broker among their replicas. ``is_new``: the
        replica is new here (a topic or partition created, a reassignment adding this
        broker); otherwise its log should exist and is not made anew while a log dir is
        offline (it may be there; Kafka's LeaderAndIsr ``isNew``)."""
        if not self._started:
            return
        config = self.log_config(topic)
        end = len(topic.partitions) if last is None else last + 1
        went_offline = False
        for index, state in enumerate(topic.partitions[first:end], start=first):
            if self.broker_id not in state.replicas:
                continue
            tp = TopicPartition(topic.name, index)
            if tp in self.offline_partitions:
                continue
            try:
                partition_log = self.log_manager.get_or_create_log(
                    tp, config, topic.topic_id, is_new=is_new
                )
                partition = Partition(tp, topic.topic_id, partition_log, state, self.broker_id)
            except KafkaStorageError as exc:
                log.error("partition %s is offline: %s", tp, exc)
                self.offline_partitions[tp] = topic.topic_id
                went_offline = True
                continue
            except InconsistentTopicIdError as exc:
                # Never expected after startup's clean-up; a listener must not raise
                # into the metadata store, so say it and leave the partition unhosted.
                log.error("partition %s not hosted: %s", tp, exc)
                continue
            self.partitions[tp] = partition
            if partition.is_leader:
                for listener in self._leadership_listeners.get(topic.name, ()):
                    listener.became_leader(partition)
            else:
                self.fetchers.follow(partition)
        if went_offline:
            self._offline_changed()

    def topic_created(self, topic: TopicMetadata) -> None:
        self._host(topic, 0)

    def partitions_added(self, topic: TopicMetadata, first_new: int) -> None:
        self._host(topic, first_new)

    def topic_deleted(self, topic: TopicMetadata) -> None:
        for index in range(len(topic.partitions)):
            self._stop_replica(TopicPartition(topic.name, index), delete=False)
        self.log_manager.delete_logs(
            TopicPartition(topic.name, index) for index in range(len(topic.partitions))
        )

    def _stop_replica(self, tp: TopicPartition, *, delete: bool = True) -> None:
        """Stop hosting ``tp`` and (unless the caller deletes many at once) delete its log
        (Kafka's StopReplica with delete)."""
        if self.offline_partitions.pop(tp, None) is not None:
            self._offline_changed()
        if self.partitions.pop(tp, None) is not None:
            self.fetchers.unfollow(tp)
            for listener in self._leadership_listeners.get(tp.topic, ()):
                listener.resigned(tp)
            if delete:
                self.log_manager.delete_log(tp)
        self._wake(tp)
        self._check_acks(tp)

    def _apply_replica_sets(self, topic: TopicMetadata, indices: Sequence[int]) -> None:
        """A reassignment changed replica sets: host the partitions this broker was added
        to (it then fetches them as a follower), stop hosting and delete the ones it was
        removed from."""
        for index in indices:
            tp = TopicPartition(topic.name, index)
            if self.broker_id in topic.partitions[index].replicas:
                if not self._suspended and tp not in self.partitions:
                    self._host(topic, index, index)
            elif tp in self.partitions or tp in self.offline_partitions:
                log.info("partition %s: no longer a replica here; deleting its log", tp)
                self._stop_replica(tp)

    def partition_states_changed(self, topic: TopicMetadata, indices: Sequence[int]) -> None:
        """Leadership moved (Kafka's LeaderAndIsr): become leader or follower."""
        if not self._started:
            return
        self._apply_replica_sets(topic, indices)
        for index in indices:
            tp = TopicPartition(topic.name, index)
            state = topic.partitions[index]
            partition = self.partitions.get(tp)
            if partition is None:
                continue
            was_leader = partition.is_leader
            epoch = partition.leader_epoch
            hw = partition.log.high_watermark
            partition.update_state(state, self.clock())
            if partition.is_leader:
                self.fetchers.unfollow(tp)
            else:
                self.fetchers.follow(partition)
            if was_leader and not partition.is_leader:
                for listener in self._leadership_listeners.get(topic.name, ()):
                    listener.resigned(tp)
                self._wake(tp)
            elif partition.is_leader and (not was_leader or partition.leader_epoch != epoch):
                for listener in self._leadership_listeners.get(topic.name, ()):
                    listener.became_leader(partition)
            if partition.log.high_watermark != hw:
                self._wake(tp)
            self._check_acks(tp)

    def session_lost(self) -> None:
        """The metadata can no longer be trusted: lead nothing until it arrives again
        (another broker may be leading these partitions by now)."""
        self._suspended = True
        for tp, partition in self.partitions.items():
            self.fetchers.unfollow(tp)
            if partition.is_leader:
                partition.update_state(replace(partition.state, leader=-1))
                for listener in self._leadership_listeners.get(tp.topic, ()):
                    listener.resigned(tp)
                self._wake(tp)
                self._check_acks(tp)

    def brokers_changed(self, brokers: Mapping[int, BrokerRegistration]) -> None:
        if self._suspended and self.broker_id in brokers:
            # Registered again after a lost session: take the stored states afresh.
            self._suspended = False
            for topic in self.metadata.topics().values():
                self.partition_states_changed(topic, range(len(topic.partitions)))

    def topic_configs_changed(self, topic: TopicMetadata) -> None:
        config = self.log_config(topic)
        for index in range(len(topic.partitions)):
            partition = self.partitions.get(TopicPartition(topic.name, index))
            if partition is not None:
                partition.update_config(config)

    def get_partition(self, tp: TopicPartition) -> Partition:
        partition = self.partitions.get(tp)
        if partition is None:
            if tp in self.offline_partitions:
                raise KafkaStorageError(f"Partition {tp} is in an offline log directory")
            raise UnknownTopicOrPartitionError(f"This server does not host {tp}.")
        return partition

    def is_offline(self, tp: TopicPartition) -> bool:
        return tp in self.offline_partitions

    def handle_log_dir_failure(self, log_dir: str) -> None:
        """Take the partitions of a failed log dir offline (Kafka's
        ``ReplicaManager.handleLogDirFailure``); called by the failure channel after the
        log manager closed their logs. Unlike Kafka, the broker does not halt when no
        log dir is left: it keeps answering, with KAFKA_STORAGE_ERROR where it must."""
        failed = [tp for tp, p in self.partitions.items() if p.log.parent_dir == log_dir]
        for tp in failed:
            partition = self.partitions.pop(tp)
            self.fetchers.unfollow(tp)
            self._check_acks(tp)
            self.offline_partitions[tp] = partition.topic_id
            for listener in self._leadership_listeners.get(tp.topic, ()):
                listener.resigned(tp)
            self._wake(tp)
        if failed:
            self._offline_changed()
        log.warning(
            "stopped serving %d partitions in failed log dir %s%s",
            len(failed),
            log_dir,
            "" if self.log_manager.live_log_dirs else "; no log dir is online",
        )

    # -- produce ---------------------------------------------------------------------------

    def append_records(
        self,
        required_acks: int,
        entries: Iterable[tuple[TopicPartition, bytes | bytearray | memoryview | None]],
        origin: AppendOrigin = AppendOrigin.CLIENT,
    ) -> dict[TopicPartition, ProduceResult]:
        """Append to partitions this broker leads. ``origin`` COORDINATOR is the broker's
        own writes (coordinator records, transaction markers), which may hold control
        batches."""
        results: dict[TopicPartition, ProduceResult] = {}
        for tp, records in entries:
            results[tp] = self._append(tp, records, required_acks, origin)
        return results

    def _append(
        self,
        tp: TopicPartition,
        records: bytes | bytearray | memoryview | None,
        acks: int,
        origin: AppendOrigin,
    ) -> ProduceResult:
        try:
            partition = self.get_partition(tp)
            if not records:
                raise KafkaError("Produce request with no records", ErrorCode.invalid_record)
            high_watermark = partition.log.high_watermark
            info = partition.append_records_to_leader(records, acks, origin)
        except KafkaError as exc:
            error = exc.error_code
            if records and origin is AppendOrigin.CLIENT:
                error = self._refused_sequences.answer(tp, records, error)
                if error is not exc.error_code:
                    return ProduceResult(
                        error=error,
                        message="refused like the batch before it: retry that one first",
                    )
            return ProduceResult(error=error, message=exc.message or None)
        if not info.duplicate:
            self._notify(tp, len(records), partition.log.high_watermark != high_watermark)
        return new_tuple(  # one per append
            ProduceResult,
            (
                ErrorCode.none,
                info.first_offset,
                info.log_append_time,
                info.log_start_offset,
                None,
                info.last_offset + 1 if acks == -1 else -1,
            ),
        )

    def await_acks(
        self, results: dict[TopicPartition, ProduceResult], timeout_ms: int
    ) -> asyncio.Future[dict[TopicPartition, ProduceResult]] | None:
        """For acks=all: a future of the results once every appended partition is
        replicated to its ISR (or failed, or timed out); None when nothing must wait."""
        pending: dict[TopicPartition, int] = {}
        for tp, result in results.items():
            if result.error is not ErrorCode.none or result.required_offset < 0:
                continue
            outcome = self._acks_outcome(tp, result.required_offset)
            if outcome.done:
                if outcome.error is not ErrorCode.none:
                    results[tp] = result._replace(error=outcome.error)
            else:
                pending[tp] = result.required_offset
        if not pending:
            return None
        delayed = DelayedProduce(
            results, pending, timeout_ms, self._acks_outcome, self._forget_produce
        )
        for tp in pending:
            self._produce_waiters.setdefault(tp, set()).add(delayed)
        return delayed.future

    def _acks_outcome(self, tp: TopicPartition, required_offset: int) -> AcksOutcome:
        partition = self.partitions.get(tp)
        if partition is None:
            return AcksOutcome(True, ErrorCode.not_leader_or_follower)
        return partition.acks_outcome(required_offset)

    def _check_acks(self, tp: TopicPartition) -> None:
        waiting = self._produce_waiters.get(tp)
        if waiting:
            for delayed in list(waiting):
                delayed.check(tp)

    def _forget_produce(self, delayed: DelayedProduce) -> None:
        for tp in list(delayed.pending) + list(delayed.results):
            waiters = self._produce_waiters.get(tp)
            if waiters is not None:
                waiters.discard(delayed)
                if not waiters:
                    del self._produce_waiters[tp]

    # -- replication: the leader's side ----------------------------------------------------

    def _follower_fetched(
        self, partition: Partition, replica_id: int, fetch_offset: int
    ) -> IsrChange | None:
        """A follower asked for ``fetch_offset``: it has everything before it. Returns the
        ISR expansion this calls for, if any, for the caller to write with others."""
        if partition.update_follower_fetch_state(replica_id, fetch_offset, self.clock()):
            self._high_watermark_moved(partition.tp)
        # A broker that left the live set (controlled shutdown) may still fetch for a
        # moment; it must not rejoin an ISR it is about to leave for good.
        expanded = (
            partition.isr_to_expand(replica_id) if replica_id in self.metadata.brokers() else None
        )
        if expanded is None:
            return None
        return IsrChange(partition, expanded, f"broker {replica_id} caught up")

    def _high_watermark_moved(self, tp: TopicPartition) -> None:
        self._wake(tp, consumers_only=True)
        self._check_acks(tp)

    def _alter_isrs(self, changes: Sequence[IsrChange]) -> None:
        """Write new ISRs (Kafka's AlterPartition), conditional on the partition epochs;
        the store's change notice then updates the partitions.

        The changes of one topic go in one write. A ZooKeeper write is a round trip and
        an fsync on the ZooKeeper server, made on the event loop: a follower that comes
        back catches up on every partition of ``__consumer_offsets`` and
        ``__transaction_state`` in the same fetch, and one write each stalled the leader
        for seconds on a loaded machine. A batch is written or refused whole (one stale
        state refuses the topic's batch); a refused expansion is asked for again by the
        follower's next fetch, a refused shrink by the next ISR check."""
        by_topic: dict[str, list[IsrChange]] = {}
        for change in changes:
            by_topic.setdefault(change.partition.tp.topic, []).append(change)
        for topic, batch in by_topic.items():
            try:
                self.metadata.alter_partition_states(
                    topic,
                    {
                        c.partition.tp.partition: replace(c.partition.state, isr=c.isr)
                        for c in batch
                    },
                )
            except KafkaError as exc:
                for c in batch:
                    log.info(
                        "ISR change of %s to %s not made: %s", c.partition.tp, list(c.isr), exc
                    )
                continue
            for c in batch:
                log.info("partition %s: ISR %s (%s)", c.partition.tp, list(c.isr), c.why)

    def maybe_shrink_isr(self, now: int) -> None:
        """Drop followers that have not caught up for ``replica.lag.time.max.ms``."""
        max_lag = int(self.config.get("replica.lag.time.max.ms"))
        changes = []
        for partition in list(self.partitions.values()):
            shrunk = partition.isr_to_shrink(now, max_lag)
            if shrunk is not None:
                dropped = sorted(set(partition.state.isr) - set(shrunk))
                changes.append(IsrChange(partition, shrunk, f"{dropped} fell behind"))
        self._alter_isrs(changes)

    # -- fetch -----------------------------------------------------------------------------

    @staticmethod
    def bytes_still_needed(results: Sequence[FetchResult], min_bytes: int, max_wait_ms: int) -> int:
        """How many more bytes a fetch waits for after its first read: 0 or less answers
        it now (Kafka's rule: no wait asked, nothing to read, ``min_bytes`` found, or an
        error in any partition)."""
        if max_wait_ms <= 0 or not results:
            return 0
        needed = min_bytes
        for result in results:  # a loop, not generators: once per fetch
            if result.error is not ErrorCode.none:
                return 0
            read = result.read
            info = read.info if read is not None else None
            records = info.records if info is not None else None
            if records is not None:
                needed -= records.size
        return needed

    def park_fetch(
        self,
        first_read: Sequence[FetchResult],
        needed: int,
        max_wait_ms: int,
        on_complete: Callable[[], None],
        *,
        follower: bool = False,
        read_committed: bool = False,
    ) -> ParkedFetch:
        """Park a fetch until ``needed`` bytes are appended to the partitions of
        ``first_read`` or ``max_wait_ms`` passes, then call ``on_complete`` (once).
        A ``read_committed`` consumer's fetch is completed by appends only once the last
        stable offset of the partition moved (a transaction marker appended, or the high
        watermark passing one): records of an open transaction are nothing it can read.

        Appends that happened between the first read and now (the request that wakes
        this fetch may have been handled before it was parked) complete it at once: the
        log end offsets seen by the first read are compared after parking. In that case
        ``on_complete`` runs before this returns.
        """
        stable = (
            {r.tp: r.read.last_stable_offset for r in first_read if r.read is not None}
            if read_committed
            else None
        )
        parked = ParkedFetch(
            self,
            needed,
            [result.tp for result in first_read],
            on_complete,
            follower=follower,
            stable_offsets=stable,
        )
        for tp in parked.partitions:
            self._waiters.setdefault(tp, set()).add(parked)
        for result in first_read:
            partition = self.partitions.get(result.tp)
            read = result.read
            moved = (
                read is None
                or partition is None
                or partition.log.log_end_offset != read.log_end_offset
                if follower
                else read is None
                or partition is None
                or (
                    partition.log.last_stable_offset != read.last_stable_offset
                    if read_committed
                    else partition.log.high_watermark != read.high_watermark
                )
            )
            if moved:
                parked.wake()
                return parked
        self._fetch_expiry.add(parked, max_wait_ms)
        return parked

    def read(
        self,
        partitions: Sequence[FetchPartition],
        *,
        max_bytes: int,
        isolation_level: int,
        replica_id: int = -1,
    ) -> list[FetchResult]:
        """Read each partition in order within the response budget (KIP-74). A
        follower's read (``replica_id`` >= 0) first records how far it has come."""
        results = []
        remaining = max_bytes
        min_one_message = True
        expansions = []
        for item in partitions:
            limit = min(item.max_bytes, remaining)
            if limit < 0:
                # Kafka's readFromLog answers the partition with an error, as here.
                results.append(FetchResult(item.tp, ErrorCode.unknown_server_error))
                continue
            try:
                partition = self.get_partition(item.tp)
                follower = replica_id >= 0
                if follower:
                    partition.check_leader_epoch(item.current_leader_epoch)
                    if not partition.is_leader:
                        raise KafkaError(
                            f"not the leader of {item.tp}", ErrorCode.not_leader_or_follower
                        )
                    expansion = self._follower_fetched(partition, replica_id, item.fetch_offset)
                    if expansion is not None:
                        expansions.append(expansion)
                read = partition.read(
                    item.fetch_offset,
                    limit,
                    isolation_level,
                    min_one_message,
                    item.current_leader_epoch,
                    follower=follower,
                )
            except KafkaError as exc:
                results.append(FetchResult(item.tp, exc.error_code))
                continue
            results.append(new_tuple(FetchResult, (item.tp, ErrorCode.none, read)))
            records = read.info.records if read.info is not None else None
            if records is not None and records.size:
                remaining = max(remaining - records.size, 0)
                min_one_message = False
        if expansions:
            self._alter_isrs(expansions)
        return results

    def _notify(self, tp: TopicPartition, appended: int, high_watermark_moved: bool) -> None:
        waiters = self._waiters.get(tp)
        if waiters:
            for waiter in list(waiters):
                if waiter.follower or high_watermark_moved:
                    waiter.needed -= appended
                    if waiter.needed <= 0 and self._stable_moved(waiter, tp):
                        waiter.wake()
        if high_watermark_moved:
            self._check_acks(tp)

    def _wake(self, tp: TopicPartition, *, consumers_only: bool = False) -> None:
        for waiter in list(self._waiters.get(tp, ())):
            if not consumers_only or (not waiter.follower and self._stable_moved(waiter, tp)):
                waiter.wake()

    def _stable_moved(self, waiter: ParkedFetch, tp: TopicPartition) -> bool:
        """Whether ``waiter`` can see something new in ``tp``: always for a follower or a
        read_uncommitted fetch; for read_committed, once the LSO passed where it was."""
        stable = waiter.stable_offsets
        if stable is None:
            return True
        partition = self.partitions.get(tp)
        return partition is None or partition.log.last_stable_offset > stable.get(tp, -1)

    def _forget(self, waiter: ParkedFetch) -> None:
        for tp in waiter.partitions:
            waiters = self._waiters.get(tp)
            if waiters is not None:
                waiters.discard(waiter)
                if not waiters:
                    del self._waiters[tp]

    def complete_waiting(self) -> None:
        """Answer every parked fetch and waiting produce now (shutdown)."""
        for waiters in list(self._waiters.values()):
            for waiter in list(waiters):
                waiter.wake()
        self._fetch_expiry.close()
        for produce_waiters in list(self._produce_waiters.values()):
            for delayed in list(produce_waiters):
                delayed.cancel()
