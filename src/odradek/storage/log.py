"""One partition's log (Kafka's ``UnifiedLog``): offsets, validation, producer state,
leader epochs, retention, over the segments of a ``LocalLog``.

Partition directory ``<log.dir>/<topic>-<partition>/`` (layout in ``log_files``): the
segments, ``*.snapshot`` producer snapshots, ``leader-epoch-checkpoint`` and
``partition.metadata``. Offsets: log start offset <= last stable offset <= high watermark
<= log end offset. The high watermark is kept here but advanced by the caller
(``update_high_watermark``; on a single node, to the log end offset after each append);
nothing at or above it is read by consumers, nor deleted by retention. The last stable
offset (LSO) is min(first unstable offset, high watermark): the first offset of the
earliest transaction still open, or completed with its marker not yet below the high
watermark (``producer_state``), no lower than the log start offset. read_committed
consumers read below it and learn the aborted transactions in what they read from the
segments' transaction indexes (``collect_aborted_transactions``). A log without
transactions pays nothing for them: the first unstable offset is None and no index is
looked at on append.

Not thread-safe: the broker calls one log from one thread (its event loop). ``flush``
blocks on fsync; a caller that moves it to a worker thread must not run other methods
of the same log meanwhile. The fsyncs after a roll can be left to a flush scheduler
(``FlushJob``), whose ``run`` is safe in any thread.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable
from typing import Concatenate, NoReturn, ParamSpec, TypeVar

from odradek.config import LogConfig
from odradek.protocol.types import TopicPartition, new_tuple
from odradek.storage import checkpoints
from odradek.storage.errors import (
    InconsistentTopicIdError,
    KafkaStorageError,
    LogDirFullError,
    OffsetOutOfRangeError,
    RecordBatchTooLargeError,
    UnexpectedAppendOffsetError,
)
from odradek.storage.file_records import FileRegion, HandleCache
from odradek.storage.leader_epoch import LeaderEpochFileCache
from odradek.storage.loader import LogLoader, rebuild_producer_state
from odradek.storage.local_log import LocalLog
from odradek.storage.log_dir_failure import LogDirFailureChannel
from odradek.storage.producer_state import (
    CompletedTxn,
    ProducerAppendInfo,
    ProducerStateManager,
)
from odradek.storage.segment import Clock, LogSegment
from odradek.storage.validator import LogValidator
from odradek.storage.values import (
    NO_TIMESTAMP,
    AbortedTxn,
    ActiveProducer,
    AppendOrigin,
    FetchDataInfo,
    LogAppendInfo,
    LogOffsetMetadata,
    TimestampAndOffset,
)

log = logging.getLogger(__name__)

EARLIEST_TIMESTAMP = -2
LATEST_TIMESTAMP = -1
MAX_TIMESTAMP = -3
EARLIEST_LOCAL_TIMESTAMP = -4
LATEST_TIERED_TIMESTAMP = -5
DEFAULT_PRODUCER_ID_EXPIRATION_MS = 86_400_000


def system_clock() -> int:
    return time.time_ns() // 1_000_000


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _storage_guard(
    doing: str,
) -> Callable[[Callable[Concatenate[Log, _P], _R]], Callable[Concatenate[Log, _P], _R]]:
    """Kafka's ``maybeHandleIOException`` around a ``Log`` method: an OSError or
    KafkaStorageError escaping it is raised as KafkaStorageError, after reporting the
    log dir as failed unless it is a full disk (``Log.storage_failure``)."""

    def decorate(
        method: Callable[Concatenate[Log, _P], _R],
    ) -> Callable[Concatenate[Log, _P], _R]:
        @functools.wraps(method)
        def guarded(self: Log, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
            try:
                return method(self, *args, **kwargs)
            except (OSError, KafkaStorageError) as exc:
                self.raise_storage_failure(exc, doing)

        return guarded

    return decorate


class FlushJob:
    """The fsyncs a roll leaves to a flush scheduler (see ``Log.roll``).

    ``run`` touches nothing but the files it names (by path: an evicted or deleted
    segment does not matter), so it may run in any thread; ``complete`` must then be
    called on the log's own thread. Once both ran, everything below ``up_to`` is on disk.
    """

    __slots__ = ("directory", "error", "log", "paths", "truncations", "up_to")

    def __init__(self, log: Log, up_to: int, paths: list[str], truncations: int) -> None:
        self.log = log
        self.up_to = up_to
        self.paths = paths
        self.truncations = truncations
        self.directory = log.dir
        self.error: KafkaStorageError | None = None
        """Set by ``run`` when an fsync failed; ``complete`` reports it."""

    def run(self) -> None:
        """fsync every file (skipping ones deleted meanwhile), then the directory (unless
        it was deleted, or renamed by a move to another log dir, meanwhile); nothing
        at all when there is no file. Never raises: a failure is kept in ``error``."""
        if not self.paths:
            return
        try:
            for path in self.paths:
                try:
                    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                except FileNotFoundError:
                    continue
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            if os.path.isdir(self.directory):  # else deleted or moved meanwhile
                checkpoints.fsync_dir(self.directory)
        except OSError as exc:
            self.error = KafkaStorageError(f"cannot flush {self.directory}: {exc}")
        except KafkaStorageError as exc:
            self.error = exc

    def complete(self) -> None:
        """Advance the log's recovery point; if ``run`` failed, report the log dir as
        failed instead and raise the KafkaStorageError."""
        if self.error is not None:
            raise self.log.storage_failure(self.error, "error while flushing")
        self.log.complete_flush(self)


FlushScheduler = Callable[[FlushJob], None]


class Log:
    """See the module docstring. Made by ``Log.open``."""

    def __init__(
        self,
        local_log: LocalLog,
        *,
        log_start_offset: int,
        leader_epoch_cache: LeaderEpochFileCache,
        producer_state: ProducerStateManager,
        topic_id: uuid.UUID | None,
        log_dir_failure_channel: LogDirFailureChannel | None = None,
    ) -> None:
        self._local = local_log
        self._log_dir_failure_channel = log_dir_failure_channel
        self._log_start_offset = log_start_offset
        self._leader_epoch_cache = leader_epoch_cache
        self._producer_state = producer_state
        self._topic_id = topic_id
        self._partition_metadata_unsynced = False
        self._validator = LogValidator(local_log.topic_partition, local_log.config)
        self._high_watermark = log_start_offset
        self._high_watermark_metadata: LogOffsetMetadata | None = None
        self._first_unstable_offset: int | None = None
        self._truncated_to: int | None = None
        self._first_unstable_metadata: LogOffsetMetadata | None = None
        self._flush_scheduler: FlushScheduler | None = None

    @classmethod
    def open(
        cls,
        directory: str,
        config: LogConfig,
        *,
        topic_id: uuid.UUID | None = None,
        recovery_point: int = 0,
        log_start_offset: int = 0,
        clean_shutdown: bool = False,
        high_watermark: int | None = None,
        clock: Clock | None = None,
        producer_id_expiration_ms: int = DEFAULT_PRODUCER_ID_EXPIRATION_MS,
        handle_cache: HandleCache | None = None,
        flush_scheduler: FlushScheduler | None = None,
        log_dir_failure_channel: LogDirFailureChannel | None = None,
        topic_partition: TopicPartition | None = None,
    ) -> Log:
        """Open (creating if needed) and recover the log in ``directory``. With a
        ``flush_scheduler``, rolls leave their fsyncs to it (see ``roll``); storage
        failures are reported to ``log_dir_failure_channel``. ``topic_partition`` is
        read from the directory name unless given (a ``-future`` directory's is not)."""
        clock = clock or system_clock
        directory = os.path.abspath(directory)
        tp = topic_partition or TopicPartition.from_dir_name(os.path.basename(directory))
        os.makedirs(directory, exist_ok=True)
        cache = LeaderEpochFileCache(tp, directory)
        producer_state = ProducerStateManager(
            tp, directory, producer_id_expiration_ms=producer_id_expiration_ms, file_names=()
        )
        loader = LogLoader(
            directory,
            tp,
            config,
            clock=clock,
            handle_cache=handle_cache,
            clean_shutdown=clean_shutdown,
            log_start_offset_checkpoint=log_start_offset,
            recovery_point_checkpoint=recovery_point,
            leader_epoch_cache=cache,
            producer_state=producer_state,
        )
        offsets = loader.load()
        local = LocalLog(
            directory,
            tp,
            config,
            loader.segments,
            recovery_point=offsets.recovery_point,
            next_offset=offsets.next_offset,
            clock=clock,
            handle_cache=handle_cache,
        )
        result = cls(
            local,
            log_start_offset=offsets.log_start_offset,
            leader_epoch_cache=cache,
            producer_state=producer_state,
            topic_id=checkpoints.read_partition_metadata(directory),
            log_dir_failure_channel=log_dir_failure_channel,
        )
        result._flush_scheduler = flush_scheduler
        result._rebuild_producer_state(
            offsets.next_offset, reload_from_clean_shutdown=clean_shutdown
        )
        if topic_id is not None:
            result.assign_topic_id(topic_id)
        result.update_high_watermark(
            offsets.log_start_offset if high_watermark is None else high_watermark
        )
        result._refresh_transactions()
        return result

    def __repr__(self) -> str:
        return (
            f"Log({self.topic_partition}, log_start_offset={self._log_start_offset}, "
            f"log_end_offset={self.log_end_offset}, high_watermark={self._high_watermark})"
        )

    # -- state -----------------------------------------------------------------------------

    @property
    def dir(self) -> str:
        return self._local.dir

    @property
    def parent_dir(self) -> str:
        """The log dir (one of ``log.dirs``) holding this partition's directory."""
        return os.path.dirname(self._local.dir)

    def raise_storage_failure(self, error: OSError | KafkaStorageError, doing: str) -> NoReturn:
        """Raise what ``storage_failure`` makes of ``error``: ``error`` itself or a
        KafkaStorageError caused by it."""
        raised = self.storage_failure(error, doing)
        if raised is error:
            raise error
        raise raised from error

    def storage_failure(self, error: OSError | KafkaStorageError, doing: str) -> KafkaStorageError:
        """The KafkaStorageError to raise for ``error`` met while ``doing``. Unless it is
        a full disk (``LogDirFullError``: the write was undone, the log is intact), the
        log dir is reported to the failure channel, which takes it offline."""
        if isinstance(error, LogDirFullError):
            return error
        if not isinstance(error, KafkaStorageError):
            error = KafkaStorageError(f"{doing} {self.topic_partition}: {error}")
        channel = self._log_dir_failure_channel
        if channel is not None:
            channel.maybe_add_offline_log_dir(
                self.parent_dir, f"{doing} {self.topic_partition}", error
            )
        return error

    @property
    def topic_partition(self) -> TopicPartition:
        return self._local.topic_partition

    @property
    def topic_id(self) -> uuid.UUID | None:
        return self._topic_id

    @property
    def config(self) -> LogConfig:
        return self._local.config

    @property
    def log_start_offset(self) -> int:
        return self._log_start_offset

    @property
    def log_end_offset(self) -> int:
        return self._local.log_end_offset

    @property
    def log_end_offset_metadata(self) -> LogOffsetMetadata:
        return self._local.log_end_offset_metadata

    @property
    def high_watermark(self) -> int:
        return self._high_watermark

    @property
    def last_stable_offset(self) -> int:
        """The offset read_committed consumers read below: min(first unstable offset,
        high watermark)."""
        first = self._first_unstable_offset
        if first is not None and first < self._high_watermark:
            return first
        return self._high_watermark

    @property
    def first_unstable_offset(self) -> int | None:
        """First offset of the earliest transaction open or not yet replicated (never
        below the log start offset); None when there is none."""
        return self._first_unstable_offset

    def _update_first_unstable_offset(self) -> None:
        first = self._producer_state.first_unstable_offset()
        if first is not None and first < self._log_start_offset:
            first = self._log_start_offset
        if first != self._first_unstable_offset:
            self._first_unstable_offset = first
            self._first_unstable_metadata = None

    def _refresh_transactions(self) -> None:
        """After the producer state was rebuilt: forget the completed transactions below
        the high watermark and recompute the first unstable offset."""
        self._producer_state.on_high_watermark_updated(self._high_watermark)
        self._first_unstable_metadata = None
        self._update_first_unstable_offset()

    def active_producers(self) -> list[ActiveProducer]:
        """Every producer with state on this partition (DescribeProducers), by id."""
        return self._producer_state.active_producers()

    @property
    def recovery_point(self) -> int:
        return self._local.recovery_point

    @property
    def size_in_bytes(self) -> int:
        return self._local.segments.size_in_bytes()

    @property
    def number_of_segments(self) -> int:
        return len(self._local.segments)

    @property
    def segments(self) -> list[LogSegment]:
        return list(self._local.segments)

    @property
    def active_segment(self) -> LogSegment:
        return self._local.active_segment

    @property
    def leader_epoch_cache(self) -> LeaderEpochFileCache:
        return self._leader_epoch_cache

    @property
    def producer_state(self) -> ProducerStateManager:
        return self._producer_state

    @property
    def last_flush_time(self) -> int:
        return self._local.last_flush_time

    @property
    def unflushed_messages(self) -> int:
        return self._local.unflushed_messages

    def update_config(self, config: LogConfig) -> None:
        self._local.update_config(config)
        self._validator = LogValidator(self.topic_partition, config)

    @_storage_guard("error while writing the topic id of")
    def assign_topic_id(self, topic_id: uuid.UUID) -> None:
        """Record the topic id in ``partition.metadata`` (InconsistentTopicIdError if the
        file names another)."""
        if self._topic_id is not None:
            if self._topic_id != topic_id:
                raise InconsistentTopicIdError(
                    f"tried to assign topic id {topic_id} to log {self.topic_partition} "
                    f"which already has topic id {self._topic_id}"
                )
            return
        # Written now, made durable by the next flush (as Kafka's PartitionMetadataFile):
        # two fsyncs per new partition made creating wide topics fsync-bound. A file lost
        # in a crash is written again when the broker next hosts the partition.
        checkpoints.write_partition_metadata(self.dir, topic_id, fsync=False)
        self._topic_id = topic_id
        self._partition_metadata_unsynced = True

    def update_high_watermark(self, offset: int) -> int:
        """Set the high watermark, clamped to [log start offset, log end offset]."""
        new = min(max(offset, self._log_start_offset), self.log_end_offset)
        if new != self._high_watermark:
            self._high_watermark = new
            self._high_watermark_metadata = None
            state = self._producer_state
            if state.unreplicated_txns:
                state.on_high_watermark_updated(new)
                self._update_first_unstable_offset()
        return new

    def _high_watermark_offset_metadata(self) -> LogOffsetMetadata:
        metadata = self._high_watermark_metadata
        if metadata is None or metadata.message_offset != self._high_watermark:
            metadata = self._local.convert_to_offset_metadata(self._high_watermark)
            self._high_watermark_metadata = metadata
        return metadata

    # -- appends ---------------------------------------------------------------------------

    def append_as_leader(
        self,
        records: bytes | bytearray | memoryview,
        leader_epoch: int,
        *,
        origin: AppendOrigin = AppendOrigin.CLIENT,
    ) -> LogAppendInfo:
        """Validate, assign offsets and append ``records`` (one blob of batches, patched in
        place if it is a ``bytearray``) with a single write."""
        # The storage guard written out: as the decorator, its forwarding of *args and
        # **kwargs cost thousands of instructions on every produce.
        try:
            return self._append_as_leader(records, leader_epoch, origin)
        except (OSError, KafkaStorageError) as exc:
            self.raise_storage_failure(exc, "error while appending records to")

    def _append_as_leader(
        self,
        records: bytes | bytearray | memoryview,
        leader_epoch: int,
        origin: AppendOrigin,
    ) -> LogAppendInfo:
        # A writable buffer (the request frame itself) is patched in place: no copy.
        if isinstance(records, bytearray) or (
            isinstance(records, memoryview) and not records.readonly
        ):
            buffer: bytearray | memoryview = records
        else:
            buffer = bytearray(records)
        local = self._local
        now = local.clock()
        (
            headers,
            first_offset,
            last_offset,
            max_timestamp,
            offset_of_max_timestamp,
            log_append_time,
            record_count,
            valid_bytes,
            recompressed,
        ) = self._validator.validate_and_assign_offsets(
            buffer,
            first_offset=local.log_end_offset,
            leader_epoch=leader_epoch,
            now=now,
            origin=origin,
        )
        if recompressed is not None:
            buffer = recompressed
        updated, duplicate, completed = self._producer_state.analyze(headers, origin, buffer)
        if duplicate is not None:
            lat = log_append_time != NO_TIMESTAMP
            return LogAppendInfo(
                first_offset=duplicate.first_offset,
                last_offset=duplicate.last_offset,
                max_timestamp=duplicate.timestamp,
                offset_of_max_timestamp=duplicate.last_offset,
                log_append_time=duplicate.timestamp if lat else NO_TIMESTAMP,
                log_start_offset=self._log_start_offset,
                record_count=0,
                batch_count=0,
                valid_bytes=0,
                last_leader_epoch=leader_epoch,
                duplicate=True,
            )
        size = len(buffer)
        self._check_segment_size(size)
        if leader_epoch >= 0:
            self._leader_epoch_cache.assign(leader_epoch, first_offset)
        self._maybe_roll(size, max_timestamp, last_offset, now)
        local.append(
            buffer,
            last_offset=last_offset,
            largest_timestamp=max_timestamp,
            offset_of_max_timestamp=offset_of_max_timestamp,
            first_offset=first_offset,
            first_batch_size=headers[0].size,
        )
        if completed is not None:
            self._index_aborted_txns(completed, first_offset)
        self._after_append(updated, completed, last_offset)
        return new_tuple(  # one per append
            LogAppendInfo,
            (
                first_offset,
                last_offset,
                max_timestamp,
                offset_of_max_timestamp,
                log_append_time,
                self._log_start_offset,
                record_count,
                len(headers),
                valid_bytes,
                leader_epoch,
                False,  # duplicate
            ),
        )

    @_storage_guard("error while appending records to")
    def append_as_follower(self, records: bytes | bytearray | memoryview) -> LogAppendInfo:
        """Append batches copied from the leader, keeping their offsets and epochs."""
        result = self._validator.analyze_follower_records(records)
        headers = result.headers
        if result.first_offset < self.log_end_offset:
            raise UnexpectedAppendOffsetError(
                f"unexpected offset in the append to {self.topic_partition}: first offset "
                f"{result.first_offset} is below the log end offset {self.log_end_offset}"
            )
        for header in headers:
            if header.partition_leader_epoch >= 0:
                self._leader_epoch_cache.assign(header.partition_leader_epoch, header.base_offset)
        updated, _, completed = self._producer_state.analyze(
            headers, AppendOrigin.REPLICATION, records
        )
        self._check_segment_size(len(records))
        now = self._local.clock()
        self._maybe_roll(
            len(records), result.max_timestamp, result.last_offset, now, result.first_offset
        )
        self._local.append(
            records,
            last_offset=result.last_offset,
            largest_timestamp=result.max_timestamp,
            offset_of_max_timestamp=result.offset_of_max_timestamp,
            first_offset=result.first_offset,
            first_batch_size=headers[0].size,
        )
        if completed is not None:
            self._index_aborted_txns(completed, result.first_offset)
        self._after_append(updated, completed, result.last_offset)
        return LogAppendInfo(
            first_offset=result.first_offset,
            last_offset=result.last_offset,
            max_timestamp=result.max_timestamp,
            offset_of_max_timestamp=result.offset_of_max_timestamp,
            log_append_time=NO_TIMESTAMP,
            log_start_offset=self._log_start_offset,
            record_count=result.record_count,
            batch_count=len(headers),
            valid_bytes=result.valid_bytes,
            last_leader_epoch=headers[-1].partition_leader_epoch,
        )

    def _check_segment_size(self, size: int) -> None:
        if size > self._local.config.segment_bytes:
            raise RecordBatchTooLargeError(
                f"message batch size is {size} bytes in append to partition "
                f"{self.topic_partition}, which exceeds the maximum configured segment size "
                f"of {self.config.segment_bytes}"
            )

    def _index_aborted_txns(
        self, completed: list[tuple[CompletedTxn, int]], first_offset: int
    ) -> None:
        """Write the transaction index entries of the aborts just appended (their markers
        are in the active segment). A marker must not stay in the log without its entry:
        if the disk is full, the append is undone and LogDirFullError raised."""
        segment = self._local.active_segment
        try:
            for txn, last_stable_offset in completed:
                if txn.is_aborted:
                    segment.update_txn_index(
                        txn.producer_id, txn.first_offset, txn.last_offset, last_stable_offset
                    )
        except LogDirFullError:
            try:
                self._local.truncate_to(first_offset)
            except (OSError, KafkaStorageError) as exc:
                raise KafkaStorageError(
                    f"cannot undo an append to {self.topic_partition} whose transaction "
                    f"index entry could not be written: {exc}"
                ) from exc
            raise

    def _after_append(
        self,
        updated: dict[int, ProducerAppendInfo],
        completed: list[tuple[CompletedTxn, int]] | None,
        last_offset: int,
    ) -> None:
        state = self._producer_state
        for info in updated.values():
            state.update(info)
        if completed is not None:
            for txn, _ in completed:
                state.complete_txn(txn)
        state.update_map_end_offset(last_offset + 1)
        if state.ongoing_txns or state.unreplicated_txns or self._first_unstable_offset is not None:
            self._update_first_unstable_offset()
        local = self._local
        if local.unflushed_messages >= local.config.flush_messages:
            self.flush()

    def _maybe_roll(
        self,
        size: int,
        max_timestamp: int,
        last_offset: int,
        now: int,
        first_offset: int | None = None,
    ) -> None:
        local = self._local
        config = local.config
        if local.active_segment.should_roll(
            max_segment_ms=config.segment_ms,
            max_segment_bytes=config.segment_bytes,
            max_timestamp_in_messages=max_timestamp,
            max_offset_in_messages=last_offset,
            messages_size=size,
            now=now,
        ):
            self.roll(first_offset)

    @_storage_guard("error while rolling")
    def roll(self, expected_next_offset: int | None = None) -> LogSegment:
        """Start a new segment; snapshot producer state there and flush the old segments.

        Without a flush scheduler the flush happens here. With one (the broker), the
        fsyncs of the old segments and of the snapshot are handed to it as a
        ``FlushJob`` and run off the caller's thread, as Kafka flushes a rolled segment
        on its scheduler: an fsync of a segment's worth of dirty data takes long enough
        to stall every partition otherwise. The recovery point moves only when the job
        completes, so recovery after a crash never skips data that was not fsynced.
        """
        segment = self._local.roll(expected_next_offset)
        self._producer_state.update_map_end_offset(segment.base_offset)
        scheduler = self._flush_scheduler
        if scheduler is None:
            self._snapshot_at_roll(sync=True)
            self.flush(segment.base_offset)
            return segment
        snapshot = self._snapshot_at_roll(sync=False)
        paths = self._local.unflushed_files(segment.base_offset)
        if snapshot is not None:
            paths.append(snapshot)
        scheduler(FlushJob(self, segment.base_offset, paths, self._local.truncations))
        return segment

    @_storage_guard("error while flushing")
    def _snapshot_at_roll(self, *, sync: bool) -> str | None:
        """The producer snapshot a roll writes; on a full disk there is none (recovery
        replays from the previous one) rather than a failed roll."""
        try:
            return self._producer_state.take_snapshot(sync=sync)
        except LogDirFullError as exc:
            log.warning("%s; no producer snapshot for this roll of %s", exc, self.topic_partition)
            return None

    def flush_job(self) -> FlushJob:
        """Everything of this log not yet on disk, as a job for a caller that batches the
        fsyncs of many logs (shutdown): a producer snapshot at the log end is written now
        (not synced) and the job fsyncs it with the unflushed segments and indexes."""
        snapshot = self._producer_state.take_snapshot(sync=False)
        end = self.log_end_offset
        paths = self._local.unflushed_files(end)
        if snapshot is not None:
            paths.append(snapshot)
        if self._partition_metadata_unsynced:
            paths.append(os.path.join(self.dir, checkpoints.PARTITION_METADATA_FILE))
        return FlushJob(self, end, paths, self._local.truncations)

    def complete_flush(self, job: FlushJob) -> None:
        """Called on the log's thread once ``job.run()`` returned: advance the recovery
        point, unless the log was truncated meanwhile (the job may have fsynced files
        that no longer hold what they held when it was made)."""
        if job.truncations == self._local.truncations:
            flushed_from = self._local.recovery_point
            self._local.mark_flushed(job.up_to)
            self._local.release_rolled_segments(flushed_from, job.up_to)
        if os.path.join(self.dir, checkpoints.PARTITION_METADATA_FILE) in job.paths:
            self._partition_metadata_unsynced = False

    @_storage_guard("error while flushing")
    def flush(self, up_to: int | None = None) -> None:
        """fsync segments below ``up_to`` (default: everything) and advance the recovery
        point there."""
        offset = self.log_end_offset if up_to is None else min(up_to, self.log_end_offset)
        self._local.flush(offset)
        if self._partition_metadata_unsynced:
            checkpoints.fsync_partition_metadata(self.dir)
            self._partition_metadata_unsynced = False

    # -- reads -----------------------------------------------------------------------------

    def read(
        self,
        start_offset: int,
        max_bytes: int,
        *,
        max_offset: int | None = None,
        min_one_message: bool = True,
    ) -> FetchDataInfo:
        """Batches from ``start_offset`` (from the start of its batch), below ``max_offset``
        (default: the log end offset; pass the high watermark or last stable offset for
        consumers), from one segment. OffsetOutOfRangeError outside [log start, log end]."""
        # The storage guard written out: a consumer at the log end reads once per record
        # (twice when its fetch parked), and the decorator's forwarding costs thousands of
        # instructions a call.
        try:
            return self._read(start_offset, max_bytes, max_offset, min_one_message)
        except (OSError, KafkaStorageError) as exc:
            self.raise_storage_failure(exc, "error while reading")

    def _read(
        self, start_offset: int, max_bytes: int, max_offset: int | None, min_one_message: bool
    ) -> FetchDataInfo:
        if start_offset < self._log_start_offset:
            raise OffsetOutOfRangeError(
                f"received request for offset {start_offset} for partition "
                f"{self.topic_partition}, but we only have log segments starting from offset: "
                f"{self._log_start_offset}"
            )
        end = self.log_end_offset
        if max_offset is None or max_offset >= end:
            max_metadata = self._local.log_end_offset_metadata
        elif max_offset == self._high_watermark:
            max_metadata = self._high_watermark_offset_metadata()
        elif max_offset == self._first_unstable_offset:
            max_metadata = self._first_unstable_metadata or self._local.convert_to_offset_metadata(
                max_offset
            )
            self._first_unstable_metadata = max_metadata
        else:
            max_metadata = self._local.convert_to_offset_metadata(max_offset)
        return self._local.read(
            start_offset,
            max_bytes,
            min_one_message=min_one_message,
            max_offset_metadata=max_metadata,
        )

    @_storage_guard("error while reading the transaction index of")
    def collect_aborted_transactions(
        self, start_offset: int, upper_bound_offset: int
    ) -> list[AbortedTxn]:
        """The aborted transactions overlapping [start_offset, upper_bound_offset), oldest
        marker first (Kafka's ``collectAbortedTransactions``): the transaction indexes
        from the segment holding ``start_offset`` on, up to the first entry whose last
        stable offset reaches the upper bound."""
        segments = self._local.segments
        segment = segments.floor(start_offset) or segments.first
        out: list[AbortedTxn] = []
        while segment is not None:
            if segment.collect_aborted_txns(start_offset, upper_bound_offset, out):
                break
            segment = segments.higher(segment.base_offset)
        return out

    def aborted_transactions_for(self, info: FetchDataInfo) -> list[AbortedTxn]:
        """The aborted transactions a read_committed fetch returns with ``info`` (a
        ``read`` of this log), as Kafka's ``addAbortedTransactions``: those overlapping
        the fetch offset up to an upper bound just past the data read, from the offset
        index (else the next segment's base offset, else the log end offset)."""
        records = info.records
        if records is None or records.size == 0:
            return []  # most reads at the log end: no index read, no storage guard
        return self._aborted_transactions_for(info, records)

    @_storage_guard("error while reading the transaction index of")
    def _aborted_transactions_for(
        self, info: FetchDataInfo, records: FileRegion
    ) -> list[AbortedTxn]:
        base = info.fetch_offset_metadata.segment_base_offset
        segments = self._local.segments
        segment = segments.get(base)
        upper: int | None = None
        if segment is not None:
            upper = segment.fetch_upper_bound_offset(records.position, records.size)
            if upper is None:
                following = segments.higher(base)
                upper = following.base_offset if following is not None else self.log_end_offset
        else:
            upper = self.last_stable_offset
        return self.collect_aborted_transactions(info.fetch_offset, upper)

    @_storage_guard("error while searching offsets of")
    def fetch_offset_by_timestamp(self, timestamp: int) -> TimestampAndOffset | None:
        """ListOffsets: -2 earliest, -1 latest (log end offset; the caller bounds it by the
        high watermark or last stable offset), -3 the record with the largest timestamp,
        else the first record with timestamp >= ``timestamp``. None when there is none."""
        cache = self._leader_epoch_cache
        if timestamp in (EARLIEST_TIMESTAMP, EARLIEST_LOCAL_TIMESTAMP):
            earliest = cache.earliest_entry()
            epoch = (
                earliest.epoch
                if earliest is not None and earliest.start_offset <= self._log_start_offset
                else None
            )
            return TimestampAndOffset(NO_TIMESTAMP, self._log_start_offset, epoch)
        if timestamp == LATEST_TIMESTAMP:
            return TimestampAndOffset(NO_TIMESTAMP, self.log_end_offset, cache.latest_epoch)
        if timestamp == LATEST_TIERED_TIMESTAMP:
            return TimestampAndOffset(NO_TIMESTAMP, -1, -1)
        if timestamp == MAX_TIMESTAMP:
            return self._local.find_max_timestamp()
        return self._local.find_offset_by_timestamp(timestamp, self._log_start_offset)

    def end_offset_for_epoch(self, leader_epoch: int) -> tuple[int, int] | None:
        """(epoch, end offset) for OffsetForLeaderEpoch, or None when undefined."""
        epoch, offset = self._leader_epoch_cache.end_offset_for(leader_epoch, self.log_end_offset)
        return None if offset < 0 else (epoch, offset)

    # -- retention and log start offset ----------------------------------------------------

    @_storage_guard("error while deleting segments of")
    def delete_old_segments(self, now: int | None = None) -> int:
        """Delete segments wholly below the log start offset and, on ``delete`` topics,
        those past ``retention.bytes`` / ``retention.ms`` (by largest timestamp). Only whole
        segments below the high watermark; returns how many were deleted."""
        now = self._local.clock() if now is None else now
        deleted = self._delete_where(
            lambda segment, following: (
                following is not None and following.base_offset <= self._log_start_offset
            )
        )
        if not self.config.delete:
            return deleted
        retention_bytes = self.config.retention_bytes
        if retention_bytes >= 0 and self.size_in_bytes >= retention_bytes:
            excess = self.size_in_bytes - retention_bytes

            def over_size(segment: LogSegment, following: LogSegment | None) -> bool:
                nonlocal excess
                if excess - segment.size < 0:
                    return False
                excess -= segment.size
                return True

            deleted += self._delete_where(over_size)
        retention_ms = self.config.retention_ms
        if retention_ms >= 0:
            deleted += self._delete_where(
                lambda segment, following: now - segment.largest_timestamp() > retention_ms
            )
        return deleted

    def _delete_where(self, predicate: Callable[[LogSegment, LogSegment | None], bool]) -> int:
        segments = list(self._local.segments)
        deletable: list[LogSegment] = []
        for position, segment in enumerate(segments):
            following = segments[position + 1] if position + 1 < len(segments) else None
            upper_bound = following.base_offset if following is not None else self.log_end_offset
            if self._high_watermark < upper_bound or not predicate(segment, following):
                break
            if following is None and segment.size == 0:
                break
            deletable.append(segment)
        if not deletable:
            return 0
        count = len(deletable)
        if len(segments) == count and self.roll().base_offset == deletable[-1].base_offset:
            deletable.pop()
        if deletable:
            following = self._local.segments.higher(deletable[-1].base_offset)
            assert following is not None
            self.maybe_increment_log_start_offset(following.base_offset)
            self._local.remove_and_delete_segments(deletable, delay=True)
            self._producer_state.delete_snapshots_before(following.base_offset)
        return count

    # -- compaction ------------------------------------------------------------------------

    @property
    def truncations(self) -> int:
        """Bumped by every truncation (a cleaning planned before one is abandoned)."""
        return self._local.truncations

    def _note_truncation(self, offset: int) -> None:
        lowest = self._truncated_to
        self._truncated_to = offset if lowest is None else min(lowest, offset)

    def take_truncation_point(self) -> int | None:
        """The lowest offset truncated to since the last call (None: no truncation), for
        the cleaner's checkpoint (Kafka's ``maybeTruncateCheckpoint``)."""
        lowest, self._truncated_to = self._truncated_to, None
        return lowest

    def has_segments(self, expected: list[tuple[int, int]]) -> bool:
        """Whether each (base offset, size) is an inactive segment of the log as it was:
        not deleted by retention, not truncated, not become the active segment."""
        segments = self._local.segments
        active = self._local.active_segment
        for base, size in expected:
            segment = segments.get(base)
            if segment is None or segment is active or segment.size != size:
                return False
        return True

    @_storage_guard("error while swapping cleaned segments into")
    def replace_segments(self, base_offset: int, old: list[tuple[int, int]]) -> None:
        """Swap the cleaner's ``.cleaned`` segment at ``base_offset`` in for the segments
        of ``old`` (base offset, size), which ``has_segments`` found in place."""
        segments = self._local.segments
        current = [segments.get(base) for base, _ in old]
        assert all(s is not None for s in current)
        self._local.replace_segments(base_offset, [s for s in current if s is not None])

    @_storage_guard("error while moving the log start offset of")
    def maybe_increment_log_start_offset(self, offset: int) -> bool:
        """Move the log start offset up (DeleteRecords, retention); not past the high
        watermark (OffsetOutOfRangeError). Segments below it go at the next retention run."""
        if offset > self._high_watermark:
            raise OffsetOutOfRangeError(
                f"cannot increment the log start offset to {offset} of partition "
                f"{self.topic_partition} since it is larger than the high watermark "
                f"{self._high_watermark}"
            )
        if offset <= self._log_start_offset:
            return False
        self._log_start_offset = offset
        self._local.recovery_point = max(self._local.recovery_point, offset)
        self._leader_epoch_cache.truncate_from_start(offset)
        self._producer_state.on_log_start_offset_incremented(offset)
        if self._first_unstable_offset is not None:
            self._update_first_unstable_offset()
        return True

    @_storage_guard("error while deleting segments of")
    def delete_pending_files(self, now: int) -> int:
        """Unlink deleted segments whose ``file.delete.delay.ms`` has passed."""
        return self._local.delete_pending_files(now)

    def remove_expired_producers(self, now: int) -> int:
        return self._producer_state.remove_expired_producers(now)

    # -- truncation ------------------------------------------------------------------------

    @_storage_guard("error while truncating")
    def truncate_to(self, target_offset: int) -> bool:
        """Remove everything at or after ``target_offset`` (follower truncation). False
        when the log ends at or before it."""
        if target_offset < 0:
            raise ValueError(f"cannot truncate partition {self.topic_partition} to {target_offset}")
        if target_offset >= self.log_end_offset:
            return False
        first = self._local.segments.first
        if first is None or first.base_offset > target_offset:
            self.truncate_fully_and_start_at(target_offset)
            return True
        self._local.truncate_to(target_offset)
        self._note_truncation(target_offset)
        self._leader_epoch_cache.truncate_from_end(self.log_end_offset)
        self._log_start_offset = min(self._log_start_offset, self.log_end_offset)
        self._rebuild_producer_state(self.log_end_offset, reload_from_clean_shutdown=False)
        self._high_watermark_metadata = None
        self._high_watermark = min(self._high_watermark, self.log_end_offset)
        self._refresh_transactions()
        return True

    @_storage_guard("error while truncating")
    def truncate_fully_and_start_at(self, new_offset: int) -> None:
        """Delete all data and start empty at ``new_offset``."""
        self._local.truncate_fully_and_start_at(new_offset)
        self._note_truncation(new_offset)
        self._leader_epoch_cache.clear_and_flush()
        self._producer_state.truncate_fully_and_start_at(new_offset)
        self._log_start_offset = new_offset
        self._high_watermark = new_offset
        self._high_watermark_metadata = None
        self._refresh_transactions()

    def _rebuild_producer_state(
        self, last_offset: int, *, reload_from_clean_shutdown: bool
    ) -> None:
        rebuild_producer_state(
            self._producer_state,
            self._local.segments,
            log_start_offset=self._log_start_offset,
            last_offset=last_offset,
            now=self._local.clock(),
            reload_from_clean_shutdown=reload_from_clean_shutdown,
        )

    @_storage_guard("error while writing the producer snapshot of")
    def take_producer_snapshot(self) -> None:
        self._producer_state.take_snapshot()

    # -- lifecycle -------------------------------------------------------------------------

    @_storage_guard("error while closing")
    def close(self) -> None:
        """Snapshot producer state and close every segment (no fsync: flush first)."""
        self._producer_state.take_snapshot()
        self._local.close()

    def close_handlers(self) -> None:
        """Drop every descriptor without writing anything (Kafka's ``closeHandlers``):
        the log dir has failed."""
        self._local.close_handlers()

    def delete(self) -> None:
        """Close and remove the whole partition directory."""
        self._local.close()
        shutil.rmtree(self.dir, ignore_errors=True)
