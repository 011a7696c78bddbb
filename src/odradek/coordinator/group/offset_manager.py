"""Committed offsets of groups (Kafka's ``OffsetMetadataManager``).

Offsets live in memory and in ``__consumer_offsets``; every change is written first and
applied after the write succeeds, exactly as replaying the record at load time applies
it, so memory and log never disagree. Expiry follows KIP-211: the offsets of an empty
group expire ``offsets.retention.minutes`` after the group became empty; those of a
group with members expire only for topics it no longer subscribes to.

Transactional offsets (TxnOffsetCommit, KIP-98). A producer's commits inside a
transaction are written as one transactional batch carrying its producer id, and are
held *pending* under that producer id: OffsetFetch does not see them. When a
transaction marker for the producer lands in the partition, a commit moves them into
the committed offsets and an abort drops them. A pending offset whose record sits
before the record of the committed offset it would replace (a plain OffsetCommit written
after it) does not replace it: as in Kafka, the later record in the log wins, so the
outcome is the same live, after a reload, and after compaction. While a partition has
pending offsets, a fetch with ``require_stable`` (KIP-447) gets UNSTABLE_OFFSET_COMMIT
for it, its committed offset does not expire, and its group is not removed. A tombstone
of a partition (OffsetDelete, DeleteGroups) drops pending offsets of it too, so a later
commit marker cannot bring them back.

Each offset is kept with the log offset of its record (``StoredOffset``). Not
thread-safe: one event loop owns it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from odradek.coordinator.group.group import ClassicGroup, GroupState
from odradek.coordinator.group.group_manager import TxnProducer, Writer
from odradek.coordinator.group.records import Key, OffsetCommitKey, OffsetCommitValue, Value
from odradek.protocol.errors import ErrorCode
from odradek.protocol.records import NO_PRODUCER_ID
from odradek.protocol.types import TopicPartition

log = logging.getLogger(__name__)


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


@dataclass(frozen=True, slots=True)
class StoredOffset:
    """An offset commit and the log offset of its record (Kafka's ``recordOffset``)."""

    value: OffsetCommitValue
    record_offset: int


@dataclass(frozen=True, slots=True)
class FetchedOffset:
    """One partition of an OffsetFetch answer: the committed offset (None: none), or
    UNSTABLE_OFFSET_COMMIT (and None) while a transaction holds a pending one."""

    tp: TopicPartition
    value: OffsetCommitValue | None
    error: ErrorCode = ErrorCode.none


GroupOffsets = dict[str, dict[TopicPartition, StoredOffset]]
PendingOffsets = dict[str, dict[TopicPartition, list[StoredOffset]]]
"""One producer's pending offsets: group -> partition -> records in log order."""


class OffsetMetadataManager:
    def __init__(self, config: OffsetConfig, clock: Callable[[], int], writer: Writer) -> None:
        self.config = config
        self.clock = clock
        self.writer = writer
        self.offsets: GroupOffsets = {}
        self.pending: dict[int, PendingOffsets] = {}
        """Offsets of open transactions, by producer id."""
        self.open_transactions: dict[str, set[int]] = {}
        """Producer ids holding pending offsets, by group."""

    # -- requests --------------------------------------------------------------------------

    def commit(
        self,
        group_id: str,
        wanted: Iterable[OffsetToCommit],
        producer: TxnProducer | None = None,
    ) -> dict[TopicPartition, ErrorCode]:
        """Write and apply commits, in one batch (a transactional one for ``producer``,
        whose offsets stay pending); the error of each partition (writes are all or
        nothing)."""
        now = self.clock()
        errors: dict[TopicPartition, ErrorCode] = {}
        commits: list[tuple[Key, Value | None]] = []
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
            first = self.writer(commits, producer)
            producer_id = NO_PRODUCER_ID if producer is None else producer.producer_id
            for index, (key, written) in enumerate(commits):
                assert isinstance(key, OffsetCommitKey) and isinstance(written, OffsetCommitValue)
                self.replay(key, written, first + index, producer_id)
        return errors

    def fetch(
        self,
        group_id: str,
        wanted: Iterable[TopicPartition] | None,
        *,
        require_stable: bool = False,
    ) -> list[FetchedOffset]:
        """Committed offsets of ``wanted`` (None: every partition with a committed offset,
        as Kafka lists them); pending ones are never returned, and with
        ``require_stable`` a partition that has some is UNSTABLE_OFFSET_COMMIT."""
        committed = self.offsets.get(group_id, {})
        partitions = sorted(committed) if wanted is None else list(wanted)
        fetched = []
        for tp in partitions:
            if require_stable and self.has_pending(group_id, tp):
                fetched.append(FetchedOffset(tp, None, ErrorCode.unstable_offset_commit))
                continue
            stored = committed.get(tp)
            fetched.append(FetchedOffset(tp, None if stored is None else stored.value))
        return fetched

    def has_offsets(self, group_id: str) -> bool:
        return bool(self.offsets.get(group_id))

    def has_pending(self, group_id: str, tp: TopicPartition) -> bool:
        """Whether an open transaction holds a pending offset of ``tp`` for the group."""
        for producer_id in self.open_transactions.get(group_id, ()):
            if tp in self.pending[producer_id].get(group_id, {}):
                return True
        return False

    def has_open_transactions(self, group_id: str) -> bool:
        return group_id in self.open_transactions

    def groups_with_offsets(self) -> set[str]:
        """Groups with committed or pending offsets."""
        return set(self.offsets) | set(self.open_transactions)

    def partitions(self, group_id: str) -> set[TopicPartition]:
        """Partitions with a committed or a pending offset for the group."""
        found = set(self.offsets.get(group_id, {}))
        for producer_id in self.open_transactions.get(group_id, ()):
            found.update(self.pending[producer_id].get(group_id, {}))
        return found

    def tombstones(
        self, group_id: str, partitions: Iterable[TopicPartition] | None = None
    ) -> list[tuple[Key, Value | None]]:
        """Records deleting the group's offsets, committed and pending (all, or those of
        ``partitions``); one tombstone per partition."""
        known = self.partitions(group_id)
        chosen = known if partitions is None else {tp for tp in partitions if tp in known}
        return [(OffsetCommitKey(group_id, tp.topic, tp.partition), None) for tp in sorted(chosen)]

    def expired(self, group: ClassicGroup | None, group_id: str, now: int) -> list[TopicPartition]:
        """Partitions whose offsets have expired (KIP-211); never one with a pending
        transactional offset (Kafka waits for the transaction to end)."""
        committed = self.offsets.get(group_id, {})
        retention = self.config.retention_ms
        if group is None or group.is_in(GroupState.EMPTY, GroupState.DEAD):
            base = group.state_timestamp if group is not None else -1
            candidates = [
                tp
                for tp, stored in committed.items()
                if now >= max(stored.value.commit_timestamp, base) + retention
                or (stored.value.expire_timestamp >= 0 and now >= stored.value.expire_timestamp)
            ]
        else:
            subscribed = group.subscribed_topics()
            if subscribed is None:
                return []
            candidates = [
                tp
                for tp, stored in committed.items()
                if tp.topic not in subscribed and now >= stored.value.commit_timestamp + retention
            ]
        return [tp for tp in candidates if not self.has_pending(group_id, tp)]

    # -- replay ----------------------------------------------------------------------------

    def replay(
        self,
        key: OffsetCommitKey,
        value: OffsetCommitValue | None,
        record_offset: int,
        producer_id: int = NO_PRODUCER_ID,
    ) -> None:
        """Apply an offset commit record at ``record_offset``: committed at once, or
        pending under ``producer_id`` when it came in a transactional batch. A tombstone
        deletes the committed offset and every pending one of the partition."""
        tp = TopicPartition(key.topic, key.partition)
        group_id = key.group
        if value is not None:
            stored = StoredOffset(value, record_offset)
            if producer_id == NO_PRODUCER_ID:
                self.offsets.setdefault(group_id, {})[tp] = stored
            else:
                by_group = self.pending.setdefault(producer_id, {})
                by_group.setdefault(group_id, {}).setdefault(tp, []).append(stored)
                self.open_transactions.setdefault(group_id, set()).add(producer_id)
            return
        committed = self.offsets.get(group_id)
        if committed is not None:
            committed.pop(tp, None)
            if not committed:
                del self.offsets[group_id]
        for open_id in list(self.open_transactions.get(group_id, ())):
            by_tp = self.pending[open_id].get(group_id, {})
            by_tp.pop(tp, None)
            if not by_tp:
                self._forget_pending(open_id, group_id)

    def replay_end_transaction(
        self, producer_id: int, commit: bool, marker_offset: int | None = None
    ) -> None:
        """Apply a transaction marker of ``producer_id``: its pending offsets written
        before ``marker_offset`` (all when None) become committed, unless a committed
        offset of the same partition has a later record, or are dropped (abort)."""
        by_group = self.pending.get(producer_id)
        if by_group is None:
            return
        for group_id in list(by_group):
            by_tp = by_group[group_id]
            for tp in list(by_tp):
                entries = by_tp[tp]
                ended = [
                    e for e in entries if marker_offset is None or e.record_offset < marker_offset
                ]
                if not ended:
                    continue
                if commit:
                    self._materialize(group_id, tp, ended[-1], producer_id)
                remaining = entries[len(ended) :]
                if remaining:
                    by_tp[tp] = remaining
                else:
                    del by_tp[tp]
            if not by_tp:
                self._forget_pending(producer_id, group_id)

    def _materialize(
        self, group_id: str, tp: TopicPartition, pending: StoredOffset, producer_id: int
    ) -> None:
        committed = self.offsets.setdefault(group_id, {})
        existing = committed.get(tp)
        if existing is None or pending.record_offset > existing.record_offset:
            committed[tp] = pending
            return
        log.info(
            "transactional offset %s of producer %d for group %s %s not applied: the "
            "committed offset's record (%d) is later than its record (%d)",
            pending.value.offset,
            producer_id,
            group_id,
            tp,
            existing.record_offset,
            pending.record_offset,
        )

    def _forget_pending(self, producer_id: int, group_id: str) -> None:
        """The producer holds nothing more for the group."""
        by_group = self.pending.get(producer_id)
        if by_group is not None:
            by_group.pop(group_id, None)
            if not by_group:
                del self.pending[producer_id]
        open_ids = self.open_transactions.get(group_id)
        if open_ids is not None:
            open_ids.discard(producer_id)
            if not open_ids:
                del self.open_transactions[group_id]

    def clear(self) -> None:
        self.offsets.clear()
        self.pending.clear()
        self.open_transactions.clear()
