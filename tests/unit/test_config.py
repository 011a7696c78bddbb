from __future__ import annotations

from pathlib import Path

import pytest

from odradek.config import (
    BrokerConfig,
    ConfigError,
    ConfigSource,
    LogConfig,
    parse_override,
    read_properties,
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
