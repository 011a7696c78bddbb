"""The segments of one partition on local disk (Kafka's ``LogSegments`` and ``LocalLog``).

``LocalLog`` knows files and offsets only: it appends bytes to the active segment, rolls,
reads one segment's worth of batches, flushes and advances the recovery point, truncates
and deletes segments. Validation, high watermark, producer state and leader epochs live
in ``Log`` above it.

Deleted segments are renamed ``*.deleted`` at once (invisible to reads and to a restart,
which removes leftovers) and unlinked ``file.delete.delay.ms`` later by
``delete_pending_files``; regions already handed out stay readable meanwhile.

Not thread-safe: ``Log`` serialises calls.
"""

from __future__ import annotations

import bisect
import logging
import os
import random
from collections.abc import Iterator

from odradek.config import LogConfig
from odradek.protocol.types import TopicPartition, new_tuple
from odradek.storage import checkpoints, log_files
from odradek.storage.errors import KafkaStorageError, OffsetOutOfRangeError
from odradek.storage.file_records import HandleCache
from odradek.storage.segment import Clock, LogSegment
from odradek.storage.values import FetchDataInfo, LogOffsetMetadata, TimestampAndOffset

log = logging.getLogger(__name__)


class LogSegments:
    """Segments keyed by base offset, with floor/higher lookups by bisection."""

    def __init__(self) -> None:
        self._bases: list[int] = []
        self._segments: dict[int, LogSegment] = {}
        self.last: LogSegment | None = None
        """The segment with the greatest base offset (the active one); a field, kept by
        ``add`` and ``remove``, since every append asks for it."""

    def __len__(self) -> int:
        return len(self._bases)

    def __iter__(self) -> Iterator[LogSegment]:
        return (self._segments[base] for base in list(self._bases))

    def add(self, segment: LogSegment) -> None:
        base = segment.base_offset
        if base not in self._segments:
            bisect.insort(self._bases, base)
        self._segments[base] = segment
        self.last = self._segments[self._bases[-1]]

    def remove(self, base_offset: int) -> None:
        if self._segments.pop(base_offset, None) is not None:
            self._bases.remove(base_offset)
            self.last = self._segments[self._bases[-1]] if self._bases else None

    def get(self, base_offset: int) -> LogSegment | None:
        return self._segments.get(base_offset)

    @property
    def first(self) -> LogSegment | None:
        return self._segments[self._bases[0]] if self._bases else None

    def floor(self, offset: int) -> LogSegment | None:
        """The segment with the greatest base offset <= ``offset``."""
        slot = bisect.bisect_right(self._bases, offset) - 1
        return self._segments[self._bases[slot]] if slot >= 0 else None

    def higher(self, base_offset: int) -> LogSegment | None:
        slot = bisect.bisect_right(self._bases, base_offset)
        return self._segments[self._bases[slot]] if slot < len(self._bases) else None

    def lower(self, base_offset: int) -> LogSegment | None:
        slot = bisect.bisect_left(self._bases, base_offset) - 1
        return self._segments[self._bases[slot]] if slot >= 0 else None

    def values_from(self, offset: int, to: int | None = None) -> list[LogSegment]:
        """Segments holding offsets in [offset, to): from the floor of ``offset`` on."""
        start = max(bisect.bisect_right(self._bases, offset) - 1, 0)
        stop = len(self._bases) if to is None else bisect.bisect_left(self._bases, to)
        return [self._segments[base] for base in self._bases[start:stop]]

    @property
    def base_offsets(self) -> list[int]:
        return list(self._bases)

    def size_in_bytes(self) -> int:
        return sum(segment.size for segment in self._segments.values())


def roll_jitter(config: LogConfig) -> int:
    """Kafka's ``randomSegmentJitter``: uniform in [0, min(jitter, segment.ms))."""
    jitter = min(config.segment_jitter_ms, config.segment_ms)
    return random.randrange(jitter) if jitter > 0 else 0


