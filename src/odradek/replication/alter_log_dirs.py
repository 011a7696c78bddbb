"""Moving replicas between this broker's log dirs (AlterReplicaLogDirs, KIP-113): Kafka's
``ReplicaManager.alterReplicaLogDirs`` and its ``ReplicaAlterLogDirsThread``.

A move makes an empty future log in the target dir (``LogManager.create_future_log``),
then one task copies the current log into it as a follower would, batch by batch with
the same offsets and epochs (``Log.append_as_follower``), a slice of at most
``SLICE_BYTES`` at a time on the event loop, so produce and fetch go on meanwhile, at
most ``replica.alter.log.dirs.io.max.bytes.per.second`` (Kafka's quota on these
copies; unlimited by default). When
the future has caught up, its unflushed data is fsynced in a worker thread, the little
appended meanwhile is copied, and the two are swapped in one step on the loop
(``LogManager.replace_current_with_future``); the partition then uses the new log and
the old directory is removed in a worker thread.

A truncation of the current log (a follower meeting a new leader), or a log start offset
moving past the copy, starts the copy again from the current log start. A cleaning that
swaps segments of the current log during the copy is not in the copied data, so the
cleaner's checkpoint is put back to where it was when the copy started. A request for a
partition not hosted here yet is remembered (``maybe_update_preferred_log_dir``) and the
log is created in that dir when the partition comes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from dataclasses import dataclass
from typing import TYPE_CHECKING

from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.protocol.records import complete_batches_size, read_header
from odradek.protocol.types import TopicPartition
from odradek.storage import log_files
from odradek.storage.errors import KafkaStorageError
from odradek.storage.log import Log

if TYPE_CHECKING:
    from odradek.replication.replica_manager import ReplicaManager

log = logging.getLogger(__name__)

SLICE_BYTES = 1 << 20
"""Most bytes copied per step on the event loop (about a millisecond from page cache)."""
MAX_NAME_LENGTH = 255


@dataclass(slots=True)
class _Move:
    source: Log
    truncations: int
    cleaner_checkpoint: int | None


class LogDirMover:
    def __init__(self, replica_manager: ReplicaManager) -> None:
        self._replicas = replica_manager
        self._logs = replica_manager.log_manager
        self._moves: dict[TopicPartition, _Move] = {}
        rate = int(replica_manager.config.get("replica.alter.log.dirs.io.max.bytes.per.second"))
        self._rate = max(rate, 1)
        self._slice = min(SLICE_BYTES, self._rate)
        self._task: asyncio.Task[None] | None = None
        self.completed = 0
        """Moves completed since start (for logs and tests)."""

    @property
    def moving(self) -> frozenset[TopicPartition]:
        return frozenset(self._moves)

    def alter(self, tp: TopicPartition, log_dir: str) -> ErrorCode:
        """One partition of an AlterReplicaLogDirs request, with Kafka's answers."""
        try:
            if len(log_files.log_future_dir_name(tp)) > MAX_NAME_LENGTH:
                return ErrorCode.invalid_topic_exception
            if not self._logs.is_log_dir_online(log_dir):
                return ErrorCode.kafka_storage_error
            if self._replicas.is_offline(tp):
                return ErrorCode.kafka_storage_error
            self._logs.maybe_update_preferred_log_dir(tp, log_dir)
            partition = self._replicas.partitions.get(tp)
            if partition is None:
                topic = self._replicas.metadata.topic(tp.topic)
                if topic is None or not 0 <= tp.partition < len(topic.partitions):
                    return ErrorCode.unknown_topic_or_partition
                return ErrorCode.replica_not_available
            future = self._logs.create_future_log(tp, os.path.normpath(log_dir))
            if future is None:
                if self._logs.get_future_log(tp) is None:
                    self._moves.pop(tp, None)  # back to where it is: the move is off
                return ErrorCode.none
            self._start(tp, partition.log)
        except KafkaError as exc:
            log.warning("cannot move %s to %s: %s", tp, log_dir, exc)
            return exc.error_code
        return ErrorCode.none

    def resume(self, tp: TopicPartition, log_dir: str) -> None:
        """Start again a move that a stop interrupted (found at start-up)."""
        partition = self._replicas.partitions.get(tp)
        if partition is None:
            return
        try:
            if self._logs.create_future_log(tp, log_dir) is not None:
                self._start(tp, partition.log)
        except KafkaError as exc:
            log.warning("cannot move %s to %s again: %s", tp, log_dir, exc)

    def _start(self, tp: TopicPartition, source: Log) -> None:
        cleaner = self._logs.cleaner_manager
        self._moves[tp] = _Move(source, source.truncations, cleaner.checkpoint(tp))
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def shutdown(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    # -- the copy ------------------------------------------------------------------------

    async def _run(self) -> None:
        while self._moves:
            progressed = False
            for tp in list(self._moves):
                copied = 0
                try:
                    caught_up, copied = self._copy(tp, self._slice)
                    progressed = progressed or copied > 0
                    if caught_up:
                        await self._swap(tp)
                except KafkaError as exc:
                    log.warning("move of %s given up: %s", tp, exc)
                    self._give_up(tp)
                except Exception:  # a bug must not leave the move hanging
                    log.exception("move of %s given up", tp)
                    self._give_up(tp)
                await asyncio.sleep(copied / self._rate)
            if not progressed and self._moves:
                await asyncio.sleep(0.01)

    def _give_up(self, tp: TopicPartition) -> None:
        self._moves.pop(tp, None)
        self._logs.remove_future_log(tp)

    def _check(self, tp: TopicPartition) -> tuple[_Move, Log, Log]:
        """The move and its logs, or KafkaStorageError if the partition went away."""
        move = self._moves[tp]
        current, future = self._logs.get_log(tp), self._logs.get_future_log(tp)
        partition = self._replicas.partitions.get(tp)
        if current is not move.source or future is None or partition is None:
            raise KafkaStorageError(f"{tp} is no longer hosted here as it was")
        return move, current, future

    def _copy(self, tp: TopicPartition, limit: int = SLICE_BYTES) -> tuple[bool, int]:
        """Copy one slice; (whether the future has caught up, bytes copied)."""
        move, current, future = self._check(tp)
        if (
            current.truncations != move.truncations
            or future.log_end_offset > current.log_end_offset
            or current.log_start_offset > future.log_end_offset
        ):
            log.info("%s changed under its move; copying it again from the start", tp)
            future.truncate_fully_and_start_at(current.log_start_offset)
            move.truncations = current.truncations
            move.cleaner_checkpoint = self._logs.cleaner_manager.checkpoint(tp)
        elif current.log_start_offset > future.log_start_offset:
            future.update_high_watermark(current.log_start_offset)
            future.maybe_increment_log_start_offset(current.log_start_offset)
        offset = future.log_end_offset
        copied = 0
        if offset < current.log_end_offset:
            info = current.read(offset, min(limit, current.config.segment_bytes))
            data = info.records.read() if info.records is not None else b""
            view = memoryview(data)[: complete_batches_size(data)]
            position = 0
            while position < len(view):  # the batch holding ``offset`` may start before it
                header = read_header(view, position)
                if header.last_offset >= offset:
                    break
                position += header.size
            view = view[position:]
            if view:
                future.append_as_follower(view)
                copied = len(view)
        future.update_high_watermark(min(current.high_watermark, future.log_end_offset))
        return future.log_end_offset >= current.log_end_offset, copied

    async def _swap(self, tp: TopicPartition) -> None:
        """Flush the future off the loop, copy what came meanwhile, swap in one step."""
        _, _, future = self._check(tp)
        job = future.flush_job()
        await asyncio.to_thread(job.run)
        job.complete()
        move, _, now = self._check(tp)
        if now is not future:
            return  # moved elsewhere meanwhile: that copy goes on in the loop
        while True:
            caught_up, copied = self._copy(tp, limit=1 << 30)
            if caught_up:
                break
            if not copied:
                return  # nothing readable yet; the loop tries again
        partition = self._replicas.partitions[tp]
        moved, old_dir = self._logs.replace_current_with_future(tp)
        partition.log = moved
        del self._moves[tp]
        cleaner = self._logs.cleaner_manager
        if move.cleaner_checkpoint is None:
            if cleaner.checkpoint(tp) is not None:
                cleaner.maybe_truncate_checkpoint(tp, moved.log_start_offset)
        else:
            cleaner.maybe_truncate_checkpoint(tp, move.cleaner_checkpoint)
        self.completed += 1
        await asyncio.to_thread(shutil.rmtree, old_dir, True)
