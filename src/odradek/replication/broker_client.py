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
from typing import Any, Protocol

from odradek.cluster.metadata import MetadataStore
from odradek.protocol import codec

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


class BrokerClient:
    def __init__(self, host: str, port: int, client_id: str, timeout_ms: int) -> None:
        self.host = host
        self.port = port
        self._client_id = client_id
        self._timeout = timeout_ms / 1000
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._correlation_id = 0

    @property
    def connected(self) -> bool:
        return self._writer is not None and not self._writer.is_closing()

    async def call(self, request: Any) -> Any:
        """Send a kio request entity and return the decoded response."""
        api_key, version = int(request.__api_key__), int(request.__version__)
        try:
            if not self.connected:
                self._reader, self._writer = await asyncio.wait_for(
                    asyncio.open_connection(self.host, self.port, limit=1 << 20), self._timeout
                )
            assert self._reader is not None and self._writer is not None
            self._correlation_id += 1
            body = codec.request_bytes(request, self._correlation_id, self._client_id)
            self._writer.write(struct.pack(">i", len(body)) + body)
            await asyncio.wait_for(self._writer.drain(), self._timeout)
            head = await asyncio.wait_for(self._reader.readexactly(4), self._timeout)
            (size,) = struct.unpack(">i", head)
            if not 4 <= size <= MAX_RESPONSE_BYTES:
                raise BrokerConnectionError(f"response frame of {size} bytes refused")
            frame = await asyncio.wait_for(self._reader.readexactly(size), self._timeout)
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
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None
