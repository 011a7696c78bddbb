"""Metadata (key 3): brokers, cluster id, controller, and topics with their partitions.

Unknown topics are created on the spot when the request allows it (v4+ flag; always
before v4) and ``auto.create.topics.enable`` is on, with the broker's defaults.

Offline replicas are those of dead brokers and those in a failed log dir of a live
broker, this one (known at once) or any other (as its registration reports them, see
``BrokerRegistration``). A partition whose leader's replica is offline is listed as Kafka
lists it until the controller elects another leader: no leader (LEADER_NOT_AVAILABLE).
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from odradek.broker.api import Handler, RequestContext
from odradek.broker.handlers.common import ZERO_DURATION
from odradek.cluster.brokers import LiveReplicas
from odradek.cluster.metadata import TopicMetadata
from odradek.protocol import codec
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.protocol.types import TopicPartition, is_internal_topic

if TYPE_CHECKING:
    from odradek.broker.server import Broker

API_KEY = 3


def handle(ctx: RequestContext, request: Any) -> Any:
    version = ctx.api_version
    module = codec.response_module(API_KEY, version)
    broker = ctx.broker
    store = broker.metadata
    auto_create = broker.config.get("auto.create.topics.enable") and (
        version < 4 or request.allow_auto_topic_creation
    )
    requested = request.topics
    live = LiveReplicas.of(store.brokers())
    topics: list[Any] = []
    if requested is None or (version == 0 and not requested):
        topics = [_topic(module, t, live, broker) for t in store.topics().values()]
    else:
        for wanted in requested:
            topics.append(_requested_topic(ctx, module, wanted, auto_create, live))
    return codec.build(
        module.MetadataResponse,
        throttle_time=ZERO_DURATION,
        brokers=tuple(
            codec.build(
                module.MetadataResponseBroker,
                node_id=node_id,
                host=endpoint.host,
                port=endpoint.port,
                rack=rack,
            )
            for node_id, endpoint, rack in broker.live_brokers(ctx.listener)
        ),
        cluster_id=broker.cluster_id,
        controller_id=store.controller_id,
        topics=tuple(topics),
    )


def _requested_topic(
    ctx: RequestContext, module: Any, wanted: Any, auto_create: bool, live: LiveReplicas
) -> Any:
    store = ctx.broker.metadata
    name = getattr(wanted, "name", None)
    topic_id = getattr(wanted, "topic_id", None)
    if name is None and ctx.api_version < 12:
        # v10-11 requests may carry a null name, their responses may not: Kafka refuses
        # topic ids before v12 ("Topic name can not be null for version ...").
        return _error(module, ErrorCode.invalid_request, "", topic_id)
    if name is None:
        known = store.topic_by_id(topic_id) if topic_id is not None else None
        if known is None:
            return _error(module, ErrorCode.unknown_topic_id, None, topic_id)
        return _topic(module, known, live, ctx.broker)
    known = store.topic(name)
    if known is not None:
        return _topic(module, known, live, ctx.broker)
    if not auto_create or is_internal_topic(name):
        try:
            ctx.broker.controller.check_topic_name(name)
        except KafkaError as exc:
            return _error(module, exc.error_code, name, None)
        return _error(module, ErrorCode.unknown_topic_or_partition, name, None)
    try:
        created = ctx.broker.controller.create_topic(name)
    except KafkaError as exc:
        return _error(module, exc.error_code, name, None)
    assert created is not None
    return _topic(module, created, live, ctx.broker)


def _error(module: Any, error: ErrorCode, name: str | None, topic_id: uuid.UUID | None) -> Any:
    return codec.build(
        module.MetadataResponseTopic,
        error_code=error,
        name=name,
        topic_id=topic_id or uuid.UUID(int=0),
        is_internal=False,
        partitions=(),
    )


def _topic(module: Any, topic: TopicMetadata, live: LiveReplicas, broker: Broker) -> Any:
    local_id = broker.broker_id
    offline_here = broker.replica_manager.offline_partitions
    partitions = []
    for index, state in enumerate(topic.partitions):
        # Kafka's isReplicaInOfflineDir: this broker knows its own at once.
        serving = live.serving(topic.topic_id, index)
        if offline_here and TopicPartition(topic.name, index) in offline_here:
            serving = serving - {local_id}
        leader = state.leader if state.leader in serving else -1
        partitions.append(
            codec.build(
                module.MetadataResponsePartition,
                # Kafka: LEADER_NOT_AVAILABLE while no replica leads the partition.
                error_code=ErrorCode.none if leader >= 0 else ErrorCode.leader_not_available,
                partition_index=index,
                leader_id=leader,
                leader_epoch=state.leader_epoch,
                replica_nodes=state.replicas,
                isr_nodes=state.isr,
                offline_replicas=tuple(r for r in state.replicas if r not in serving),
            )
        )
    return codec.build(
        module.MetadataResponseTopic,
        error_code=ErrorCode.none,
        name=topic.name,
        topic_id=topic.topic_id,
        is_internal=is_internal_topic(topic.name),
        partitions=tuple(partitions),
    )


HANDLER = Handler(api_key=API_KEY, min_version=0, max_version=12, handle=handle)