class LocalLog:
    def __init__(
        self,
        directory: str,
        topic_partition: TopicPartition,
        config: LogConfig,
        segments: LogSegments,
        *,
        recovery_point: int,
        next_offset: int,
        clock: Clock,
        handle_cache: HandleCache | None,
    ) -> None:
        self.dir = directory
        self.topic_partition = topic_partition
        self.config = config
        self.segments = segments
        self.recovery_point = recovery_point
        self.clock = clock
        self.handle_cache = handle_cache
        self.last_flush_time = clock()
        self.truncations = 0
        """Bumped by every truncation: a flush started before one must not move the
        recovery point when it completes."""
        self._last_append: tuple[int, LogSegment, int, int, int] | None = None
        """(first offset, segment, position, first batch size, truncations) of the last
        append: where a consumer waiting at the log end reads next. Trusted only while
        the segment is still the one holding that offset and nothing was truncated."""
        self._pending_deletes: list[tuple[int, LogSegment]] = []
        self.log_end_offset = next_offset
        """The offset the next append gets (read-only outside this class; a field, not a
        property, as it is read several times per append)."""
        self._next_offset_metadata = LogOffsetMetadata(next_offset)
        self._update_log_end_offset(next_offset)

    # -- offsets ---------------------------------------------------------------------------

    @property
    def active_segment(self) -> LogSegment:
        segment = self.segments.last
        assert segment is not None, "a log always has an active segment"
        return segment

    @property
    def log_end_offset_metadata(self) -> LogOffsetMetadata:
        return self._next_offset_metadata

    def _update_log_end_offset(self, offset: int, active: LogSegment | None = None) -> None:
        if active is None:
            active = self.active_segment
        self._next_offset_metadata = new_tuple(  # one per append
            LogOffsetMetadata, (offset, active.base_offset, active.size)
        )
        self.log_end_offset = offset
        self.recovery_point = min(self.recovery_point, offset)

    @property
    def unflushed_messages(self) -> int:
        return self.log_end_offset - self.recovery_point

    def convert_to_offset_metadata(self, offset: int) -> LogOffsetMetadata:
        """Where the batch holding ``offset`` starts; offset-only when it is not in the log."""
        if offset == self.log_end_offset:
            return self._next_offset_metadata
        segment = self.segments.floor(offset)
        if segment is None:
            return LogOffsetMetadata(offset)
        header = segment.translate_offset(offset)
        if header is None:
            higher = self.segments.higher(segment.base_offset)
            if higher is None:
                return LogOffsetMetadata(offset)
            return LogOffsetMetadata(offset, higher.base_offset, 0)
        return LogOffsetMetadata(offset, segment.base_offset, header.position)

    # -- segments --------------------------------------------------------------------------

    def create_segment(self, base_offset: int) -> LogSegment:
        for suffix_path in (
            log_files.log_file(self.dir, base_offset),
            log_files.offset_index_file(self.dir, base_offset),
            log_files.time_index_file(self.dir, base_offset),
            log_files.txn_index_file(self.dir, base_offset),
        ):
            if os.path.exists(suffix_path) and os.path.getsize(suffix_path) > 0:
                log.warning("replacing existing non-empty file %s on roll", suffix_path)
                os.unlink(suffix_path)
        return LogSegment.create(
            self.dir,
            base_offset,
            index_interval_bytes=self.config.index_interval_bytes,
            max_index_size=self.config.segment_index_bytes,
            clock=self.clock,
            roll_jitter_ms=roll_jitter(self.config),
            handle_cache=self.handle_cache,
        )

    def update_config(self, config: LogConfig) -> None:
        self.config = config
        for segment in self.segments:
            segment.index_interval_bytes = config.index_interval_bytes
        self.active_segment.offset_index.set_max_index_size(config.segment_index_bytes)
        self.active_segment.time_index.set_max_index_size(config.segment_index_bytes)

    def append(
        self,
        data: bytes | bytearray | memoryview,
        *,
        last_offset: int,
        largest_timestamp: int,
        offset_of_max_timestamp: int,
        first_offset: int = -1,
        first_batch_size: int = 0,
    ) -> None:
        """Append batches to the active segment. ``first_offset`` and
        ``first_batch_size`` (the first batch's), when given, let the next read from
        ``first_offset`` skip the index lookup (``_last_append``)."""
        segment = self.active_segment
        position = segment.append(
            data,
            largest_offset=last_offset,
            largest_timestamp=largest_timestamp,
            offset_of_max_timestamp=offset_of_max_timestamp,
        )
        self._update_log_end_offset(last_offset + 1, segment)
        if first_batch_size > 0:
            self._last_append = (
                first_offset,
                segment,
                position,
                first_batch_size,
                self.truncations,
            )

    def roll(self, expected_next_offset: int | None = None) -> LogSegment:
        """Start a new active segment at the log end offset (or ``expected_next_offset``)."""
        new_offset = max(expected_next_offset or 0, self.log_end_offset)
        active = self.active_segment
        if active.base_offset == new_offset and active.size == 0:
            return active
        if active.base_offset >= new_offset:
            raise KafkaStorageError(
                f"trying to roll a new segment at {new_offset} that is not after the active "
                f"segment {active.base_offset} of {self.topic_partition}"
            )
        active.on_become_inactive()
        segment = self.create_segment(new_offset)
        self.segments.add(segment)
        self._update_log_end_offset(self.log_end_offset)
        return segment

    def flush(self, offset: int) -> None:
        """fsync every segment holding offsets in [recovery point, ``offset``)."""
        if offset <= self.recovery_point:
            return
        for segment in self.segments.values_from(self.recovery_point, offset):
            segment.flush()
        self.recovery_point = offset
        self.last_flush_time = self.clock()

    def unflushed_files(self, offset: int) -> list[str]:
        """The files to fsync so that everything below ``offset`` is on disk: those of the
        segments holding offsets in [recovery point, ``offset``), indexes written out."""
        if offset <= self.recovery_point:
            return []
        paths: list[str] = []
        for segment in self.segments.values_from(self.recovery_point, offset):
            segment.persist_indexes()
            paths += segment.flush_paths()
        return paths

    def mark_flushed(self, offset: int) -> None:
        """Everything below ``offset`` was fsynced (by ``unflushed_files``' caller)."""
        offset = min(offset, self.log_end_offset)
        if offset > self.recovery_point:
            self.recovery_point = offset
            self.last_flush_time = self.clock()

    def release_rolled_segments(self, start: int, end: int) -> None:
        """Close the descriptors of the rolled segments that hold ``[start, end)``, once
        fsynced: nothing writes to them again, and a reader reopens one lazily. Without
        this a rolled segment kept its descriptor until the handle cache evicted it, so
        a partition's open descriptors grew with every roll up to the cache's bound."""
        active = self.active_segment
        segment = self.segments.floor(start)
        while segment is not None and segment is not active:
            following = self.segments.higher(segment.base_offset)
            if following is None or following.base_offset > end:
                return
            segment.close_handles()
            segment = following

    def read(
        self,
        start_offset: int,
        max_length: int,
        *,
        min_one_message: bool,
        max_offset_metadata: LogOffsetMetadata,
    ) -> FetchDataInfo:
        """Kafka's ``LocalLog.read``: batches from one segment, below the max offset."""
        end_offset = self.log_end_offset
        segment = self.segments.floor(start_offset)
        if start_offset > end_offset or segment is None:
            raise OffsetOutOfRangeError(
                f"received request for offset {start_offset} for partition "
                f"{self.topic_partition}, but we only have log segments up to {end_offset}"
            )
        max_offset = max_offset_metadata.message_offset
        if start_offset == max_offset:
            return FetchDataInfo(fetch_offset_metadata=max_offset_metadata)
        if start_offset > max_offset:
            return FetchDataInfo(
                fetch_offset_metadata=self.convert_to_offset_metadata(start_offset)
            )
        known = self._last_append
        first_segment = segment
        while segment is not None:
            max_position: int | None
            if segment.base_offset < max_offset_metadata.segment_base_offset:
                max_position = segment.size
            elif (
                segment.base_offset == max_offset_metadata.segment_base_offset
                and not max_offset_metadata.message_offset_only
            ):
                max_position = max_offset_metadata.relative_position
            else:
                max_position = None
            if (
                known is not None
                and segment is first_segment
                and known[0] == start_offset
                and known[1] is segment
                and known[4] == self.truncations
            ):
                # A consumer at the tail reads the batch just appended: its place is known.
                info: FetchDataInfo | None = segment.read_at(
                    start_offset,
                    known[2],
                    known[3],
                    max_length,
                    max_position=max_position,
                    min_one_message=min_one_message,
                )
            else:
                info = segment.read(
                    start_offset,
                    max_length,
                    max_position=max_position,
                    min_one_message=min_one_message,
                )
            if info is not None:
                return info
            segment = self.segments.higher(segment.base_offset)
        return FetchDataInfo(fetch_offset_metadata=self._next_offset_metadata)

    def find_offset_by_timestamp(
        self, timestamp: int, log_start_offset: int
    ) -> TimestampAndOffset | None:
        """First record with timestamp >= ``timestamp`` at or after the log start offset,
        searching from the first segment whose largest timestamp reaches it."""
        for segment in self.segments:
            if segment.largest_timestamp() >= timestamp:
                found = segment.find_offset_by_timestamp(timestamp, log_start_offset)
                if found is not None:
                    return found
        return None

    def find_max_timestamp(self) -> TimestampAndOffset | None:
        """The first record carrying the log's largest timestamp (ListOffsets -3): the
        segment's max timestamp entry leads to its batch, which alone is decoded."""
        segment = max(self.segments, key=lambda s: s.max_timestamp_so_far)
        timestamp = segment.max_timestamp_so_far
        if timestamp < 0:
            return None
        _, position = segment.offset_index.lookup(segment.offset_of_max_timestamp_so_far)
        for header in segment.iter_headers(position):
            if header.max_timestamp == timestamp:
                records = segment.decode_batch(header)
                offset = next(
                    (r.offset for r in records if r.timestamp == timestamp), header.last_offset
                )
                epoch = header.partition_leader_epoch
                return TimestampAndOffset(timestamp, offset, epoch if epoch >= 0 else None)
        return None

    # -- truncation and deletion -----------------------------------------------------------

    def remove_and_delete_segments(self, segments: list[LogSegment], *, delay: bool) -> None:
        """Take segments out of the log, rename them ``*.deleted``, unlink them later."""
        due = self.clock() + (self.config.file_delete_delay_ms if delay else 0)
        for segment in segments:
            self.segments.remove(segment.base_offset)
            segment.close_handles()
            try:
                segment.change_file_suffixes("", log_files.DELETED_FILE_SUFFIX)
            except KafkaStorageError as exc:
                log.warning("cannot rename segment for deletion: %s", exc)
            self._pending_deletes.append((due, segment))
        if not delay:
            self.delete_pending_files(due)

    def replace_segments(self, base_offset: int, old_segments: list[LogSegment]) -> LogSegment:
        """Swap the cleaner's ``<base_offset>.*.cleaned`` files in for ``old_segments``
        (Kafka's ``replaceSegments``), in an order a crash cannot hurt:

        1. the new files are renamed ``.swap``: from here recovery finishes the swap
           (it deletes the old segments within the swap's offset range);
        2. the old segments leave the log and are renamed ``.deleted`` (deleted after
           ``file.delete.delay.ms``; fetches already reading them keep their regions);
        3. the new files lose the ``.swap`` suffix and the segment joins the log.
        """
        segment = LogSegment(
            self.dir,
            base_offset,
            index_interval_bytes=self.config.index_interval_bytes,
            max_index_size=self.config.segment_index_bytes,
            clock=self.clock,
            handle_cache=self.handle_cache,
            suffix=log_files.CLEANED_FILE_SUFFIX,
        )
        segment.change_file_suffixes(log_files.CLEANED_FILE_SUFFIX, log_files.SWAP_FILE_SUFFIX)
        checkpoints.fsync_dir(self.dir)
        self.remove_and_delete_segments(old_segments, delay=True)
        segment.change_file_suffixes(log_files.SWAP_FILE_SUFFIX, "")
        checkpoints.fsync_dir(self.dir)
        self.segments.add(segment)
        return segment

    def delete_pending_files(self, now: int) -> int:
        """Unlink segments whose ``file.delete.delay.ms`` has passed; returns how many."""
        due = [item for item in self._pending_deletes if item[0] <= now]
        if not due:
            return 0
        self._pending_deletes = [item for item in self._pending_deletes if item[0] > now]
        for _, segment in due:
            try:
                segment.delete()
            except KafkaStorageError as exc:
                log.warning("%s", exc)
        return len(due)

    def truncate_to(self, target_offset: int) -> list[LogSegment]:
        """Drop everything at or after ``target_offset``; returns the deleted segments."""
        deletable = [s for s in self.segments if s.base_offset > target_offset]
        self.remove_and_delete_segments(deletable, delay=True)
        self.truncations += 1
        active = self.active_segment
        active.truncate_to(target_offset)
        active.offset_index.set_max_index_size(self.config.segment_index_bytes)
        active.time_index.set_max_index_size(self.config.segment_index_bytes)
        next_offset = max(active.read_next_offset(), active.base_offset)
        self._update_log_end_offset(next_offset)
        return deletable

    def truncate_fully_and_start_at(self, new_offset: int) -> list[LogSegment]:
        """Delete every segment and start an empty one at ``new_offset``."""
        self.truncations += 1
        deletable = list(self.segments)
        self.remove_and_delete_segments(deletable, delay=True)
        self.segments.add(self.create_segment(new_offset))
        self.recovery_point = new_offset
        self._update_log_end_offset(new_offset)
        return deletable

    def close(self) -> None:
        self.delete_pending_files(2**63 - 1)
        for segment in self.segments:
            segment.close()

    def close_handlers(self) -> None:
        """Drop every descriptor, writing nothing (the log dir has failed)."""
        for segment in [*self.segments, *(item for _, item in self._pending_deletes)]:
            segment.close_handlers()
