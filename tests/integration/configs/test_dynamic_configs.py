"""Configs changed at run time take effect on a running broker (issue #8): topic and
dynamic broker (per-broker and cluster-default) configs through confluent-kafka's
AdminClient, with Kafka's errors, sources and synonyms, kept across a restart."""

from __future__ import annotations

import socket
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
from kafka.admin import ConfigResource as KpResource
from kafka.admin import KafkaAdminClient

from odradek.cli._wire import BrokerConnection
from odradek.protocol import codec
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

    client = admin(broker.bootstrap)
    # The cleaner's own configs restart its workers (Kafka's LogCleaner.reconfigure);
    # the restarted cleaner is the one that compacts below.
    alter(client, ResourceType.BROKER, "1", ("log.cleaner.threads", "2"))
    wait_for(lambda: "log cleaner restarted with 2 threads" in broker.log(), 10, "cleaner restart")
    alter(client, ResourceType.TOPIC, "becomes-compacted", ("cleanup.policy", "compact"))

    def compacted() -> bool:
        return len(read_from_beginning(broker.bootstrap, "becomes-compacted")) < 1000

    wait_for(compacted, 20, "the log to be compacted")
    records = read_from_beginning(broker.bootstrap, "becomes-compacted")
    last = {key: value for _, key, value in records}
    assert last == {b"key-%02d" % k: b"value-%d-19" % k for k in range(50)}


def test_kafka_python_alter_configs_replaces_the_brokers_dynamic_configs(
    broker_factory: Callable[..., BrokerProcess],
) -> None:
    """AlterConfigs (33), kafka-python's non-incremental path: the entity's dynamic
    configs are replaced by those given; DescribeConfigs v3+ with synonyms and types."""
    broker = broker_factory({"log.retention.hours": "100"})
    client = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        node = "1"
        result = client.alter_configs(
            [KpResource("BROKER", node, configs={"log.retention.ms": "1000"})], incremental=False
        )
        assert result == {"broker": {node: "OK"}}
        described = client.describe_configs(
            [KpResource("BROKER", node, configs=["log.retention.ms"])], include_synonyms=True
        )["broker"][node]["log.retention.ms"]
        assert described["value"] == "1000"
        assert described["config_source"] == "DYNAMIC_BROKER_CONFIG"
        assert described["config_type"] == "LONG"
        assert not described["read_only"]
        assert [(s["name"], s["value"], s["source"]) for s in described["synonyms"]] == [
            ("log.retention.ms", "1000", "DYNAMIC_BROKER_CONFIG"),
            ("log.retention.hours", "100", "STATIC_BROKER_CONFIG"),
            ("log.retention.hours", "168", "DEFAULT_CONFIG"),
        ]
        refused = client.alter_configs(
            [KpResource("BROKER", node, configs={"log.dirs": "/elsewhere"})],
            incremental=False,
            raise_on_unknown=False,
        )
        assert refused == {
            "broker": {
                node: "[Error 42] InvalidRequestError: Cannot update these configs "
                "dynamically: Set(log.dirs)"
            }
        }
        # AlterConfigs replaces the entity's configs; kafka-python sends the ones already
        # set along (read back with DescribeConfigs), so both stay.
        client.alter_configs(
            [KpResource("BROKER", node, configs={"log.segment.bytes": "5000000"})],
            incremental=False,
            raise_on_unknown=False,
        )
        after = client.describe_configs(
            [KpResource("BROKER", node, configs=["log.retention.ms", "log.segment.bytes"])],
            config_filter="all",
        )["broker"][node]
        assert after["log.retention.ms"]["config_source"] == "DYNAMIC_BROKER_CONFIG"
        assert after["log.segment.bytes"]["config_source"] == "DYNAMIC_BROKER_CONFIG"
    finally:
        client.close()


def _legacy_alter(bootstrap: str, name: str, configs: dict[str, str]) -> tuple[int, str | None]:
    module = codec.request_module(33, 1)
    resource = codec.build(
        module.AlterConfigsResource,
        resource_type=4,
        resource_name=name,
        configs=tuple(
            codec.build(module.AlterableConfig, name=k, value=v) for k, v in configs.items()
        ),
    )
    request = codec.build(module.AlterConfigsRequest, resources=(resource,), validate_only=False)
    host, _, port = bootstrap.rpartition(":")
    with BrokerConnection(host, int(port)) as connection:
        (result,) = connection.send(request).responses
    return int(result.error_code), result.error_message


def test_alter_configs_replaces_the_entity_incremental_changes_it(
    broker_factory: Callable[..., BrokerProcess],
) -> None:
    broker = broker_factory()
    client = admin(broker.bootstrap)
    assert _legacy_alter(broker.bootstrap, "", {"log.retention.ms": "1000"}) == (0, None)
    assert _legacy_alter(broker.bootstrap, "", {"log.segment.bytes": "5000000"}) == (0, None)
    configs = describe(client, ResourceType.BROKER, "1")
    assert configs["log.retention.ms"].source == ConfigSource.DEFAULT_CONFIG.value
    assert configs["log.segment.bytes"].source == ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value
    alter(client, ResourceType.BROKER, "1", ("log.retention.ms", "2000"))
    alter(client, ResourceType.BROKER, "1", ("log.roll.ms", "3000"))
    configs = describe(client, ResourceType.BROKER, "1")
    assert (configs["log.retention.ms"].value, configs["log.roll.ms"].value) == ("2000", "3000")
    assert _legacy_alter(broker.bootstrap, "1", {"auto.create.topics.enable": "false"}) == (
        42,
        "Cannot update these configs dynamically: Set(auto.create.topics.enable)",
    )


def _refused(bootstrap: str) -> bool:
    """Whether the broker closes a new connection at once (a limit refused it)."""
    host, _, port = bootstrap.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.settimeout(1.0)
        try:
            return sock.recv(1) == b""
        except TimeoutError:
            return False


def test_connection_limit_changes_for_new_connections_and_after_restart(
    broker_factory: Callable[..., BrokerProcess],
) -> None:
    broker = broker_factory()
    alter(admin(broker.bootstrap), ResourceType.BROKER, "1", ("max.connections.per.ip", "2"))
    host, _, port = broker.bootstrap.rpartition(":")
    for _attempt in range(2):
        held = [socket.create_connection((host, int(port)), timeout=5) for _ in range(2)]
        try:
            assert _refused(broker.bootstrap)
        finally:
            for sock in held:
                sock.close()
        time.sleep(0.3)  # the broker sees the closes
        assert not _refused(broker.bootstrap)
        broker.restart()  # the stored limit applies again from the start
