"""Leader epoch -> start offset cache of one partition (Kafka's ``LeaderEpochFileCache``).

File ``leader-epoch-checkpoint`` in the partition directory (Kafka's ``CheckpointFile``)::

    0                      version
    <count>
    <epoch> <start offset>       count lines, epochs and offsets increasing

A new epoch is written atomically with fsync at once (it decides truncation after a
leader change, KIP-101), and is not kept in memory if that write fails; truncations are
written without fsync, as Kafka flushes them asynchronously: a stale file is corrected
by the truncation that start-up performs (so a full disk only postpones them).
A malformed file is logged and read as empty.

Not thread-safe: the owning log serialises calls.
"""

from __future__ import annotations

import bisect
import logging
import os
from typing import Final, NamedTuple

from odradek.protocol.types import TopicPartition
from odradek.storage.checkpoints import (
    MalformedFileError,
    format_checkpoint,
    parse_checkpoint_lines,
    write_atomically,
)
from odradek.storage.errors import KafkaStorageError, LogDirFullError

log = logging.getLogger(__name__)

LEADER_EPOCH_CHECKPOINT_FILE: Final = "leader-epoch-checkpoint"
UNDEFINED_EPOCH: Final = -1
UNDEFINED_EPOCH_OFFSET: Final = -1


class EpochEntry(NamedTuple):
    epoch: int
    start_offset: int


class LeaderEpochFileCache:
    def __init__(self, topic_partition: TopicPartition, partition_dir: str) -> None:
        self.topic_partition = topic_partition
        self.path = os.path.join(partition_dir, LEADER_EPOCH_CHECKPOINT_FILE)
        self._epochs: list[int] = []
        self._offsets: list[int] = []
        for entry in self._read():
            self._assign(entry)

    def _read(self) -> list[EpochEntry]:
        try:
            with open(self.path, encoding="utf-8") as file:
                text = file.read()
        except FileNotFoundError:
            return []
        try:
            rows = parse_checkpoint_lines(text, self.path, 2)
        except MalformedFileError as exc:
            log.warning("ignoring leader epoch checkpoint: %s", exc)
            return []
        return [EpochEntry(int(epoch), int(offset)) for epoch, offset in rows]

    def _write(self, *, fsync: bool) -> None:
        lines = [f"{e} {o}" for e, o in zip(self._epochs, self._offsets, strict=True)]
        write_atomically(self.path, format_checkpoint(lines), fsync=fsync)

    def flush(self) -> None:
        self._write(fsync=True)

    # -- queries ---------------------------------------------------------------------------

    @property
    def entries(self) -> list[EpochEntry]:
        return [EpochEntry(e, o) for e, o in zip(self._epochs, self._offsets, strict=True)]

    def is_empty(self) -> bool:
        return not self._epochs

    @property
    def latest_epoch(self) -> int | None:
        return self._epochs[-1] if self._epochs else None

    def latest_entry(self) -> EpochEntry | None:
        return EpochEntry(self._epochs[-1], self._offsets[-1]) if self._epochs else None

    def earliest_entry(self) -> EpochEntry | None:
        return EpochEntry(self._epochs[0], self._offsets[0]) if self._epochs else None

    def epoch_for_offset(self, offset: int) -> int | None:
        """The epoch whose range holds ``offset``, or None before the first entry."""
        slot = bisect.bisect_right(self._offsets, offset) - 1
        return self._epochs[slot] if slot >= 0 else None

    def end_offset_for(self, requested_epoch: int, log_end_offset: int) -> tuple[int, int]:
        """(epoch, end offset) as Kafka's ``endOffsetFor`` (OffsetForLeaderEpoch).

        The largest epoch <= the requested one, with the start offset of the next larger
        epoch as its end (the log end offset for the latest epoch). A requested epoch below
        every cached one gets itself with the first cached start offset (its data is gone);
        UNDEFINED_EPOCH, or one above every cached epoch, gets (-1, -1).
        """
        if requested_epoch == UNDEFINED_EPOCH:
            return UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET
        if self._epochs and self._epochs[-1] == requested_epoch:
            return requested_epoch, log_end_offset
        higher = bisect.bisect_right(self._epochs, requested_epoch)
        if higher == len(self._epochs):
            return UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET
        if higher == 0:
            return requested_epoch, self._offsets[0]
        return self._epochs[higher - 1], self._offsets[higher]

    # -- updates ---------------------------------------------------------------------------

    def assign(self, epoch: int, start_offset: int) -> None:
        """Record that ``epoch`` starts at ``start_offset``; written (fsynced) if new."""
        epochs = self._epochs
        if epochs and epochs[-1] == epoch and self._offsets[-1] <= start_offset >= 0:
            return  # every append of the current epoch: nothing to record
        saved = (list(self._epochs), list(self._offsets))
        if self._assign(EpochEntry(epoch, start_offset)):
            try:
                self._write(fsync=True)
            except KafkaStorageError:
                # Memory never runs ahead of the file: the append that brought the
                # epoch fails, and the next one assigns it again.
                self._epochs, self._offsets = saved
                raise

    def _assign(self, entry: EpochEntry) -> bool:
        if entry.epoch < 0 or entry.start_offset < 0:
            raise ValueError(f"invalid partition leader epoch entry {entry}")
        if self._epochs and not (
            entry.epoch != self._epochs[-1] or entry.start_offset < self._offsets[-1]
        ):
            return False
        removed: list[EpochEntry] = []
        while self._epochs and (
            self._epochs[-1] >= entry.epoch or self._offsets[-1] >= entry.start_offset
        ):
            removed.append(EpochEntry(self._epochs.pop(), self._offsets.pop()))
        if len(removed) > 1 or (removed and removed[0].start_offset != entry.start_offset):
            log.warning(
                "new epoch entry %s caused truncation of conflicting entries %s in %s",
                entry,
                removed,
                self.topic_partition,
            )
        self._epochs.append(entry.epoch)
        self._offsets.append(entry.start_offset)
        return True

    def truncate_from_end(self, end_offset: int) -> None:
        """Remove entries whose start offset is >= ``end_offset``."""
        if end_offset < 0 or not self._offsets or self._offsets[-1] < end_offset:
            return
        keep = bisect.bisect_left(self._offsets, end_offset)
        del self._epochs[keep:], self._offsets[keep:]
        self._write_truncation()

    def truncate_from_start(self, start_offset: int) -> None:
        """Drop entries that start at or before ``start_offset`` except the last of them,
        which is moved to start there (exclusive: an entry at ``start_offset`` stays)."""
        removed = bisect.bisect_right(self._offsets, start_offset)
        if removed == 0 or (removed == 1 and self._offsets[0] == start_offset):
            return
        epoch = self._epochs[removed - 1]
        del self._epochs[:removed], self._offsets[:removed]
        self._epochs.insert(0, epoch)
        self._offsets.insert(0, start_offset)
        self._write_truncation()

    def _write_truncation(self) -> None:
        """A truncation need not reach the file at once (start-up truncates a stale
        file the same way), so a full disk only postpones it to the next write."""
        try:
            self._write(fsync=False)
        except LogDirFullError as exc:
            log.warning("%s; the truncation of %s is written later", exc, self.path)

    def clear_and_flush(self) -> None:
        self._epochs.clear()
        self._offsets.clear()
        self._write(fsync=True)
