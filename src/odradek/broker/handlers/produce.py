"""Produce (key 0): append each partition's records blob; acks=0 gets no response, acks=all
an answer once every in-sync replica has the records.

The records blob reaches the log as bytes; only batch headers are read (storage's
validator). A request with a transactional id goes through transaction verification
(``replication.txn_verification``, KIP-890): a producer's first batch in a partition
waits while the partition's presence in its transaction is checked. Versions 0-2 are
advertised as Kafka 4 does (older librdkafka turns off compression when the advertised
minimum is above 0) and answered UNSUPPORTED_VERSION.

A client over its ``producer_byte_rate`` (the request's size counts, as in Kafka) gets
the throttle time in its answer and its connection muted for that long; before v6
(clients that do not throttle themselves, KIP-219) the answer is also held back for it.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Awaitable

from odradek.broker.api import NO_RESPONSE, Handler, Reply, RequestContext, ResponseChunks
from odradek.broker.produce_response import encode_produce_response
from odradek.broker.quotas import ANONYMOUS
from odradek.protocol.codec import DecodeError
from odradek.protocol.errors import ErrorCode
from odradek.protocol.produce_request import ProduceRequestView, parse_produce_request
from odradek.protocol.types import TopicPartition
from odradek.replication.replica_manager import ProduceResult
from odradek.replication.txn_verification import transactional_batches

API_KEY = 0
CLIENT_THROTTLES_FROM = 6
"""Produce versions whose clients honour throttle_time_ms themselves (KIP-219)."""


def handle(ctx: RequestContext, request: ProduceRequestView) -> Reply:
    quotas = ctx.broker.quotas
    if not quotas.produce.enabled:
        return _handle(ctx, request, 0)
    throttle_ms = quotas.produce.record(
        ANONYMOUS, ctx.header.client_id, ctx.request_size, quotas.clock()
    )
    reply = _handle(ctx, request, throttle_ms)
    if throttle_ms <= 0:
        return reply
    if ctx.connection is not None:
        ctx.connection.throttle(throttle_ms)
    if ctx.api_version >= CLIENT_THROTTLES_FROM or reply is NO_RESPONSE:
        return reply
    return _delayed(reply, throttle_ms)


async def _delayed(reply: Reply, throttle_ms: int) -> Reply:
    """An old client's answer, sent once its throttle time has passed (Kafka's behaviour
    before KIP-219)."""
    await asyncio.sleep(throttle_ms / 1000)
    if asyncio.iscoroutine(reply) or asyncio.isfuture(reply):
        return await reply
    return reply


def _handle(ctx: RequestContext, request: ProduceRequestView, throttle_ms: int) -> Reply:
    acks = request.acks
    entries = request.entries()
    if acks not in (-1, 0, 1):
        results = {tp: ProduceResult(error=ErrorCode.invalid_required_acks) for tp, _ in entries}
    elif request.transactional_id is None:
        if transactional_batches(entries):
            # As Kafka: transactional records need a transactional id to be authorised
            # against; without one the whole request is refused (such a batch would
            # otherwise open a transaction no coordinator knows of).
            error = ErrorCode.transactional_id_authorization_failed
            results = {tp: ProduceResult(error=error) for tp, _ in entries}
        else:
            results = ctx.broker.replica_manager.append_records(acks, entries)
    else:
        appended = ctx.broker.txn_verifier.append(
            request.transactional_id, acks, entries, ctx.api_version
        )
        if not isinstance(appended, dict):
            return _when_verified(ctx, request, appended, throttle_ms)
        results = appended
    return _answer(ctx, request, results, throttle_ms)


def _answer(
    ctx: RequestContext,
    request: ProduceRequestView,
    results: dict[TopicPartition, ProduceResult],
    throttle_ms: int,
) -> Reply:
    acks = request.acks
    if acks == 0:
        return NO_RESPONSE
    if acks == -1:
        waiting = ctx.broker.replica_manager.await_acks(results, request.timeout_ms)
        if waiting is not None:
            return _when_replicated(ctx.api_version, request, waiting, throttle_ms)
    return _response(ctx.api_version, request, results, throttle_ms)


async def _when_verified(
    ctx: RequestContext,
    request: ProduceRequestView,
    appended: Awaitable[dict[TopicPartition, ProduceResult]],
    throttle_ms: int,
) -> Reply:
    """Answer once the transaction coordinator on another broker has been asked and what
    passed was appended (and, for acks=all, replicated)."""
    reply = _answer(ctx, request, await appended, throttle_ms)
    if asyncio.iscoroutine(reply):
        return await reply
    return reply


async def _when_replicated(
    version: int,
    request: ProduceRequestView,
    waiting: asyncio.Future[dict[TopicPartition, ProduceResult]],
    throttle_ms: int,
) -> Reply:
    """acks=all: answer once the ISR has the records (or the request's timeout passed)."""
    return _response(version, request, await waiting, throttle_ms)


def _response(
    version: int,
    request: ProduceRequestView,
    results: dict[TopicPartition, ProduceResult],
    throttle_ms: int,
) -> Reply:
    topics = [
        (topic.name, [(tp.partition, results[tp]) for tp, _ in topic.partitions])
        for topic in request.topics
    ]
    return ResponseChunks([encode_produce_response(version, topics, throttle_ms)])


_ACKS_TIMEOUT = struct.Struct(">hi")
_INT16 = struct.Struct(">h")
_INT32 = struct.Struct(">i")
_PARTITION = struct.Struct(">ii")


def legacy(ctx: RequestContext, body: bytes | bytearray) -> Reply:
    """Answer Produce v0-2 (removed by KIP-896) with UNSUPPORTED_VERSION per partition.

    kio has no schema for these versions, so the request is walked by hand. Request:
    ``acks: int16, timeout: int32, [topic: string, [partition: int32, records: bytes]]``;
    response: ``[topic: string, [partition: int32, error: int16, base_offset: int64,
    (v2) log_append_time: int64]], (v1+) throttle_time_ms: int32``. Every count and
    length is held against the bytes left, so the walk always moves forward and ends
    within the body (a negative name length once sent it round in a 2^31-step loop).
    """
    try:
        return _legacy(ctx.api_version, body)
    except struct.error as exc:
        raise DecodeError(f"cannot decode Produce v{ctx.api_version}: {exc}") from exc


def _legacy(version: int, body: bytes | bytearray) -> Reply:
    acks, _timeout = _ACKS_TIMEOUT.unpack_from(body, 0)
    position = _ACKS_TIMEOUT.size
    out = bytearray()
    topic_count, position = _legacy_count(body, position, 2 + 4)  # name length, partitions
    out += _INT32.pack(topic_count)
    for _ in range(topic_count):
        (name_length,) = _INT16.unpack_from(body, position)
        name_end = position + 2 + name_length
        if name_length < 0 or name_end > len(body):
            raise DecodeError(f"Produce v{version}: topic name length {name_length}")
        out += body[position:name_end]
        partition_count, position = _legacy_count(body, name_end, 4 + 4)  # index, size
        out += _INT32.pack(partition_count)
        for _ in range(partition_count):
            index, records_length = _PARTITION.unpack_from(body, position)
            position += _PARTITION.size + max(records_length, 0)
            if records_length < -1 or position > len(body):
                raise DecodeError(f"Produce v{version}: records length {records_length}")
            out += struct.pack(">ihq", index, ErrorCode.unsupported_version, -1)
            if version >= 2:
                out += struct.pack(">q", -1)
    if version >= 1:
        out += _INT32.pack(0)
    if acks == 0:
        return NO_RESPONSE
    return ResponseChunks([bytes(out)])


def _legacy_count(body: bytes | bytearray, position: int, element_size: int) -> tuple[int, int]:
    """An int32 array count at ``position`` that the rest of ``body`` can hold."""
    (count,) = _INT32.unpack_from(body, position)
    position += 4
    if count < 0 or count > (len(body) - position) // element_size:
        raise DecodeError(f"Produce: array of {count} in {len(body) - position} bytes")
    return count, position


HANDLER = Handler(
    api_key=API_KEY,
    min_version=0,
    max_version=11,
    accepted_min=3,
    handle=handle,
    legacy=legacy,
    decode=parse_produce_request,
)
