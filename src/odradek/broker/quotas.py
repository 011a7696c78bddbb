"""Client quota enforcement, as Kafka's ``ClientQuotaManager`` (produce and fetch byte
rates) and ``ClientRequestQuotaManager`` (request handling time).

Quotas are set per entity (see ``client_quotas``) and resolved for a request's (user,
client id) in Kafka's order of precedence::

    /config/users/<user>/clients/<client-id>
    /config/users/<user>/clients/<default>
    /config/users/<user>
    /config/users/<default>/clients/<client-id>
    /config/users/<default>/clients/<default>
    /config/users/<default>
    /config/clients/<client-id>
    /config/clients/<default>

The most specific entity with a quota decides both the limit and who shares it: a quota
on ``/config/clients/<default>`` gives every client id its own meter of that rate, a
quota on ``/config/users/<user>`` one meter for all of the user's clients (Kafka's
metric tags). Rates are measured as Kafka's ``Rate`` over a ``SampledStat``:
``quota.window.num`` samples of ``quota.window.size.seconds``, the elapsed time counted
as at least ``num - 1`` whole windows. A request that takes the rate over its bound is
throttled for ``(observed - bound) / bound * window`` milliseconds (``QuotaUtils``), the
time that brings the rate back to the bound if nothing more arrives.

With no quota of a kind configured, ``ClientQuotaManager.enabled`` is False and the hot
path pays one attribute read. Single event loop: nothing here is thread-safe.
"""

from __future__ import annotations

import datetime
import ipaddress
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Final, Generic, Protocol, TypeVar

from odradek.broker.api import RequestContext
from odradek.broker.client_quotas import (
    CLIENT_ID,
    CONNECTION_CREATION_RATE,
    CONSUMER_BYTE_RATE,
    CONTROLLER_MUTATION_RATE,
    DEFAULT_NAME,
    IP,
    PRODUCER_BYTE_RATE,
    REQUEST_PERCENTAGE,
    USER,
    sanitize,
    stored_entities,
)
from odradek.cluster.metadata import MetadataListener, MetadataStore

ANONYMOUS: Final = "ANONYMOUS"
"""The principal of every PLAINTEXT connection, as Kafka names it."""

NANOS_TO_PERCENTAGE: Final = 100.0 / 1e9
"""Request time is recorded in percent of one thread-second (ClientRequestQuotaManager)."""

INACTIVE_METER_MS: Final = 3600 * 1000
"""A meter with no event for this long is dropped (Kafka's
InactiveSensorExpirationTimeSeconds), checked whenever the number of meters doubles."""

EntityKey = tuple[str | None, str | None]
"""(sanitized user, sanitized client id) of a quota entity; None where the entity has no
such part, ``<default>`` for a default."""


def monotonic_ms() -> int:
    return time.monotonic_ns() // 1_000_000


