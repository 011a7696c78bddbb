"""AlterReplicaLogDirs (key 34, KIP-113): move replicas of this broker to other log dirs
of it. Each partition gets Kafka's answer (``replication.alter_log_dirs``): NONE once
the move is under way (the client follows it with DescribeLogDirs, where the future log
shows until the swap), LOG_DIR_NOT_FOUND for a path not in ``log.dirs``,
KAFKA_STORAGE_ERROR for an offline dir or partition, REPLICA_NOT_AVAILABLE for a
partition not hosted here (remembered: it will be created in that dir),
UNKNOWN_TOPIC_OR_PARTITION for one that does not exist.
"""

from __future__ import annotations

from typing import Any

from odradek.broker.api import Handler, RequestContext
from odradek.broker.handlers.common import ZERO_DURATION
from odradek.protocol import codec
from odradek.protocol.errors import ErrorCode
from odradek.protocol.types import TopicPartition

API_KEY = 34


def handle(ctx: RequestContext, request: Any) -> Any:
    module = codec.response_module(API_KEY, ctx.api_version)
    mover = ctx.broker.replica_manager.log_dir_mover
    results: dict[str, list[tuple[int, ErrorCode]]] = {}
    for target in request.dirs:
        for topic in target.topics:
            for index in topic.partitions:
                error = mover.alter(TopicPartition(topic.name, int(index)), target.path)
                results.setdefault(topic.name, []).append((int(index), error))
    return codec.build(
        module.AlterReplicaLogDirsResponse,
        throttle_time=ZERO_DURATION,
        results=tuple(
            codec.build(
                module.AlterReplicaLogDirTopicResult,
                topic_name=name,
                partitions=tuple(
                    codec.build(
                        module.AlterReplicaLogDirPartitionResult,
                        partition_index=index,
                        error_code=error,
                    )
                    for index, error in partitions
                ),
            )
            for name, partitions in results.items()
        ),
    )


HANDLER = Handler(api_key=API_KEY, min_version=1, max_version=2, handle=handle)
