"""Client quota entities as Kafka stores them, and the AlterClientQuotas / DescribeClientQuotas
logic over the metadata store (KIP-546).

Quotas live where Kafka's ZooKeeper mode kept them, as entity configs of the metadata
store: ``/config/users/<user>``, ``/config/clients/<client-id>``,
``/config/users/<user>/clients/<client-id>`` and ``/config/ips/<ip>``. Names are
sanitized as Kafka's ``Sanitizer`` does (URL-encoded, ``*`` as ``%2A``, space as
``%20``), so a client id with a ``/`` cannot break the path; the default entity (a null
name on the wire) is the literal ``<default>``, which no sanitized name can be.

Validation follows Kafka 4's ``ClientQuotaControlManager`` (errors and messages), and
describe follows ``ClientQuotasImage.describe`` (match types and ``strict``).
"""

from __future__ import annotations

import ipaddress
import socket
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from odradek.cluster.metadata import MetadataStore
from odradek.protocol.errors import ErrorCode, KafkaError

USER: Final = "user"
CLIENT_ID: Final = "client-id"
IP: Final = "ip"
DEFAULT_NAME: Final = "<default>"
"""The stored name of a default entity (Kafka's ZooKeeperInternals.DEFAULT_STRING)."""

PRODUCER_BYTE_RATE: Final = "producer_byte_rate"
CONSUMER_BYTE_RATE: Final = "consumer_byte_rate"
REQUEST_PERCENTAGE: Final = "request_percentage"
CONTROLLER_MUTATION_RATE: Final = "controller_mutation_rate"
CONNECTION_CREATION_RATE: Final = "connection_creation_rate"

LONG, INT, DOUBLE = "LONG", "INT", "DOUBLE"
USER_CLIENT_KEYS: Final[Mapping[str, str]] = {
    PRODUCER_BYTE_RATE: LONG,
    CONSUMER_BYTE_RATE: LONG,
    REQUEST_PERCENTAGE: DOUBLE,
    CONTROLLER_MUTATION_RATE: DOUBLE,
}
IP_KEYS: Final[Mapping[str, str]] = {CONNECTION_CREATION_RATE: INT}
_LIMITS: Final = {INT: 2**31 - 1, LONG: 2**63 - 1}

MATCH_EXACT, MATCH_DEFAULT, MATCH_SPECIFIED = 0, 1, 2

Entity = tuple[tuple[str, str | None], ...]
"""A quota entity as (type, name) pairs in request order; a None name is the default."""


def sanitize(name: str) -> str:
    """Kafka's ``Sanitizer.sanitize``: Java's URLEncoder, then ``*`` -> ``%2A`` and
    ``+`` -> ``%20`` (``~`` stays encoded, as Java encodes it)."""
    return urllib.parse.quote(name, safe="*").replace("*", "%2A").replace("~", "%7E")


def desanitize(name: str) -> str:
    return urllib.parse.unquote(name)


def _stored(name: str | None) -> str:
    return DEFAULT_NAME if name is None else sanitize(name)


def _loaded(name: str) -> str | None:
    return None if name == DEFAULT_NAME else desanitize(name)


def store_location(entity: Mapping[str, str | None]) -> tuple[str, str]:
    """The (entity type, name) under which the store keeps an entity's configs."""
    if IP in entity:
        return "ips", _stored(entity[IP])
    if USER in entity and CLIENT_ID in entity:
        return "users", f"{_stored(entity[USER])}/clients/{_stored(entity[CLIENT_ID])}"
    if USER in entity:
        return "users", _stored(entity[USER])
    return "clients", _stored(entity[CLIENT_ID])


def stored_entities(
    metadata: MetadataStore,
) -> Iterator[tuple[dict[str, str | None], dict[str, float]]]:
    """Every entity with quotas in the store, as (entity, quota values)."""
    for entity_type in ("users", "clients", "ips"):
        keys = IP_KEYS if entity_type == "ips" else USER_CLIENT_KEYS
        for name, configs in metadata.entity_configs(entity_type).items():
            values = {k: float(v) for k, v in configs.items() if k in keys}
            if not values:
                continue
            entity: dict[str, str | None]
            if entity_type == "ips":
                entity = {IP: _loaded(name)}
            elif entity_type == "clients":
                entity = {CLIENT_ID: _loaded(name)}
            elif "/clients/" in name:
                user, client = name.split("/clients/", 1)
                entity = {USER: _loaded(user), CLIENT_ID: _loaded(client)}
            else:
                entity = {USER: _loaded(name)}
            yield entity, values


# -- AlterClientQuotas ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QuotaOp:
    key: str
    value: float | None
    """None removes the key."""


def _fail(message: str) -> KafkaError:
    return KafkaError(message, ErrorCode.invalid_request)


def _entity_text(entity: Entity) -> str:
    """As Kafka's ClientQuotaEntity.toString, for error messages."""
    return "ClientQuotaEntity(entries={" + ", ".join(f"{t}={n}" for t, n in entity) + "})"


