"""Which log directories have failed, and who must hear of it (Kafka's
``LogDirFailureChannel``).

Any storage operation that fails with a ``KafkaStorageError`` other than
``LogDirFullError`` reports its log dir here (``Log``, ``LogManager``, the broker's
background flush). The first report of a dir logs the error once and calls every
listener, in the order they registered: the ``LogManager`` stops using the dir (closes
its logs without writing, writes no checkpoint there, places no new log there), then the
``ReplicaManager`` marks its partitions offline, so produce, fetch and the other
partition requests answer KAFKA_STORAGE_ERROR and Metadata reports them without a leader;
the broker then lists them in its registration, and the controller moves their
leadership and ISR membership to the other replicas. A failed dir stays offline until
the broker restarts, as in Kafka.

What counts as a failure, and what does not:

- **Dir failure** (offline): any error other than a full disk, e.g. EIO, EROFS, EACCES,
  ENOTDIR, a failed fsync whatever its errno, and a full disk whose partial write could
  not be undone (the truncation back failed).
- **Full disk** (``LogDirFullError``, ENOSPC or EDQUOT): the write is undone (an append
  truncates the segment back to its size before the write; an atomic file write removes
  its temporary file) and fails with KAFKA_STORAGE_ERROR; the partition stays online
  and takes writes again as soon as there is room, without a restart. Writes that only
  speed up recovery (index entries, producer snapshots at a roll, checkpoints) are
  retried later instead of failing anything.

Unlike Kafka, the broker does not halt when its last log dir fails: it keeps answering
what needs no disk (Metadata, ApiVersions, DescribeCluster, ...) and shuts down cleanly.

Not thread-safe: call it on the event loop's thread (a worker thread hands its error
back first, see ``FlushJob``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

log = logging.getLogger(__name__)

LogDirFailureListener = Callable[[str], object]


class LogDirFailureChannel:
    def __init__(self) -> None:
        self._offline: set[str] = set()
        self._listeners: list[LogDirFailureListener] = []

    def add_listener(self, listener: LogDirFailureListener) -> None:
        """``listener(log_dir)`` is called once per failed dir (absolute path)."""
        self._listeners.append(listener)

    def is_offline(self, log_dir: str) -> bool:
        return os.path.abspath(log_dir) in self._offline

    @property
    def offline_log_dirs(self) -> frozenset[str]:
        return frozenset(self._offline)

    def maybe_add_offline_log_dir(self, log_dir: str, message: str, cause: BaseException) -> bool:
        """Take ``log_dir`` offline (True), or nothing if it already is (False)."""
        log_dir = os.path.abspath(log_dir)
        if log_dir in self._offline:
            return False
        self._offline.add(log_dir)
        log.error("%s; log dir %s is now offline: %s", message, log_dir, cause)
        for listener in list(self._listeners):
            try:
                listener(log_dir)
            except Exception:
                log.exception("error while taking log dir %s offline", log_dir)
        return True