class Rate:
    """Kafka's ``Rate`` over a ``SampledStat`` of windowed sums, with its quirks kept:
    a sample is complete once ``window_ms`` old, ``samples + 1`` are kept (one may overlap
    the window's start), a sample with no event for ``samples * window_ms`` is reset, and
    the window measured is at least ``samples - 1`` whole windows."""

    __slots__ = ("_current", "_lasts", "_samples", "_starts", "_values", "_window_ms")

    def __init__(self, samples: int, window_ms: int) -> None:
        self._samples = samples
        self._window_ms = window_ms
        self._current = 0
        self._starts: list[int] = []
        self._lasts: list[int] = []
        self._values: list[float] = []

    def _new(self, now_ms: int) -> None:
        self._starts.append(now_ms)
        self._lasts.append(now_ms)
        self._values.append(0.0)

    def record(self, value: float, now_ms: int) -> None:
        if not self._starts:
            self._new(now_ms)
        index = self._current
        if now_ms - self._starts[index] >= self._window_ms:
            index = (index + 1) % (self._samples + 1)
            self._current = index
            if index >= len(self._starts):
                self._new(now_ms)
            else:
                self._reset(index, now_ms)
        self._values[index] += value
        self._lasts[index] = now_ms

    def _reset(self, index: int, now_ms: int) -> None:
        self._starts[index] = now_ms
        self._lasts[index] = now_ms
        self._values[index] = 0.0

    def _purge(self, now_ms: int) -> None:
        expire_age = self._samples * self._window_ms
        for index, last in enumerate(self._lasts):
            if now_ms - last >= expire_age:
                self._reset(index, now_ms)

    def window_size(self, now_ms: int) -> int:
        """Milliseconds the rate is taken over (Kafka's ``Rate.windowSize``)."""
        self._purge(now_ms)
        if not self._starts:
            self._new(now_ms)
        elapsed = now_ms - min(self._starts)
        full_windows = elapsed // self._window_ms
        if full_windows < self._samples - 1:
            elapsed += (self._samples - 1 - full_windows) * self._window_ms
        return max(elapsed, 1)

    @property
    def last_event_ms(self) -> int:
        return max(self._lasts, default=0)

    def measure(self, now_ms: int) -> tuple[float, int]:
        """(rate per second, window in milliseconds) at ``now_ms``."""
        window = self.window_size(now_ms)
        return sum(self._values) / (window / 1000.0), window


class TokenBucket:
    """Kafka's ``TokenBucket`` (KIP-599, controller mutations): refilled at the bound per
    second up to a burst of ``samples * window`` seconds' worth; a mutation takes its
    permits, and the bucket may go below zero (the debt is what throttles). It starts
    full (Kafka's starts empty at time zero, i.e. full at any real clock reading)."""

    __slots__ = ("_burst_seconds", "_last_ms", "_tokens")

    def __init__(self, samples: int, window_ms: int) -> None:
        self._burst_seconds = samples * window_ms / 1000
        self._tokens = 0.0
        self._last_ms: int | None = None

    @property
    def last_event_ms(self) -> int:
        return self._last_ms or 0

    def _refill(self, bound: float, now_ms: int) -> None:
        burst = self._burst_seconds * bound
        if self._last_ms is None:
            self._tokens = burst
        else:
            self._tokens = min(burst, self._tokens + bound * (now_ms - self._last_ms) / 1000)
        self._last_ms = now_ms

    def measure(self, bound: float, now_ms: int) -> float:
        """Tokens left (negative: in debt)."""
        self._refill(bound, now_ms)
        return self._tokens

    def record(self, permits: float, bound: float, now_ms: int) -> None:
        self._refill(bound, now_ms)
        self._tokens = min(self._burst_seconds * bound, self._tokens - permits)


class _Meter(Protocol):
    @property
    def last_event_ms(self) -> int: ...


M = TypeVar("M", bound=_Meter)


