"""One partition this broker hosts: its log, leadership, ISR and high watermark.

As Kafka's ``Partition``. The leader tracks each follower's log end offset from the
offsets its fetches ask for, and when it last caught up with the leader's log end; the
high watermark is the smallest log end offset in the ISR (it only moves forward). A
follower that asks for an offset at or beyond the high watermark and within the leader's
epoch may join the ISR; one not caught up for ``replica.lag.time.max.ms`` leaves it. The
ISR changes themselves are written by the replica manager (through the metadata store),
never by this class. A follower's partition appends what its fetcher copies from the
leader and takes the leader's high watermark, capped at its own log end.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import NamedTuple

from odradek.cluster.metadata import PartitionState
from odradek.config import LogConfig
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.protocol.records import complete_batches_size
from odradek.protocol.types import TopicPartition, new_tuple
from odradek.storage.log import Log
from odradek.storage.values import AbortedTxn, AppendOrigin, FetchDataInfo, LogAppendInfo

READ_UNCOMMITTED = 0
READ_COMMITTED = 1
NO_EPOCH = -1
LATEST_TIMESTAMP = -1
EARLIEST_TIMESTAMP = -2
MAX_TIMESTAMP = -3
EARLIEST_LOCAL_TIMESTAMP = -4


class NotLeaderError(KafkaError):
    error_code = ErrorCode.not_leader_or_follower


class NotEnoughReplicasError(KafkaError):
    error_code = ErrorCode.not_enough_replicas


@dataclass(slots=True)
class FollowerState:
    """What the leader knows of one follower (Kafka's ``Replica`` state)."""

    log_end_offset: int = -1
    """-1 until its first fetch since this broker became leader."""
    last_caught_up_ms: int = 0
    last_fetch_ms: int = 0
    last_fetch_leader_log_end_offset: int = -1


class AcksOutcome(NamedTuple):
    """Whether an acks=all produce can be answered, and with which error."""

    done: bool
    error: ErrorCode = ErrorCode.none


class PartitionRead(NamedTuple):
    """What a fetch of one partition found, with the offsets the response reports."""

    info: FetchDataInfo | None
    high_watermark: int
    last_stable_offset: int
    log_start_offset: int
    log_end_offset: int
    aborted_transactions: list[AbortedTxn] | None = None
    """read_committed only: the aborted transactions overlapping the records read."""


class Partition:
    def __init__(
        self,
        tp: TopicPartition,
        topic_id: uuid.UUID,
        log: Log,
        state: PartitionState,
        broker_id: int,
    ) -> None:
        self.tp = tp
        self.topic_id = topic_id
        self.log = log
        self.broker_id = broker_id
        self.state = state
        self._followers: dict[int, FollowerState] = {}
        self._leader_epoch_start_offset = -1
        """The log end offset when this broker last became leader (KIP-207)."""
        self._record_leader_epoch()
        if self.is_leader:
            self._start_leading(now=0)

    @property
    def leader_epoch(self) -> int:
        return self.state.leader_epoch

    @property
    def is_leader(self) -> bool:
        return self.state.leader == self.broker_id

    def update_state(self, state: PartitionState, now: int = 0) -> None:
        """Take a new state from the metadata (leader, epoch, replicas, ISR)."""
        was_leader = self.is_leader
        old_epoch = self.state.leader_epoch
        self.state = state
        self._record_leader_epoch()
        if not self.is_leader:
            self._followers = {}
        elif not was_leader or state.leader_epoch != old_epoch:
            self._start_leading(now)
        else:
            # A reassignment added or removed replicas.
            for replica in state.replicas:
                if replica != self.broker_id and replica not in self._followers:
                    self._followers[replica] = FollowerState()
            for replica in [r for r in self._followers if r not in state.replicas]:
                del self._followers[replica]
            self._maybe_increment_high_watermark()

    def _start_leading(self, now: int) -> None:
        self._leader_epoch_start_offset = self.log.log_end_offset
        # As Kafka: followers in the ISR count as caught up when leadership starts, so
        # they are not thrown out of the ISR before their first fetch.
        self._followers = {
            replica: FollowerState(last_caught_up_ms=now if replica in self.state.isr else 0)
            for replica in self.state.replicas
            if replica != self.broker_id
        }
        self._maybe_increment_high_watermark()

    def _record_leader_epoch(self) -> None:
        cache = self.log.leader_epoch_cache
        if self.is_leader and (
            cache.latest_epoch is None or cache.latest_epoch < self.leader_epoch
        ):
            cache.assign(self.leader_epoch, self.log.log_end_offset)

    def update_config(self, config: LogConfig) -> None:
        self.log.update_config(config)

    def check_leader_epoch(self, current_leader_epoch: int) -> None:
        """Kafka's epoch fencing for requests that name the epoch they think is current."""
        if current_leader_epoch == NO_EPOCH:
            return
        if current_leader_epoch < self.leader_epoch:
            raise KafkaError(
                f"epoch {current_leader_epoch} is older than {self.leader_epoch}",
                ErrorCode.fenced_leader_epoch,
            )
        if current_leader_epoch > self.leader_epoch:
            raise KafkaError(
                f"epoch {current_leader_epoch} is newer than {self.leader_epoch}",
                ErrorCode.unknown_leader_epoch,
            )

    def _require_leader(self) -> None:
        if not self.is_leader:
            raise NotLeaderError(f"broker {self.broker_id} is not the leader of {self.tp}")

    def append_records_to_leader(
        self,
        records: bytes | bytearray | memoryview,
        required_acks: int,
        origin: AppendOrigin = AppendOrigin.CLIENT,
    ) -> LogAppendInfo:
        """Append as leader; a writable ``records`` buffer is patched in place, not copied."""
        state = self.state
        if state.leader != self.broker_id:  # _require_leader, inline: once per append
            self._require_leader()
        isr = len(state.isr)
        if required_acks == -1 and isr < self.log.config.min_insync_replicas:
            raise NotEnoughReplicasError(
                f"The size of the current ISR {isr} is insufficient to satisfy the min.isr "
                f"requirement of {self.log.config.min_insync_replicas} for partition {self.tp}"
            )
        info = self.log.append_as_leader(records, state.leader_epoch, origin=origin)
        self._maybe_increment_high_watermark()
        return info

    def _maybe_increment_high_watermark(self) -> bool:
        """Move the high watermark up to the ISR's smallest log end offset; True if it
        moved. A follower of the ISR not heard from yet holds it where it is."""
        log = self.log
        new = log.log_end_offset
        for replica in self.state.isr:
            if replica == self.broker_id:
                continue
            follower = self._followers.get(replica)
            if follower is None or follower.log_end_offset < 0:
                return False
            new = min(new, follower.log_end_offset)
        if new > log.high_watermark:
            log.update_high_watermark(new)
            return True
        return False

    # -- leader: followers -----------------------------------------------------------------

    def update_follower_fetch_state(self, replica_id: int, fetch_offset: int, now: int) -> bool:
        """Record a follower's fetch (its log end offset is the offset it asks for);
        True when the high watermark moved."""
        follower = self._followers.get(replica_id)
        if follower is None:
            raise KafkaError(
                f"broker {replica_id} is not a replica of {self.tp}",
                ErrorCode.not_leader_or_follower,
            )
        leader_end = self.log.log_end_offset
        if fetch_offset >= leader_end:
            follower.last_caught_up_ms = now
        elif fetch_offset >= follower.last_fetch_leader_log_end_offset:
            # It has everything the leader had at its previous fetch.
            follower.last_caught_up_ms = max(follower.last_caught_up_ms, follower.last_fetch_ms)
        follower.last_fetch_leader_log_end_offset = leader_end
        follower.last_fetch_ms = now
        follower.log_end_offset = fetch_offset
        return self._maybe_increment_high_watermark()

    def isr_to_expand(self, replica_id: int) -> tuple[int, ...] | None:
        """The ISR with ``replica_id`` added, if it has caught up enough to join: at the
        high watermark or beyond, and within the current leader epoch."""
        if not self.is_leader or replica_id in self.state.isr:
            return None
        follower = self._followers.get(replica_id)
        if follower is None:
            return None
        latest = self.log.leader_epoch_cache.latest_entry()
        epoch_start = latest.start_offset if latest is not None else 0
        if follower.log_end_offset >= max(self.log.high_watermark, epoch_start):
            return (*self.state.isr, replica_id)
        return None

    def isr_to_shrink(self, now: int, max_lag_ms: int) -> tuple[int, ...] | None:
        """The ISR without followers not caught up for ``max_lag_ms``; None if all are."""
        if not self.is_leader:
            return None
        log_end = self.log.log_end_offset
        lagging = {
            replica
            for replica in self.state.isr
            if replica != self.broker_id
            and (follower := self._followers.get(replica)) is not None
            and follower.log_end_offset != log_end
            and now - follower.last_caught_up_ms > max_lag_ms
        }
        if not lagging:
            return None
        return tuple(r for r in self.state.isr if r not in lagging)

    def acks_outcome(self, required_offset: int) -> AcksOutcome:
        """Kafka's ``checkEnoughReplicasReachOffset`` for an acks=all produce."""
        if not self.is_leader:
            return AcksOutcome(True, ErrorCode.not_leader_or_follower)
        if self.log.high_watermark < required_offset:
            return AcksOutcome(False)
        if len(self.state.isr) < self.log.config.min_insync_replicas:
            return AcksOutcome(True, ErrorCode.not_enough_replicas_after_append)
        return AcksOutcome(True)

    # -- follower --------------------------------------------------------------------------

    def append_as_follower(
        self,
        records: bytes | bytearray | memoryview | None,
        leader_high_watermark: int,
        leader_log_start_offset: int,
    ) -> LogAppendInfo | None:
        """Append what the fetcher copied from the leader, whole batches only (a response
        cut at the byte limit ends inside a batch, which the next fetch brings whole); take
        the leader's high watermark (capped at this log's end) and log start offset."""
        log = self.log
        if records:
            whole = complete_batches_size(records)
            if whole < len(records):
                records = memoryview(records)[:whole]
        info = log.append_as_follower(records) if records else None
        log.update_high_watermark(min(leader_high_watermark, log.log_end_offset))
        if leader_log_start_offset > log.log_start_offset:
            log.maybe_increment_log_start_offset(min(leader_log_start_offset, log.high_watermark))
        return info

    def truncate_to(self, offset: int) -> None:
        """Drop what the new leader does not have (KIP-101)."""
        self.log.truncate_to(offset)

    def read(
        self,
        fetch_offset: int,
        max_bytes: int,
        isolation_level: int,
        min_one_message: bool,
        current_leader_epoch: int = NO_EPOCH,
        *,
        follower: bool = False,
    ) -> PartitionRead:
        """Records for a consumer (below the high watermark, or the LSO for
        read_committed) or, with ``follower``, for a follower (up to the log end)."""
        state = self.state  # a consumer at the log end reads once per record: no helpers
        if state.leader != self.broker_id:
            self._require_leader()
        if current_leader_epoch not in (NO_EPOCH, state.leader_epoch):
            self.check_leader_epoch(current_leader_epoch)
        log = self.log
        limit: int | None
        if follower:
            limit = None
        elif isolation_level == READ_COMMITTED:
            limit = log.last_stable_offset
        else:
            limit = log.high_watermark
        info = log.read(fetch_offset, max_bytes, max_offset=limit, min_one_message=min_one_message)
        aborted = None
        if isolation_level == READ_COMMITTED and not follower:
            aborted = log.aborted_transactions_for(info)
        return new_tuple(  # one per partition read
            PartitionRead,
            (
                info,
                log.high_watermark,
                log.last_stable_offset,
                log.log_start_offset,
                log.log_end_offset,
                aborted,
            ),
        )

    def fetch_offset_for_timestamp(
        self,
        timestamp: int,
        isolation_level: int,
        current_leader_epoch: int = NO_EPOCH,
        *,
        from_client: bool = True,
    ) -> tuple[int, int, int] | None:
        """ListOffsets: (offset, timestamp, leader epoch), or None when no record qualifies.

        Only offsets below the high watermark (or LSO for read_committed) are visible.
        A new leader whose high watermark has not yet reached the start of its epoch
        answers clients OFFSET_NOT_AVAILABLE (KIP-207): its high watermark may still be
        below the one the previous leader reported, and "latest" must not go backwards.
        """
        self._require_leader()
        self.check_leader_epoch(current_leader_epoch)
        if from_client and self._leader_epoch_start_offset > self.log.high_watermark:
            raise KafkaError(
                f"the high watermark of {self.tp} has not caught up with the start of "
                f"leader epoch {self.leader_epoch} yet",
                ErrorCode.offset_not_available,
            )
        log = self.log
        limit = log.last_stable_offset if isolation_level == READ_COMMITTED else log.high_watermark
        if timestamp == LATEST_TIMESTAMP:
            return limit, -1, self.leader_epoch
        found = log.fetch_offset_by_timestamp(timestamp)
        if found is None:
            return None
        epoch = NO_EPOCH if found.leader_epoch is None else found.leader_epoch
        if timestamp in (EARLIEST_TIMESTAMP, EARLIEST_LOCAL_TIMESTAMP):
            return found.offset, found.timestamp, epoch
        if found.offset >= limit:
            return None
        return found.offset, found.timestamp, epoch

    def last_offset_for_leader_epoch(
        self, current_leader_epoch: int, leader_epoch: int
    ) -> tuple[int, int]:
        """OffsetForLeaderEpoch: (largest epoch <= leader_epoch, its end offset)."""
        self._require_leader()
        self.check_leader_epoch(current_leader_epoch)
        return self.log.leader_epoch_cache.end_offset_for(leader_epoch, self.log.log_end_offset)

    def delete_records_before(self, offset: int) -> int:
        """DeleteRecords: advance the log start offset; -1 means the high watermark."""
        self._require_leader()
        log = self.log
        target = log.high_watermark if offset == -1 else offset
        if target < 0 or target > log.high_watermark:
            raise KafkaError(
                f"Cannot increment the log start offset to {target} of partition {self.tp} "
                f"since it is larger than the high watermark {log.high_watermark}",
                ErrorCode.offset_out_of_range,
            )
        log.maybe_increment_log_start_offset(target)
        return log.log_start_offset
