"""What a request handler is, what it is given, and what it may return.

A handler is a plain function ``(ctx, request) -> reply``. The reply is a kio response
entity, a :class:`ResponseChunks` (Fetch's zero-copy layout), :data:`NO_RESPONSE`
(Produce with acks=0), or an awaitable of one of those when the request must wait
(long-poll Fetch). Returning a value rather than always being a coroutine keeps the
common case free of a task per request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, NamedTuple, Protocol

from odradek.protocol.headers import RequestHeader

if TYPE_CHECKING:
    from odradek.broker.server import Broker


class FileHandle(Protocol):
    def fileno(self) -> int: ...


class FileRegion(Protocol):
    """A slice of a segment file (storage's FileRegion), as the connection sends it."""

    @property
    def handle(self) -> FileHandle: ...
    @property
    def position(self) -> int: ...
    @property
    def size(self) -> int: ...
    def read(self) -> bytes: ...


class _NoResponse:
    """Marker reply: the request gets no response at all (Produce acks=0)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NO_RESPONSE"


NO_RESPONSE: Final = _NoResponse()


@dataclass(slots=True)
class ResponseChunks:
    """A response body as byte strings and file regions, sent in order.

    File regions go from the page cache to the socket (sendfile) without passing through
    Python objects.
    """

    parts: list[bytes | FileRegion]

    @property
    def size(self) -> int:
        return sum(len(part) if isinstance(part, bytes) else part.size for part in self.parts)


Reply = Any | ResponseChunks | _NoResponse
HandlerFn = Callable[["RequestContext", Any], "Reply | Awaitable[Reply]"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Handler:
    """One Kafka API served by this broker.

    ``min_version``..``max_version`` is what ApiVersions advertises; ``accepted_min`` is
    the lowest version actually served when it differs (Produce: advertised from 0 as
    Kafka 4 does, served from 3).
    """

    api_key: int
    min_version: int
    max_version: int
    handle: HandlerFn
    accepted_min: int | None = None
    legacy: Callable[[RequestContext, bytes | bytearray], Reply] | None = None
    """Answers versions below ``accepted_min`` from the raw frame (kio has no schema)."""
    decode: Callable[[bytearray, int, int], Any] | None = None
    """A hot path's own body parser ``(frame, body offset, version)``; kio's otherwise."""

    @property
    def lowest_served(self) -> int:
        return self.min_version if self.accepted_min is None else self.accepted_min


class Throttleable(Protocol):
    """A connection that can be muted for a client quota's throttle time."""

    def throttle(self, throttle_ms: int) -> None: ...


class RequestContext(NamedTuple):
    """What a handler knows of its request's origin; a named tuple (immutable, and cheap
    to make once per request)."""

    header: RequestHeader
    broker: Broker
    client_host: str
    client_port: int
    listener: str
    request_size: int = 0
    """Bytes of the request after its size prefix (what a produce quota counts)."""
    connection: Throttleable | None = None
    """The connection the request came on, muted when a quota throttles its client."""

    @property
    def api_version(self) -> int:
        return self.header.api_version
