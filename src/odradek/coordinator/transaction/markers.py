"""Commit and abort markers, written to every partition of a transaction.

The coordinator ends a transaction by having the leader of each of its partitions append
a marker (Kafka's ``TransactionMarkerChannelManager``). ``MarkerSender`` is what the
coordinator needs; ``TxnMarkerChannel`` implements it: it groups the partitions by their
current leader (from the metadata store), hands the ones led here to ``local`` (the
broker's own append, no round trip) and sends the rest as WriteTxnMarkers v1 requests to
their leaders. Markers queued for one broker while a request to it is in flight leave
together in the next request, as Kafka's sender thread drains its queues.

Per partition, as Kafka's ``TransactionMarkerRequestCompletionHandler``:

- NONE, and UNSUPPORTED_FOR_MESSAGE_FORMAT / UNSUPPORTED_VERSION (nothing of the
  transaction can be there): done.
- NOT_LEADER_OR_FOLLOWER, UNKNOWN_TOPIC_OR_PARTITION, NOT_ENOUGH_REPLICAS(_AFTER_APPEND),
  REQUEST_TIMED_OUT, KAFKA_STORAGE_ERROR, a broken connection, or a leader not known
  yet: tried again after a back-off, at the leader the metadata then names.
- INVALID_PRODUCER_EPOCH, TRANSACTION_COORDINATOR_FENCED (a newer producer or
  coordinator got there first), CORRUPT_MESSAGE, MESSAGE_TOO_LARGE,
  RECORD_LIST_TOO_LARGE, INVALID_REQUIRED_ACKS: the coordinator gives up (KafkaError).
- Anything else is logged and tried again, so that a transient fault does not leave the
  transaction unfinished for good.

A partition whose topic no longer exists gets no marker and counts as done, as in Kafka.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Collection, Iterable
from dataclasses import dataclass
from typing import Protocol

from kio.schema.types import ProducerId, TopicName
from kio.schema.write_txn_markers.v1 import request as markers_v1
from kio.static.primitive import i16, i32

from odradek.cluster.metadata import MetadataStore
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.protocol.types import TopicPartition
from odradek.replication.broker_client import (
    BrokerClient,
    BrokerConnectionError,
    PeerClient,
    PeerClientFactory,
    reuse_or_connect,
)

log = logging.getLogger(__name__)

RETRIABLE = frozenset(
    {
        ErrorCode.unknown_topic_or_partition,
        ErrorCode.not_leader_or_follower,
        ErrorCode.not_enough_replicas,
        ErrorCode.not_enough_replicas_after_append,
        ErrorCode.request_timed_out,
        ErrorCode.kafka_storage_error,
        ErrorCode.network_exception,
        ErrorCode.leader_not_available,
    }
)
NOTHING_TO_MARK = frozenset(
    {ErrorCode.none, ErrorCode.unsupported_for_message_format, ErrorCode.unsupported_version}
)
GIVE_UP = frozenset(
    {
        ErrorCode.invalid_producer_epoch,
        ErrorCode.transaction_coordinator_fenced,
        ErrorCode.corrupt_message,
        ErrorCode.message_too_large,
        ErrorCode.record_list_too_large,
        ErrorCode.invalid_required_acks,
    }
)


@dataclass(frozen=True, slots=True, kw_only=True)
class TxnMarker:
    """One marker for the partitions of one leader (Kafka's ``TxnMarkerEntry``)."""

    producer_id: int
    producer_epoch: int
    commit: bool
    coordinator_epoch: int
    partitions: tuple[TopicPartition, ...]


class MarkerSender(Protocol):
    async def write_markers(
        self,
        producer_id: int,
        producer_epoch: int,
        commit: bool,
        coordinator_epoch: int,
        partitions: Collection[TopicPartition],
    ) -> None:
        """Return once every partition has its marker (or its topic is gone); raise
        KafkaError when the coordinator must give up. Cancelling stops the attempt."""
        ...


LocalMarkerWriter = Callable[[list[TxnMarker]], Awaitable[dict[TopicPartition, ErrorCode]]]
"""Appends markers to partitions this broker leads; the error of each partition."""


class TxnMarkerChannel:
    def __init__(
        self,
        *,
        broker_id: int,
        metadata: MetadataStore,
        local: LocalMarkerWriter,
        request_timeout_ms: int = 30_000,
        retry_backoff_ms: int = 100,
        max_retry_backoff_ms: int = 1_000,
        client_factory: PeerClientFactory = BrokerClient,
    ) -> None:
        self.broker_id = broker_id
        self.metadata = metadata
        self.local = local
        self.request_timeout_ms = request_timeout_ms
        self.retry_backoff_ms = retry_backoff_ms
        self.max_retry_backoff_ms = max_retry_backoff_ms
        self._client_factory = client_factory
        self._destinations: dict[int, _Destination] = {}
        self._last_warning = 0.0

    async def write_markers(
        self,
        producer_id: int,
        producer_epoch: int,
        commit: bool,
        coordinator_epoch: int,
        partitions: Collection[TopicPartition],
    ) -> None:
        remaining = set(partitions)
        backoff = self.retry_backoff_ms
        while remaining:
            by_leader, waiting = self._route(remaining)
            leaders = list(by_leader)
            outcomes = await asyncio.gather(
                *(
                    self._send(
                        leader,
                        TxnMarker(
                            producer_id=producer_id,
                            producer_epoch=producer_epoch,
                            commit=commit,
                            coordinator_epoch=coordinator_epoch,
                            partitions=tuple(sorted(by_leader[leader])),
                        ),
                    )
                    for leader in leaders
                )
            )
            retry = set(waiting)
            for leader, errors in zip(leaders, outcomes, strict=True):
                for tp in by_leader[leader]:
                    error = errors.get(tp, ErrorCode.unknown_server_error)
                    if error in NOTHING_TO_MARK:
                        continue
                    if error in GIVE_UP:
                        raise KafkaError(
                            f"marker for producer {producer_id} epoch {producer_epoch} in "
                            f"{tp} refused by broker {leader}: {error.name}",
                            error,
                        )
                    if error not in RETRIABLE:
                        self._warn(
                            f"unexpected {error.name} writing a marker to {tp} at broker "
                            f"{leader}; retrying"
                        )
                    retry.add(tp)
            remaining = retry
            if remaining:
                log.debug("markers for producer %d: retrying %s", producer_id, sorted(remaining))
                await asyncio.sleep(backoff / 1000)
                backoff = min(backoff * 2, self.max_retry_backoff_ms)

    def _route(
        self, partitions: Iterable[TopicPartition]
    ) -> tuple[dict[int, list[TopicPartition]], list[TopicPartition]]:
        """Partitions by current leader, and those whose leader is not known now. A
        partition of a deleted topic is in neither: it needs no marker."""
        by_leader: dict[int, list[TopicPartition]] = defaultdict(list)
        waiting: list[TopicPartition] = []
        brokers = self.metadata.brokers()
        for tp in partitions:
            topic = self.metadata.topic(tp.topic)
            if topic is None or not 0 <= tp.partition < len(topic.partitions):
                log.info("no marker for %s: the partition no longer exists", tp)
                continue
            leader = topic.partitions[tp.partition].leader
            if leader < 0 or (leader != self.broker_id and leader not in brokers):
                waiting.append(tp)
            else:
                by_leader[leader].append(tp)
        return by_leader, waiting

    async def _send(self, leader: int, marker: TxnMarker) -> dict[TopicPartition, ErrorCode]:
        if leader == self.broker_id:
            try:
                return await self.local([marker])
            except KafkaError as exc:
                return dict.fromkeys(marker.partitions, exc.error_code)
        destination = self._destinations.get(leader)
        if destination is None:
            destination = self._destinations[leader] = _Destination(self, leader)
        return await destination.submit(marker)

    def _client(self, broker_id: int, current: PeerClient | None) -> PeerClient | None:
        # The leader answers once the markers are replicated (up to its own request
        # timeout): give the connection a little longer than that.
        return reuse_or_connect(
            self.metadata,
            broker_id,
            current,
            factory=self._client_factory,
            client_id=f"broker-{self.broker_id}-txn-markers",
            timeout_ms=self.request_timeout_ms + 5_000,
        )

    def _warn(self, message: str) -> None:
        now = time.monotonic()
        if now - self._last_warning > 10:
            self._last_warning = now
            log.warning("%s", message)

    async def close(self) -> None:
        """Stop sending; callers still waiting get a retriable error (and are normally
        cancelled with their coordinator anyway)."""
        destinations = list(self._destinations.values())
        self._destinations.clear()
        for destination in destinations:
            await destination.close()


class _Destination:
    """The requests to one broker: one in flight at a time, the markers queued meanwhile
    sent together in the next."""

    def __init__(self, channel: TxnMarkerChannel, broker_id: int) -> None:
        self.channel = channel
        self.broker_id = broker_id
        self.queue: list[tuple[TxnMarker, asyncio.Future[dict[TopicPartition, ErrorCode]]]] = []
        self.client: PeerClient | None = None
        self.task: asyncio.Task[None] | None = None

    def submit(self, marker: TxnMarker) -> asyncio.Future[dict[TopicPartition, ErrorCode]]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[dict[TopicPartition, ErrorCode]] = loop.create_future()
        self.queue.append((marker, future))
        if self.task is None or self.task.done():
            self.task = loop.create_task(self._run())
        return future

    async def _run(self) -> None:
        while self.queue:
            batch = self._next_batch()
            try:
                results = await self._request([marker for marker, _ in batch])
            except asyncio.CancelledError:
                self._fail(batch, ErrorCode.network_exception)
                raise
            except Exception as exc:
                self.channel._warn(f"cannot send markers to broker {self.broker_id}: {exc}")
                self._fail(batch, ErrorCode.network_exception)
                continue
            for marker, future in batch:
                if not future.done():
                    future.set_result(
                        results.get(
                            marker.producer_id,
                            dict.fromkeys(marker.partitions, ErrorCode.unknown_server_error),
                        )
                    )

    def _next_batch(
        self,
    ) -> list[tuple[TxnMarker, asyncio.Future[dict[TopicPartition, ErrorCode]]]]:
        """The queued markers, at most one per producer id (answers are keyed by it)."""
        batch, rest, producers = [], [], set()
        for item in self.queue:
            if item[1].done():
                continue  # its caller went away
            if item[0].producer_id in producers:
                rest.append(item)
            else:
                producers.add(item[0].producer_id)
                batch.append(item)
        self.queue = rest
        return batch

    async def _request(
        self, markers: list[TxnMarker]
    ) -> dict[int, dict[TopicPartition, ErrorCode]]:
        if not markers:
            return {}
        self.client = self.channel._client(self.broker_id, self.client)
        if self.client is None:
            raise BrokerConnectionError(f"broker {self.broker_id} is not registered")
        response = await self.client.call(_request(markers))
        results: dict[int, dict[TopicPartition, ErrorCode]] = {}
        for result in response.markers:
            errors = results.setdefault(int(result.producer_id), {})
            for topic in result.topics:
                for partition in topic.partitions:
                    errors[TopicPartition(topic.name, int(partition.partition_index))] = (
                        partition.error_code
                    )
        return results

    @staticmethod
    def _fail(
        batch: list[tuple[TxnMarker, asyncio.Future[dict[TopicPartition, ErrorCode]]]],
        error: ErrorCode,
    ) -> None:
        for marker, future in batch:
            if not future.done():
                future.set_result(dict.fromkeys(marker.partitions, error))

    async def close(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()
            await asyncio.wait({self.task}, timeout=1)
        self._fail(self.queue, ErrorCode.network_exception)
        self.queue = []
        if self.client is not None:
            self.client.close()
            self.client = None


def _request(markers: list[TxnMarker]) -> markers_v1.WriteTxnMarkersRequest:
    entries = []
    for marker in markers:
        by_topic: dict[str, list[int]] = defaultdict(list)
        for tp in marker.partitions:
            by_topic[tp.topic].append(tp.partition)
        entries.append(
            markers_v1.WritableTxnMarker(
                producer_id=ProducerId(marker.producer_id),
                producer_epoch=i16(marker.producer_epoch),
                transaction_result=marker.commit,
                topics=tuple(
                    markers_v1.WritableTxnMarkerTopic(
                        name=TopicName(topic),
                        partition_indexes=tuple(i32(p) for p in sorted(indexes)),
                    )
                    for topic, indexes in sorted(by_topic.items())
                ),
                coordinator_epoch=i32(marker.coordinator_epoch),
            )
        )
    return markers_v1.WriteTxnMarkersRequest(markers=tuple(entries))
