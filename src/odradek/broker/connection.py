"""One client connection: frames in, handlers run, responses out in request order.

Requests are dispatched as soon as their frame is complete, so a long-poll Fetch that
waits does not hold up the requests behind it; their responses queue behind it and go
out in request order, which Kafka clients rely on. Flow control:

- a frame over ``socket.request.max.bytes`` (or a malformed one) closes the connection
  before its body is read;
- more than ``MAX_IN_FLIGHT`` unanswered requests, or a client that does not read its
  responses (the transport's write buffer passes its high-water mark), pause reading from
  the socket until the queue drains, so a slow consumer cannot make the broker buffer
  without bound;
- a client over a quota (``broker/quotas.py``) is answered at once, with the throttle
  time in the response, and its connection is then muted (no reading) for that time, as
  Kafka mutes a throttled channel (KIP-219). Time spent handling requests counts
  against ``request_percentage`` only while such a quota exists.

Responses are byte strings and, for Fetch, file regions; regions above
``SENDFILE_MIN_BYTES`` go from the page cache to the socket with sendfile.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import datetime
import logging
import os
import time
from functools import partial
from typing import IO, TYPE_CHECKING, Any, Final, cast

from odradek.broker.api import (
    NO_RESPONSE,
    FileHandle,
    FileRegion,
    PendingReply,
    RequestContext,
    ResponseChunks,
)
from odradek.broker.quotas import ANONYMOUS, NANOS_TO_PERCENTAGE
from odradek.protocol import codec
from odradek.protocol.codec import DecodeError
from odradek.protocol.framing import FrameDecoder, FrameError
from odradek.protocol.headers import (
    API_VERSIONS_KEY,
    HeaderError,
    parse_request_header,
    peek_api,
    response_head,
)
from odradek.protocol.types import new_tuple

if TYPE_CHECKING:
    from odradek.broker.server import Broker

log = logging.getLogger(__name__)

MAX_IN_FLIGHT: Final = 128
SENDFILE_MIN_BYTES: Final = 64 * 1024
WRITE_BUFFER_HIGH: Final = 4 * 1024 * 1024
_NOT_TIMED: Final = frozenset({1, 27})
"""APIs whose handling time does not count against ``request_percentage``: Fetch (a
follower's fetch is exempt from quotas, and a consumer's is metered by bytes) and
WriteTxnMarkers (broker to broker, a cluster action Kafka exempts)."""


class _Slot:
    """A request's place in the response order; ``parts`` None means nothing to send."""

    __slots__ = (
        "api_key",
        "correlation_id",
        "flexible",
        "parts",
        "pending",
        "ready",
        "task",
        "version",
    )

    def __init__(self, api_key: int, version: int, correlation_id: int, flexible: bool) -> None:
        self.api_key = api_key
        self.version = version
        self.correlation_id = correlation_id
        self.flexible = flexible
        self.ready = False
        self.parts: list[bytes | FileRegion] | None = None
        self.task: asyncio.Future[Any] | None = None
        self.pending: PendingReply | None = None


class _SendfileSource:
    """What ``loop.sendfile`` needs of a file: a descriptor, and a position it may set."""

    __slots__ = ("_handle",)

    mode = "rb"

    def __init__(self, handle: FileHandle) -> None:
        self._handle = handle

    def fileno(self) -> int:
        return self._handle.fileno()

    def seek(self, offset: int, whence: int = 0) -> int:
        # Segment reads use pread, so the shared descriptor's position is irrelevant.
        return offset


