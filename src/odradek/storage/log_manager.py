"""All partition logs of a broker across its ``log.dirs`` (Kafka's ``LogManager``).

Per log directory (formats in ``checkpoints``)::

    <log.dir>/meta.properties
    <log.dir>/recovery-point-offset-checkpoint
    <log.dir>/replication-offset-checkpoint      high watermarks
    <log.dir>/log-start-offset-checkpoint
    <log.dir>/.kafka_cleanshutdown                only between a clean shutdown and start-up
    <log.dir>/<topic>-<partition>/                one ``Log`` each
    <log.dir>/<topic>-<partition>.<uuid>-delete/  a deleted partition not yet removed

Start-up after a clean shutdown touches each partition lightly (a directory listing, the
active segment's last index entry and tail, the latest producer snapshot): no index is
loaded and no segment scanned, so 10,000 partitions open quickly. Open segment files are
bounded by one shared ``HandleCache``.

Rolls leave their fsyncs to ``flush_scheduler`` when one is given (the broker runs them
in a worker thread); without one they flush inline.

Periodic work is plain methods that the broker's event loop calls on its timers:
``cleanup_logs`` (retention, ``log.retention.check.interval.ms``), ``flush_dirty_logs``
(``flush.ms``), ``checkpoint_all`` (``log.flush.offset.checkpoint.interval.ms``).

Failed log dirs (``log_dir_failure``): the manager listens to its failure channel first,
and on a failure closes that dir's logs without writing and forgets them; it places no
new log in an offline dir and writes no checkpoint or clean shutdown marker there. A
checkpoint that cannot be written for lack of space keeps the previous file and is
written again at the next interval. None of this raises into the periodic jobs or the
shutdown.

Not thread-safe: one thread (the broker's event loop) calls it.
"""

from __future__ import annotations

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
from odradek.storage.cleaner.manager import CLEANER_OFFSET_CHECKPOINT, LogCleanerManager
from odradek.storage.errors import KafkaStorageError, LogDirFullError
from odradek.storage.file_records import HandleCache
from odradek.storage.log import (
    DEFAULT_PRODUCER_ID_EXPIRATION_MS,
    FlushJob,
    FlushScheduler,
    Log,
    system_clock,
)
from odradek.storage.log_dir_failure import LogDirFailureChannel
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
        self.log_dir_failure_channel = LogDirFailureChannel()
        """Given to every log; this manager is its first listener."""
        self.log_dir_failure_channel.add_listener(self.handle_log_dir_failure)
        self.cleaner_manager = LogCleanerManager(lambda: self._logs)
        """State of the log cleaner (``broker.log_cleaner`` runs the cleanings)."""
        for directory in self.log_dirs:
            os.makedirs(directory, exist_ok=True)

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
        """Open every partition directory of every log dir (``config_for(topic)`` gives its
        config), then remove the clean shutdown markers and leftover ``-delete`` dirs."""
        configs: dict[str, LogConfig] = {}
        for log_dir in self.log_dirs:
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
                if log_files.is_delete_dir(name):
                    shutil.rmtree(path, ignore_errors=True)
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
            checkpoints.remove_clean_shutdown_marker(log_dir)

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
        self, tp: TopicPartition, config: LogConfig, topic_id: uuid.UUID | None = None
    ) -> Log:
        """The log of ``tp``, created in the live log dir with the fewest partitions if
        there is none. KafkaStorageError if it cannot be created; the dir is then
        reported failed, unless the disk was only full."""
        existing = self._logs.get(tp)
        if existing is not None:
            if topic_id is not None:
                existing.assign_topic_id(topic_id)
            return existing
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
        self._add(tp, created)
        return created

    def handle_log_dir_failure(self, log_dir: str) -> list[TopicPartition]:
        """Stop using a failed log dir (Kafka's ``LogManager.handleLogDirFailure``): its
        logs are closed without writing anything and forgotten. Returns their partitions.
        Called by the failure channel."""
        offline = [tp for tp, item in self._logs.items() if item.parent_dir == log_dir]
        for tp in offline:
            self._logs.pop(tp).close_handlers()
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

    # -- checkpoints -----------------------------------------------------------------------

    def _by_dir(self) -> dict[str, list[tuple[TopicPartition, Log]]]:
        grouped: dict[str, list[tuple[TopicPartition, Log]]] = {d: [] for d in self.log_dirs}
        for tp, item in self._logs.items():
            grouped.setdefault(os.path.dirname(item.dir), []).append((tp, item))
        return grouped

    def _write_checkpoint(self, name: str, value: Callable[[Log], int | None]) -> bool:
        """Write checkpoint ``name`` in every live log dir; False if any failed (a full
        disk keeps the previous file, anything else takes the dir offline)."""
        written = True
        channel = self.log_dir_failure_channel
        for log_dir, items in self._by_dir().items():
            if channel.is_offline(log_dir):
                continue
            offsets = {}
            for tp, item in items:
                offset = value(item)
                if offset is not None:
                    offsets[tp] = offset
            try:
                checkpoints.write_offset_checkpoint(os.path.join(log_dir, name), offsets)
            except LogDirFullError as exc:
                written = False
                log.warning("%s; the previous %s stays until the next try", exc, name)
            except KafkaStorageError as exc:
                written = False
                channel.maybe_add_offline_log_dir(log_dir, f"error while writing {name}", exc)
        return written

    def checkpoint_recovery_points(self) -> bool:
        return self._write_checkpoint(
            checkpoints.RECOVERY_POINT_CHECKPOINT, lambda item: item.recovery_point
        )

    def checkpoint_log_start_offsets(self) -> bool:
        """Only logs whose start offset is above their first segment's base, as Kafka."""

        def start(item: Log) -> int | None:
            first = item.segments[0].base_offset if item.number_of_segments else 0
            return item.log_start_offset if item.log_start_offset > first else None

        return self._write_checkpoint(checkpoints.LOG_START_OFFSET_CHECKPOINT, start)

    def checkpoint_high_watermarks(self) -> bool:
        return self._write_checkpoint(
            checkpoints.HIGH_WATERMARK_CHECKPOINT, lambda item: item.high_watermark
        )

    def checkpoint_cleaner_offsets(self) -> bool:
        """Each compacted log's first dirty offset (``cleaner-offset-checkpoint``)."""
        return self._write_checkpoint(
            CLEANER_OFFSET_CHECKPOINT,
            lambda item: self.cleaner_manager.checkpoint(item.topic_partition),
        )

    def checkpoint_all(self) -> bool:
        """All three checkpoints in every live log dir; False if any was not written."""
        recovery_points = self.checkpoint_recovery_points()
        start_offsets = self.checkpoint_log_start_offsets()
        high_watermarks = self.checkpoint_high_watermarks()
        return recovery_points and start_offsets and high_watermarks

    def write_meta_properties(self, *, node_id: int, cluster_id: str) -> None:
        """Write ``meta.properties`` in every log dir, keeping an existing directory id."""
        for log_dir in self.log_dirs:
            existing = checkpoints.read_meta_properties(log_dir)
            try:
                directory_id = checkpoints.decode_uuid(existing["directory.id"])
            except (KeyError, ValueError):
                directory_id = uuid.uuid4()
            checkpoints.write_meta_properties(
                log_dir, node_id=node_id, cluster_id=cluster_id, directory_id=directory_id
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
        self._logs.clear()
        self._counts.clear()
