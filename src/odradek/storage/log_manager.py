"""All partition logs of a broker across its ``log.dirs`` (Kafka's ``LogManager``).

Per log directory (formats in ``checkpoints``)::

    <log.dir>/meta.properties
    <log.dir>/recovery-point-offset-checkpoint
    <log.dir>/replication-offset-checkpoint      high watermarks
    <log.dir>/log-start-offset-checkpoint
    <log.dir>/.kafka_cleanshutdown                only between a clean shutdown and start-up
    <log.dir>/<topic>-<partition>/                one ``Log`` each
    <log.dir>/<topic>-<partition>.<uuid>-delete/  a deleted partition not yet removed
    <log.dir>/<topic>-<partition>.<uuid>-future/  a replica being moved here (see below)

Start-up after a clean shutdown touches each partition lightly (a directory listing, the
active segment's last index entry and tail, the latest producer snapshot): no index is
loaded and no segment scanned, so 10,000 partitions open quickly. Open segment files are
bounded by one shared ``HandleCache``.

Rolls leave their fsyncs to ``flush_scheduler`` when one is given (the broker runs them
in a worker thread); without one they flush inline.

Periodic work is plain methods that the broker's event loop calls on its timers:
``cleanup_logs`` (retention, ``log.retention.check.interval.ms``), ``flush_dirty_logs``
(``flush.ms``), and the checkpoints: ``recovery_point_checkpoint`` and the others return
a ``CheckpointJob`` whose files the broker writes in a worker thread (``checkpoint_job``
says why); ``checkpoint_all`` writes all three at once.

Failed log dirs (``log_dir_failure``): the manager listens to its failure channel first,
and on a failure closes that dir's logs without writing and forgets them; it places no
new log in an offline dir and writes no checkpoint or clean shutdown marker there. A
checkpoint that cannot be written for lack of space keeps the previous file and is
written again at the next interval. None of this raises into the periodic jobs or the
shutdown.

Log dirs that cannot be used at start-up (not a directory, unreadable, a failed disk) are
taken offline through the failure channel before anything is loaded, as Kafka's
``LogManager`` does, and the broker starts on the others. A partition whose log is not
found while a dir is offline is not created anew elsewhere (``get_or_create_log`` with
``is_new=False``): it may be in the failed dir.

Moving a replica between log dirs (AlterReplicaLogDirs, Kafka's future replica): the
manager keeps one future log per moving partition, in ``<topic>-<p>.<uuid>-future`` of
the target dir; ``replication.alter_log_dirs`` copies the current log into it while
appends go on, and ``replace_current_with_future`` swaps them once it has caught up. The
swap renames the current directory ``-delete`` first and the future one to the
partition's name second, each rename fsynced, and only then removes the old files: a
crash between the two renames leaves a complete future and a ``-delete`` directory, and
start-up promotes the future. A future found next to its current log (the broker stopped
mid-copy) is discarded and the move started again; the current log is never touched
before the future is complete.

Not thread-safe: one thread (the broker's event loop) calls it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import resource
import shutil
import uuid
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from odradek.config import BrokerConfig, LogConfig
from odradek.protocol.types import TopicPartition
from odradek.storage import checkpoints, log_files
from odradek.storage.checkpoint_job import CheckpointJob, OffsetCheckpointFiles
from odradek.storage.cleaner.manager import CLEANER_OFFSET_CHECKPOINT, LogCleanerManager
from odradek.storage.errors import KafkaStorageError, LogDirFullError, LogDirNotFoundError
from odradek.storage.file_records import HandleCache
from odradek.storage.log import (
    DEFAULT_PRODUCER_ID_EXPIRATION_MS,
    FlushJob,
    FlushScheduler,
    Log,
    system_clock,
)
from odradek.storage.log_dir_failure import LogDirFailureChannel
from odradek.storage.producer_state import write_snapshot
from odradek.storage.segment import Clock

log = logging.getLogger(__name__)


def default_max_open_files() -> int:
    """Half the process's descriptor limit for segment files, the rest for sockets."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 4096
    return max(16, soft // 2)


class LogManager:
    def __init__(
        self,
        log_dirs: Sequence[str | Path],
        *,
        clock: Clock | None = None,
        producer_id_expiration_ms: int = DEFAULT_PRODUCER_ID_EXPIRATION_MS,
        max_open_files: int | None = None,
        flush_scheduler: FlushScheduler | None = None,
    ) -> None:
        if not log_dirs:
            raise ValueError("at least one log directory is needed")
        self.log_dirs = [os.path.abspath(d) for d in log_dirs]
        self.clock = clock or system_clock
        self.producer_id_expiration_ms = producer_id_expiration_ms
        self.handle_cache = HandleCache(max_open_files or default_max_open_files())
        self.flush_scheduler = flush_scheduler
        """Given to every log: runs the fsyncs that rolls leave (``Log.roll``)."""
        self._logs: dict[TopicPartition, Log] = {}
        self._counts: dict[str, int] = {}
        """Partitions per log dir, for placing new ones."""
        self._future_logs: dict[TopicPartition, Log] = {}
        """Replicas being moved to another log dir (AlterReplicaLogDirs)."""
        self._preferred_dirs: dict[TopicPartition, str] = {}
        """Where a partition not hosted yet is to be created (AlterReplicaLogDirs)."""
        self.interrupted_moves: dict[TopicPartition, str] = {}
        """Moves found under way at start-up (a future next to its current log): the
        broker starts them again; target log dir by partition."""
        self.log_dir_failure_channel = LogDirFailureChannel()
        """Given to every log; this manager is its first listener."""
        self.log_dir_failure_channel.add_listener(self.handle_log_dir_failure)
        self.cleaner_manager = LogCleanerManager(lambda: self._logs)
        """State of the log cleaner (``broker.log_cleaner`` runs the cleanings)."""
        self._checkpoint_files = OffsetCheckpointFiles()
        for directory in self.log_dirs:
            try:
                os.makedirs(directory, exist_ok=True)
                os.listdir(directory)
            except OSError as exc:
                self.log_dir_failure_channel.maybe_add_offline_log_dir(
                    directory, "cannot use log dir at start-up", exc
                )

    @classmethod
    def from_config(
        cls,
        config: BrokerConfig,
        *,
        clock: Clock | None = None,
        flush_scheduler: FlushScheduler | None = None,
    ) -> LogManager:
        return cls(
            [str(d) for d in config.log_dirs],
            clock=clock,
            producer_id_expiration_ms=int(config.get("producer.id.expiration.ms")),
            flush_scheduler=flush_scheduler,
        )

    # -- loading ---------------------------------------------------------------------------

    def load_logs(self, config_for: Callable[[str], LogConfig]) -> None:
        """Open every partition directory of every live log dir (``config_for(topic)``
        gives its config), settle the ``-future`` directories of interrupted moves, then
        remove the clean shutdown markers and leftover ``-delete`` dirs. A dir that fails
        while loading goes offline; the others load."""
        configs: dict[str, LogConfig] = {}
        futures: dict[TopicPartition, str] = {}
        deleted: dict[TopicPartition, list[str]] = {}
        channel = self.log_dir_failure_channel
        for log_dir in self.log_dirs:
            if channel.is_offline(log_dir):
                continue
            try:
                self._load_dir(log_dir, config_for, configs, futures, deleted)
            except (OSError, KafkaStorageError) as exc:
                channel.maybe_add_offline_log_dir(log_dir, "error while loading logs", exc)
        for tp, path in futures.items():
            self._settle_future(tp, path, tp in deleted, config_for)
        for paths in deleted.values():
            for path in paths:
                shutil.rmtree(path, ignore_errors=True)
        for log_dir in self.live_log_dirs:
            checkpoints.remove_clean_shutdown_marker(log_dir)

    def _load_dir(
        self,
        log_dir: str,
        config_for: Callable[[str], LogConfig],
        configs: dict[str, LogConfig],
        futures: dict[TopicPartition, str],
        deleted: dict[TopicPartition, list[str]],
    ) -> None:
        clean = checkpoints.has_clean_shutdown_marker(log_dir)
        recovery_points = checkpoints.read_offset_checkpoint(
            os.path.join(log_dir, checkpoints.RECOVERY_POINT_CHECKPOINT)
        )
        start_offsets = checkpoints.read_offset_checkpoint(
            os.path.join(log_dir, checkpoints.LOG_START_OFFSET_CHECKPOINT)
        )
        high_watermarks = checkpoints.read_offset_checkpoint(
            os.path.join(log_dir, checkpoints.HIGH_WATERMARK_CHECKPOINT)
        )
        self.cleaner_manager.load_checkpoints(log_dir)
        for name in sorted(os.listdir(log_dir)):
            path = os.path.join(log_dir, name)
            if not os.path.isdir(path):
                continue
            gone = log_files.parse_delete_dir(name)
            if gone is not None:
                deleted.setdefault(gone, []).append(path)
                continue
            future = log_files.parse_future_dir(name)
            if future is not None:
                if future in futures:  # never made so; keep one
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    futures[future] = path
                continue
            tp = log_files.parse_partition_dir(name)
            if tp is None:
                continue
            if tp in self._logs:
                log.error(
                    "duplicate log directories for %s: %s and %s", tp, self._logs[tp].dir, path
                )
                continue
            try:
                config = configs.get(tp.topic)
                if config is None:
                    config = configs[tp.topic] = config_for(tp.topic)
                loaded = Log.open(
                    path,
                    config,
                    recovery_point=recovery_points.get(tp, 0),
                    log_start_offset=start_offsets.get(tp, 0),
                    high_watermark=high_watermarks.get(tp),
                    clean_shutdown=clean,
                    clock=self.clock,
                    producer_id_expiration_ms=self.producer_id_expiration_ms,
                    handle_cache=self.handle_cache,
                    flush_scheduler=self.flush_scheduler,
                    log_dir_failure_channel=self.log_dir_failure_channel,
                )
                self._add(tp, loaded)
            except Exception:
                log.exception("cannot load the log in %s; leaving it offline", path)

    def _settle_future(
        self,
        tp: TopicPartition,
        path: str,
        current_deleted: bool,
        config_for: Callable[[str], LogConfig],
    ) -> None:
        """A ``-future`` directory found at start-up. Next to its current log: the move
        was interrupted mid-copy; the copy is discarded and the move noted to start again.
        Without one, after the current was renamed ``-delete`` (or with every dir online,
        so the current is nowhere): the swap was interrupted between its two renames and
        the future, complete and fsynced before either, becomes the log. With a dir
        offline and no trace of the current, it may be there: left alone."""
        parent = os.path.dirname(path)
        if tp in self._logs:
            log.info("%s: discarding the copy in %s of a move interrupted; moving again", tp, path)
            shutil.rmtree(path, ignore_errors=True)
            self.interrupted_moves[tp] = parent
            return
        if not current_deleted and self.log_dir_failure_channel.offline_log_dirs:
            log.warning("%s: leaving %s alone, its current log may be in a failed dir", tp, path)
            return
        target = os.path.join(parent, log_files.log_dir_name(tp))
        try:
            os.rename(path, target)
            checkpoints.fsync_dir(parent)
            loaded = Log.open(
                target,
                config_for(tp.topic),
                clock=self.clock,
                producer_id_expiration_ms=self.producer_id_expiration_ms,
                handle_cache=self.handle_cache,
                flush_scheduler=self.flush_scheduler,
                log_dir_failure_channel=self.log_dir_failure_channel,
            )
        except Exception:
            log.exception("cannot complete the move of %s into %s", tp, parent)
            return
        log.info("%s: completed its move into %s, interrupted during the swap", tp, parent)
        self._add(tp, loaded)

    # -- logs ------------------------------------------------------------------------------

    @property
    def logs(self) -> dict[TopicPartition, Log]:
        return dict(self._logs)

    def _add(self, tp: TopicPartition, item: Log) -> None:
        self._logs[tp] = item
        parent = os.path.dirname(item.dir)
        self._counts[parent] = self._counts.get(parent, 0) + 1

    def get_log(self, tp: TopicPartition) -> Log | None:
        return self._logs.get(tp)

    @property
    def live_log_dirs(self) -> list[str]:
        """The log dirs that have not failed."""
        channel = self.log_dir_failure_channel
        return [d for d in self.log_dirs if not channel.is_offline(d)]

    def _next_log_dir(self) -> str:
        """The live log dir holding the fewest partitions (Kafka's ``nextLogDirs``)."""
        live = self.live_log_dirs
        if not live:
            raise KafkaStorageError(f"no log dir is online (all of {self.log_dirs} failed)")
        return min(live, key=lambda d: self._counts.get(d, 0))

    def get_or_create_log(
        self,
        tp: TopicPartition,
        config: LogConfig,
        topic_id: uuid.UUID | None = None,
        *,
        is_new: bool = True,
    ) -> Log:
        """The log of ``tp``, created if there is none: in the dir an AlterReplicaLogDirs
        asked for, else in the live log dir with the fewest partitions. A replica that
        should exist already (``is_new`` false) is not created while a log dir is offline,
        where it may be (KafkaStorageError), as Kafka. KafkaStorageError if it cannot be
        created; the dir is then reported failed, unless the disk was only full."""
        existing = self._logs.get(tp)
        if existing is not None:
            if topic_id is not None:
                existing.assign_topic_id(topic_id)
            return existing
        offline = self.log_dir_failure_channel.offline_log_dirs
        if not is_new and offline:
            raise KafkaStorageError(
                f"cannot create the log of {tp} because log dirs {', '.join(sorted(offline))} "
                "are offline"
            )
        preferred = self._preferred_dirs.get(tp)
        if preferred is not None and preferred in self.live_log_dirs:
            parent = preferred
        else:
            parent = self._next_log_dir()
        directory = os.path.join(parent, log_files.log_dir_name(tp))
        try:
            created = Log.open(
                directory,
                config,
                topic_id=topic_id,
                clock=self.clock,
                producer_id_expiration_ms=self.producer_id_expiration_ms,
                handle_cache=self.handle_cache,
                flush_scheduler=self.flush_scheduler,
                log_dir_failure_channel=self.log_dir_failure_channel,
            )
        except LogDirFullError:
            raise
        except (OSError, KafkaStorageError) as exc:
            error = KafkaStorageError(f"cannot create the log of {tp} in {parent}: {exc}")
            self.log_dir_failure_channel.maybe_add_offline_log_dir(
                parent, f"error while creating the log of {tp}", exc
            )
            raise error from exc
        self._preferred_dirs.pop(tp, None)
        self._add(tp, created)
        return created

    def handle_log_dir_failure(self, log_dir: str) -> list[TopicPartition]:
        """Stop using a failed log dir (Kafka's ``LogManager.handleLogDirFailure``): its
        logs are closed without writing anything and forgotten. Returns their partitions.
        Called by the failure channel."""
        offline = [tp for tp, item in self._logs.items() if item.parent_dir == log_dir]
        for tp in offline:
            self._logs.pop(tp).close_handlers()
        for tp, future in list(self._future_logs.items()):
            if future.parent_dir == log_dir or tp in offline:
                # The move cannot go on; a future left in a live dir is discarded.
                self.remove_future_log(tp)
        self._counts.pop(log_dir, None)
        if offline:
            log.warning(
                "logs of %s are offline because log dir %s failed",
                ", ".join(str(tp) for tp in offline),
                log_dir,
            )
        return offline

    def delete_log(self, tp: TopicPartition) -> bool:
        """Delete one partition's log (see ``delete_logs``); False if there was none."""
        return self.delete_logs([tp]) == 1

    def delete_logs(self, tps: Iterable[TopicPartition]) -> int:
        """Rename each partition directory ``<topic>-<p>.<uuid>-delete``, then remove them;
        how many logs there were. Directories are synced and checkpoints written once for
        the lot: a topic of 10,000 partitions is deleted in one pass, not 10,000."""
        renamed: list[str] = []
        parents: set[str] = set()
        deleted = 0
        for tp in tps:
            self.remove_future_log(tp)  # first: a future alone would be taken for a move
            removed = self._logs.pop(tp, None)
            if removed is None:
                continue
            self.cleaner_manager.forget(tp)
            deleted += 1
            parent = removed.parent_dir
            self._counts[parent] -= 1
            try:
                removed.close()
                target = os.path.join(parent, log_files.log_delete_dir_name(tp))
                os.rename(removed.dir, target)
            except (OSError, KafkaStorageError) as exc:
                # Forgotten all the same: a restart finds the directory and, the topic
                # being gone, leaves it alone.
                removed.close_handlers()
                if not isinstance(exc, LogDirFullError):
                    self.log_dir_failure_channel.maybe_add_offline_log_dir(
                        parent, f"error while deleting the log of {tp}", exc
                    )
                continue
            renamed.append(target)
            parents.add(parent)
        for parent in parents:
            try:
                checkpoints.fsync_dir(parent)
            except (OSError, KafkaStorageError) as exc:
                if not isinstance(exc, LogDirFullError):
                    self.log_dir_failure_channel.maybe_add_offline_log_dir(
                        parent, "error while deleting logs", exc
                    )
        for target in renamed:
            shutil.rmtree(target, ignore_errors=True)
        if deleted:
            self.checkpoint_all()
        return deleted

    # -- moving replicas between log dirs (AlterReplicaLogDirs) ---------------------------

    @property
    def future_logs(self) -> dict[TopicPartition, Log]:
        return dict(self._future_logs)

    def get_future_log(self, tp: TopicPartition) -> Log | None:
        return self._future_logs.get(tp)

    def is_log_dir_online(self, log_dir: str) -> bool:
        """Whether ``log_dir`` (an absolute path, as given) is live; LogDirNotFoundError
        if it is not one of ``log.dirs`` (Kafka's ``isLogDirOnline``)."""
        normalized = os.path.normpath(log_dir) if os.path.isabs(log_dir) else None
        if normalized not in self.log_dirs:
            raise LogDirNotFoundError(f"Log dir {log_dir} is not found in the config.")
        return not self.log_dir_failure_channel.is_offline(normalized)

    def maybe_update_preferred_log_dir(self, tp: TopicPartition, log_dir: str) -> None:
        """Remember where ``tp`` is to be created, unless its current or future log is
        there already (Kafka's ``maybeUpdatePreferredLogDir``)."""
        log_dir = os.path.normpath(log_dir)
        current, future = self._logs.get(tp), self._future_logs.get(tp)
        if (current is None or current.parent_dir != log_dir) and (
            future is None or future.parent_dir != log_dir
        ):
            self._preferred_dirs[tp] = log_dir

    def create_future_log(self, tp: TopicPartition, log_dir: str) -> Log | None:
        """Start moving ``tp`` to ``log_dir``: an empty future log there (None if the
        current log is there already, or the future already is). A future elsewhere is
        removed first (the move goes to the newest target). KafkaStorageError while any
        log dir is offline: the partition may have a copy there (Kafka refuses too)."""
        log_dir = os.path.normpath(log_dir)
        current = self._logs[tp]
        existing = self._future_logs.get(tp)
        if existing is not None:
            if existing.parent_dir == log_dir:
                return None
            self.remove_future_log(tp)
        self._preferred_dirs.pop(tp, None)
        if current.parent_dir == log_dir:
            return None
        offline = self.log_dir_failure_channel.offline_log_dirs
        if offline:
            raise KafkaStorageError(
                f"cannot create the future log of {tp} because log dirs "
                f"{', '.join(sorted(offline))} are offline"
            )
        directory = os.path.join(log_dir, log_files.log_future_dir_name(tp))
        try:
            future = Log.open(
                directory,
                current.config,
                topic_id=current.topic_id,
                clock=self.clock,
                producer_id_expiration_ms=self.producer_id_expiration_ms,
                handle_cache=self.handle_cache,
                flush_scheduler=self.flush_scheduler,
                log_dir_failure_channel=self.log_dir_failure_channel,
                topic_partition=tp,
            )
            future.truncate_fully_and_start_at(current.log_start_offset)
        except LogDirFullError:
            shutil.rmtree(directory, ignore_errors=True)
            raise
        except (OSError, KafkaStorageError) as exc:
            self.log_dir_failure_channel.maybe_add_offline_log_dir(
                log_dir, f"error while creating the future log of {tp}", exc
            )
            raise KafkaStorageError(f"cannot create the future log of {tp}: {exc}") from exc
        self._future_logs[tp] = future
        log.info("moving %s from %s to %s", tp, current.parent_dir, log_dir)
        return future

    def remove_future_log(self, tp: TopicPartition) -> bool:
        """Give up moving ``tp``: its future log is closed and deleted."""
        future = self._future_logs.pop(tp, None)
        if future is None:
            return False
        future.close_handlers()
        shutil.rmtree(future.dir, ignore_errors=True)
        log.info("move of %s to %s given up", tp, future.parent_dir)
        return True

    def replace_current_with_future(self, tp: TopicPartition) -> tuple[Log, str]:
        """Swap a caught-up future log in for the current one (Kafka's
        ``replaceCurrentWithFutureLog``): returns the new log and the old log's
        ``-delete`` directory, which the caller removes (off the event loop).

        The future is flushed (its caller flushed most of it in a worker thread
        beforehand, so little is left), given the current's latest leader epochs,
        producer state, log start offset and high watermark, and closed; then the current
        directory is renamed ``-delete`` and the future's to the partition's name, each
        fsynced (see the module docstring for a crash in between), and the log is opened
        again at its new place, clean. The caller must hand the new log to whoever held
        the old one (the partition)."""
        current = self._logs[tp]
        future = self._future_logs[tp]
        if future.log_end_offset != current.log_end_offset:
            raise ValueError(f"the future log of {tp} has not caught up")
        source_parent, target_parent = current.parent_dir, future.parent_dir
        try:
            latest = future.leader_epoch_cache.latest_epoch
            for entry in current.leader_epoch_cache.entries:
                if latest is None or entry.epoch > latest:
                    future.leader_epoch_cache.assign(entry.epoch, entry.start_offset)
            future.flush()
            future.close()
            # The current's producer state is the exact one (producers whose batches
            # retention removed are still known to it): it replaces the future's.
            snapshot = future.producer_state.latest_snapshot_offset
            if snapshot is not None:
                os.unlink(log_files.producer_snapshot_file(future.dir, snapshot))
            write_snapshot(
                log_files.producer_snapshot_file(future.dir, current.log_end_offset),
                current.producer_state.producers.values(),
                sync=True,
            )
        except (OSError, KafkaStorageError) as exc:
            self.remove_future_log(tp)
            raise KafkaStorageError(f"cannot complete the move of {tp}: {exc}") from exc
        old_dir = os.path.join(source_parent, log_files.log_delete_dir_name(tp))
        try:
            os.rename(current.dir, old_dir)
            checkpoints.fsync_dir(source_parent)
        except OSError as exc:
            self.remove_future_log(tp)
            self.log_dir_failure_channel.maybe_add_offline_log_dir(
                source_parent, f"error while moving {tp}", exc
            )
            raise KafkaStorageError(f"cannot move {tp}: {exc}") from exc
        target = os.path.join(target_parent, log_files.log_dir_name(tp))
        try:
            os.rename(future.dir, target)
            checkpoints.fsync_dir(target_parent)
            moved = Log.open(
                target,
                current.config,
                topic_id=current.topic_id,
                recovery_point=current.log_end_offset,
                log_start_offset=current.log_start_offset,
                high_watermark=current.high_watermark,
                clean_shutdown=True,
                clock=self.clock,
                producer_id_expiration_ms=self.producer_id_expiration_ms,
                handle_cache=self.handle_cache,
                flush_scheduler=self.flush_scheduler,
                log_dir_failure_channel=self.log_dir_failure_channel,
            )
        except (OSError, KafkaStorageError) as exc:
            self._future_logs.pop(tp, None)
            self._undo_swap(tp, current, old_dir, target)
            self.log_dir_failure_channel.maybe_add_offline_log_dir(
                target_parent, f"error while moving {tp}", exc
            )
            raise KafkaStorageError(f"cannot move {tp}: {exc}") from exc
        current.close_handlers()
        del self._future_logs[tp]
        self._counts[source_parent] -= 1
        self._counts[target_parent] = self._counts.get(target_parent, 0) + 1
        self._logs[tp] = moved
        self.checkpoint_all()
        log.info("moved %s from %s to %s", tp, source_parent, target_parent)
        return moved, old_dir

    def _undo_swap(self, tp: TopicPartition, current: Log, old_dir: str, target: str) -> None:
        """The target failed during a swap: the future is set aside for deletion and the
        current directory renamed back, so the partition goes on where it was (its open
        files never closed). If even that fails, the current is gone from this run; the
        next start completes the move from the future (see the module docstring)."""
        if os.path.isdir(target):
            with contextlib.suppress(OSError):
                parent = os.path.dirname(target)
                os.rename(target, os.path.join(parent, log_files.log_delete_dir_name(tp)))
        try:
            os.rename(old_dir, current.dir)
            checkpoints.fsync_dir(current.parent_dir)
        except (OSError, KafkaStorageError) as exc:
            log.error("cannot put the log of %s back in %s: %s", tp, current.dir, exc)
            self._logs.pop(tp, None)
            self._counts[current.parent_dir] -= 1
            current.close_handlers()

    # -- checkpoints -----------------------------------------------------------------------

    def _by_dir(self) -> dict[str, list[tuple[TopicPartition, Log]]]:
        grouped: dict[str, list[tuple[TopicPartition, Log]]] = {d: [] for d in self.log_dirs}
        for tp, item in self._logs.items():
            grouped.setdefault(os.path.dirname(item.dir), []).append((tp, item))
        return grouped

    def _checkpoint_job(self, name: str, value: Callable[[Log], int | None]) -> CheckpointJob:
        """Checkpoint ``name`` of every live log dir as the logs are now (see
        ``checkpoint_job``); ``value`` None leaves a log out."""
        channel = self.log_dir_failure_channel
        offsets_by_dir = {}
        for log_dir, items in self._by_dir().items():
            if channel.is_offline(log_dir):
                continue
            offsets = {}
            for tp, item in items:
                offset = value(item)
                if offset is not None:
                    offsets[tp] = offset
            offsets_by_dir[log_dir] = offsets
        return CheckpointJob(name, offsets_by_dir, self._checkpoint_files, channel)

    def recovery_point_checkpoint(self) -> CheckpointJob:
        return self._checkpoint_job(
            checkpoints.RECOVERY_POINT_CHECKPOINT, lambda item: item.recovery_point
        )

    def log_start_offset_checkpoint(self) -> CheckpointJob:
        """Only logs whose start offset is above their first segment's base, as Kafka."""

        def start(item: Log) -> int | None:
            first = item.segments[0].base_offset if item.number_of_segments else 0
            return item.log_start_offset if item.log_start_offset > first else None

        return self._checkpoint_job(checkpoints.LOG_START_OFFSET_CHECKPOINT, start)

    def high_watermark_checkpoint(self) -> CheckpointJob:
        return self._checkpoint_job(
            checkpoints.HIGH_WATERMARK_CHECKPOINT, lambda item: item.high_watermark
        )

    def checkpoint_cleaner_offsets(self) -> bool:
        """Each compacted log's first dirty offset (``cleaner-offset-checkpoint``)."""
        return self._checkpoint_job(
            CLEANER_OFFSET_CHECKPOINT,
            lambda item: self.cleaner_manager.checkpoint(item.topic_partition),
        ).write()

    def checkpoint_all(self) -> bool:
        """All three checkpoints in every live log dir; False if any was not written."""
        recovery_points = self.recovery_point_checkpoint().write()
        start_offsets = self.log_start_offset_checkpoint().write()
        high_watermarks = self.high_watermark_checkpoint().write()
        return recovery_points and start_offsets and high_watermarks

    def write_meta_properties(self, *, node_id: int, cluster_id: str) -> None:
        """Write ``meta.properties`` in every live log dir, keeping an existing directory
        id; a dir where that fails goes offline (Kafka's start-up does the same)."""
        for log_dir in self.live_log_dirs:
            try:
                existing = checkpoints.read_meta_properties(log_dir)
                try:
                    directory_id = checkpoints.decode_uuid(existing["directory.id"])
                except (KeyError, ValueError):
                    directory_id = uuid.uuid4()
                checkpoints.write_meta_properties(
                    log_dir, node_id=node_id, cluster_id=cluster_id, directory_id=directory_id
                )
            except (OSError, KafkaStorageError) as exc:
                self.log_dir_failure_channel.maybe_add_offline_log_dir(
                    log_dir, "error while writing meta.properties", exc
                )

    # -- periodic work ---------------------------------------------------------------------

    def cleanup_logs(self, now: int | None = None) -> int:
        """Retention for every log, producer id expiry, and delayed file deletion;
        returns the number of segments deleted."""
        now = self.clock() if now is None else now
        deleted = 0
        for tp, item in list(self._logs.items()):
            try:
                deleted += item.delete_old_segments(now)
                item.remove_expired_producers(now)
                item.delete_pending_files(now)
            except KafkaStorageError as exc:  # a failed dir is reported by the log
                log.warning("retention failed for %s: %s", tp, exc)
            except Exception:
                log.exception("retention failed for %s", tp)
        return deleted

    def flush_dirty_logs(self, now: int | None = None) -> int:
        """Flush logs whose last flush is ``flush.ms`` old; returns how many were flushed."""
        now = self.clock() if now is None else now
        flushed = 0
        for tp, item in list(self._logs.items()):
            if item.unflushed_messages > 0 and now - item.last_flush_time >= item.config.flush_ms:
                try:
                    item.flush()
                except KafkaStorageError as exc:  # the log took its dir offline
                    log.warning("flush failed for %s: %s", tp, exc)
                    continue
                flushed += 1
        return flushed

    def shutdown(self) -> None:
        """Flush and close every log, write the checkpoints and the clean shutdown markers.

        The fsyncs are batched: every log first writes what it still holds in memory
        (producer snapshot, index entries) without syncing, then all the files are
        fsynced one after the other, then each partition directory that gained a file.
        Back to back, with the writes already done, each fsync finds little to do; the
        interleaved write-fsync-rename-fsync per partition cost 7.5 s for 10,000
        partitions here. The guarantee is the same: the clean shutdown marker is written
        last, only when every file is on disk.
        """
        failed = False
        jobs: list[FlushJob] = []
        for tp, item in list(self._logs.items()):
            try:
                jobs.append(item.flush_job())
            except KafkaStorageError as exc:
                failed = True
                log.warning("error while flushing the log of %s: %s", tp, exc)
            except Exception:
                failed = True
                log.exception("error while flushing the log of %s", tp)
        for job in jobs:
            job.run()
            try:
                job.complete()
            except KafkaStorageError as exc:
                failed = True
                log.warning("%s", exc)
        for tp, item in list(self._logs.items()):
            try:
                item.close()
            except KafkaStorageError as exc:
                failed = True
                log.warning("error while closing the log of %s: %s", tp, exc)
            except Exception:
                failed = True
                log.exception("error while closing the log of %s", tp)
        if not self.checkpoint_all():
            failed = True
        if not failed:
            # A failed dir gets no marker: its logs are recovered at the next start.
            for log_dir in self.live_log_dirs:
                try:
                    checkpoints.write_clean_shutdown_marker(log_dir)
                except KafkaStorageError as exc:
                    log.warning("no clean shutdown marker in %s: %s", log_dir, exc)
        for future in self._future_logs.values():
            future.close_handlers()  # discarded at the next start, the move started again
        self._future_logs.clear()
        self._logs.clear()
        self._counts.clear()