class KafkaConnection(asyncio.Protocol):
    def __init__(self, broker: Broker, listener: str) -> None:
        self._broker = broker
        self._listener = listener
        self._decoder = FrameDecoder(broker.config.get("socket.request.max.bytes"))
        self._slots: collections.deque[_Slot] = collections.deque()
        self._transport: asyncio.Transport | None = None
        self._client_host = ""
        self._client_port = 0
        self._sending = False
        self._write_paused = False
        self._read_paused = False
        self._draining = False
        self._closed = False
        self._throttle_timer: asyncio.TimerHandle | None = None
        self.active = True
        """Bytes arrived or a response went out since the last idle sweep
        (``ConnectionRegistry.expire_idle`` lowers it and keeps ``quiet_since``)."""
        self.quiet_since = 0.0

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        peer = transport.get_extra_info("peername") or ("", 0)
        self._client_host, self._client_port = peer[0], peer[1]
        transport.set_write_buffer_limits(high=WRITE_BUFFER_HIGH)
        refusal = self._broker.connections.admit(self, self._client_host)
        if refusal is not None:
            # Kafka logs a per-address refusal at INFO (one client's problem, and a client
            # retrying in a loop would flood the log); the broker-wide limit affects
            # every client, so it is a warning.
            level = logging.INFO if refusal.limit == "max.connections.per.ip" else logging.WARNING
            log.log(
                level,
                "Rejected connection from %s:%d, %s",
                self._client_host,
                self._client_port,
                refusal.reason,
            )
            self._abort()
            return
        ip_quota = self._broker.quotas.ip
        if ip_quota.enabled:
            throttle_ms = ip_quota.record_connection(self._client_host, self._broker.quotas.clock())
            if throttle_ms > 0:
                # Kafka's DelayedCloseSocket: nothing is read, and the socket is closed
                # once the throttle time has passed.
                log.info(
                    "Connection from %s:%d throttled for %d ms (connection_creation_rate)",
                    self._client_host,
                    self._client_port,
                    throttle_ms,
                )
                self._draining = True  # read nothing, ever
                self._update_reading()
                asyncio.get_running_loop().call_later(throttle_ms / 1000, self.close)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._broker.connections.remove(self, self._client_host)
        if self._throttle_timer is not None:
            self._throttle_timer.cancel()
            self._throttle_timer = None
        for slot in self._slots:
            if slot.task is not None and not slot.task.done():
                slot.task.cancel()
            if slot.pending is not None:
                slot.pending.cancel()
        self._slots.clear()

    def data_received(self, data: bytes) -> None:
        self.active = True
        try:
            frames = self._decoder.feed(data)
        except FrameError as exc:
            log.info("closing connection from %s: %s", self._client_host, exc)
            # Requests that arrived whole before the bad bytes are still answered.
            for body in exc.frames:
                if self._closed:
                    return
                self._on_frame(body)
            self._flush()
            self.drain()
            return
        for body in frames:
            if self._closed:
                return
            self._on_frame(body)
        self._flush()
        self._update_reading()

    def eof_received(self) -> bool | None:
        # Half-closed by the client: answer what is queued, then close.
        if not self._slots:
            return None
        self._broker.spawn(self._close_when_answered())
        return True

    def pause_writing(self) -> None:
        self._write_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        self._flush()
        self._update_reading()

    # -- requests --------------------------------------------------------------------------

    def _on_frame(self, body: bytearray) -> None:
        try:
            api_key, version, correlation_id = peek_api(body)
        except HeaderError as exc:
            self._protocol_error(str(exc))
            return
        handler = self._broker.handlers.get(api_key)
        if handler is None:
            self._protocol_error(f"unknown API key {api_key}")
            return
        try:
            if version < handler.min_version or version > handler.max_version:
                if api_key != API_VERSIONS_KEY:
                    self._protocol_error(f"unsupported version {version} of API {api_key}")
                    return
                # KIP-511: answer with our versions at v0 so the client can retry.
                header = parse_request_header(body, flexible=False)
                reply = self._broker.api_versions_fallback()
                flexible_response = False
            elif version < handler.lowest_served:
                header = parse_request_header(body, flexible=False)
                assert handler.legacy is not None
                reply = handler.legacy(self._context(header), body[header.size :])
                flexible_response = False
            else:
                header = parse_request_header(body, codec.is_flexible_request(api_key, version))
                if handler.decode is not None:
                    request = handler.decode(body, header.size, version)
                else:
                    request = codec.decode_request(api_key, version, body, header.size)
                request_quota = self._broker.quotas.request
                if request_quota.enabled and api_key not in _NOT_TIMED:
                    started = time.perf_counter_ns()
                    reply = handler.handle(self._context(header, len(body)), request)
                    reply = self._charge_request_time(header.client_id, reply, started)
                else:
                    reply = handler.handle(self._context(header, len(body)), request)
                flexible_response = codec.is_flexible_response(api_key, version)
        except (HeaderError, DecodeError) as exc:
            self._protocol_error(str(exc))
            return
        except Exception:
            log.exception("error handling API %s v%s from %s", api_key, version, self._client_host)
            self._abort()
            return
        slot = _Slot(api_key, version, correlation_id, flexible_response)
        self._slots.append(slot)
        if isinstance(reply, ResponseChunks):  # the hot paths' answer: no awaitable checks
            self._fill(slot, reply)
        elif isinstance(reply, PendingReply):
            slot.pending = reply
            reply.deliver_to(partial(self._on_pending, slot))
        elif asyncio.iscoroutine(reply) or asyncio.isfuture(reply):
            task = asyncio.ensure_future(reply)
            slot.task = task
            task.add_done_callback(partial(self._on_reply, slot))
        else:
            self._fill(slot, reply)

    def _context(self, header: Any, request_size: int = 0) -> RequestContext:
        return new_tuple(  # one per request
            RequestContext,
            (
                header,
                self._broker,
                self._client_host,
                self._client_port,
                self._listener,
                request_size,
                self,
            ),
        )

    def _charge_request_time(self, client_id: str | None, reply: Any, started_ns: int) -> Any:
        """Count the time a handler took against the client's ``request_percentage``
        (Kafka's ClientRequestQuotaManager: request-thread time as a percentage of one
        thread); over the quota, mute the connection and say so in a kio response."""
        quotas = self._broker.quotas
        elapsed = time.perf_counter_ns() - started_ns
        throttle_ms = quotas.request.record(
            ANONYMOUS, client_id, elapsed * NANOS_TO_PERCENTAGE, quotas.clock()
        )
        if throttle_ms <= 0:
            return reply
        self.throttle(throttle_ms)
        if dataclasses.is_dataclass(reply) and hasattr(reply, "throttle_time"):
            return dataclasses.replace(
                reply,  # type: ignore[type-var]
                throttle_time=datetime.timedelta(milliseconds=throttle_ms),
            )
        return reply

    def throttle(self, throttle_ms: int) -> None:
        """Stop reading from this client for ``throttle_ms`` (a quota's throttle time);
        what was read already is still answered. A longer throttle extends it."""
        if self._closed or throttle_ms <= 0:
            return
        loop = asyncio.get_running_loop()
        until = loop.time() + throttle_ms / 1000
        timer = self._throttle_timer
        if timer is not None:
            if timer.when() >= until:
                return
            timer.cancel()
        self._throttle_timer = loop.call_at(until, self._end_throttle)
        self._update_reading()

    def _end_throttle(self) -> None:
        self._throttle_timer = None
        self._update_reading()

    def _on_reply(self, slot: _Slot, task: asyncio.Future[Any]) -> None:
        if self._closed or task.cancelled():
            return
        self._on_pending(slot, None if task.exception() else task.result(), task.exception())

    def _on_pending(self, slot: _Slot, reply: Any, exc: BaseException | None) -> None:
        """A reply that waited is ready: into its slot, and out if its turn has come.

        Runs inside whatever completed the reply (often another client's produce), so
        nothing may escape from here into that request: a failure closes this
        connection only."""
        if self._closed:
            return
        slot.pending = None
        if exc is not None:
            log.error(
                "error handling API %s v%s from %s",
                slot.api_key,
                slot.version,
                self._client_host,
                exc_info=exc,
            )
            self._abort()
            return
        try:
            self._fill(slot, reply)
            self._flush()
            self._update_reading()
        except Exception:
            log.exception("error sending a response to %s", self._client_host)
            self._abort()

    def _fill(self, slot: _Slot, reply: Any) -> None:
        """Encode ``reply`` into the slot; an encoding bug closes the connection."""
        try:
            self._encode(slot, reply)
        except Exception:
            log.exception("cannot encode API %s v%s response", slot.api_key, slot.version)
            self._abort()

    def _encode(self, slot: _Slot, reply: Any) -> None:
        slot.ready = True
        if reply is NO_RESPONSE:
            return
        if isinstance(reply, ResponseChunks):
            head = response_head(slot.correlation_id, slot.flexible, reply.size)
            slot.parts = [head, *reply.parts]
            return
        body = codec.encode(reply)
        slot.parts = [response_head(slot.correlation_id, slot.flexible, len(body)) + body]

    # -- responses -------------------------------------------------------------------------

    def _flush(self) -> None:
        """Write every ready response at the head of the queue, in order.

        Byte strings and small file regions of all ready responses are gathered and
        handed to the transport in one call (one ``send`` for the lot: on loopback each
        send also runs the receiver's TCP input and wakes it, so a fetch response sent
        in four pieces cost four times that). Large file regions go straight to the
        socket with ``os.sendfile`` while the transport has nothing buffered (writing
        around an idle transport is safe); only when the socket is full does the rest
        wait in ``_send_slowly``.
        """
        if self._sending or self._closed:
            return
        self.active = True
        transport = self._transport
        assert transport is not None
        slots = self._slots
        pending: list[bytes] = []
        pending_size = 0
        try:
            while slots and slots[0].ready and not self._write_paused:
                slot = slots.popleft()
                parts = slot.parts
                if parts is None:
                    continue
                for index, part in enumerate(parts):
                    if isinstance(part, bytes):
                        pending.append(part)
                        pending_size += len(part)
                        continue
                    if part.size < SENDFILE_MIN_BYTES:
                        data = _read(part)
                        pending.append(data)
                        pending_size += len(data)
                        continue
                    if pending:
                        _write_all(transport, pending)
                        pending, pending_size = [], 0
                    rest = self._sendfile_now(part)
                    if rest is not None:
                        slot.parts = [rest, *parts[index + 1 :]]
                        slots.appendleft(slot)
                        self._sending = True
                        self._broker.spawn(self._send_slowly())
                        return
                if pending_size >= WRITE_BUFFER_HIGH:  # let the transport push back
                    _write_all(transport, pending)
                    pending, pending_size = [], 0
            if pending:
                _write_all(transport, pending)
        except _TruncatedRegionError as exc:
            log.warning("closing connection from %s: %s", self._client_host, exc)
            self._abort()
        except OSError:
            self._abort()

    def _sendfile_now(self, region: FileRegion) -> FileRegion | None:
        """Send what the socket takes of ``region`` now; what is left, or None."""
        transport = self._transport
        assert transport is not None
        if transport.get_write_buffer_size():
            return region
        socket_fd = transport.get_extra_info("socket").fileno()
        file_fd = region.handle.fileno()
        position, remaining = region.position, region.size
        while remaining:
            try:
                sent = os.sendfile(socket_fd, file_fd, position, remaining)
            except BlockingIOError:
                break
            if sent == 0:
                raise _TruncatedRegionError(f"segment shrank during send ({remaining} bytes short)")
            position += sent
            remaining -= sent
        if not remaining:
            return None
        return _RegionRest(region.handle, position, remaining)

    async def _send_slowly(self) -> None:
        """Send responses that include large file regions with sendfile, then resume."""
        transport = self._transport
        assert transport is not None
        loop = asyncio.get_running_loop()
        try:
            while self._slots and self._slots[0].ready and not self._closed:
                parts = self._slots.popleft().parts
                for part in parts or ():
                    if isinstance(part, bytes):
                        transport.write(part)
                    elif part.size < SENDFILE_MIN_BYTES:
                        transport.write(_read(part))
                    else:
                        # asyncio only calls fileno() and seek() on the file it is given.
                        # No fallback: asyncio reports a peer that reset the connection
                        # before this call sent a byte as "sendfile not available"
                        # (a RuntimeError) and would fall back to reading the file.
                        source = cast("IO[bytes]", _SendfileSource(part.handle))
                        sent = await loop.sendfile(
                            transport, source, part.position, part.size, fallback=False
                        )
                        if sent != part.size:
                            raise _TruncatedRegionError(
                                f"segment shrank during send ({sent} bytes)"
                            )
        except _TruncatedRegionError as exc:
            log.warning("closing connection from %s: %s", self._client_host, exc)
            self._abort()
        except (ConnectionError, RuntimeError, OSError):
            self._abort()
        except Exception:
            # Closed rather than left waiting: with reading paused, nothing else would
            # notice that the peer went away, and the queued responses would stay.
            log.exception("error sending a response to %s", self._client_host)
            self._abort()
        finally:
            self._sending = False
        if not self._closed:
            self._flush()
            self._update_reading()

    def _update_reading(self) -> None:
        transport = self._transport
        if transport is None or self._closed:
            return
        should_pause = (
            self._draining
            or self._write_paused
            or len(self._slots) >= MAX_IN_FLIGHT
            or self._throttle_timer is not None
        )
        if should_pause and not self._read_paused:
            transport.pause_reading()
            self._read_paused = True
        elif not should_pause and self._read_paused:
            transport.resume_reading()
            self._read_paused = False

    # -- closing ---------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        """Whether requests are still unanswered or responses unsent."""
        return bool(self._slots) or self._sending

    @property
    def handling(self) -> bool:
        """Whether a request is still being handled (its response not ready yet) or a
        response is being sent with sendfile: then the connection is not idle."""
        return self._sending or any(not slot.ready for slot in self._slots)

    @property
    def peer(self) -> str:
        return f"{self._client_host}:{self._client_port}"

    def expire(self) -> None:
        """Close an idle connection: with a FIN, unless responses are stuck in the write
        buffer of a client that stopped reading (a FIN would wait for them forever)."""
        transport = self._transport
        if transport is not None and transport.get_write_buffer_size():
            self._abort()
        else:
            self.close()

    def close(self) -> None:
        if self._transport is not None and not self._closed:
            self._closed = True
            self._transport.close()

    def drain(self) -> None:
        """Read no more requests; close once those already received are answered."""
        if self._draining or self._closed:
            return
        self._draining = True
        self._update_reading()
        self._broker.spawn(self._close_when_answered())

    async def _close_when_answered(self) -> None:
        while self.busy and not self._closed:
            await asyncio.sleep(0.01)
        self.close()

    def _protocol_error(self, reason: str) -> None:
        log.info("closing connection from %s: %s", self._client_host, reason)
        self._abort()

    def _abort(self) -> None:
        self._closed = True
        if self._transport is not None:
            self._transport.abort()


class _RegionRest:
    """The unsent tail of a file region."""

    __slots__ = ("handle", "position", "size")

    def __init__(self, handle: FileHandle, position: int, size: int) -> None:
        self.handle = handle
        self.position = position
        self.size = size

    def read(self) -> bytes:
        return os.pread(self.handle.fileno(), self.size, self.position)


class _TruncatedRegionError(Exception):
    pass


def _write_all(transport: asyncio.Transport, parts: list[bytes]) -> None:
    if len(parts) == 1:
        transport.write(parts[0])
    else:
        transport.writelines(parts)


def _read(region: FileRegion) -> bytes:
    data = region.read()
    if len(data) != region.size:
        raise _TruncatedRegionError(
            f"segment shrank during read ({len(data)} of {region.size} bytes)"
        )
    return data
