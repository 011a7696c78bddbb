"""Committed offsets of groups (Kafka's ``OffsetMetadataManager``).

Offsets live in memory and in ``__consumer_offsets``; every change is written first and
applied after the write succeeds, exactly as replaying the record at load time applies
it, so memory and log never disagree. Expiry follows KIP-211: the offsets of an empty
group expire ``offsets.retention.minutes`` after the group became empty; those of a
group with members expire only for topics it no longer subscribes to.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from odradek.coordinator.group.group import ClassicGroup, GroupState
from odradek.coordinator.group.records import Key, OffsetCommitKey, OffsetCommitValue, Value
from odradek.protocol.errors import ErrorCode
from odradek.protocol.types import TopicPartition

Writer = Callable[[list[tuple[Key, Value | None]]], None]


@dataclass(frozen=True, slots=True, kw_only=True)
class OffsetConfig:
    metadata_max_bytes: int = 4096
    retention_ms: int = 7 * 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class OffsetToCommit:
    tp: TopicPartition
    offset: int
    leader_epoch: int
    metadata: str | None


class OffsetMetadataManager:
    def __init__(self, config: OffsetConfig, clock: Callable[[], int], writer: Writer) -> None:
        self.config = config
        self.clock = clock
        self.writer = writer
        self.offsets: dict[str, dict[TopicPartition, OffsetCommitValue]] = {}

    def commit(
        self, group_id: str, wanted: Iterable[OffsetToCommit]
    ) -> dict[TopicPartition, ErrorCode]:
        """Write and apply commits; the error of each partition (writes are all or nothing)."""
        now = self.clock()
        errors: dict[TopicPartition, ErrorCode] = {}
        commits: list[tuple[OffsetCommitKey, OffsetCommitValue]] = []
        for item in wanted:
            metadata = item.metadata or ""
            if len(metadata.encode()) > self.config.metadata_max_bytes:
                errors[item.tp] = ErrorCode.offset_metadata_too_large
                continue
            value = OffsetCommitValue(
                offset=item.offset,
                leader_epoch=item.leader_epoch,
                metadata=metadata,
                commit_timestamp=now,
            )
            commits.append((OffsetCommitKey(group_id, item.tp.topic, item.tp.partition), value))
            errors[item.tp] = ErrorCode.none
        if commits:
            self.writer(list(commits))
            for key, value in commits:
                self.replay(key, value)
        return errors

    def fetch(
        self, group_id: str, wanted: Iterable[TopicPartition] | None
    ) -> list[tuple[TopicPartition, OffsetCommitValue | None]]:
        committed = self.offsets.get(group_id, {})
        if wanted is None:
            return sorted(committed.items())
        return [(tp, committed.get(tp)) for tp in wanted]

    def has_offsets(self, group_id: str) -> bool:
        return bool(self.offsets.get(group_id))

    def topics(self, group_id: str) -> set[str]:
        return {tp.topic for tp in self.offsets.get(group_id, {})}

    def tombstones(
        self, group_id: str, partitions: Iterable[TopicPartition] | None = None
    ) -> list[tuple[Key, Value | None]]:
        """Records deleting the group's offsets (all, or of ``partitions``)."""
        committed = self.offsets.get(group_id, {})
        chosen = committed if partitions is None else [tp for tp in partitions if tp in committed]
        return [(OffsetCommitKey(group_id, tp.topic, tp.partition), None) for tp in chosen]

    def replay(self, key: OffsetCommitKey, value: OffsetCommitValue | None) -> None:
        tp = TopicPartition(key.topic, key.partition)
        if value is None:
            group = self.offsets.get(key.group)
            if group is not None:
                group.pop(tp, None)
                if not group:
                    del self.offsets[key.group]
            return
        self.offsets.setdefault(key.group, {})[tp] = value

    def expired(self, group: ClassicGroup | None, group_id: str, now: int) -> list[TopicPartition]:
        """Partitions whose offsets have expired (KIP-211)."""
        committed = self.offsets.get(group_id, {})
        retention = self.config.retention_ms
        if group is None or group.is_in(GroupState.EMPTY, GroupState.DEAD):
            base = group.state_timestamp if group is not None else -1
            return [
                tp
                for tp, value in committed.items()
                if now >= max(value.commit_timestamp, base) + retention
                or (value.expire_timestamp >= 0 and now >= value.expire_timestamp)
            ]
        subscribed = group.subscribed_topics()
        if subscribed is None:
            return []
        return [
            tp
            for tp, value in committed.items()
            if tp.topic not in subscribed and now >= value.commit_timestamp + retention
        ]
