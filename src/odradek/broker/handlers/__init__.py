"""One module per Kafka API; each exposes ``HANDLER``. ApiVersions is computed from these."""

from __future__ import annotations

from odradek.broker.api import Handler
from odradek.broker.handlers import (
    alter_partition_reassignments,
    api_versions,
    create_partitions,
    create_topics,
    delete_groups,
    delete_records,
    delete_topics,
    describe_cluster,
    describe_configs,
    describe_groups,
    elect_leaders,
    fetch,
    find_coordinator,
    heartbeat,
    init_producer_id,
    join_group,
    leave_group,
    list_groups,
    list_offsets,
    list_partition_reassignments,
    metadata,
    offset_commit,
    offset_delete,
    offset_fetch,
    offset_for_leader_epoch,
    produce,
    sync_group,
)
from odradek.broker.handlers.alter_configs import ALTER_CONFIGS, INCREMENTAL_ALTER_CONFIGS


def all_handlers() -> list[Handler]:
    return [
        api_versions.HANDLER,
        produce.HANDLER,
        fetch.HANDLER,
        list_offsets.HANDLER,
        metadata.HANDLER,
        create_topics.HANDLER,
        delete_topics.HANDLER,
        create_partitions.HANDLER,
        delete_records.HANDLER,
        init_producer_id.HANDLER,
        offset_for_leader_epoch.HANDLER,
        describe_cluster.HANDLER,
        elect_leaders.HANDLER,
        alter_partition_reassignments.HANDLER,
        list_partition_reassignments.HANDLER,
        describe_configs.HANDLER,
        ALTER_CONFIGS,
        INCREMENTAL_ALTER_CONFIGS,
        find_coordinator.HANDLER,
        join_group.HANDLER,
        sync_group.HANDLER,
        heartbeat.HANDLER,
        leave_group.HANDLER,
        offset_commit.HANDLER,
        offset_fetch.HANDLER,
        list_groups.HANDLER,
        describe_groups.HANDLER,
        delete_groups.HANDLER,
        offset_delete.HANDLER,
    ]
