"""File names inside a partition directory, as Kafka's ``LogFileUtils`` spells them.

A partition lives in ``<log.dir>/<topic>-<partition>/``. Every segment is a group of
files named by the segment's base offset, zero-padded to 20 digits::

    00000000000000000000.log        record batches (magic v2) exactly as on the wire
    00000000000000000000.index      offset index (see ``offset_index``)
    00000000000000000000.timeindex  time index (see ``time_index``)
    00000000000000000000.txnindex   aborted transactions, only when there are any
                                    (see ``txn_index``)
    00000000000000000000.snapshot   producer state at that offset (see ``producer_state``)

Suffixes added to those names mark files in transit: ``.deleted`` (segment waiting for
physical deletion), ``.cleaned`` and ``.swap`` (log cleaner / segment split), ``.tmp``
(atomic writes). A directory being removed is renamed ``<topic>-<partition>.<uuid>-delete``;
a replica being moved to another log dir (AlterReplicaLogDirs) is copied into
``<topic>-<partition>.<uuid>-future`` there until it replaces the current one.
"""

from __future__ import annotations

import os
import re
import uuid
from typing import Final

from odradek.protocol.types import TopicPartition

LOG_FILE_SUFFIX: Final = ".log"
INDEX_FILE_SUFFIX: Final = ".index"
TIME_INDEX_FILE_SUFFIX: Final = ".timeindex"
TXN_INDEX_FILE_SUFFIX: Final = ".txnindex"
PRODUCER_SNAPSHOT_FILE_SUFFIX: Final = ".snapshot"
DELETED_FILE_SUFFIX: Final = ".deleted"
CLEANED_FILE_SUFFIX: Final = ".cleaned"
SWAP_FILE_SUFFIX: Final = ".swap"
TMP_FILE_SUFFIX: Final = ".tmp"
DELETE_DIR_SUFFIX: Final = "-delete"
FUTURE_DIR_SUFFIX: Final = "-future"
STRAY_DIR_SUFFIX: Final = "-stray"

_DELETE_DIR = re.compile(r"^(\S+)-(\d+)\.(\S+)" + DELETE_DIR_SUFFIX + "$")
_FUTURE_DIR = re.compile(r"^(\S+)-(\d+)\.([0-9a-f]{32})" + FUTURE_DIR_SUFFIX + "$")


def filename_prefix(offset: int) -> str:
    """The 20-digit zero-padded offset that starts every segment file name."""
    return f"{offset:020d}"


def log_file(directory: str, offset: int, suffix: str = "") -> str:
    return os.path.join(directory, filename_prefix(offset) + LOG_FILE_SUFFIX + suffix)


def offset_index_file(directory: str, offset: int, suffix: str = "") -> str:
    return os.path.join(directory, filename_prefix(offset) + INDEX_FILE_SUFFIX + suffix)


def time_index_file(directory: str, offset: int, suffix: str = "") -> str:
    return os.path.join(directory, filename_prefix(offset) + TIME_INDEX_FILE_SUFFIX + suffix)


def txn_index_file(directory: str, offset: int, suffix: str = "") -> str:
    return os.path.join(directory, filename_prefix(offset) + TXN_INDEX_FILE_SUFFIX + suffix)


def producer_snapshot_file(directory: str, offset: int) -> str:
    return os.path.join(directory, filename_prefix(offset) + PRODUCER_SNAPSHOT_FILE_SUFFIX)


def offset_from_file_name(name: str) -> int | None:
    """Base offset encoded in a segment/index/snapshot file name, or None if there is none."""
    head = os.path.basename(name).split(".", 1)[0]
    if len(head) != 20 or not head.isdigit():
        return None
    return int(head)


def log_dir_name(tp: TopicPartition) -> str:
    return f"{tp.topic}-{tp.partition}"


def log_delete_dir_name(tp: TopicPartition) -> str:
    """``<topic>-<partition>.<uuid hex>-delete``: a partition directory awaiting removal."""
    return f"{tp.topic}-{tp.partition}.{uuid.uuid4().hex}{DELETE_DIR_SUFFIX}"


def is_delete_dir(name: str) -> bool:
    return _DELETE_DIR.match(name) is not None


def log_future_dir_name(tp: TopicPartition) -> str:
    """``<topic>-<partition>.<uuid hex>-future``: a replica being moved into this log dir."""
    return f"{tp.topic}-{tp.partition}.{uuid.uuid4().hex}{FUTURE_DIR_SUFFIX}"


def parse_future_dir(name: str) -> TopicPartition | None:
    """The partition of a ``-future`` directory name, or None for anything else."""
    found = _FUTURE_DIR.match(name)
    return None if found is None else TopicPartition(found.group(1), int(found.group(2)))


def parse_delete_dir(name: str) -> TopicPartition | None:
    """The partition of a ``-delete`` directory name, or None for anything else."""
    found = _DELETE_DIR.match(name)
    return None if found is None else TopicPartition(found.group(1), int(found.group(2)))


def parse_partition_dir(name: str) -> TopicPartition | None:
    """The partition of a live partition directory name, or None for anything else."""
    if name.endswith((DELETE_DIR_SUFFIX, FUTURE_DIR_SUFFIX, STRAY_DIR_SUFFIX)):
        return None
    try:
        return TopicPartition.from_dir_name(name)
    except ValueError:
        return None
