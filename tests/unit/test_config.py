from __future__ import annotations

from pathlib import Path

import pytest

from odradek.config import (
    DYNAMIC_BROKER_CONFIGS,
    BrokerConfig,
    ConfigError,
    ConfigSource,
    LogConfig,
    NotDynamicError,
    parse_override,
    read_properties,
    validate_dynamic_broker_configs,
    validate_topic_configs,
)


def test_topic_defaults_follow_broker_synonyms_in_kafka_order() -> None:
    broker = BrokerConfig({"log.retention.hours": "2", "log.retention.minutes": "30"})
    resolved = broker.topic_default("retention.ms")
    assert resolved.value == 30 * 60_000
    assert resolved.source is ConfigSource.STATIC_BROKER_CONFIG
    assert [name for name, _, _ in resolved.synonyms][:2] == [
        "log.retention.minutes",
        "log.retention.hours",
    ]


def test_negative_retention_hours_mean_forever() -> None:
    assert LogConfig.build(BrokerConfig({"log.retention.hours": "-1"})).retention_ms == -1


def test_topic_override_beats_broker_default() -> None:
    broker = BrokerConfig({"log.segment.bytes": "5000"})
    config = LogConfig.build(broker, validate_topic_configs({"segment.bytes": "7000"}))
    assert config.segment_bytes == 7000
    assert config.resolve(broker, "segment.bytes").source is ConfigSource.TOPIC_CONFIG
    assert LogConfig.build(broker).segment_bytes == 5000


def test_kafka_defaults() -> None:
    config = LogConfig.build(BrokerConfig())
    assert config.retention_ms == 7 * 24 * 3600 * 1000
    assert config.segment_bytes == 1 << 30
    assert config.max_message_bytes == 1048588
    assert config.cleanup_policy == ("delete",)


@pytest.mark.parametrize(
    ("configs", "fragment"),
    [
        ({"retention.ms": "soon"}, "Invalid value soon for configuration retention.ms"),
        ({"cleanup.policy": "shred"}, "String must be one of"),
        ({"no.such.key": "1"}, "Unknown topic config name: no.such.key"),
        ({"segment.bytes": "10"}, "Value must be at least 14"),
    ],
)
def test_bad_topic_configs_say_what_is_wrong(configs: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        validate_topic_configs(configs)


def test_properties_file(tmp_path: Path) -> None:
    path = tmp_path / "server.properties"
    path.write_text("# comment\nbroker.id=3\nlog.dirs : /tmp/a,/tmp/b\n\nnum.partitions 4\n")
    props = read_properties(path)
    assert props == {"broker.id": "3", "log.dirs": "/tmp/a,/tmp/b", "num.partitions": "4"}
    config = BrokerConfig(props)
    assert config.broker_id == 3
    assert [str(p) for p in config.log_dirs] == ["/tmp/a", "/tmp/b"]


def test_override_syntax() -> None:
    assert parse_override("a.b=c=d") == ("a.b", "c=d")
    with pytest.raises(ConfigError):
        parse_override("novalue")


def test_bad_broker_value_fails_at_start() -> None:
    with pytest.raises(ConfigError, match=r"num\.partitions"):
        BrokerConfig({"num.partitions": "0"})


D = ConfigSource.DYNAMIC_BROKER_CONFIG
DD = ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG
S = ConfigSource.STATIC_BROKER_CONFIG
DEF = ConfigSource.DEFAULT_CONFIG


def test_dynamic_precedence_per_broker_over_cluster_default_over_static() -> None:
    broker = BrokerConfig({"log.segment.bytes": "5000"})
    assert broker.get("log.segment.bytes") == 5000
    changed = broker.set_dynamic({}, {"log.segment.bytes": "6000"})
    assert changed == {"log.segment.bytes"}
    assert broker.get("log.segment.bytes") == 6000
    broker.set_dynamic({"log.segment.bytes": "7000"}, {"log.segment.bytes": "6000"})
    assert broker.get("log.segment.bytes") == 7000
    assert LogConfig.build(broker).segment_bytes == 7000
    resolved = broker.resolve("log.segment.bytes")
    assert resolved.source is D
    assert resolved.synonyms == (
        ("log.segment.bytes", 7000, D),
        ("log.segment.bytes", 6000, DD),
        ("log.segment.bytes", 5000, S),
        ("log.segment.bytes", 1073741824, DEF),
    )
    # Removing the per-broker value falls back on the cluster default, not the static.
    assert broker.set_dynamic({}, {"log.segment.bytes": "6000"}) == {"log.segment.bytes"}
    assert broker.get("log.segment.bytes") == 6000
    assert broker.set_dynamic({}, {}) == {"log.segment.bytes"}
    assert broker.get("log.segment.bytes") == 5000


def test_topic_chain_lists_each_source_then_each_synonym() -> None:
    """Kafka's order: topic override, then per-broker dynamic synonyms (ms, minutes,
    hours), then cluster-default ones, then static, then defaults."""
    broker = BrokerConfig({"log.retention.hours": "5"})
    broker.set_dynamic({"log.retention.ms": "1000"}, {"log.retention.minutes": "3"})
    config = LogConfig.build(broker, validate_topic_configs({"retention.ms": "9"}))
    resolved = config.resolve(broker, "retention.ms")
    assert resolved.synonyms == (
        ("retention.ms", 9, ConfigSource.TOPIC_CONFIG),
        ("log.retention.ms", 1000, D),
        ("log.retention.minutes", 3, DD),
        ("log.retention.hours", 5, S),
        ("log.retention.hours", 168, DEF),
    )
    assert LogConfig.build(broker).retention_ms == 1000
    broker.set_dynamic({}, {"log.retention.minutes": "3"})
    default = broker.topic_default("retention.ms")
    assert (default.value, default.source) == (180000, DD)


def test_dynamic_values_that_do_not_parse_or_are_static_are_skipped_on_load() -> None:
    broker = BrokerConfig()
    assert broker.set_dynamic({"log.retention.ms": "soon", "broker.id": "9"}, {}) == set()
    assert broker.get("log.retention.ms") is None
    assert broker.broker_id == 1


def test_dynamic_validation_names_the_static_configs_as_kafka() -> None:
    with pytest.raises(
        NotDynamicError,
        match=r"^Cannot update these configs dynamically: "
        r"Set\(broker.id, log.dirs\)$",
    ):
        validate_dynamic_broker_configs({"log.dirs": "/x", "broker.id": "2", "x.custom": "1"})
    with pytest.raises(
        ConfigError, match=r"Invalid value -5 for configuration log\.segment\.bytes"
    ):
        validate_dynamic_broker_configs({"log.segment.bytes": "-5"})
    assert validate_dynamic_broker_configs({"message.max.bytes": "10", "x.custom": "1"}) == {
        "message.max.bytes": 10
    }
    assert "log.retention.ms" in DYNAMIC_BROKER_CONFIGS
    assert "log.cleaner.threads" in DYNAMIC_BROKER_CONFIGS
    assert "num.partitions" not in DYNAMIC_BROKER_CONFIGS


def test_broker_synonyms_report_their_own_value_with_the_chain_head_source() -> None:
    """As Kafka's ConfigHelper: log.retention.hours keeps its own value (168) but takes
    the source of the set log.retention.ms, the head of the chain."""
    broker = BrokerConfig({"log.retention.ms": "1000"})
    resolved = broker.resolve("log.retention.hours")
    assert (resolved.value, resolved.source) == (168, S)
    assert [name for name, _, _ in resolved.synonyms] == ["log.retention.ms", "log.retention.hours"]
