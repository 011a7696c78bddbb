"""DescribeLogDirs (key 35, KIP-113): each of this broker's ``log.dirs`` with its error
(KAFKA_STORAGE_ERROR when offline), the partitions there with their size, offset lag
and whether the log is a future one (a move under way), and the volume's total and
usable bytes (v4+), as Kafka's ``ReplicaManager.describeLogDirs``.

Offset lag as Kafka: for a current log, max(high watermark - log end offset, 0); for a
future log, how far it is behind the current one's log end offset. A null topic list
means every partition; an offline dir lists no partitions and no sizes. v5's
``is_cordoned`` is always false: log dir cordoning (KIP-1066) is not implemented.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from odradek.broker.api import Handler, RequestContext
from odradek.broker.handlers.common import ZERO_DURATION
from odradek.protocol import codec
from odradek.protocol.errors import ErrorCode
from odradek.protocol.types import TopicPartition
from odradek.storage.log import Log
from odradek.storage.log_manager import LogManager

API_KEY = 35


def _volume(path: str) -> tuple[int, int]:
    """(total, usable) bytes of the file system holding ``path`` (Java's FileStore
    getTotalSpace / getUsableSpace: usable is what an unprivileged user may still use)."""
    stats = os.statvfs(path)
    return stats.f_blocks * stats.f_frsize, stats.f_bavail * stats.f_frsize


def _offset_lag(manager: LogManager, item: Log, future: bool) -> int:
    current = manager.get_log(item.topic_partition)
    if current is None:
        return -1
    if future:
        return current.log_end_offset - item.log_end_offset
    return max(current.high_watermark - item.log_end_offset, 0)


PartitionInfo = tuple[int, int, int, bool]
"""(partition, size in bytes, offset lag, is future)"""
DirInfo = tuple[str, ErrorCode, dict[str, list[PartitionInfo]], int, int]
"""(path, error, partitions by topic, total bytes, usable bytes)"""


def describe(manager: LogManager, wanted: set[TopicPartition] | None) -> list[DirInfo]:
    """Per log dir: (path, error, {topic: [(partition, size, lag, is future)]}, total
    bytes, usable bytes)."""
    by_dir: dict[str, list[tuple[Log, bool]]] = {}
    logs: Iterable[tuple[Log, bool]] = [(item, False) for item in manager.logs.values()]
    futures = [(item, True) for item in manager.future_logs.values()]
    for item, future in [*logs, *futures]:
        by_dir.setdefault(item.parent_dir, []).append((item, future))
    channel = manager.log_dir_failure_channel
    results: list[DirInfo] = []
    for log_dir in manager.log_dirs:
        if channel.is_offline(log_dir):
            results.append((log_dir, ErrorCode.kafka_storage_error, {}, -1, -1))
            continue
        try:
            total, usable = _volume(log_dir)
        except OSError:
            results.append((log_dir, ErrorCode.kafka_storage_error, {}, -1, -1))
            continue
        topics: dict[str, list[PartitionInfo]] = {}
        for item, future in by_dir.get(log_dir, ()):
            tp = item.topic_partition
            if wanted is not None and tp not in wanted:
                continue
            lag = _offset_lag(manager, item, future)
            topics.setdefault(tp.topic, []).append((tp.partition, item.size_in_bytes, lag, future))
        results.append((log_dir, ErrorCode.none, topics, total, usable))
    return results


def handle(ctx: RequestContext, request: Any) -> Any:
    module = codec.response_module(API_KEY, ctx.api_version)
    wanted = (
        None
        if request.topics is None
        else {
            TopicPartition(topic.topic, int(index))
            for topic in request.topics
            for index in topic.partitions
        }
    )
    results = []
    for log_dir, error, topics, total, usable in describe(ctx.broker.log_manager, wanted):
        results.append(
            codec.build(
                module.DescribeLogDirsResult,
                error_code=error,
                log_dir=log_dir,
                topics=tuple(
                    codec.build(
                        module.DescribeLogDirsTopic,
                        name=name,
                        partitions=tuple(
                            codec.build(
                                module.DescribeLogDirsPartition,
                                partition_index=index,
                                partition_size=size,
                                offset_lag=lag,
                                is_future_key=future,
                            )
                            for index, size, lag, future in sorted(partitions)
                        ),
                    )
                    for name, partitions in sorted(topics.items())
                ),
                total_bytes=total,
                usable_bytes=usable,
                is_cordoned=False,
            )
        )
    return codec.build(
        module.DescribeLogDirsResponse,
        throttle_time=ZERO_DURATION,
        error_code=ErrorCode.none,
        results=tuple(results),
    )


HANDLER = Handler(api_key=API_KEY, min_version=1, max_version=5, handle=handle)
