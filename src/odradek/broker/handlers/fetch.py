"""Fetch (key 1): read partitions up to the high watermark (or LSO), long-polling.

A fetch with a replica id is a follower's: it reads up to the log end, and the offsets it
asks for tell the leader how far the follower has come (ISR, high watermark).

Fetch sessions (KIP-227) are declined: every answer carries session id 0, which tells
the client to keep sending full requests; a request naming a session gets
FETCH_SESSION_ID_NOT_FOUND so the client starts over.

A consumer's fetch counts its response size against its ``consumer_byte_rate``
(followers are exempt), with the request's byte budget first capped to what the quota
window can hold, as Kafka does. Over the quota, the answer is empty, carries the throttle
time, and the bytes are not counted (the client fetches them again); the connection is
muted for the throttle time, and before v8 (KIP-219) the answer is held back as long.
"""

from __future__ import annotations

import asyncio
import uuid

from odradek.broker.api import Handler, PendingReply, Reply, RequestContext, ResponseChunks
from odradek.broker.fetch_response import PartitionData, TopicData, encode_fetch_response
from odradek.broker.quotas import ANONYMOUS
from odradek.protocol.errors import ErrorCode
from odradek.protocol.fetch_request import (
    MAX_VERSION,
    MIN_VERSION,
    FetchRequestView,
    parse_fetch_request,
)
from odradek.protocol.types import TopicPartition, new_tuple
from odradek.replication.partition import READ_COMMITTED
from odradek.replication.replica_manager import FetchPartition, FetchResult

API_KEY = 1
CLIENT_THROTTLES_FROM = 8
"""Fetch versions whose clients honour throttle_time_ms themselves (KIP-219)."""
_NIL_UUID = uuid.UUID(int=0)


def handle(ctx: RequestContext, request: FetchRequestView) -> Reply:
    version = ctx.api_version
    if request.session_id != 0:
        return encode_fetch_response(
            version, [], error_code=ErrorCode.fetch_session_id_not_found, session_id=0
        )
    if request.session_epoch not in (0, -1):
        return encode_fetch_response(
            version, [], error_code=ErrorCode.invalid_fetch_session_epoch, session_id=0
        )
    broker = ctx.broker
    metadata = broker.metadata
    wanted: list[FetchPartition] = []
    # (name, topic id, [(partition index, error or None)]) in request order.
    layout: list[tuple[str, uuid.UUID, list[tuple[int, ErrorCode | None]]]] = []
    for topic in request.topics:
        if version >= 13:
            topic_id = topic.topic_id or _NIL_UUID
            known = metadata.topic_by_id(topic_id)
            name = known.name if known is not None else ""
            missing = ErrorCode.unknown_topic_id if known is None else None
        else:
            name = topic.topic
            known = metadata.topic(name)
            topic_id = known.topic_id if known is not None else _NIL_UUID
            missing = None
        entries: list[tuple[int, ErrorCode | None]] = []
        for partition in topic.partitions:
            entries.append((partition.partition, missing))
            if missing is None:
                wanted.append(
                    new_tuple(
                        FetchPartition,
                        (
                            new_tuple(TopicPartition, (name, partition.partition)),
                            partition.fetch_offset,
                            partition.partition_max_bytes,
                            partition.current_leader_epoch,
                        ),
                    )
                )
        layout.append((name, topic_id, entries))
    isolation = request.isolation_level
    replica_id = request.replica_id
    follower = replica_id >= 0
    replica_manager = broker.replica_manager
    max_bytes = request.max_bytes
    min_bytes = request.min_bytes
    max_wait_ms = request.max_wait_ms
    quota = broker.quotas.fetch
    metered = quota.enabled and not follower
    if metered:
        window_bytes = quota.max_value_in_window(ANONYMOUS, ctx.header.client_id)
        if window_bytes is not None:
            max_bytes = min(max_bytes, int(window_bytes))
    results = replica_manager.read(
        wanted, max_bytes=max_bytes, isolation_level=isolation, replica_id=replica_id
    )
    needed = replica_manager.bytes_still_needed(results, min_bytes, max_wait_ms)
    if needed <= 0:
        answer = _response(version, layout, results, isolation)
        if not metered:
            return answer
        answer, throttle_ms = _charge(ctx, answer)
        if throttle_ms and version < CLIENT_THROTTLES_FROM:
            return _delayed(answer, throttle_ms)
        return answer

    # Long poll: park in the purgatory and answer through a PendingReply, read again when
    # woken (no task: a parked fetch costs one timer and one callback, and its answer
    # reaches the connection as soon as it is read).
    reply = PendingReply()

    def complete() -> None:
        if reply.done:
            return
        try:
            again = replica_manager.read(
                wanted, max_bytes=max_bytes, isolation_level=isolation, replica_id=replica_id
            )
            answer = _response(version, layout, again, isolation)
            if not metered:
                reply.set_result(answer)
                return
            answer, throttle_ms = _charge(ctx, answer)
            if throttle_ms and version < CLIENT_THROTTLES_FROM:
                asyncio.get_running_loop().call_later(
                    throttle_ms / 1000, _complete_later, reply, answer
                )
            else:
                reply.set_result(answer)
        except Exception as exc:  # the connection logs it and closes
            reply.set_exception(exc)

    parked = replica_manager.park_fetch(
        results,
        needed,
        max_wait_ms,
        complete,
        follower=follower,
        read_committed=isolation == READ_COMMITTED and not follower,
    )
    reply.on_cancel = parked.cancel
    return reply


