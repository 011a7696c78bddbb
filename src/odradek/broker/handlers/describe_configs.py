"""DescribeConfigs (key 32): topic and broker configs with value, source and synonyms.

As Kafka's ``ConfigHelper``: a broker id describes every broker config (its own chain:
per-broker dynamic, cluster-default dynamic, static, default; read-only unless it is a
dynamic config); "" describes the cluster-wide dynamic defaults only.
"""

from __future__ import annotations

from typing import Any

from odradek.broker.api import Handler, RequestContext
from odradek.broker.handlers.common import ZERO_DURATION
from odradek.config import (
    BROKER_KEYS,
    DYNAMIC_BROKER_CONFIGS,
    ConfigSource,
    LogConfig,
    ResolvedValue,
    describe_topic_configs,
    format_value,
    validate_topic_configs,
)
from odradek.protocol import codec
from odradek.protocol.errors import ErrorCode, KafkaError

API_KEY = 32
TOPIC = 2
BROKER = 4
BROKER_LOGGER = 8


def handle(ctx: RequestContext, request: Any) -> Any:
    module = codec.response_module(API_KEY, ctx.api_version)
    include_synonyms = getattr(request, "include_synonyms", False)
    include_docs = getattr(request, "include_documentation", False)
    results = []
    for resource in request.resources:
        error, message, configs = ErrorCode.none, None, ()
        try:
            values = _resolve(ctx, resource.resource_type, resource.resource_name)
            keys = resource.configuration_keys
            if keys:
                wanted = set(keys)
                values = [v for v in values if v.name in wanted]
            broker = resource.resource_type == BROKER
            configs = tuple(
                _entry(module, v, include_synonyms, include_docs, broker) for v in values
            )
        except KafkaError as exc:
            error, message = exc.error_code, exc.message
        results.append(
            codec.build(
                module.DescribeConfigsResult,
                error_code=error,
                error_message=message,
                resource_type=resource.resource_type,
                resource_name=resource.resource_name,
                configs=configs,
            )
        )
    return codec.build(
        module.DescribeConfigsResponse, throttle_time=ZERO_DURATION, results=tuple(results)
    )


def check_broker_resource(ctx: RequestContext, name: str) -> None:
    """A broker resource names this broker's id, or "" for the cluster-wide default."""
    if name not in ("", str(ctx.broker.broker_id)):
        raise KafkaError(
            f"Unexpected broker id, expected {ctx.broker.broker_id} or empty string, but "
            f"received {name}",
            ErrorCode.invalid_request,
        )


def _resolve(ctx: RequestContext, resource_type: int, name: str) -> list[ResolvedValue]:
    broker = ctx.broker
    if resource_type == TOPIC:
        topic = broker.metadata.topic(name)
        if topic is None:
            raise KafkaError(f"Topic {name} does not exist", ErrorCode.unknown_topic_or_partition)
        config = LogConfig.build(broker.config, validate_topic_configs(topic.configs))
        return describe_topic_configs(broker.config, config)
    if resource_type == BROKER:
        check_broker_resource(ctx, name)
        if name:
            return broker.config.describe()
        return [
            _default_only(broker.config.resolve(key))
            for key in sorted(broker.config.dynamic_default)
        ]
    if resource_type == BROKER_LOGGER:
        raise KafkaError("Broker logger configs are not supported", ErrorCode.invalid_request)
    raise KafkaError(f"Unsupported resource type {resource_type}", ErrorCode.invalid_request)


def _default_only(value: ResolvedValue) -> ResolvedValue:
    """A cluster default as Kafka describes it: its chain without per-broker values."""
    chain = tuple(s for s in value.synonyms if s[2] is not ConfigSource.DYNAMIC_BROKER_CONFIG)
    own = next(s[1] for s in chain if s[0] == value.name)
    return ResolvedValue(
        value.name, own, ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG, value.key, chain
    )


def _entry(
    module: Any, value: ResolvedValue, include_synonyms: bool, include_docs: bool, broker: bool
) -> Any:
    sensitive = value.key.sensitive
    # A topic config is always writable; a broker config only if Kafka updates it
    # dynamically (ConfigHelper: read_only = !AllDynamicConfigs.contains(name)).
    read_only = broker and value.name not in DYNAMIC_BROKER_CONFIGS
    synonyms = ()
    if include_synonyms:
        synonyms = tuple(
            codec.build(
                module.DescribeConfigsSynonym,
                name=name,
                value=None if sensitive else _format(name, raw, value),
                source=int(source),
            )
            for name, raw, source in value.synonyms
        )
    return codec.build(
        module.DescribeConfigsResourceResult,
        name=value.name,
        value=None if sensitive else value.text,
        read_only=read_only,
        config_source=int(value.source),
        is_default=value.source is ConfigSource.DEFAULT_CONFIG,
        is_sensitive=sensitive,
        synonyms=synonyms,
        config_type=int(value.key.type),
        documentation=value.key.doc if include_docs else None,
    )


def _format(name: str, raw: Any, value: ResolvedValue) -> str | None:
    key = BROKER_KEYS.get(name, value.key)
    return format_value(key.type, raw)


HANDLER = Handler(api_key=API_KEY, min_version=1, max_version=4, handle=handle)
