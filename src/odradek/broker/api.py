"""What a request handler is, what it is given, and what it may return.

A handler is a plain function ``(ctx, request) -> reply``. The reply is a kio response
entity, a :class:`ResponseChunks` (Fetch's zero-copy layout), :data:`NO_RESPONSE`
(Produce with acks=0), a :class:`PendingReply` (a long-poll Fetch) or an awaitable of
one of those when the request must wait (acks=all, transaction verification).
Returning a value rather than always being a coroutine keeps the common case free of a
task per request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
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
        parts = self.parts
        if len(parts) == 1 and isinstance(parts[0], bytes):  # a produce response
            return len(parts[0])
        return sum(len(part) if isinstance(part, bytes) else part.size for part in parts)


class PendingReply:
    """A reply that comes later and is handed to the connection the moment it is set.

    What a parked fetch returns instead of a Future: a Future runs its callbacks on the
    next turn of the event loop, after the I/O that turn found, so a consumer waiting at
    the log end got its records one loop turn after the produce that woke it (and the
    connection paid for the Future's machinery on every woken fetch). ``cancel`` is
    what the connection calls when it closes first; it runs ``on_cancel`` (the parked
    fetch leaves the purgatory).
    """

    __slots__ = ("_deliver", "_error", "_reply", "done", "on_cancel")

    def __init__(self) -> None:
        self.done = False
        self.on_cancel: Callable[[], object] | None = None
        self._deliver: Callable[[Any, BaseException | None], None] | None = None
        self._reply: Any = None
        self._error: BaseException | None = None

    def set_result(self, reply: Any) -> None:
        self._settle(reply, None)

    def set_exception(self, error: BaseException) -> None:
        self._settle(None, error)

    def deliver_to(self, deliver: Callable[[Any, BaseException | None], None]) -> None:
        """Hand the reply (or error) to ``deliver`` when set; at once if it already is."""
        if self.done:
            if self._reply is not None or self._error is not None:
                deliver(self._reply, self._error)
            return
        self._deliver = deliver

    def cancel(self) -> None:
        if self.done:
            return
        self.done = True
        self._deliver = None
        if self.on_cancel is not None:
            self.on_cancel()

    def _settle(self, reply: Any, error: BaseException | None) -> None:
        if self.done:
            return
        self.done = True
        deliver, self._deliver = self._deliver, None
        if deliver is None:
            self._reply, self._error = reply, error
        else:
            deliver(reply, error)


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
    lowest_served: int = field(init=False)
    """``accepted_min`` if given, else ``min_version`` (a field: read on every request)."""

    def __post_init__(self) -> None:
        lowest = self.min_version if self.accepted_min is None else self.accepted_min
        object.__setattr__(self, "lowest_served", lowest)


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