def _charge(ctx: RequestContext, answer: ResponseChunks) -> tuple[ResponseChunks, int]:
    """Count a consumer's response against its quota: the answer to send (an empty one
    with the throttle time when over the quota) and the throttle time."""
    quotas = ctx.broker.quotas
    size = answer.size
    now = quotas.clock()
    client_id = ctx.header.client_id
    throttle_ms = quotas.fetch.record(ANONYMOUS, client_id, size, now)
    if throttle_ms <= 0:
        return answer, 0
    quotas.fetch.unrecord(ANONYMOUS, client_id, size, now)
    if ctx.connection is not None:
        ctx.connection.throttle(throttle_ms)
    return encode_fetch_response(ctx.api_version, [], throttle_time_ms=throttle_ms), throttle_ms


def _complete_later(reply: PendingReply, answer: ResponseChunks) -> None:
    reply.set_result(answer)  # does nothing if the connection closed meanwhile


async def _delayed(answer: ResponseChunks, throttle_ms: int) -> Reply:
    """An old client's answer, sent once its throttle time has passed."""
    await asyncio.sleep(throttle_ms / 1000)
    return answer


def _response(
    version: int,
    layout: list[tuple[str, uuid.UUID, list[tuple[int, ErrorCode | None]]]],
    results: list[FetchResult],
    isolation: int,
) -> ResponseChunks:
    """The answer: ``results`` hold one read per partition of ``layout`` without an
    error of its own (``ReplicaManager.read`` answers in request order)."""
    read_committed = isolation == READ_COMMITTED
    found = iter(results)
    topics = []
    for name, topic_id, entries in layout:
        partitions = []
        for index, missing in entries:
            if missing is not None:
                partitions.append(PartitionData(index, missing))
                continue
            result = next(found)
            read = result.read
            if read is None:
                partitions.append(PartitionData(index, result.error))
                continue
            # read_committed: the aborted transactions among the records sent, so that
            # the client drops their records (an empty list, not null, when none).
            aborted = (
                [(txn.producer_id, txn.first_offset) for txn in read.aborted_transactions or ()]
                if read_committed
                else None
            )
            info = read.info
            partitions.append(
                PartitionData(
                    index,
                    result.error,
                    read.high_watermark,
                    read.last_stable_offset,
                    read.log_start_offset,
                    aborted,
                    -1,
                    info.records if info is not None else None,
                )
            )
        topics.append(new_tuple(TopicData, (name, topic_id, partitions)))
    return encode_fetch_response(version, topics)


HANDLER = Handler(
    api_key=API_KEY,
    min_version=MIN_VERSION,
    max_version=MAX_VERSION,
    handle=handle,
    decode=parse_fetch_request,
)