class _QuotaResolver(Generic[M]):
    """One quota kind's overrides and one meter per metric-tag pair (who shares it)."""

    def __init__(self, quota_key: str, samples: int, window_seconds: int) -> None:
        self.quota_key = quota_key
        self._samples = samples
        self._window_ms = window_seconds * 1000
        self._overrides: dict[EntityKey, float] = {}
        self._meters: dict[tuple[str, str], tuple[M, float]] = {}
        self._resolved: dict[tuple[str, str | None], tuple[M, float] | None] = {}
        self._sweep_at = 1024
        self.enabled = False

    def _new_meter(self) -> M:
        raise NotImplementedError

    def update(self, overrides: Mapping[EntityKey, float]) -> None:
        """Replace the overrides; meters keep their history, bounds follow the change."""
        self._overrides = dict(overrides)
        self.enabled = bool(self._overrides)
        self._resolved.clear()
        for tags, (rate, _) in list(self._meters.items()):
            bound = self._limit(tags)
            if bound is None:
                del self._meters[tags]
            else:
                self._meters[tags] = (rate, bound)

    def _meter(
        self, user: str, client_id: str | None, now_ms: int | None = None
    ) -> tuple[M, float] | None:
        key = (user, client_id)
        try:
            return self._resolved[key]
        except KeyError:
            pass
        tags = self._tags(sanitize(user), client_id or "")
        bound = self._limit(tags)
        meter: tuple[M, float] | None = None
        if bound is not None:
            meter = self._meters.get(tags)
            if meter is None:
                if now_ms is not None and len(self._meters) >= self._sweep_at:
                    self._drop_inactive(now_ms)
                meter = (self._new_meter(), bound)
                self._meters[tags] = meter
        if len(self._resolved) > 100_000:  # client ids are the client's choice: bound it
            self._resolved.clear()
        self._resolved[key] = meter
        return meter

    @property
    def meter_count(self) -> int:
        """Meters held (one per group of clients sharing a quota)."""
        return len(self._meters)

    def _drop_inactive(self, now_ms: int) -> None:
        """Forget meters idle for an hour: client ids are the clients' choice, so the
        meters of a default quota would otherwise grow without bound."""
        for tags, (rate, _) in list(self._meters.items()):
            if now_ms - rate.last_event_ms >= INACTIVE_METER_MS:
                del self._meters[tags]
        self._resolved.clear()
        self._sweep_at = max(1024, 2 * len(self._meters))

    def _tags(self, user: str, client_id: str) -> tuple[str, str]:
        """Kafka's ``DefaultQuotaCallback.quotaMetricTags``: who shares a meter."""
        has = self._overrides.__contains__
        client = sanitize(client_id)
        if has((user, client)) or has((user, DEFAULT_NAME)):
            return user, client_id
        if has((user, None)):
            return user, ""
        if has((DEFAULT_NAME, client)) or has((DEFAULT_NAME, DEFAULT_NAME)):
            return user, client_id
        if has((DEFAULT_NAME, None)):
            return user, ""
        return "", client_id

    def _limit(self, tags: tuple[str, str]) -> float | None:
        """Kafka's ``DefaultQuotaCallback.quotaLimit`` for a meter's tags."""
        user, client_id = tags
        client = sanitize(client_id) if client_id else ""
        get = self._overrides.get
        order: Iterable[EntityKey]
        if user and client:
            order = ((user, client), (user, DEFAULT_NAME), (DEFAULT_NAME, client))
            order = (*order, (DEFAULT_NAME, DEFAULT_NAME))
        elif user:
            order = ((user, None), (DEFAULT_NAME, None))
        elif client:
            order = ((None, client), (None, DEFAULT_NAME))
        else:
            return None
        for key in order:
            bound = get(key)
            if bound is not None:
                return bound
        return None

    def quota(self, user: str, client_id: str | None) -> float | None:
        """The bound that applies to (user, client id), None if unlimited."""
        meter = self._meter(user, client_id)
        return None if meter is None else meter[1]


class ClientQuotaManager(_QuotaResolver[Rate]):
    """``producer_byte_rate``, ``consumer_byte_rate`` or ``request_percentage``: a
    ``Rate`` per meter, throttled by how far the rate is over the bound."""

    def _new_meter(self) -> Rate:
        return Rate(self._samples, self._window_ms)

    def record(self, user: str, client_id: str | None, value: float, now_ms: int) -> int:
        """Record ``value`` and return the throttle time in ms (0 within the quota)."""
        meter = self._meter(user, client_id, now_ms)
        if meter is None:
            return 0
        rate, bound = meter
        rate.record(value, now_ms)
        observed, window = rate.measure(now_ms)
        if observed <= bound:
            return 0
        return round((observed - bound) / bound * window)

    def unrecord(self, user: str, client_id: str | None, value: float, now_ms: int) -> None:
        """Take back a recorded value (a throttled fetch sends nothing), as Kafka does by
        recording its negative."""
        meter = self._meter(user, client_id)
        if meter is not None:
            meter[0].record(-value, now_ms)

    def max_value_in_window(self, user: str, client_id: str | None) -> float | None:
        """The most that can be taken at once without certain throttling (a consumer's
        fetch is capped to it): the bound times ``samples - 1`` windows."""
        bound = self.quota(user, client_id)
        if bound is None:
            return None
        return bound * (self._samples - 1) * (self._window_ms / 1000)


