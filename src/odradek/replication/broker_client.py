"""A connection from this broker to another, for a follower's requests to its leader.

One request at a time, as Kafka's replica fetcher sends them: the fetcher waits for each
answer before it sends the next request, so there is no pipelining to keep in order.
Every wait is bounded by ``replica.socket.timeout.ms``; a failure of any kind closes the
connection and raises BrokerConnectionError, and the fetcher connects again after its
back-off.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable
from typing import Any, Protocol, cast

from odradek.cluster.metadata import MetadataStore
from odradek.protocol import codec
from odradek.protocol.headers import encode_request_header

_SIZE = struct.Struct(">i")
MAX_RESPONSE_BYTES = 512 * 1024 * 1024
"""A response frame larger than this is refused (a corrupt size prefix, not data)."""


class BrokerConnectionError(Exception):
    """The other broker could not be reached, or the connection broke."""


class PeerClient(Protocol):
    """What a sender needs of a connection to another broker (``BrokerClient``; tests
    give fakes)."""

    host: str
    port: int

    async def call(self, request: Any) -> Any: ...
    def close(self) -> None: ...


PeerClientFactory = Callable[[str, int, str, int], PeerClient]
"""(host, port, client id, timeout ms) -> a connection."""


def reuse_or_connect(
    metadata: MetadataStore,
    broker_id: int,
    current: PeerClient | None,
    *,
    factory: PeerClientFactory,
    client_id: str,
    timeout_ms: int,
) -> PeerClient | None:
    """A connection to ``broker_id``: ``current`` while the broker's registered endpoint
    is the one it connects to, else a new one (``current`` closed); None while the
    broker is not registered."""
    registration = metadata.brokers().get(broker_id)
    if registration is None:
        return None
    endpoint = registration.endpoint
    if current is not None and (current.host, current.port) == (endpoint.host, endpoint.port):
        return current
    if current is not None:
        current.close()
    return factory(endpoint.host, endpoint.port, client_id, timeout_ms)


class _ResponseFrames(asyncio.BufferedProtocol):
    """Reads each response frame straight into a buffer of its own size.

    A follower's fetch answers are up to ``replica.fetch.response.max.bytes``: with a
    StreamReader each was copied into the reader's buffer, out of it again by
    ``readexactly`` and moved down in it, a third of a follower's CPU. Here the socket
    writes into the frame's own bytearray (``get_buffer``), so the bytes are copied
    once, by the kernel. One answer is awaited at a time (``expect``), as the client
    sends one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._head = bytearray(4)
        self._frame: bytearray | None = None
        self._filled = 0
        self._waiter: asyncio.Future[bytearray] | None = None
        self._error: BaseException | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.Transport", transport)

    def expect(self) -> asyncio.Future[bytearray]:
        """A future of the next whole frame's body."""
        waiter = asyncio.get_running_loop().create_future()
        if self._error is not None:
            waiter.set_exception(self._error)
        else:
            self._waiter = waiter
        return waiter

    def get_buffer(self, sizehint: int) -> memoryview:
        target = self._head if self._frame is None else self._frame
        return memoryview(target)[self._filled :]

    def buffer_updated(self, nbytes: int) -> None:
        self._filled += nbytes
        if self._frame is None:
            if self._filled < 4:
                return
            (size,) = _SIZE.unpack(self._head)
            if not 4 <= size <= MAX_RESPONSE_BYTES:
                self._fail(BrokerConnectionError(f"response frame of {size} bytes refused"))
                return
            self._frame, self._filled = bytearray(size), 0
            return
        if self._filled < len(self._frame):
            return
        frame, self._frame, self._filled = self._frame, None, 0
        waiter, self._waiter = self._waiter, None
        if waiter is None:
            self._fail(BrokerConnectionError("a response that no request asked for"))
        elif not waiter.done():
            waiter.set_result(frame)

    def eof_received(self) -> bool | None:
        self._fail(EOFError("the other broker closed the connection"))
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(exc or EOFError("connection closed"))

    def _fail(self, error: BaseException) -> None:
        if self._error is None:
            self._error = error
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)
        if self.transport is not None:
            self.transport.close()


class BrokerClient:
    def __init__(self, host: str, port: int, client_id: str, timeout_ms: int) -> None:
        self.host = host
        self.port = port
        self._client_id = client_id
        self._timeout = timeout_ms / 1000
        self._frames: _ResponseFrames | None = None
        self._correlation_id = 0

    @property
    def connected(self) -> bool:
        frames = self._frames
        return (
            frames is not None
            and frames.transport is not None
            and not frames.transport.is_closing()
        )

    async def call(self, request: Any) -> Any:
        """Send a kio request entity and return the decoded response."""
        api_key, version = int(request.__api_key__), int(request.__version__)
        return await self.call_encoded(api_key, version, codec.encode(request))

    async def call_encoded(self, api_key: int, version: int, body: bytes) -> Any:
        """Send a request whose body (after the header) is already encoded; the decoded
        response (a hot path, the follower's fetch, encodes its own requests)."""
        try:
            if not self.connected:
                loop = asyncio.get_running_loop()
                async with asyncio.timeout(self._timeout):
                    _, self._frames = await loop.create_connection(
                        _ResponseFrames, self.host, self.port
                    )
            frames = self._frames
            assert frames is not None and frames.transport is not None
            self._correlation_id += 1
            head = encode_request_header(
                api_key,
                version,
                self._correlation_id,
                self._client_id,
                codec.is_flexible_request(api_key, version),
            )
            answer = frames.expect()
            frames.transport.write(_SIZE.pack(len(head) + len(body)) + head + body)
            async with asyncio.timeout(self._timeout):
                frame = await answer
            correlation_id, response = codec.decode_response(api_key, version, frame)
        except (OSError, EOFError, TimeoutError, codec.DecodeError) as exc:
            self.close()
            raise BrokerConnectionError(
                f"request to {self.host}:{self.port} failed: {exc!r}"
            ) from exc
        except BrokerConnectionError:
            self.close()
            raise
        if correlation_id != self._correlation_id:
            self.close()
            raise BrokerConnectionError(
                f"response for request {correlation_id}, expected {self._correlation_id}"
            )
        return response

    def close(self) -> None:
        frames, self._frames = self._frames, None
        if frames is not None and frames.transport is not None:
            frames.transport.close()
