"""Followers copying from leaders: Kafka's ``ReplicaFetcherManager`` and fetcher threads.

One fetcher per leader broker, an asyncio task, fetches every partition this broker
follows from that leader in one Fetch request (replica id set, Kafka's ``replica.fetch.*``
settings) and appends what arrives as a follower, keeping the leader's offsets and
epochs. Before a partition's first fetch under a new leader epoch it is truncated to
where its log agrees with the leader's (KIP-101/279): OffsetForLeaderEpoch names this
log's latest epoch, and the leader answers where that epoch ends on its side. A follower
below the leader's log start (retention ran on the leader) starts over at it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kio.schema.list_offsets.v7 import request as list_offsets_v7
from kio.schema.offset_for_leader_epoch.v4 import request as epoch_v4
from kio.static.primitive import i8, i32, i64

from odradek.config import BrokerConfig
from odradek.protocol import fetch_request
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.protocol.fetch_request import FollowerFetchPartition, encode_follower_fetch
from odradek.protocol.types import TopicPartition
from odradek.replication.broker_client import BrokerClient, BrokerConnectionError

if TYPE_CHECKING:
    from odradek.replication.partition import Partition
    from odradek.replication.replica_manager import ReplicaManager

log = logging.getLogger(__name__)

EARLIEST_TIMESTAMP = -2
RETRY_LATER = frozenset(
    {
        ErrorCode.not_leader_or_follower,
        ErrorCode.fenced_leader_epoch,
        ErrorCode.unknown_leader_epoch,
        ErrorCode.unknown_topic_or_partition,
        ErrorCode.unknown_topic_id,
        ErrorCode.kafka_storage_error,
        ErrorCode.leader_not_available,
        ErrorCode.replica_not_available,
    }
)
"""Errors that clear up once the metadata catches up: retry the partition after a pause."""


@dataclass(slots=True)
class FetchState:
    leader_epoch: int
    truncated: bool = False
    """True once the log was truncated to agree with this leader epoch."""
    delayed_until: float = 0.0


class ReplicaFetcher:
    """Fetches from one leader for every partition this broker follows there."""

    def __init__(self, manager: ReplicaFetcherManager, leader_id: int) -> None:
        self.manager = manager
        self.leader_id = leader_id
        self.partitions: dict[TopicPartition, FetchState] = {}
        self._changed = asyncio.Event()
        self._client: BrokerClient | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopped = False
        self._last_warning = 0.0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def add(self, tp: TopicPartition, leader_epoch: int) -> None:
        state = self.partitions.get(tp)
        if state is None or state.leader_epoch != leader_epoch:
            self.partitions[tp] = FetchState(leader_epoch)
            self._changed.set()

    def remove(self, tp: TopicPartition) -> None:
        self.partitions.pop(tp, None)

    async def stop(self) -> None:
        # The flag as well as the cancellation, in case a cancellation is lost.
        self._stopped = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=2)
        if self._client is not None:
            self._client.close()

    # -- the loop --------------------------------------------------------------------------

    async def _run(self) -> None:
        config = self.manager.config
        backoff = config.get("replica.fetch.backoff.ms") / 1000
        while not self._stopped:
            ready = self._ready()
            if not ready:
                await self._wait_for_work()
                continue
            client = self._connection()
            if client is None:
                await asyncio.sleep(backoff)
                continue
            try:
                await self._truncate(
                    client, [tp for tp in ready if not self.partitions[tp].truncated]
                )
                await self._fetch(
                    client, [tp for tp in self._ready() if self.partitions[tp].truncated]
                )
            except BrokerConnectionError as exc:
                self._warn(f"cannot fetch from broker {self.leader_id}: {exc}")
                await asyncio.sleep(backoff)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("replica fetcher for broker %d failed; retrying", self.leader_id)
                await asyncio.sleep(backoff)

    async def _wait_for_work(self) -> None:
        """Until a partition is added, or the earliest paused one may be retried."""
        self._changed.clear()
        resume = min((s.delayed_until for s in self.partitions.values()), default=None)
        timeout = None if resume is None else max(resume - time.monotonic(), 0.01)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._changed.wait()

    def _truncated(self, tp: TopicPartition) -> bool:
        state = self.partitions.get(tp)
        return state is not None and state.truncated

    def _ready(self) -> list[TopicPartition]:
        now = time.monotonic()
        return [tp for tp, state in self.partitions.items() if state.delayed_until <= now]

    def _connection(self) -> BrokerClient | None:
        endpoint = self.manager.endpoint_of(self.leader_id)
        if endpoint is None:
            self._warn(f"broker {self.leader_id} is not registered; waiting")
            return None
        host, port = endpoint
        client = self._client
        if client is None or (client.host, client.port) != (host, port):
            if client is not None:
                client.close()
            config = self.manager.config
            client = self._client = BrokerClient(
                host,
                port,
                f"broker-{self.manager.broker_id}-fetcher-{self.leader_id}",
                config.get("replica.socket.timeout.ms"),
            )
        return client

    def _warn(self, message: str) -> None:
        now = time.monotonic()
        if now - self._last_warning > 10:
            self._last_warning = now
            log.warning("%s", message)

    def _delay(self, tp: TopicPartition, why: str) -> None:
        state = self.partitions.get(tp)
        if state is not None:
            state.delayed_until = (
                time.monotonic() + self.manager.config.get("replica.fetch.backoff.ms") / 1000
            )
            log.debug("fetch of %s from %d paused: %s", tp, self.leader_id, why)

    def _current(self, tp: TopicPartition, epoch: int) -> Partition | None:
        """The partition, if this fetcher still follows it at ``epoch``."""
        state = self.partitions.get(tp)
        if state is None or state.leader_epoch != epoch:
            return None
        return self.manager.follower(tp, epoch)

    # -- truncation (KIP-101/279) ----------------------------------------------------------

    async def _truncate(self, client: BrokerClient, tps: list[TopicPartition]) -> None:
        if not tps:
            return
        asked: dict[TopicPartition, tuple[int, int]] = {}
        by_topic: dict[str, list[Any]] = defaultdict(list)
        for tp in tps:
            state = self.partitions[tp]
            partition = self.manager.follower(tp, state.leader_epoch)
            if partition is None:
                continue
            latest = partition.log.leader_epoch_cache.latest_epoch
            if latest is None:
                # Nothing written under any epoch: nothing to disagree about.
                state.truncated = True
                continue
            asked[tp] = (state.leader_epoch, latest)
            by_topic[tp.topic].append(
                epoch_v4.OffsetForLeaderPartition(
                    partition=i32(tp.partition),
                    current_leader_epoch=i32(state.leader_epoch),
                    leader_epoch=i32(latest),
                )
            )
        if not by_topic:
            return
        request = epoch_v4.OffsetForLeaderEpochRequest(
            replica_id=i32(self.manager.broker_id),  # type: ignore[arg-type]
            topics=tuple(
                epoch_v4.OffsetForLeaderTopic(topic=name, partitions=tuple(parts))  # type: ignore[arg-type]
                for name, parts in by_topic.items()
            ),
        )
        response = await client.call(request)
        for topic in response.topics:
            for answer in topic.partitions:
                tp = TopicPartition(topic.topic, answer.partition)
                if tp not in asked:
                    continue
                epoch, requested = asked[tp]
                partition = self._current(tp, epoch)
                if partition is None:
                    continue
                if answer.error_code is not ErrorCode.none:
                    self._delay(tp, f"OffsetForLeaderEpoch: {answer.error_code.name}")
                    continue
                self._apply_truncation(partition, requested, answer.leader_epoch, answer.end_offset)
                self.partitions[tp].truncated = True

    def _apply_truncation(
        self, partition: Partition, requested: int, leader_epoch: int, end_offset: int
    ) -> None:
        log_ = partition.log
        if end_offset < 0:
            target = log_.high_watermark
        else:
            target = min(end_offset, log_.log_end_offset)
            if leader_epoch != requested:
                # The leader does not know our latest epoch: also stop where our log
                # ends for the epoch it does know (KIP-279).
                local = log_.end_offset_for_epoch(leader_epoch)
                if local is not None:
                    target = min(target, local[1])
        if target < log_.log_end_offset:
            log.info(
                "truncating %s from %d to %d (leader %d, epoch %d)",
                partition.tp,
                log_.log_end_offset,
                target,
                self.leader_id,
                self.partitions[partition.tp].leader_epoch,
            )
            partition.truncate_to(target)

    # -- fetching --------------------------------------------------------------------------

    async def _fetch(self, client: BrokerClient, tps: list[TopicPartition]) -> None:
        if not tps:
            return
        config = self.manager.config
        asked: dict[TopicPartition, tuple[int, int]] = {}
        by_topic: dict[str, list[FollowerFetchPartition]] = defaultdict(list)
        max_bytes = config.get("replica.fetch.max.bytes")
        for tp in tps:
            state = self.partitions[tp]
            partition = self.manager.follower(tp, state.leader_epoch)
            if partition is None:
                continue
            offset = partition.log.log_end_offset
            asked[tp] = (state.leader_epoch, offset)
            by_topic[tp.topic].append(
                FollowerFetchPartition(
                    partition=tp.partition,
                    current_leader_epoch=state.leader_epoch,
                    fetch_offset=offset,
                    log_start_offset=partition.log.log_start_offset,
                    partition_max_bytes=max_bytes,
                )
            )
        if not by_topic:
            return
        body = encode_follower_fetch(
            replica_id=self.manager.broker_id,
            max_wait_ms=config.get("replica.fetch.wait.max.ms"),
            min_bytes=1,
            max_bytes=config.get("replica.fetch.response.max.bytes"),
            topics=by_topic.items(),
        )
        response = await client.call_encoded(fetch_request.API_KEY, fetch_request.VERSION, body)
        if response.error_code is not ErrorCode.none:
            raise BrokerConnectionError(f"fetch answered {response.error_code.name}")
        out_of_range: list[TopicPartition] = []
        for topic in response.responses:
            for data in topic.partitions:
                tp = TopicPartition(topic.topic, data.partition_index)
                if tp not in asked:
                    continue
                epoch, offset = asked[tp]
                partition = self._current(tp, epoch)
                if partition is None or partition.log.log_end_offset != offset:
                    continue
                error = data.error_code
                if error is ErrorCode.offset_out_of_range:
                    out_of_range.append(tp)
                elif error in RETRY_LATER or error is not ErrorCode.none:
                    self._delay(tp, error.name)
                else:
                    self._append(partition, data)
        if out_of_range:
            await self._reset_out_of_range(client, out_of_range)

    def _append(self, partition: Partition, data: Any) -> None:
        try:
            partition.append_as_follower(
                data.records, int(data.high_watermark), int(data.log_start_offset)
            )
        except KafkaError as exc:
            log.error("cannot append to follower %s: %s", partition.tp, exc)
            self._delay(partition.tp, exc.error_code.name)

    async def _reset_out_of_range(self, client: BrokerClient, tps: list[TopicPartition]) -> None:
        """The follower is past the leader's end (truncate again) or before its start
        (start over there), as Kafka's ``handleOutOfRangeError``."""
        by_topic: dict[str, list[Any]] = defaultdict(list)
        epochs = {tp: self.partitions[tp].leader_epoch for tp in tps}
        for tp in tps:
            by_topic[tp.topic].append(
                list_offsets_v7.ListOffsetsPartition(
                    partition_index=i32(tp.partition),
                    current_leader_epoch=i32(epochs[tp]),
                    timestamp=i64(EARLIEST_TIMESTAMP),
                )
            )
        request = list_offsets_v7.ListOffsetsRequest(
            replica_id=i32(self.manager.broker_id),  # type: ignore[arg-type]
            isolation_level=i8(0),
            topics=tuple(
                list_offsets_v7.ListOffsetsTopic(name=name, partitions=tuple(parts))  # type: ignore[arg-type]
                for name, parts in by_topic.items()
            ),
        )
        response = await client.call(request)
        for topic in response.topics:
            for answer in topic.partitions:
                tp = TopicPartition(topic.name, answer.partition_index)
                partition = self._current(tp, epochs.get(tp, -2))
                if partition is None:
                    continue
                if answer.error_code is not ErrorCode.none:
                    self._delay(tp, f"ListOffsets: {answer.error_code.name}")
                    continue
                leader_start = int(answer.offset)
                if partition.log.log_end_offset < leader_start:
                    log.info("%s starts over at the leader's log start %d", tp, leader_start)
                    partition.log.truncate_fully_and_start_at(leader_start)
                else:
                    # Past the leader's end: agree on the epoch boundary again.
                    self.partitions[tp].truncated = False


