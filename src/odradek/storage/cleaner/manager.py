"""Which log to clean next, and what is clean already (Kafka's ``LogCleanerManager``).

Runs on the logs' own thread. The first dirty offset of each compacted log, everything
below it cleaned at least once, is kept per log dir in ``cleaner-offset-checkpoint``
(the offset checkpoint format, as Kafka's). For each compacted log that is not being
cleaned (``LogToClean`` is a snapshot of it, see ``cleaner``):

- first dirty offset = the checkpoint, or the log start offset when there is none or it
  is out of the log's range (below the log start, past the log end);
- first uncleanable offset = the lowest of the active segment's base offset, the last
  stable offset (nothing in an open transaction nor above the high watermark is
  cleaned) and the base offset of the first dirty segment younger than
  ``min.compaction.lag.ms``;
- dirty ratio = bytes of the segments in [first dirty, first uncleanable) over the bytes
  of all segments below the first uncleanable offset.

The log with the highest ratio above its ``min.cleanable.dirty.ratio`` is cleaned first;
a log whose first dirty batch is older than ``max.compaction.lag.ms`` is cleaned whatever
its ratio, and so is a log whose earliest delete horizon (a tombstone or transaction
marker waiting, see ``cleaner``) has passed. A truncation (a follower catching up with a
new leader) moves the checkpoint back to the truncation point, as Kafka's
``maybeTruncateCheckpoint``; a deleted log's checkpoint is forgotten.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from odradek.config import LONG_MAX
from odradek.protocol.types import TopicPartition
from odradek.storage.checkpoints import read_offset_checkpoint
from odradek.storage.cleaner.cleaner import (
    CleanedSegment,
    CleaningResult,
    LogToClean,
    ProducerTail,
    SourceSegment,
    delete_cleaned_files,
)
from odradek.storage.errors import KafkaStorageError
from odradek.storage.log import Log
from odradek.storage.txn_index import TxnIndexEntry

log = logging.getLogger(__name__)

CLEANER_OFFSET_CHECKPOINT = "cleaner-offset-checkpoint"


@dataclass(frozen=True, slots=True)
class CleanableLog:
    """A compacted log's state as the manager sees it (Kafka's ``LogToClean`` before
    the snapshot): its offsets and the dirty ratio."""

    log: Log
    first_dirty_offset: int
    first_uncleanable_offset: int
    clean_bytes: int
    dirty_bytes: int
    needs_compaction_now: bool

    @property
    def ratio(self) -> float:
        total = self.clean_bytes + self.dirty_bytes
        return self.dirty_bytes / total if total else 0.0


class LogCleanerManager:
    def __init__(self, logs: Callable[[], Mapping[TopicPartition, Log]]) -> None:
        self._logs = logs
        self._checkpoints: dict[TopicPartition, int] = {}
        self._in_progress: dict[TopicPartition, tuple[Log, int]] = {}
        """Logs being cleaned: the very ``Log`` planned (a log deleted and created again
        meanwhile is another object) and its truncation count then."""
        self._horizons: dict[TopicPartition, int] = {}
        self._uncleanable: set[TopicPartition] = set()
        """Logs whose cleaning failed on something other than the disk (a corrupt batch):
        left alone until restart, as Kafka's ``markPartitionUncleanable``."""

    # -- checkpoints -----------------------------------------------------------------------

    def load_checkpoints(self, log_dir: str) -> None:
        """Read a log dir's ``cleaner-offset-checkpoint`` (at start-up)."""
        path = os.path.join(log_dir, CLEANER_OFFSET_CHECKPOINT)
        self._checkpoints.update(read_offset_checkpoint(path))

    def checkpoint(self, tp: TopicPartition) -> int | None:
        return self._checkpoints.get(tp)

    def forget(self, tp: TopicPartition) -> None:
        """The log was deleted: its checkpoint goes (a new topic of the same name starts
        dirty), and a cleaning under way is abandoned when it ends."""
        self._checkpoints.pop(tp, None)
        self._horizons.pop(tp, None)
        self._uncleanable.discard(tp)

    def mark_uncleanable(self, tp: TopicPartition) -> None:
        self._uncleanable.add(tp)

    @property
    def uncleanable(self) -> frozenset[TopicPartition]:
        return frozenset(self._uncleanable)

    def maybe_truncate_checkpoint(self, tp: TopicPartition, offset: int) -> None:
        checkpoint = self._checkpoints.get(tp)
        if checkpoint is not None and checkpoint > offset:
            self._checkpoints[tp] = offset

    # -- choosing --------------------------------------------------------------------------

    @property
    def in_progress(self) -> frozenset[TopicPartition]:
        return frozenset(self._in_progress)

    def cleanable_logs(self, now: int) -> list[CleanableLog]:
        """Every compacted log not being cleaned, with its offsets and ratio."""
        out = []
        for tp, item in self._logs().items():
            if not item.config.compact or tp in self._in_progress or tp in self._uncleanable:
                continue
            self._note_truncation(tp, item)
            out.append(self._cleanable(item, now))
        return out

    def grab_filthiest_log(self, now: int) -> LogToClean | None:
        """The log to clean next, marked in progress, or None when none needs it."""
        best: CleanableLog | None = None
        for candidate in self.cleanable_logs(now):
            if candidate.dirty_bytes <= 0 and not self._horizon_passed(candidate, now):
                continue
            ready = (
                candidate.ratio > candidate.log.config.min_cleanable_dirty_ratio
                or candidate.needs_compaction_now
                or self._horizon_passed(candidate, now)
            )
            if ready and (best is None or candidate.ratio > best.ratio):
                best = candidate
        if best is None:
            return None
        plan = self._snapshot(best, now)
        if plan is None:
            return None
        self._in_progress[plan.topic_partition] = (best.log, best.log.truncations)
        return plan

    def _horizon_passed(self, candidate: CleanableLog, now: int) -> bool:
        horizon = self._horizons.get(candidate.log.topic_partition)
        return horizon is not None and horizon <= now

    def _note_truncation(self, tp: TopicPartition, item: Log) -> None:
        # What lies above a truncation point may be new data where cleaned data was.
        point = item.take_truncation_point()
        if point is not None:
            self.maybe_truncate_checkpoint(tp, point)

    def _cleanable(self, item: Log, now: int) -> CleanableLog:
        log_start = item.log_start_offset
        checkpoint = self._checkpoints.get(item.topic_partition)
        if checkpoint is None or checkpoint < log_start or checkpoint > item.log_end_offset:
            first_dirty = log_start
        else:
            first_dirty = checkpoint
        segments = item.segments
        active = segments[-1]
        uncleanable = min(active.base_offset, item.last_stable_offset)
        lag = item.config.min_compaction_lag_ms
        dirty_segments = [
            s
            for i, s in enumerate(segments[:-1])
            if segments[i + 1].base_offset > first_dirty and s.base_offset < uncleanable
        ]
        if lag > 0:
            for segment in dirty_segments:
                if now - segment.largest_timestamp() < lag:
                    uncleanable = min(uncleanable, segment.base_offset)
                    break
        uncleanable = max(uncleanable, first_dirty)
        clean_bytes = sum(
            s.size for s in segments if s.base_offset < first_dirty and s is not active
        )
        dirty = [s for s in dirty_segments if s.base_offset < uncleanable]
        dirty_bytes = sum(s.size for s in dirty)
        needs_now = False
        max_lag = item.config.max_compaction_lag_ms
        if dirty and max_lag < LONG_MAX:
            # Kafka's maxCompactionDelay: the earliest first-batch timestamp of the dirty
            # inactive segments, against now - max.compaction.lag.ms.
            firsts = (next(segment.iter_headers(), None) for segment in dirty)
            stamps = [h.max_timestamp for h in firsts if h is not None and h.max_timestamp > 0]
            needs_now = bool(stamps) and min(stamps) < now - max(max_lag, 0)
        return CleanableLog(item, first_dirty, uncleanable, clean_bytes, dirty_bytes, needs_now)

    def _snapshot(self, candidate: CleanableLog, now: int) -> LogToClean | None:
        item = candidate.log
        segments = item.segments
        sources = []
        for position, segment in enumerate(segments[:-1]):
            if segment.base_offset >= candidate.first_uncleanable_offset:
                break
            sources.append(
                SourceSegment(
                    segment.base_offset,
                    segment.log_path,
                    segment.size,
                    segments[position + 1].base_offset,
                )
            )
        if not sources:
            return None
        aborted: list[TxnIndexEntry] = []
        for segment in segments:
            if segment.base_offset >= candidate.first_uncleanable_offset:
                break
            aborted.extend(segment.txn_index.entries)
        for segment in segments:
            if segment.base_offset >= candidate.first_uncleanable_offset:
                aborted.extend(
                    e
                    for e in segment.txn_index.entries
                    if e.first_offset < candidate.first_uncleanable_offset
                )
        tails = {
            pid: ProducerTail(entry.last_data_offset, entry.producer_epoch)
            for pid, entry in item.producer_state.producers.items()
        }
        config = item.config
        return LogToClean(
            topic_partition=item.topic_partition,
            directory=item.dir,
            segments=tuple(sources),
            first_dirty_offset=candidate.first_dirty_offset,
            first_uncleanable_offset=candidate.first_uncleanable_offset,
            aborted_transactions=tuple(sorted(aborted, key=lambda e: e.first_offset)),
            producer_tails=tails,
            now=now,
            delete_retention_ms=config.delete_retention_ms,
            segment_bytes=config.segment_bytes,
            max_index_size=config.segment_index_bytes,
            index_interval_bytes=config.index_interval_bytes,
        )

    # -- completion ------------------------------------------------------------------------

    def done_cleaning(self, plan: LogToClean, result: CleaningResult) -> bool:
        """Swap the cleaned segments in and move the checkpoint; False (cleaned files
        deleted) when the log changed under the cleaning or is gone.

        All or nothing: a truncation since the plan (even far above the cleaned
        segments) abandons the whole cleaning, since the offset map may hold offsets
        that are no longer in the log and would drop records whose newer versions are
        gone; so does a source segment that retention deleted or that changed."""
        tp = plan.topic_partition
        planned = self._in_progress.pop(tp, None)
        item = self._logs().get(tp)
        swapped = 0
        try:
            if (
                planned is None
                or item is not planned[0]
                or item.truncations != planned[1]
                or not all(item.has_segments(self._sources(c)) for c in result.segments)
            ):
                log.info("log %s changed while it was being cleaned; cleaning it later", tp)
                return False
            for cleaned in result.segments:
                item.replace_segments(cleaned.base_offset, self._sources(cleaned))
                swapped += 1
        except KafkaStorageError as exc:
            log.warning("cannot swap cleaned segments into %s: %s", tp, exc)
            return False
        finally:
            for cleaned in result.segments[swapped:]:
                delete_cleaned_files(plan.directory, cleaned.base_offset)
        self._checkpoints[tp] = result.end_offset
        if result.earliest_delete_horizon is None:
            self._horizons.pop(tp, None)
        else:
            self._horizons[tp] = result.earliest_delete_horizon
        return True

    @staticmethod
    def _sources(cleaned: CleanedSegment) -> list[tuple[int, int]]:
        return [(s.base_offset, s.size) for s in cleaned.replaces]

    def abort_cleaning(self, plan: LogToClean) -> Log | None:
        """The cleaning failed: nothing was swapped; forget it (the cleaner deleted what
        it had written; this makes sure). Returns the log if it is still the one planned
        (not deleted or replaced meanwhile, which would explain the failure)."""
        planned = self._in_progress.pop(plan.topic_partition, None)
        current = self._logs().get(plan.topic_partition)
        for segment in plan.segments:
            delete_cleaned_files(plan.directory, segment.base_offset)
        if planned is None or current is not planned[0]:
            return None
        return current

    def checkpoints_for(self, items: Iterable[Log]) -> dict[TopicPartition, int]:
        return {
            i.topic_partition: self._checkpoints[i.topic_partition]
            for i in items
            if i.topic_partition in self._checkpoints
        }
