"""Configs changed at run time take effect on a running broker (issue #8): topic and
dynamic broker (per-broker and cluster-default) configs through confluent-kafka's
AdminClient, with Kafka's errors, sources and synonyms, kept across a restart."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    ResourceType,
)

from tests.integration.cli.runner import ok, run
from tests.integration.test_compaction import produce, read_from_beginning, wait_for
from tests.support.broker import BrokerProcess
from tests.support.clients import admin, create_topic, produce_acked

FAST_RETENTION = {"log.retention.check.interval.ms": "200", "log.cleaner.backoff.ms": "100"}
SMALL_SEGMENTS = {"segment.bytes": "1024"}
SMALL_BATCHES = {"linger.ms": 0, "batch.num.messages": 1}


def log_start(bootstrap: str, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "dyn-configs"})
    try:
        low, _high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        return int(low)
    finally:
        consumer.close()


def alter(
    client: AdminClient, kind: ResourceType, name: str, *entries: tuple[str, str | None]
) -> None:
    """One IncrementalAlterConfigs: SET for a value, DELETE for None."""
    resource = ConfigResource(
        kind,
        name,
        incremental_configs=[
            ConfigEntry(
                key,
                value,
                incremental_operation=AlterConfigOpType.SET
                if value is not None
                else AlterConfigOpType.DELETE,
            )
            for key, value in entries
        ],
    )
    client.incremental_alter_configs([resource])[resource].result(timeout=10)


def alter_cluster_default(bootstrap: str, key: str, value: str) -> None:
    """The cluster-wide default (resource name ""), which confluent-kafka and
    kafka-python refuse to send: through ``odradek configs``."""
    ok(
        run(
            "configs",
            "alter",
            "--entity-type",
            "brokers",
            "--entity-default",
            "--add-config",
            f"{key}={value}",
            "--bootstrap-server",
            bootstrap,
        )
    )


def describe(client: AdminClient, kind: ResourceType, name: str) -> dict[str, Any]:
    resource = ConfigResource(kind, name)
    result: dict[str, Any] = client.describe_configs([resource])[resource].result(timeout=10)
    return result


def test_lowering_topic_retention_deletes_old_segments(
    broker_factory: Callable[..., BrokerProcess],
) -> None:
    broker = broker_factory(FAST_RETENTION)
    create_topic(broker.bootstrap, "shrinking", config=SMALL_SEGMENTS)
    produce_acked(broker.bootstrap, "shrinking", 100, **SMALL_BATCHES)
    time.sleep(0.6)  # three retention checks under the default of 7 days: nothing goes
    assert log_start(broker.bootstrap, "shrinking") == 0

    alter(admin(broker.bootstrap), ResourceType.TOPIC, "shrinking", ("retention.ms", "1"))
    wait_for(lambda: log_start(broker.bootstrap, "shrinking") > 0, 10, "old segments deleted")


def test_dynamic_broker_retention_default_reaches_logs_without_override(
    broker_factory: Callable[..., BrokerProcess],
) -> None:
    broker = broker_factory(FAST_RETENTION)
    create_topic(broker.bootstrap, "follows", config=SMALL_SEGMENTS)
    create_topic(
        broker.bootstrap, "own-retention", config={**SMALL_SEGMENTS, "retention.ms": "3600000"}
    )
    for topic in ("follows", "own-retention"):
        produce_acked(broker.bootstrap, topic, 100, **SMALL_BATCHES)
    client = admin(broker.bootstrap)

    alter(client, ResourceType.BROKER, "1", ("log.retention.ms", "1"))
    wait_for(lambda: log_start(broker.bootstrap, "follows") > 0, 10, "old segments deleted")
    assert log_start(broker.bootstrap, "own-retention") == 0  # the topic's override wins

    retention = describe(client, ResourceType.TOPIC, "follows")["retention.ms"]
    assert retention.value == "1"
    assert retention.source == ConfigSource.DYNAMIC_BROKER_CONFIG.value
    assert [(s.name, s.source) for s in retention.synonyms.values()][:2] == [
        ("log.retention.ms", ConfigSource.DYNAMIC_BROKER_CONFIG.value),
        ("log.retention.hours", ConfigSource.DEFAULT_CONFIG.value),
    ]


def test_cluster_default_precedence_and_restart(
    broker_factory: Callable[..., BrokerProcess],
) -> None:
    broker = broker_factory({"log.segment.bytes": "2000000"})
    client = admin(broker.bootstrap)
    alter_cluster_default(broker.bootstrap, "log.segment.bytes", "3000000")
    configs = describe(client, ResourceType.BROKER, "1")
    entry = configs["log.segment.bytes"]
    assert (entry.value, entry.source) == (
        "3000000",
        ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value,
    )
    # librdkafka keys synonyms by name: the last of each name is what it keeps.
    assert {s.name: (s.value, s.source) for s in entry.synonyms.values()} == {
        "log.segment.bytes": ("1073741824", ConfigSource.DEFAULT_CONFIG.value)
    }
    assert not entry.is_read_only
    assert configs["log.dirs"].is_read_only

    alter(client, ResourceType.BROKER, "1", ("log.segment.bytes", "4000000"))
    broker.restart()
    client = admin(broker.bootstrap)
    entry = describe(client, ResourceType.BROKER, "1")["log.segment.bytes"]
    assert (entry.value, entry.source) == ("4000000", ConfigSource.DYNAMIC_BROKER_CONFIG.value)
    defaults = ok(
        run(
            "configs",
            "describe",
            "--entity-type",
            "brokers",
            "--entity-default",
            "--bootstrap-server",
            broker.bootstrap,
        )
    )
    assert defaults.splitlines() == [
        "Default configs for brokers in the cluster are:",
        "  log.segment.bytes=3000000 sensitive=false synonyms={"
        "DYNAMIC_DEFAULT_BROKER_CONFIG:log.segment.bytes=3000000, "
        "STATIC_BROKER_CONFIG:log.segment.bytes=2000000, "
        "DEFAULT_CONFIG:log.segment.bytes=1073741824}",
    ]
    create_topic(broker.bootstrap, "after-restart")
    topic_entry = describe(client, ResourceType.TOPIC, "after-restart")["segment.bytes"]
    assert (topic_entry.value, topic_entry.source) == (
        "4000000",
        ConfigSource.DYNAMIC_BROKER_CONFIG.value,
    )

    alter(client, ResourceType.BROKER, "1", ("log.segment.bytes", None))
    entry = describe(client, ResourceType.BROKER, "1")["log.segment.bytes"]
    assert (entry.value, entry.source) == (
        "3000000",
        ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value,
    )


def test_broker_config_errors_and_validate_only(
    broker_factory: Callable[..., BrokerProcess],
) -> None:
    broker = broker_factory()
    client = admin(broker.bootstrap)
    with pytest.raises(KafkaException) as refused:
        alter(client, ResourceType.BROKER, "1", ("log.dirs", "/tmp/elsewhere"))
    error = refused.value.args[0]
    assert error.name() == "INVALID_REQUEST"
    assert "Cannot update these configs dynamically: Set(log.dirs)" in error.str()

    with pytest.raises(KafkaException) as invalid:
        alter(client, ResourceType.BROKER, "1", ("log.retention.ms", "soon"))
    assert invalid.value.args[0].name() == "INVALID_CONFIG"

    resource = ConfigResource(
        ResourceType.BROKER,
        "1",
        incremental_configs=[
            ConfigEntry("log.retention.ms", "5", incremental_operation=AlterConfigOpType.SET)
        ],
    )
    client.incremental_alter_configs([resource], validate_only=True)[resource].result(10)
    entry = describe(client, ResourceType.BROKER, "1")["log.retention.ms"]
    assert entry.source != ConfigSource.DYNAMIC_BROKER_CONFIG.value


def test_cleanup_policy_changed_to_compact_starts_compaction(
    broker_factory: Callable[..., BrokerProcess],
) -> None:
    broker = broker_factory({"log.cleaner.backoff.ms": "100"})
    config = {"segment.bytes": "16384", "min.cleanable.dirty.ratio": "0.01"}
    create_topic(broker.bootstrap, "becomes-compacted", config=config)
    pairs = [(b"key-%02d" % k, b"value-%d-%d" % (k, n)) for n in range(20) for k in range(50)]
    produce(broker.bootstrap, "becomes-compacted", pairs)
    time.sleep(0.5)  # a cleaner pass over a delete-only log: nothing changes
    assert len(read_from_beginning(broker.bootstrap, "becomes-compacted")) == 1000

    alter(
        admin(broker.bootstrap),
        ResourceType.TOPIC,
        "becomes-compacted",
        ("cleanup.policy", "compact"),
    )

    def compacted() -> bool:
        return len(read_from_beginning(broker.bootstrap, "becomes-compacted")) < 1000

    wait_for(compacted, 20, "the log to be compacted")
    records = read_from_beginning(broker.bootstrap, "becomes-compacted")
    last = {key: value for _, key, value in records}
    assert last == {b"key-%02d" % k: b"value-%d-19" % k for k in range(50)}
