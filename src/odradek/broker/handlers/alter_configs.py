"""AlterConfigs (key 33, replaces a resource's overrides) and IncrementalAlterConfigs
(key 44, SET / DELETE / APPEND / SUBTRACT per key) for topics and brokers.

A broker resource is this broker's id (``/config/brokers/<id>``) or "" for the
cluster-wide default (``/config/brokers/<default>``), as Kafka's ZooKeeper-mode
``ConfigAdminManager``: only dynamic configs are accepted (INVALID_REQUEST with Kafka's
"Cannot update these configs dynamically" otherwise), values are checked with the
config's type and validator (INVALID_CONFIG), and the result is written to the metadata
store, whose listeners (``broker/dynamic_config.py``, on every broker) apply it.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from odradek.broker.api import Handler, RequestContext
from odradek.broker.handlers.common import ZERO_DURATION
from odradek.broker.handlers.describe_configs import BROKER, TOPIC, check_broker_resource
from odradek.cluster.metadata import DEFAULT_ENTITY
from odradek.config import (
    BROKER_KEYS,
    TOPIC_KEYS,
    ConfigError,
    ConfigKey,
    ConfigType,
    NotDynamicError,
    validate_dynamic_broker_configs,
)
from odradek.protocol import codec
from odradek.protocol.errors import ErrorCode, KafkaError

SET, DELETE, APPEND, SUBTRACT = 0, 1, 2, 3


def _respond(ctx: RequestContext, api_key: int, request: Any, apply: Any) -> Any:
    module = codec.response_module(api_key, ctx.api_version)
    counts = Counter((r.resource_type, r.resource_name) for r in request.resources)
    responses = []
    for resource in request.resources:
        error, message = ErrorCode.none, None
        try:
            if counts[(resource.resource_type, resource.resource_name)] > 1:
                raise KafkaError("Duplicate resource in request", ErrorCode.invalid_request)
            if resource.resource_type == TOPIC:
                topic = ctx.broker.metadata.topic(resource.resource_name)
                if topic is None:
                    raise KafkaError(
                        f"Topic {resource.resource_name} does not exist",
                        ErrorCode.unknown_topic_or_partition,
                    )
                configs = apply(dict(topic.configs), resource.configs, TOPIC_KEYS)
                ctx.broker.controller.set_topic_configs(
                    resource.resource_name, configs, validate_only=request.validate_only
                )
            elif resource.resource_type == BROKER:
                check_broker_resource(ctx, resource.resource_name)
                _alter_broker(ctx, resource, apply, validate_only=request.validate_only)
            else:
                raise KafkaError(
                    f"Unsupported resource type {resource.resource_type}", ErrorCode.invalid_request
                )
        except KafkaError as exc:
            error, message = exc.error_code, exc.message
        responses.append(
            codec.build(
                module.AlterConfigsResourceResponse,
                error_code=error,
                error_message=message,
                resource_type=resource.resource_type,
                resource_name=resource.resource_name,
            )
        )
    return codec.build(
        getattr(module, _RESPONSE[api_key]), throttle_time=ZERO_DURATION, responses=tuple(responses)
    )


_RESPONSE = {33: "AlterConfigsResponse", 44: "IncrementalAlterConfigsResponse"}


def _alter_broker(ctx: RequestContext, resource: Any, apply: Any, *, validate_only: bool) -> None:
    """Change ``/config/brokers/<id or default>``: the stored configs, changed by the
    request, validated as a whole, then written (unless ``validate_only``)."""
    entity = resource.resource_name or DEFAULT_ENTITY
    metadata = ctx.broker.metadata
    current = dict(metadata.entity_configs("brokers").get(entity, {}))
    configs = apply(current, resource.configs, BROKER_KEYS)
    try:
        validate_dynamic_broker_configs(configs)
    except NotDynamicError as exc:
        raise KafkaError(str(exc), ErrorCode.invalid_request) from None
    except ConfigError as exc:
        raise KafkaError(str(exc), ErrorCode.invalid_config) from None
    if not validate_only:
        stored = {name: value for name, value in configs.items() if value is not None}
        metadata.set_entity_configs("brokers", entity, stored)


def _replace(
    current: dict[str, str], changes: Any, keys: dict[str, ConfigKey]
) -> dict[str, str | None]:
    return {change.name: change.value for change in changes}


def _increment(
    current: dict[str, str], changes: Any, keys: dict[str, ConfigKey]
) -> dict[str, str | None]:
    result: dict[str, str | None] = dict(current)
    names = Counter(change.name for change in changes)
    for change in changes:
        name, operation, value = change.name, change.config_operation, change.value
        if names[name] > 1:
            raise KafkaError(f"Duplicate config key {name}", ErrorCode.invalid_request)
        key = keys.get(name)
        if key is None and (keys is TOPIC_KEYS or operation in (APPEND, SUBTRACT)):
            # Kafka keeps unknown (custom) broker configs, but cannot append to them.
            raise KafkaError(f"Unknown topic config name: {name}", ErrorCode.invalid_config)
        if operation == SET:
            result[name] = value
        elif operation == DELETE:
            result.pop(name, None)
        elif operation in (APPEND, SUBTRACT):
            if key is None or key.type is not ConfigType.LIST:
                raise KafkaError(
                    f"Config value append is not allowed for config key: {name}",
                    ErrorCode.invalid_config,
                )
            existing = (result.get(name) or ",".join(key.default or [])).split(",")
            items = [item for item in existing if item]
            given = [item.strip() for item in (value or "").split(",") if item.strip()]
            if operation == APPEND:
                items += [item for item in given if item not in items]
            else:
                items = [item for item in items if item not in given]
            result[name] = ",".join(items)
        else:
            raise KafkaError(f"Unknown config operation {operation}", ErrorCode.invalid_request)
    return result


ALTER_CONFIGS = Handler(
    api_key=33,
    min_version=0,
    max_version=2,
    handle=lambda ctx, request: _respond(ctx, 33, request, _replace),
)
INCREMENTAL_ALTER_CONFIGS = Handler(
    api_key=44,
    min_version=0,
    max_version=1,
    handle=lambda ctx, request: _respond(ctx, 44, request, _increment),
)

HANDLERS = (ALTER_CONFIGS, INCREMENTAL_ALTER_CONFIGS)