def validate_entity(entity: Entity) -> tuple[dict[str, str | None], Mapping[str, str]]:
    """The entity as a map and the quota keys it takes, or INVALID_REQUEST as Kafka's
    ``validateEntity`` / ``configKeysForEntityType`` word it."""
    if not entity:
        raise _fail("Invalid empty client quota entity")
    mapped: dict[str, str | None] = {}
    for entity_type, name in entity:
        if entity_type in mapped:
            raise _fail(f"Invalid client quota entity, duplicate entity entry {entity_type}")
        if entity_type not in (USER, CLIENT_ID, IP):
            raise _fail(f"Unhandled client quota entity type: {entity_type}")
        mapped[entity_type] = name
        if name is not None and not name:
            raise _fail(f"Empty {entity_type} not supported")
    if IP in mapped:
        if USER in mapped or CLIENT_ID in mapped:
            raise _fail(
                "Invalid quota entity combination, IP entity shouldnot be combined with User "
                "or ClientId"
            )
        if not _valid_ip_entity(mapped[IP]):
            raise _fail(f"{mapped[IP]} is not a valid IP or resolvable host.")
        return mapped, IP_KEYS
    return mapped, USER_CLIENT_KEYS


def _valid_ip_entity(ip: str | None) -> bool:
    """Kafka's ``isValidIpEntity``: an address, or a name that resolves."""
    if ip is None:
        return True
    try:
        ipaddress.ip_address(ip)
        return True
    except ValueError:
        pass
    try:
        socket.getaddrinfo(ip, None)
    except (OSError, UnicodeError):
        return False
    return True


def validate_value(keys: Mapping[str, str], key: str, value: float) -> str:
    """The value as Kafka stores it (an integer for INT/LONG keys), or INVALID_REQUEST as
    ``validateQuotaKeyValue`` words it."""
    kind = keys.get(key)
    if kind is None:
        raise _fail(f"Invalid configuration key {key}")
    if not value > 0.0:  # NaN is refused too
        raise _fail(f"Quota {key} must be greater than 0")
    if kind == DOUBLE:
        return repr(float(value))
    if value > _LIMITS[kind]:
        article = "an" if kind == INT else "a"
        raise _fail(f"Proposed value for {key} is too large for {article} {kind}.")
    if abs(value % 1.0) > 1e-6:
        raise _fail(f"{key} cannot be a fractional value.")
    return str(int(value))


def alter_entity(
    metadata: MetadataStore, entity: Entity, ops: Sequence[QuotaOp], validate_only: bool
) -> None:
    """Apply one entry of an AlterClientQuotas request (or only check it)."""
    seen: set[str] = set()
    for op in ops:
        if op.key in seen:
            raise _fail(
                f"Duplicate quota key {op.key} not updating quota for this entity "
                f"{_entity_text(entity)}"
            )
        seen.add(op.key)
    mapped, keys = validate_entity(entity)
    entity_type, name = store_location(mapped)
    configs = dict(metadata.entity_configs(entity_type).get(name, {}))
    for op in ops:
        if op.value is None:
            configs.pop(op.key, None)
        else:
            configs[op.key] = validate_value(keys, op.key, op.value)
    if not validate_only:
        metadata.set_entity_configs(entity_type, name, configs)


# -- DescribeClientQuotas ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FilterComponent:
    entity_type: str
    match_type: int
    match: str | None


class UnsupportedEntityTypeError(KafkaError):
    error_code = ErrorCode.unsupported_version


def describe(
    metadata: MetadataStore, components: Sequence[FilterComponent], strict: bool
) -> list[tuple[dict[str, str | None], dict[str, float]]]:
    """The entities matching a filter, as Kafka's ``ClientQuotasImage.describe``."""
    exact: dict[str, str | None] = {}
    specified: set[str] = set()
    for component in components:
        entity_type = component.entity_type
        if not entity_type:
            raise _fail("Invalid empty entity type.")
        if entity_type in exact or entity_type in specified:
            raise _fail(f"Entity type {entity_type} cannot appear more than once in the filter.")
        if entity_type not in (IP, USER, CLIENT_ID):
            raise UnsupportedEntityTypeError(f"Unsupported entity type {entity_type}")
        if component.match_type == MATCH_EXACT:
            if component.match is None:
                raise _fail("Request specified MATCH_TYPE_EXACT, but set match string to null.")
            exact[entity_type] = component.match
        elif component.match_type == MATCH_DEFAULT:
            if component.match is not None:
                raise _fail(
                    "Request specified MATCH_TYPE_DEFAULT, but also specified a match string."
                )
            exact[entity_type] = None
        elif component.match_type == MATCH_SPECIFIED:
            if component.match is not None:
                raise _fail(
                    "Request specified MATCH_TYPE_SPECIFIED, but also specified a match string."
                )
            specified.add(entity_type)
        else:
            raise _fail(f"Unknown match type {component.match_type}")
    named = exact.keys() | specified
    if IP in named and (USER in named or CLIENT_ID in named):
        raise _fail(
            "Invalid entity filter component combination. IP filter component should not be "
            "used with user or clientId filter component."
        )
    found = []
    for entity, values in stored_entities(metadata):
        if strict and len(entity) != len(exact) + len(specified):
            continue
        if any(t not in entity or entity[t] != name for t, name in exact.items()):
            continue
        if any(t not in entity for t in specified):
            continue
        found.append((entity, values))
    return found
