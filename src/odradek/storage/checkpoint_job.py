"""Offset checkpoint files written off the event loop, newest snapshot last.

The periodic checkpoints (high watermarks every 5 s, recovery points and log start
offsets every minute) each open, write, fsync and rename a file and fsync its directory:
3-5 ms a log dir on a VM's disk, during which every produce and fetch on the event loop
would wait. So a ``CheckpointJob`` splits the work like ``FlushJob``: the offsets are
read on the loop, where the logs live, so the snapshot is consistent; ``run`` writes the
files in any thread; ``complete`` reports failures on the loop again, where the failure
channel lives.

The writes a caller needs done at once (shutdown, deletions, moves) go through the same
``OffsetCheckpointFiles``, so a background write that began earlier can never replace a
newer file, nor meet it on the shared ``.tmp`` path: every snapshot takes a generation
on the loop, the writes are serialised by one lock, and a file is only replaced by a
later generation than the one it holds.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
from collections.abc import Mapping

from odradek.protocol.types import TopicPartition
from odradek.storage import checkpoints
from odradek.storage.errors import KafkaStorageError, LogDirFullError
from odradek.storage.log_dir_failure import LogDirFailureChannel

log = logging.getLogger(__name__)


class OffsetCheckpointFiles:
    """One broker's offset checkpoint files, written from any thread."""

    __slots__ = ("_generations", "_lock", "_written")

    def __init__(self) -> None:
        self._generations = itertools.count()
        self._lock = threading.Lock()
        self._written: dict[str, int] = {}
        """path -> generation of the snapshot the file holds"""

    def next_generation(self) -> int:
        """Taken on the event loop when a snapshot of offsets is read."""
        return next(self._generations)

    def write(self, path: str, offsets: Mapping[TopicPartition, int], generation: int) -> None:
        """Replace the file at ``path`` unless it already holds a later snapshot; raises
        ``LogDirFullError`` or ``KafkaStorageError`` as ``write_atomically`` does."""
        with self._lock:
            if self._written.get(path, -1) > generation:
                return
            checkpoints.write_offset_checkpoint(path, offsets)
            self._written[path] = generation


class CheckpointJob:
    """One checkpoint (``name``) of every live log dir, read at one moment."""

    __slots__ = ("channel", "failures", "files", "generation", "name", "offsets_by_dir")

    def __init__(
        self,
        name: str,
        offsets_by_dir: dict[str, dict[TopicPartition, int]],
        files: OffsetCheckpointFiles,
        channel: LogDirFailureChannel,
    ) -> None:
        self.name = name
        self.offsets_by_dir = offsets_by_dir
        self.files = files
        self.channel = channel
        self.generation = files.next_generation()
        self.failures: list[tuple[str, KafkaStorageError]] = []

    def run(self) -> None:
        """Write the file in each log dir; in any thread. Never raises: failures are kept
        for ``complete``."""
        for log_dir, offsets in self.offsets_by_dir.items():
            try:
                self.files.write(os.path.join(log_dir, self.name), offsets, self.generation)
            except KafkaStorageError as exc:  # LogDirFullError among them
                self.failures.append((log_dir, exc))

    def complete(self) -> bool:
        """On the event loop after ``run``: False if any dir's file was not written. A
        full disk keeps the previous file until the next try; any other failure takes
        the dir offline."""
        for log_dir, exc in self.failures:
            if isinstance(exc, LogDirFullError):
                log.warning("%s; the previous %s stays until the next try", exc, self.name)
            else:
                self.channel.maybe_add_offline_log_dir(
                    log_dir, f"error while writing {self.name}", exc
                )
        return not self.failures

    def write(self) -> bool:
        """``run`` then ``complete`` in the caller's thread, for a checkpoint needed now."""
        self.run()
        return self.complete()
