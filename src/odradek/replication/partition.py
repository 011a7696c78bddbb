"""One partition this broker hosts: its log, leadership, ISR and high watermark.

On a single node the leader is the only replica, so the ISR is this broker and the high
watermark follows the log end offset after every append. The shape (leader epoch
checks, ``min.insync.replicas``, high watermark as the ISR's minimum log end offset) is
Kafka's, so followers slot in without changing callers.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from odradek.cluster.metadata import PartitionState
from odradek.config import LogConfig
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.protocol.types import TopicPartition
from odradek.storage.log import Log
from odradek.storage.values import AppendOrigin, FetchDataInfo, LogAppendInfo

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


@dataclass(frozen=True, slots=True)
class PartitionRead:
    """What a fetch of one partition found, with the offsets the response reports."""

    info: FetchDataInfo | None
    high_watermark: int
    last_stable_offset: int
    log_start_offset: int
    log_end_offset: int


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
        self._record_leader_epoch()
        if self.is_leader:
            # The checkpointed high watermark may lag (it is written every few seconds);
            # as leader with the ISR caught up, it is the log end offset again.
            self._maybe_increment_high_watermark()

    @property
    def leader_epoch(self) -> int:
        return self.state.leader_epoch

    @property
    def is_leader(self) -> bool:
        return self.state.leader == self.broker_id

    def update_state(self, state: PartitionState) -> None:
        self.state = state
        self._record_leader_epoch()

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
        self._require_leader()
        isr = len(self.state.isr)
        if required_acks == -1 and isr < self.log.config.min_insync_replicas:
            raise NotEnoughReplicasError(
                f"The size of the current ISR {isr} is insufficient to satisfy the min.isr "
                f"requirement of {self.log.config.min_insync_replicas} for partition {self.tp}"
            )
        info = self.log.append_as_leader(records, self.leader_epoch, origin=origin)
        self._maybe_increment_high_watermark()
        return info

    def _maybe_increment_high_watermark(self) -> None:
        # The ISR is this broker alone until replication arrives.
        self.log.update_high_watermark(self.log.log_end_offset)

    def read(
        self,
        fetch_offset: int,
        max_bytes: int,
        isolation_level: int,
        min_one_message: bool,
        current_leader_epoch: int = NO_EPOCH,
    ) -> PartitionRead:
        self._require_leader()
        self.check_leader_epoch(current_leader_epoch)
        log = self.log
        limit = log.last_stable_offset if isolation_level == READ_COMMITTED else log.high_watermark
        info = log.read(fetch_offset, max_bytes, max_offset=limit, min_one_message=min_one_message)
        return PartitionRead(
            info=info,
            high_watermark=log.high_watermark,
            last_stable_offset=log.last_stable_offset,
            log_start_offset=log.log_start_offset,
            log_end_offset=log.log_end_offset,
        )

    def fetch_offset_for_timestamp(
        self, timestamp: int, isolation_level: int, current_leader_epoch: int = NO_EPOCH
    ) -> tuple[int, int, int] | None:
        """ListOffsets: (offset, timestamp, leader epoch), or None when no record qualifies.

        Only offsets below the high watermark (or LSO for read_committed) are visible.
        """
        self._require_leader()
        self.check_leader_epoch(current_leader_epoch)
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
