"""Bodies of requests and responses, through kio's classes generated from Kafka's schemas.

kio has one class per API version; this module maps (api key, version) to them, decodes a
request body and encodes a response body. It also offers :func:`build`, which makes an
entity of a given version from a superset of field values, so a handler can describe a
response once for all versions and let each version keep the fields it has.
"""

from __future__ import annotations

import io
from dataclasses import fields
from functools import cache
from typing import Any

from kio.index import UnknownAPIKey, UnknownEntity, load_payload_module
from kio.schema.index import api_key_map, schema_name_map
from kio.serial import entity_reader, entity_writer
from kio.static.constants import EntityType

from odradek.protocol.declared_lengths import LengthError, check_request
from odradek.protocol.headers import (
    API_VERSIONS_KEY,
    encode_request_header,
    skip_tagged_fields,
)


class DecodeError(ValueError):
    """A request body kio cannot parse: the connection is closed, as Kafka does."""


@cache
def kio_versions(api_key: int) -> tuple[int, int] | None:
    """The (min, max) versions kio has schemas for, or None for an unknown API key."""
    name = api_key_map.get(api_key)
    if name is None:
        return None
    versions = sorted(schema_name_map[name])
    return versions[0], versions[-1]


@cache
def request_class(api_key: int, version: int) -> Any:
    return _payload_class(api_key, version, EntityType.request, "Request")


@cache
def response_class(api_key: int, version: int) -> Any:
    return _payload_class(api_key, version, EntityType.response, "Response")


@cache
def request_module(api_key: int, version: int) -> Any:
    """The kio module of a request version: nested entity classes are attributes of it."""
    return load_payload_module(api_key, version, EntityType.request)


@cache
def response_module(api_key: int, version: int) -> Any:
    """The kio module of a response version: nested entity classes are attributes of it."""
    return load_payload_module(api_key, version, EntityType.response)


def _payload_class(api_key: int, version: int, kind: Any, suffix: str) -> Any:
    try:
        module = load_payload_module(api_key, version, kind)
    except (UnknownAPIKey, UnknownEntity) as exc:
        raise KeyError((api_key, version)) from exc
    for name in dir(module):
        value = getattr(module, name)
        if (
            isinstance(value, type)
            and name.endswith(suffix)
            and getattr(value, "__type__", None) is kind
        ):
            return value
    raise KeyError((api_key, version))


@cache
def is_flexible_request(api_key: int, version: int) -> bool:
    """Whether a request uses header v2 (tagged fields)."""
    return bool(request_class(api_key, version).__flexible__)


@cache
def is_flexible_response(api_key: int, version: int) -> bool:
    """Whether a response uses header v1; never for ApiVersions."""
    if api_key == API_VERSIONS_KEY:
        return False
    return bool(response_class(api_key, version).__flexible__)


_READERS: dict[type[Any], Any] = {}
_WRITERS: dict[type[Any], Any] = {}


def _reader(cls: type[Any]) -> Any:
    reader = _READERS.get(cls)
    if reader is None:
        reader = _READERS[cls] = entity_reader(cls)
    return reader


def _writer(cls: type[Any]) -> Any:
    writer = _WRITERS.get(cls)
    if writer is None:
        writer = _WRITERS[cls] = entity_writer(cls)
    return writer


def decode_request(api_key: int, version: int, frame: bytes | bytearray, offset: int) -> Any:
    """The request entity in ``frame`` after its header; DecodeError if it does not parse.

    Every declared length is first held against the bytes received
    (:mod:`~odradek.protocol.declared_lengths`): kio reserves memory for an array's
    declared count before reading it, and a reservation that fails aborts the process.
    """
    cls = request_class(api_key, version)
    try:
        check_request(cls, frame, offset)
    except LengthError as exc:
        raise DecodeError(f"cannot decode {cls.__name__} v{version}: {exc}") from None
    # kio's native reader takes read-only buffers only; a read-only view copies nothing.
    data = memoryview(frame).toreadonly() if isinstance(frame, bytearray) else frame
    try:
        entity, _size = _reader(cls)(data, offset)
    except Exception as exc:  # kio's native reader raises several types on bad input
        raise DecodeError(f"cannot decode {cls.__name__} v{version}: {exc}") from exc
    return entity


def encode(entity: Any) -> bytes:
    """Body bytes of a kio entity (request or response)."""
    buffer = io.BytesIO()
    _writer(type(entity))(buffer, entity)
    return buffer.getvalue()


_FIELD_NAMES: dict[type[Any], frozenset[str]] = {}


def field_names(cls: type[Any]) -> frozenset[str]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = frozenset(field.name for field in fields(cls))
    return names


def build(cls: Any, **values: Any) -> Any:
    """An instance of ``cls`` from the values among ``values`` that ``cls`` has.

    Values for fields that this version lacks are dropped; fields the version has but
    ``values`` lacks take the schema default (a missing required field is a bug: kio
    raises TypeError).
    """
    names = field_names(cls)
    return cls(**{name: value for name, value in values.items() if name in names})


# -- the client side (one broker asking another) ----------------------------------------------


def request_bytes(request: Any, correlation_id: int, client_id: str) -> bytes:
    """A request's header and body (without the size prefix), for a kio request entity:
    header v2 (tagged fields) for flexible versions, v1 otherwise."""
    api_key, version = int(request.__api_key__), int(request.__version__)
    head = encode_request_header(
        api_key, version, correlation_id, client_id, is_flexible_request(api_key, version)
    )
    return head + encode(request)


def decode_response(api_key: int, version: int, body: bytes | bytearray) -> tuple[int, Any]:
    """(correlation id, response entity) of a response frame's body."""
    correlation_id = int.from_bytes(body[:4], "big", signed=True)
    offset = 4
    if is_flexible_response(api_key, version):
        offset = skip_tagged_fields(body, offset)
    cls = response_class(api_key, version)
    try:
        # kio reads read-only buffers only: a bytearray is viewed as one, not copied.
        readable = memoryview(body).toreadonly() if isinstance(body, bytearray) else body
        entity, _size = _reader(cls)(readable, offset)
    except Exception as exc:
        raise DecodeError(f"cannot decode {cls.__name__} v{version}: {exc}") from exc
    return correlation_id, entity