class ReplicaFetcherManager:
    """Which fetcher (leader) each followed partition is fetched by."""

    def __init__(self, replica_manager: ReplicaManager, config: BrokerConfig) -> None:
        self.replica_manager = replica_manager
        self.config = config
        self.broker_id = replica_manager.broker_id
        self.fetchers: dict[int, ReplicaFetcher] = {}
        self._leader_of: dict[TopicPartition, int] = {}
        self._shut_down = False

    def follow(self, partition: Partition) -> None:
        """Fetch ``partition`` from its current leader (none: stop fetching it)."""
        tp = partition.tp
        leader = partition.state.leader
        if leader < 0 or leader == self.broker_id:
            self.unfollow(tp)
            return
        previous = self._leader_of.get(tp)
        if previous is not None and previous != leader:
            self.unfollow(tp)
        fetcher = self.fetchers.get(leader)
        if fetcher is None:
            if self._shut_down:
                # The broker is stopping: a leader change that reaches it now (ZooKeeper
                # is still connected) must not start a fetcher nobody would stop.
                return
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                return  # no loop (unit tests of the single node): nothing to follow
            fetcher = self.fetchers[leader] = ReplicaFetcher(self, leader)
            fetcher.start()
        fetcher.add(tp, partition.leader_epoch)
        self._leader_of[tp] = leader

    def unfollow(self, tp: TopicPartition) -> None:
        leader = self._leader_of.pop(tp, None)
        if leader is not None and leader in self.fetchers:
            self.fetchers[leader].remove(tp)

    def follower(self, tp: TopicPartition, leader_epoch: int) -> Partition | None:
        """The hosted partition if this broker still follows it at ``leader_epoch``."""
        partition = self.replica_manager.partitions.get(tp)
        if partition is None or partition.is_leader or partition.leader_epoch != leader_epoch:
            return None
        return partition

    def endpoint_of(self, broker_id: int) -> tuple[str, int] | None:
        registration = self.replica_manager.metadata.brokers().get(broker_id)
        if registration is None:
            return None
        endpoint = registration.endpoint
        return endpoint.host, endpoint.port

    async def shutdown(self) -> None:
        self._shut_down = True
        fetchers = list(self.fetchers.values())
        self.fetchers.clear()
        await asyncio.gather(*(f.stop() for f in fetchers), return_exceptions=True)