class ControllerMutationQuotaManager(_QuotaResolver[TokenBucket]):
    """``controller_mutation_rate`` (KIP-599): partitions created or deleted per second,
    a token bucket per meter (``controller.quota.window.num`` samples of
    ``controller.quota.window.size.seconds`` of burst)."""

    def _new_meter(self) -> TokenBucket:
        return TokenBucket(self._samples, self._window_ms)

    def throttle_if_exceeded(self, user: str, client_id: str | None, now_ms: int) -> int:
        """The strict check before a mutation (Kafka's StrictControllerMutationQuota): the
        throttle time if the bucket is in debt, else 0."""
        meter = self._meter(user, client_id, now_ms)
        if meter is None:
            return 0
        bucket, bound = meter
        tokens = bucket.measure(bound, now_ms)
        return round(-tokens / bound * 1000) if tokens < 0 else 0

    def record(self, user: str, client_id: str | None, permits: float, now_ms: int) -> int:
        """Take ``permits``; the throttle time if that left the bucket in debt."""
        meter = self._meter(user, client_id, now_ms)
        if meter is None:
            return 0
        bucket, bound = meter
        bucket.record(permits, bound, now_ms)
        tokens = bucket.measure(bound, now_ms)
        return round(-tokens / bound * 1000) if tokens < 0 else 0


class IpConnectionQuota:
    """``connection_creation_rate`` per client address (Kafka's ConnectionQuotas): the
    address's own quota, else the ``<default>`` ip's; a ``Rate`` per address. A new
    connection over the rate is not counted and is closed after the throttle time, at
    most one window (Kafka's DelayedCloseSocket)."""

    def __init__(self, samples: int, window_seconds: int) -> None:
        self._samples = samples
        self._window_ms = window_seconds * 1000
        self._overrides: dict[str, float] = {}
        self._default: float | None = None
        self._meters: dict[str, Rate] = {}
        self.enabled = False

    def update(self, overrides: Mapping[str | None, float]) -> None:
        self._default = overrides.get(None)
        self._overrides = {_normal_ip(ip): v for ip, v in overrides.items() if ip is not None}
        self.enabled = bool(overrides)
        self._meters.clear()

    def quota(self, ip: str) -> float | None:
        return self._overrides.get(_normal_ip(ip), self._default)

    def record_connection(self, ip: str, now_ms: int) -> int:
        """Count a new connection from ``ip``; the throttle time if it is over the rate
        (then it is not counted)."""
        bound = self.quota(ip)
        if bound is None:
            return 0
        rate = self._meters.get(ip)
        if rate is None:
            if len(self._meters) >= 100_000:
                self._meters.clear()
            rate = self._meters[ip] = Rate(self._samples, self._window_ms)
        rate.record(1.0, now_ms)
        observed, window = rate.measure(now_ms)
        if observed <= bound:
            return 0
        rate.record(-1.0, now_ms)
        return min(round((observed - bound) / bound * window), self._window_ms)


def _normal_ip(ip: str) -> str:
    """A literal address in one spelling (``::1`` and ``0:0::1`` are one address)."""
    try:
        return str(ipaddress.ip_address(ip))
    except ValueError:
        return ip


