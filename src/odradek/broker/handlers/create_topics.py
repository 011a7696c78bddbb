"""CreateTopics (key 19): validate and create topics through the controller.

Partitions created count against the client's ``controller_mutation_rate``
(``quotas.MutationQuota``: strict from v6, refusing topics with THROTTLING_QUOTA_EXCEEDED
while the quota is in debt, as Kafka does; validate_only counts too, as in Kafka 4).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from odradek.broker.api import Handler, RequestContext
from odradek.broker.handlers.common import ZERO_DURATION
from odradek.broker.quotas import THROTTLING_QUOTA_EXCEEDED_MESSAGE, MutationQuota
from odradek.cluster.controller import check_batch_size
from odradek.config import LogConfig, describe_topic_configs, validate_topic_configs
from odradek.protocol import codec
from odradek.protocol.errors import ErrorCode, KafkaError

API_KEY = 19
STRICT_QUOTA_FROM = 6


def handle(ctx: RequestContext, request: Any) -> Any:
    module = codec.response_module(API_KEY, ctx.api_version)
    counts = Counter(topic.name for topic in request.topics)
    results = []
    try:
        check_batch_size(sum(_partitions_asked(ctx, topic) for topic in request.topics))
    except KafkaError as exc:
        # Kafka refuses the whole request, every topic with the same error.
        failures = [_failure(module, t.name, exc.error_code, exc.message) for t in request.topics]
        return codec.build(
            module.CreateTopicsResponse, throttle_time=ZERO_DURATION, topics=tuple(failures)
        )
    quota = MutationQuota(ctx, STRICT_QUOTA_FROM)
    for topic in request.topics:
        if counts[topic.name] > 1:
            results.append(
                _failure(
                    module,
                    topic.name,
                    ErrorCode.invalid_request,
                    f"Create topics request from client contains duplicate topic {topic.name}",
                )
            )
            continue
        if quota.exceeded():
            results.append(
                _failure(
                    module,
                    topic.name,
                    ErrorCode.throttling_quota_exceeded,
                    THROTTLING_QUOTA_EXCEEDED_MESSAGE,
                )
            )
            continue
        try:
            created = ctx.broker.controller.create_topic(
                topic.name,
                topic.num_partitions,
                topic.replication_factor,
                {a.partition_index: a.broker_ids for a in topic.assignments} or None,
                {c.name: c.value for c in topic.configs},
                validate_only=request.validate_only,
            )
        except KafkaError as exc:
            results.append(_failure(module, topic.name, exc.error_code, exc.message))
            continue
        quota.record(
            len(created.partitions) if created is not None else _partitions_asked(ctx, topic)
        )
        results.append(_success(ctx, module, topic, created))
    return codec.build(
        module.CreateTopicsResponse, throttle_time=quota.finish(), topics=tuple(results)
    )


def _partitions_asked(ctx: RequestContext, topic: Any) -> int:
    if topic.assignments:
        return len(topic.assignments)
    if topic.num_partitions == -1:
        return int(ctx.broker.config.get("num.partitions"))
    return max(int(topic.num_partitions), 0)


def _failure(module: Any, name: str, error: ErrorCode, message: str | None) -> Any:
    return codec.build(
        module.CreatableTopicResult,
        name=name,
        topic_id=None,
        error_code=error,
        error_message=message,
        num_partitions=-1,
        replication_factor=-1,
        configs=(),
    )


def _success(ctx: RequestContext, module: Any, topic: Any, created: Any) -> Any:
    broker = ctx.broker
    configs: tuple[Any, ...] = ()
    if hasattr(module, "CreatableTopicConfigs"):  # v5+ echo the topic's configs
        overrides = {c.name: c.value for c in topic.configs if c.value is not None}
        config = LogConfig.build(broker.config, validate_topic_configs(overrides))
        configs = tuple(
            codec.build(
                module.CreatableTopicConfigs,
                name=resolved.name,
                value=resolved.text,
                read_only=False,
                config_source=int(resolved.source),
                is_sensitive=resolved.key.sensitive,
            )
            for resolved in describe_topic_configs(broker.config, config)
        )
    if created is None:  # validate_only
        partitions = (
            topic.num_partitions
            if topic.num_partitions != -1
            else broker.config.get("num.partitions")
        )
        factor = (
            topic.replication_factor
            if topic.replication_factor != -1
            else broker.config.get("default.replication.factor")
        )
        topic_id = None
    else:
        partitions = len(created.partitions)
        factor = created.replication_factor
        topic_id = created.topic_id
    return codec.build(
        module.CreatableTopicResult,
        name=topic.name,
        topic_id=topic_id,
        error_code=ErrorCode.none,
        error_message=None,
        num_partitions=partitions,
        replication_factor=factor,
        configs=configs,
    )


HANDLER = Handler(api_key=API_KEY, min_version=2, max_version=7, handle=handle)