class ClientQuotas(MetadataListener):
    """The broker's quota managers, kept in line with the quotas in the metadata store
    (every broker of a cluster hears a change through the store)."""

    def __init__(
        self,
        metadata: MetadataStore,
        samples: int,
        window_seconds: int,
        clock: Callable[[], int] = monotonic_ms,
        *,
        controller_samples: int = 11,
        controller_window_seconds: int = 1,
    ) -> None:
        self._metadata = metadata
        self.clock = clock
        self.controller_mutation = ControllerMutationQuotaManager(
            CONTROLLER_MUTATION_RATE, controller_samples, controller_window_seconds
        )
        self.ip = IpConnectionQuota(samples, window_seconds)
        self.produce = ClientQuotaManager(PRODUCER_BYTE_RATE, samples, window_seconds)
        self.fetch = ClientQuotaManager(CONSUMER_BYTE_RATE, samples, window_seconds)
        self.request = ClientQuotaManager(REQUEST_PERCENTAGE, samples, window_seconds)

    def reload(self) -> None:
        overrides: dict[str, dict[EntityKey, float]] = {
            PRODUCER_BYTE_RATE: {},
            CONSUMER_BYTE_RATE: {},
            REQUEST_PERCENTAGE: {},
            CONTROLLER_MUTATION_RATE: {},
        }
        ips: dict[str | None, float] = {}
        for entity, values in stored_entities(self._metadata):
            if IP in entity:
                if CONNECTION_CREATION_RATE in values:
                    ips[entity[IP]] = values[CONNECTION_CREATION_RATE]
                continue
            key = (_part(entity, USER), _part(entity, CLIENT_ID))
            for name, value in values.items():
                if name in overrides:
                    overrides[name][key] = value
        self.produce.update(overrides[PRODUCER_BYTE_RATE])
        self.fetch.update(overrides[CONSUMER_BYTE_RATE])
        self.request.update(overrides[REQUEST_PERCENTAGE])
        self.controller_mutation.update(overrides[CONTROLLER_MUTATION_RATE])
        self.ip.update(ips)

    def entity_configs_changed(self, entity_type: str, name: str) -> None:
        if entity_type in ("users", "clients", "ips"):
            self.reload()


def _part(entity: Mapping[str, str | None], entity_type: str) -> str | None:
    if entity_type not in entity:
        return None
    name = entity[entity_type]
    return DEFAULT_NAME if name is None else sanitize(name)


THROTTLING_QUOTA_EXCEEDED_MESSAGE: Final = "The throttling quota has been exceeded."


class MutationQuota:
    """One request's use of ``controller_mutation_rate`` (Kafka's ControllerMutationQuota).

    Strict (CreateTopics v6+, DeleteTopics v5+, CreatePartitions v3+, clients that
    understand THROTTLING_QUOTA_EXCEEDED): a topic is refused while the bucket is in debt,
    and the one that puts it in debt still passes. Permissive (older versions): every
    mutation passes and the client is throttled once in debt. Either way the throttle
    time goes in the answer and mutes the connection.
    """

    __slots__ = ("_client_id", "_connection", "_manager", "_quotas", "strict", "throttle_ms")

    def __init__(self, ctx: RequestContext, strict_since: int) -> None:
        self._quotas: ClientQuotas = ctx.broker.quotas
        self._manager = self._quotas.controller_mutation
        self._client_id = ctx.header.client_id
        self._connection = ctx.connection
        self.strict = ctx.api_version >= strict_since
        self.throttle_ms = 0

    def exceeded(self) -> bool:
        """Whether the next mutation must be refused (strict quotas only)."""
        if not self.strict or not self._manager.enabled:
            return False
        throttle_ms = self._manager.throttle_if_exceeded(
            ANONYMOUS, self._client_id, self._quotas.clock()
        )
        self.throttle_ms = max(self.throttle_ms, throttle_ms)
        return throttle_ms > 0

    def record(self, permits: int) -> None:
        """A mutation of ``permits`` partitions was made."""
        if not self._manager.enabled or permits <= 0:
            return
        throttle_ms = self._manager.record(
            ANONYMOUS, self._client_id, permits, self._quotas.clock()
        )
        if not self.strict:
            self.throttle_ms = max(self.throttle_ms, throttle_ms)

    def finish(self) -> datetime.timedelta:
        """The throttle time for the answer; the connection is muted for it."""
        if self.throttle_ms and self._connection is not None:
            self._connection.throttle(self.throttle_ms)
        return datetime.timedelta(milliseconds=self.throttle_ms)
