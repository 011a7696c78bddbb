"""Broker and topic configuration with Kafka's key names, types and defaults.

A topic config falls back on a broker config (its synonym: ``retention.ms`` on
``log.retention.ms``, then ``log.retention.minutes``, then ``log.retention.hours``), which
falls back on Kafka's default. DescribeConfigs reports that chain, so every key here
records its synonyms in Kafka's order of precedence.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

LONG_MAX: Final = 2**63 - 1
INT_MAX: Final = 2**31 - 1


class ConfigError(ValueError):
    """A config value or key that Kafka would reject; the message says which and why."""


class ConfigType(enum.IntEnum):
    """Kafka's ``ConfigDef.Type``, numbered as DescribeConfigs v3+ reports them."""

    BOOLEAN = 1
    STRING = 2
    INT = 3
    SHORT = 4
    LONG = 5
    DOUBLE = 6
    LIST = 7
    CLASS = 8
    PASSWORD = 9


class ConfigSource(enum.IntEnum):
    """Where a value comes from, numbered as DescribeConfigs reports it."""

    UNKNOWN = 0
    TOPIC_CONFIG = 1
    DYNAMIC_BROKER_CONFIG = 2
    DYNAMIC_DEFAULT_BROKER_CONFIG = 3
    STATIC_BROKER_CONFIG = 4
    DEFAULT_CONFIG = 5


Validator = Callable[[Any], str | None]
"""Returns None when the value is fine, else what is wrong with it."""


def at_least(minimum: float) -> Validator:
    def check(value: Any) -> str | None:
        return None if value is None or value >= minimum else f"Value must be at least {minimum}"

    return check


def between(low: float, high: float) -> Validator:
    def check(value: Any) -> str | None:
        if value is None or low <= value <= high:
            return None
        return f"Value must be between {low} and {high}"

    return check


def one_of(*choices: str) -> Validator:
    def check(value: Any) -> str | None:
        items = value if isinstance(value, list) else [value]
        bad = [item for item in items if item not in choices]
        return f"String must be one of: {', '.join(choices)}" if bad else None

    return check


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfigKey:
    name: str
    type: ConfigType
    default: Any
    doc: str = ""
    validator: Validator | None = None
    synonyms: tuple[str, ...] = ()
    """Broker keys a topic key falls back on, most specific first."""
    sensitive: bool = False
    read_only: bool = False
    """Broker configs that only a restart changes (all static ones, for now)."""

    def parse(self, raw: str | None) -> Any:
        """Parse ``raw`` (a string as found in a properties file) and validate it."""
        value = parse_typed(self.name, self.type, raw)
        if self.validator is not None:
            problem = self.validator(value)
            if problem is not None:
                raise ConfigError(f"Invalid value {raw} for configuration {self.name}: {problem}")
        return value


def parse_typed(name: str, kind: ConfigType, raw: str | None) -> Any:
    if raw is None:
        return None
    text = raw.strip()
    try:
        match kind:
            case ConfigType.BOOLEAN:
                lowered = text.lower()
                if lowered not in ("true", "false"):
                    raise ValueError("Expected value to be either true or false")
                return lowered == "true"
            case ConfigType.INT | ConfigType.SHORT | ConfigType.LONG:
                value = int(text)
                limit = {ConfigType.INT: 2**31, ConfigType.SHORT: 2**15, ConfigType.LONG: 2**63}
                if not -limit[kind] <= value < limit[kind]:
                    raise ValueError(f"Not a number of type {kind.name}")
                return value
            case ConfigType.DOUBLE:
                return float(text)
            case ConfigType.LIST:
                return [item.strip() for item in text.split(",") if item.strip()]
            case _:
                return text
    except ValueError as exc:
        message = str(exc)
        if message.startswith("invalid literal") or message.startswith("could not convert"):
            message = f"Not a number of type {kind.name}"
        raise ConfigError(f"Invalid value {raw} for configuration {name}: {message}") from None


def format_value(kind: ConfigType, value: Any) -> str | None:
    """A value as Kafka prints it in DescribeConfigs."""
    if value is None:
        return None
    if kind is ConfigType.BOOLEAN:
        return "true" if value else "false"
    if kind is ConfigType.LIST:
        return ",".join(str(item) for item in value)
    if kind is ConfigType.DOUBLE:
        return repr(float(value))
    return str(value)


def _key(name: str, kind: ConfigType, default: Any, doc: str = "", **extra: Any) -> ConfigKey:
    return ConfigKey(name=name, type=kind, default=default, doc=doc, **extra)


BOOL, STR, INT, SHORT, LONG, DOUBLE, LIST = (
    ConfigType.BOOLEAN,
    ConfigType.STRING,
    ConfigType.INT,
    ConfigType.SHORT,
    ConfigType.LONG,
    ConfigType.DOUBLE,
    ConfigType.LIST,
)
TIMESTAMP_TYPES = ("CreateTime", "LogAppendTime")
COMPRESSION_TYPES = ("uncompressed", "zstd", "lz4", "snappy", "gzip", "producer")
CLEANUP_POLICIES = ("compact", "delete")

BROKER_KEYS: Final[dict[str, ConfigKey]] = {
    key.name: key
    for key in [
        _key(
            "broker.id",
            INT,
            1,
            "The broker's id in the cluster.",
            validator=at_least(0),
            read_only=True,
        ),
        _key(
            "node.id", INT, None, "Synonym of broker.id kept for KRaft-style files.", read_only=True
        ),
        _key("log.dirs", LIST, None, "Directories holding the partition logs.", read_only=True),
        _key(
            "log.dir",
            STR,
            "./odradek-data",
            "Log directory when log.dirs is not set.",
            read_only=True,
        ),
        _key(
            "listeners",
            LIST,
            ["PLAINTEXT://127.0.0.1:9092"],
            "Addresses to listen on.",
            read_only=True,
        ),
        _key("advertised.listeners", LIST, None, "Addresses given to clients.", read_only=True),
        _key(
            "cluster.id",
            STR,
            None,
            "Cluster id; generated and kept in meta.properties.",
            read_only=True,
        ),
        _key(
            "num.partitions",
            INT,
            1,
            "Default partition count of new topics.",
            validator=at_least(1),
        ),
        _key("default.replication.factor", INT, 1, "Default replication factor of new topics."),
        _key(
            "zookeeper.connect",
            STR,
            None,
            "ZooKeeper host:port[,host:port...][/chroot]; unset runs a single node.",
            read_only=True,
        ),
        _key(
            "zookeeper.session.timeout.ms",
            INT,
            18000,
            "ZooKeeper session timeout: how long a silent broker keeps its registration.",
            validator=at_least(1000),
            read_only=True,
        ),
        _key(
            "zookeeper.connection.timeout.ms",
            INT,
            None,
            "How long one attempt to reach ZooKeeper may take (default: the session timeout).",
            read_only=True,
        ),
        _key(
            "broker.rack",
            STR,
            None,
            "The broker's rack, for rack-aware replica placement.",
            read_only=True,
        ),
        _key(
            "replica.lag.time.max.ms",
            LONG,
            30000,
            "A follower not caught up for this long leaves the ISR.",
            validator=at_least(1),
        ),
        _key(
            "replica.fetch.max.bytes",
            INT,
            1048576,
            "Bytes a follower asks for per partition.",
            validator=at_least(0),
        ),
        _key(
            "replica.fetch.response.max.bytes",
            INT,
            10485760,
            "Bytes a follower asks for per fetch.",
            validator=at_least(0),
        ),
        _key(
            "replica.fetch.wait.max.ms",
            INT,
            500,
            "Longest a follower's fetch waits at the leader.",
            validator=at_least(0),
        ),
        _key(
            "replica.fetch.backoff.ms",
            INT,
            1000,
            "Pause after a follower's fetch fails.",
            validator=at_least(0),
        ),
        _key(
            "replica.socket.timeout.ms",
            INT,
            30000,
            "Socket timeout of a follower's requests.",
            validator=at_least(1),
        ),
        _key(
            "auto.leader.rebalance.enable",
            BOOL,
            True,
            "Move leadership back to preferred replicas when the imbalance is too high.",
        ),
        _key(
            "leader.imbalance.check.interval.seconds",
            LONG,
            300,
            "How often the controller checks leader imbalance.",
            validator=at_least(1),
        ),
        _key(
            "leader.imbalance.per.broker.percentage",
            INT,
            10,
            "Leader imbalance per broker, in percent, that triggers a rebalance.",
            validator=at_least(0),
        ),
        _key(
            "controlled.shutdown.enable",
            BOOL,
            True,
            "Move leadership away before shutting down.",
        ),
        _key("auto.create.topics.enable", BOOL, True, "Create unknown topics on Metadata."),
        _key("delete.topic.enable", BOOL, True, "Allow DeleteTopics."),
        _key(
            "message.max.bytes",
            INT,
            1048588,
            "Largest record batch size allowed.",
            validator=at_least(0),
        ),
        _key(
            "log.segment.bytes",
            INT,
            1073741824,
            "Maximum size of a log segment.",
            validator=at_least(14),
        ),
        _key("log.roll.ms", LONG, None, "Time after which a segment is rolled."),
        _key(
            "log.roll.hours",
            INT,
            168,
            "Time after which a segment is rolled, in hours.",
            validator=at_least(1),
        ),
        _key("log.roll.jitter.ms", LONG, None, "Jitter subtracted from the roll time."),
        _key("log.roll.jitter.hours", INT, 0, "Jitter subtracted from the roll time, in hours."),
        _key("log.retention.ms", LONG, None, "Time to keep a segment; -1 keeps forever."),
        _key("log.retention.minutes", INT, None, "Time to keep a segment, in minutes."),
        _key("log.retention.hours", INT, 168, "Time to keep a segment, in hours."),
        _key("log.retention.bytes", LONG, -1, "Largest log size before deleting segments."),
        _key(
            "log.retention.check.interval.ms",
            LONG,
            300000,
            "How often retention runs.",
            validator=at_least(1),
        ),
        _key("log.segment.delete.delay.ms", LONG, 60000, "Delay before deleting a segment file."),
        _key(
            "log.flush.interval.messages",
            LONG,
            LONG_MAX,
            "Messages between fsyncs.",
            validator=at_least(1),
        ),
        _key("log.flush.interval.ms", LONG, None, "Time between fsyncs of a log."),
        _key("log.flush.scheduler.interval.ms", LONG, LONG_MAX, "How often flush.ms is checked."),
        _key(
            "log.flush.offset.checkpoint.interval.ms",
            INT,
            60000,
            "How often the recovery point checkpoint is written.",
            validator=at_least(0),
        ),
        _key(
            "log.flush.start.offset.checkpoint.interval.ms",
            INT,
            60000,
            "How often the log start offset checkpoint is written.",
            validator=at_least(0),
        ),
        _key(
            "replica.high.watermark.checkpoint.interval.ms",
            LONG,
            5000,
            "How often the high watermark checkpoint is written.",
        ),
        _key(
            "log.index.size.max.bytes",
            INT,
            10485760,
            "Maximum size of an offset index.",
            validator=at_least(4),
        ),
        _key(
            "log.index.interval.bytes",
            INT,
            4096,
            "Bytes between offset index entries.",
            validator=at_least(0),
        ),
        _key("log.preallocate", BOOL, False, "Preallocate segment files."),
        _key(
            "log.cleanup.policy",
            LIST,
            ["delete"],
            "Default cleanup policy.",
            validator=one_of(*CLEANUP_POLICIES),
        ),
        _key("log.cleaner.delete.retention.ms", LONG, 86400000, "How long tombstones are kept."),
        _key("log.cleaner.min.compaction.lag.ms", LONG, 0, "Minimum age before compaction."),
        _key("log.cleaner.max.compaction.lag.ms", LONG, LONG_MAX, "Maximum age before compaction."),
        _key(
            "log.cleaner.min.cleanable.ratio",
            DOUBLE,
            0.5,
            "Dirty ratio that triggers cleaning.",
            validator=between(0, 1),
        ),
        _key(
            "log.message.timestamp.type",
            STR,
            "CreateTime",
            "Timestamp type of new records.",
            validator=one_of(*TIMESTAMP_TYPES),
        ),
        _key(
            "log.message.timestamp.before.max.ms",
            LONG,
            LONG_MAX,
            "How far before the broker's clock a record timestamp may be.",
            validator=at_least(0),
        ),
        _key(
            "log.message.timestamp.after.max.ms",
            LONG,
            3600000,
            "How far after the broker's clock a record timestamp may be.",
            validator=at_least(0),
        ),
        _key(
            "compression.type",
            STR,
            "producer",
            "Compression the broker stores.",
            validator=one_of(*COMPRESSION_TYPES),
        ),
        _key(
            "min.insync.replicas",
            INT,
            1,
            "Replicas that must acknowledge acks=all.",
            validator=at_least(1),
        ),
        _key("unclean.leader.election.enable", BOOL, False, "Elect leaders outside the ISR."),
        _key(
            "socket.request.max.bytes",
            INT,
            104857600,
            "Largest request frame accepted.",
            validator=at_least(1),
        ),
        _key(
            "max.connections",
            INT,
            INT_MAX,
            "Maximum open client connections.",
            validator=at_least(0),
        ),
        _key(
            "max.connections.per.ip",
            INT,
            INT_MAX,
            "Maximum connections from one address.",
            validator=at_least(0),
        ),
        _key("connections.max.idle.ms", LONG, 600000, "Idle connections are closed after this."),
        _key(
            "quota.window.num",
            INT,
            11,
            "Samples kept by client quota rate meters.",
            validator=at_least(1),
        ),
        _key(
            "quota.window.size.seconds",
            INT,
            1,
            "Length of one client quota sample.",
            validator=at_least(1),
        ),
        _key(
            "controller.quota.window.num",
            INT,
            11,
            "Samples (burst windows) of controller mutation quotas.",
            validator=at_least(1),
        ),
        _key(
            "controller.quota.window.size.seconds",
            INT,
            1,
            "Length of one controller mutation quota sample.",
            validator=at_least(1),
        ),
        _key(
            "offsets.topic.num.partitions",
            INT,
            50,
            "Partitions of __consumer_offsets.",
            validator=at_least(1),
        ),
        _key("offsets.topic.replication.factor", INT, 3, "Replication of __consumer_offsets."),
        _key(
            "offsets.topic.segment.bytes",
            INT,
            104857600,
            "Segment size of __consumer_offsets (small, so it is compacted soon).",
            validator=at_least(1),
        ),
        _key(
            "group.min.session.timeout.ms",
            INT,
            6000,
            "Shortest session timeout a member may ask for.",
        ),
        _key(
            "group.max.session.timeout.ms",
            INT,
            1800000,
            "Longest session timeout a member may ask for.",
        ),
        _key(
            "group.max.size", INT, INT_MAX, "Most members a group may have.", validator=at_least(1)
        ),
        _key(
            "offset.metadata.max.bytes",
            INT,
            4096,
            "Largest metadata string of a committed offset.",
        ),
        _key(
            "offsets.retention.minutes",
            INT,
            10080,
            "How long the offsets of an empty group are kept.",
            validator=at_least(1),
        ),
        _key(
            "offsets.retention.check.interval.ms",
            LONG,
            600000,
            "How often expired offsets are removed.",
            validator=at_least(1),
        ),
        _key("group.initial.rebalance.delay.ms", INT, 3000, "Delay of a new group's first round."),
        _key("producer.id.expiration.ms", INT, 86400000, "Idle producer state is dropped after."),
        _key(
            "transactional.id.expiration.ms",
            INT,
            604800000,
            "Idle transactional ids expire.",
            validator=at_least(1),
        ),
        _key(
            "transaction.state.log.num.partitions",
            INT,
            50,
            "Partitions of __transaction_state.",
            validator=at_least(1),
        ),
        _key(
            "transaction.state.log.replication.factor",
            SHORT,
            3,
            "Replication of __transaction_state.",
            validator=at_least(1),
        ),
        _key(
            "transaction.state.log.min.isr",
            INT,
            2,
            "min.insync.replicas of __transaction_state.",
            validator=at_least(1),
        ),
        _key(
            "transaction.state.log.segment.bytes",
            INT,
            104857600,
            "Segment size of __transaction_state.",
            validator=at_least(1),
        ),
        _key(
            "transaction.state.log.load.buffer.size",
            INT,
            5242880,
            "Bytes read at a time when loading __transaction_state.",
            validator=at_least(1),
        ),
        _key(
            "request.timeout.ms",
            INT,
            30000,
            "How long the broker waits for its own requests to other brokers.",
            validator=at_least(0),
        ),
        _key(
            "transaction.max.timeout.ms",
            INT,
            900000,
            "Longest transaction timeout a producer may ask for.",
            validator=at_least(1),
        ),
        _key(
            "transaction.abort.timed.out.transaction.cleanup.interval.ms",
            INT,
            10000,
            "How often transactions past their timeout are aborted.",
            validator=at_least(1),
        ),
        _key(
            "transaction.remove.expired.transaction.cleanup.interval.ms",
            INT,
            3600000,
            "How often expired transactional ids are removed.",
            validator=at_least(1),
        ),
        _key(
            "transaction.partition.verification.enable",
            BOOL,
            True,
            "Before a producer's first transactional write to a partition, its leader asks "
            "the transaction coordinator whether the partition is in the transaction "
            "(KIP-890). Read at start.",
        ),
        _key("num.recovery.threads.per.data.dir", INT, 2, "Threads recovering logs at start."),
        _key("log.cleaner.enable", BOOL, True, "Run the log cleaner."),
        _key(
            "log.cleaner.threads",
            INT,
            1,
            "Cleanings run at once. Read at start.",
            validator=at_least(0),
        ),
        _key(
            "log.cleaner.dedupe.buffer.size",
            LONG,
            134217728,
            "Memory for the cleaners' offset maps, shared by the threads. Read at start.",
            validator=at_least(1024 * 1024),
        ),
        _key(
            "log.cleaner.io.buffer.load.factor",
            DOUBLE,
            0.9,
            "How full an offset map may get. Read at start.",
            validator=between(0.01, 1),
        ),
        _key(
            "log.cleaner.io.buffer.size",
            INT,
            524288,
            "Read and write buffer of a cleaner (accepted for compatibility).",
            validator=at_least(0),
        ),
        _key(
            "log.cleaner.io.max.bytes.per.second",
            DOUBLE,
            1.7976931348623157e308,
            "Bytes per second a cleaner may read. Read at start.",
            validator=at_least(1),
        ),
        _key(
            "replica.alter.log.dirs.io.max.bytes.per.second",
            LONG,
            9223372036854775807,
            "Bytes per second copied by replica moves between log dirs. Read at start.",
            validator=at_least(1),
        ),
        _key(
            "log.cleaner.backoff.ms",
            LONG,
            15000,
            "Sleep of a cleaner with nothing to clean.",
            validator=at_least(0),
        ),
    ]
}

TOPIC_KEYS: Final[dict[str, ConfigKey]] = {
    key.name: key
    for key in [
        _key(
            "cleanup.policy",
            LIST,
            ["delete"],
            "delete and/or compact old segments.",
            validator=one_of(*CLEANUP_POLICIES),
            synonyms=("log.cleanup.policy",),
        ),
        _key(
            "compression.type",
            STR,
            "producer",
            "Compression the broker stores.",
            validator=one_of(*COMPRESSION_TYPES),
            synonyms=("compression.type",),
        ),
        _key(
            "delete.retention.ms",
            LONG,
            86400000,
            "How long tombstones are kept.",
            validator=at_least(0),
            synonyms=("log.cleaner.delete.retention.ms",),
        ),
        _key(
            "file.delete.delay.ms",
            LONG,
            60000,
            "Delay before deleting a segment file.",
            validator=at_least(0),
            synonyms=("log.segment.delete.delay.ms",),
        ),
        _key(
            "flush.messages",
            LONG,
            LONG_MAX,
            "Messages between fsyncs.",
            validator=at_least(1),
            synonyms=("log.flush.interval.messages",),
        ),
        _key(
            "flush.ms",
            LONG,
            LONG_MAX,
            "Time between fsyncs.",
            validator=at_least(0),
            synonyms=("log.flush.interval.ms",),
        ),
        _key(
            "index.interval.bytes",
            INT,
            4096,
            "Bytes between offset index entries.",
            validator=at_least(0),
            synonyms=("log.index.interval.bytes",),
        ),
        _key(
            "max.compaction.lag.ms",
            LONG,
            LONG_MAX,
            "Maximum age before compaction.",
            validator=at_least(1),
            synonyms=("log.cleaner.max.compaction.lag.ms",),
        ),
        _key(
            "max.message.bytes",
            INT,
            1048588,
            "Largest record batch size allowed.",
            validator=at_least(0),
            synonyms=("message.max.bytes",),
        ),
        _key(
            "message.timestamp.type",
            STR,
            "CreateTime",
            "CreateTime or LogAppendTime.",
            validator=one_of(*TIMESTAMP_TYPES),
            synonyms=("log.message.timestamp.type",),
        ),
        _key(
            "message.timestamp.before.max.ms",
            LONG,
            LONG_MAX,
            "How far before the broker's clock a record timestamp may be.",
            validator=at_least(0),
            synonyms=("log.message.timestamp.before.max.ms",),
        ),
        _key(
            "message.timestamp.after.max.ms",
            LONG,
            3600000,
            "How far after the broker's clock a record timestamp may be.",
            validator=at_least(0),
            synonyms=("log.message.timestamp.after.max.ms",),
        ),
        _key(
            "min.cleanable.dirty.ratio",
            DOUBLE,
            0.5,
            "Dirty ratio that triggers cleaning.",
            validator=between(0, 1),
            synonyms=("log.cleaner.min.cleanable.ratio",),
        ),
        _key(
            "min.compaction.lag.ms",
            LONG,
            0,
            "Minimum age before compaction.",
            validator=at_least(0),
            synonyms=("log.cleaner.min.compaction.lag.ms",),
        ),
        _key(
            "min.insync.replicas",
            INT,
            1,
            "Replicas that must acknowledge acks=all.",
            validator=at_least(1),
            synonyms=("min.insync.replicas",),
        ),
        _key(
            "preallocate", BOOL, False, "Preallocate segment files.", synonyms=("log.preallocate",)
        ),
        _key(
            "retention.bytes",
            LONG,
            -1,
            "Largest log size before deleting segments.",
            synonyms=("log.retention.bytes",),
        ),
        _key(
            "retention.ms",
            LONG,
            604800000,
            "Time to keep a segment; -1 keeps forever.",
            validator=at_least(-1),
            synonyms=("log.retention.ms", "log.retention.minutes", "log.retention.hours"),
        ),
        _key(
            "segment.bytes",
            INT,
            1073741824,
            "Maximum size of a log segment.",
            validator=at_least(14),
            synonyms=("log.segment.bytes",),
        ),
        _key(
            "segment.index.bytes",
            INT,
            10485760,
            "Maximum size of an offset index.",
            validator=at_least(4),
            synonyms=("log.index.size.max.bytes",),
        ),
        _key(
            "segment.jitter.ms",
            LONG,
            0,
            "Jitter subtracted from the roll time.",
            validator=at_least(0),
            synonyms=("log.roll.jitter.ms", "log.roll.jitter.hours"),
        ),
        _key(
            "segment.ms",
            LONG,
            604800000,
            "Time after which a segment is rolled.",
            validator=at_least(1),
            synonyms=("log.roll.ms", "log.roll.hours"),
        ),
        _key(
            "unclean.leader.election.enable",
            BOOL,
            False,
            "Elect leaders outside the ISR.",
            synonyms=("unclean.leader.election.enable",),
        ),
    ]
}

BROKER_SYNONYMS: Final[dict[str, tuple[str, ...]]] = {
    name: key.synonyms
    for key in TOPIC_KEYS.values()
    if len(key.synonyms) > 1
    for name in key.synonyms
}
"""Broker keys that stand for one another (Kafka's ``brokerConfigSynonyms``: the
``.ms``/``.minutes``/``.hours`` forms), most specific first."""

LOG_CLEANER_DYNAMIC_CONFIGS: Final = frozenset(
    {
        "log.cleaner.threads",
        "log.cleaner.dedupe.buffer.size",
        "log.cleaner.io.buffer.load.factor",
        "log.cleaner.io.buffer.size",
        "log.cleaner.io.max.bytes.per.second",
        "log.cleaner.backoff.ms",
    }
)
"""Kafka's ``LogCleaner.ReconfigurableConfigs``: a change restarts the cleaner."""

CONNECTION_DYNAMIC_CONFIGS: Final = frozenset({"max.connections", "max.connections.per.ip"})
"""Kafka's ``SocketServer.ReconfigurableConfigs`` that this broker has."""

DYNAMIC_BROKER_CONFIGS: Final = (
    frozenset({name for key in TOPIC_KEYS.values() for name in key.synonyms})
    | LOG_CLEANER_DYNAMIC_CONFIGS
    | CONNECTION_DYNAMIC_CONFIGS
)
"""Broker configs that AlterConfigs may change at run time (``/config/brokers``).

Kafka's ``DynamicBrokerConfig.AllDynamicConfigs`` restricted to what this broker
applies without a restart: the topic defaults (``DynamicLogConfig``: every broker
synonym of a topic config, ``log.retention.ms``, ``log.segment.bytes``,
``log.cleanup.policy``, ``compression.type``, ``message.max.bytes``,
``min.insync.replicas``, ``unclean.leader.election.enable``, ``log.flush.*``...), which
reach every log without a topic override, the log cleaner's (its workers restart) and
the connection limits (for new connections). Kafka's other dynamic configs (thread
pools, listeners, ``producer.id.expiration.ms``) are read once at start here, so they
are refused rather than stored and silently not applied."""

_UNIT_SCALE: Final = {".hours": 3600000, ".minutes": 60000}


def synonym_scale(broker_key: str) -> int:
    """How a broker synonym's unit converts to milliseconds (hours, minutes, or 1)."""
    for suffix, scale in _UNIT_SCALE.items():
        if broker_key.endswith(suffix):
            return scale
    return 1


def _scale(value: Any, scale: int) -> Any:
    """Convert a synonym's value to this key's unit; negative times mean "forever" (-1)."""
    if scale == 1 or isinstance(value, bool) or not isinstance(value, int):
        return value
    return -1 if value < 0 else value * scale


def read_properties(path: Path) -> dict[str, str]:
    """Parse a Java-style ``server.properties`` file (``key=value`` or ``key: value``)."""
    result: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    logical = re.sub(r"\\\n\s*", "", text)
    for number, line in enumerate(logical.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped[0] in "#!":
            continue
        match = re.match(r"([^=:\s]+)\s*[=:\s]\s*(.*)$", stripped)
        if match is None:
            raise ConfigError(f"{path}:{number}: expected key=value, got {stripped!r}")
        result[match.group(1)] = match.group(2)
    return result


def parse_override(text: str) -> tuple[str, str]:
    """``key=value`` from ``--override``."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--override expects key=value, got {text!r}")
    return key.strip(), value.strip()


@dataclass(frozen=True, slots=True)
class ResolvedValue:
    """A config's effective value, where it came from, and the chain behind it."""

    name: str
    value: Any
    source: ConfigSource
    key: ConfigKey
    synonyms: tuple[tuple[str, Any, ConfigSource], ...] = ()

    @property
    def text(self) -> str | None:
        return format_value(self.key.type, self.value)


class BrokerConfig:
    """The broker's static configuration: file + overrides over Kafka's defaults.

    Unknown keys are kept (Kafka logs and ignores them) so plugins and later features can
    read them; known keys are parsed and validated up front so a typo in a value fails
    at start, with Kafka's wording.
    """

    def __init__(self, props: Mapping[str, str] | None = None) -> None:
        self.originals: dict[str, str] = dict(props or {})
        self.values: dict[str, Any] = {}
        self.unknown: list[str] = []
        self.dynamic_broker: dict[str, Any] = {}
        """Dynamic configs of this broker (``/config/brokers/<id>``), parsed."""
        self.dynamic_default: dict[str, Any] = {}
        """Dynamic cluster-wide defaults (``/config/brokers/<default>``), parsed."""
        for name, raw in self.originals.items():
            key = BROKER_KEYS.get(name)
            if key is None:
                self.unknown.append(name)
                continue
            self.values[name] = key.parse(raw)
        if "node.id" in self.values and "broker.id" not in self.values:
            self.values["broker.id"] = self.values["node.id"]

    def get(self, name: str) -> Any:
        """The effective value: per-broker dynamic > cluster-default dynamic > static >
        Kafka's default (DynamicBrokerConfig's precedence); read at run time, so a
        dynamic change is seen by the next read."""
        for layer in (self.dynamic_broker, self.dynamic_default, self.values):
            if name in layer:
                return layer[name]
        return BROKER_KEYS[name].default

    def is_set(self, name: str) -> bool:
        return name in self.values or name in self.dynamic_broker or name in self.dynamic_default

    def set_dynamic(
        self, per_broker: Mapping[str, str], cluster_default: Mapping[str, str]
    ) -> set[str]:
        """Replace both dynamic layers (as stored: strings) and return the names whose
        effective value changed. Stored values that no longer parse or are not dynamic
        (written by another version) are skipped, as Kafka skips invalid dynamic
        configs when it loads them, so one bad entry cannot stop a broker."""
        before = {name: self.get(name) for name in BROKER_KEYS}
        self.dynamic_broker = _parse_dynamic(per_broker)
        self.dynamic_default = _parse_dynamic(cluster_default)
        return {name for name in BROKER_KEYS if self.get(name) != before[name]}

    def _layers(self, name: str) -> list[tuple[Any, ConfigSource]]:
        """Every value set for ``name``, most significant first, ending with the default."""
        found = [
            (layer[name], source)
            for layer, source in (
                (self.dynamic_broker, ConfigSource.DYNAMIC_BROKER_CONFIG),
                (self.dynamic_default, ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG),
                (self.values, ConfigSource.STATIC_BROKER_CONFIG),
            )
            if name in layer
        ]
        default = BROKER_KEYS[name].default
        if default is not None:
            found.append((default, ConfigSource.DEFAULT_CONFIG))
        return found

    # -- typed accessors for what the broker reads often -----------------------------------

    @property
    def broker_id(self) -> int:
        return int(self.get("broker.id"))

    @property
    def log_dirs(self) -> list[Path]:
        dirs = self.get("log.dirs") or [self.get("log.dir")]
        return [Path(d) for d in dirs]

    @property
    def listeners(self) -> list[str]:
        return list(self.get("listeners"))

    @property
    def advertised_listeners(self) -> list[str]:
        return list(self.get("advertised.listeners") or self.listeners)

    def topic_default(self, name: str) -> ResolvedValue:
        """Effective broker-level value behind topic config ``name``, with its chain:
        for each source in precedence order, each synonym in Kafka's order
        (``log.retention.ms`` before ``.minutes`` before ``.hours``), as Kafka's
        ``DescribeConfigs`` lists them."""
        key = TOPIC_KEYS[name]
        chain: list[tuple[str, Any, ConfigSource]] = []
        for source in _BROKER_SOURCES:
            for broker_name in key.synonyms:
                for value, found in self._layers(broker_name):
                    if found is source:
                        chain.append((broker_name, value, source))
        for broker_name, value, source in chain:
            if source is not ConfigSource.DEFAULT_CONFIG:
                scaled = _scale(value, synonym_scale(broker_name))
                return ResolvedValue(name, scaled, source, key, tuple(chain))
        return ResolvedValue(name, key.default, ConfigSource.DEFAULT_CONFIG, key, tuple(chain))

    def resolve(self, name: str) -> ResolvedValue:
        """One broker config's value, source and synonyms (its own layers, then those
        of the keys it falls back on, e.g. ``log.retention.ms`` on ``.hours``)."""
        key = BROKER_KEYS[name]
        names = BROKER_SYNONYMS.get(name, (name,))
        chain = [
            (synonym, value, source)
            for source in _BROKER_SOURCES
            for synonym in names
            for value, found in self._layers(synonym)
            if found is source
        ]
        # As Kafka's ConfigHelper: the key's own value, the source of the chain's head
        # (log.retention.hours reports its own 168 but the source of a set .ms).
        source = chain[0][2] if chain else ConfigSource.DEFAULT_CONFIG
        return ResolvedValue(name, self.get(name), source, key, tuple(chain))

    def describe(self) -> list[ResolvedValue]:
        """Every known broker config with its value, source and synonyms."""
        return [self.resolve(name) for name in BROKER_KEYS]


_BROKER_SOURCES: Final = (
    ConfigSource.DYNAMIC_BROKER_CONFIG,
    ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG,
    ConfigSource.STATIC_BROKER_CONFIG,
    ConfigSource.DEFAULT_CONFIG,
)


def _parse_dynamic(configs: Mapping[str, str]) -> dict[str, Any]:
    parsed: dict[str, Any] = {}
    for name, raw in configs.items():
        key = BROKER_KEYS.get(name)
        if key is None or name not in DYNAMIC_BROKER_CONFIGS:
            continue
        try:
            parsed[name] = key.parse(raw)
        except ConfigError:
            continue
    return parsed


def validate_dynamic_broker_configs(configs: Mapping[str, str | None]) -> dict[str, Any]:
    """Check configs given for ``/config/brokers/<id or default>`` as Kafka's
    ``DynamicBrokerConfig.validateConfigs``: a known config that is not dynamic raises
    NotDynamicError (Kafka's wording, its Scala ``Set(...)`` included); a bad value
    raises ConfigError. Unknown names are accepted, as Kafka keeps custom configs."""
    not_dynamic = sorted(
        name for name in configs if name in BROKER_KEYS and name not in DYNAMIC_BROKER_CONFIGS
    )
    if not_dynamic:
        raise NotDynamicError(
            f"Cannot update these configs dynamically: Set({', '.join(not_dynamic)})"
        )
    parsed: dict[str, Any] = {}
    for name, raw in configs.items():
        key = BROKER_KEYS.get(name)
        if key is None:
            continue
        if raw is None:
            raise ConfigError(f"Null value not supported for: {name}")
        parsed[name] = key.parse(raw)
    return parsed


class NotDynamicError(ConfigError):
    """A broker config that only a restart changes was given as a dynamic config."""


def validate_topic_configs(configs: Mapping[str, str | None]) -> dict[str, Any]:
    """Parse topic config overrides; unknown keys and bad values raise ConfigError."""
    parsed: dict[str, Any] = {}
    for name, raw in configs.items():
        key = TOPIC_KEYS.get(name)
        if key is None:
            raise ConfigError(f"Unknown topic config name: {name}")
        if raw is None:
            raise ConfigError(f"Null value not supported for topic configs: {name}")
        parsed[name] = key.parse(raw)
    return parsed


@dataclass(frozen=True, slots=True, kw_only=True)
class LogConfig:
    """Effective config of one partition log: topic overrides over broker defaults.

    Field names are the Kafka topic config names with dots as underscores.
    """

    cleanup_policy: tuple[str, ...] = ("delete",)
    compression_type: str = "producer"
    delete_retention_ms: int = 86400000
    file_delete_delay_ms: int = 60000
    flush_messages: int = LONG_MAX
    flush_ms: int = LONG_MAX
    index_interval_bytes: int = 4096
    max_compaction_lag_ms: int = LONG_MAX
    max_message_bytes: int = 1048588
    message_timestamp_type: str = "CreateTime"
    message_timestamp_before_max_ms: int = LONG_MAX
    message_timestamp_after_max_ms: int = 3600000
    min_cleanable_dirty_ratio: float = 0.5
    min_compaction_lag_ms: int = 0
    min_insync_replicas: int = 1
    preallocate: bool = False
    retention_bytes: int = -1
    retention_ms: int = 604800000
    segment_bytes: int = 1073741824
    segment_index_bytes: int = 10485760
    segment_jitter_ms: int = 0
    segment_ms: int = 604800000
    unclean_leader_election_enable: bool = False
    overrides: Mapping[str, Any] = field(default_factory=dict)
    """The topic-level overrides this was built from (parsed values)."""

    @classmethod
    def build(cls, broker: BrokerConfig, overrides: Mapping[str, Any] | None = None) -> LogConfig:
        overrides = dict(overrides or {})
        values: dict[str, Any] = {}
        for name in TOPIC_KEYS:
            value = overrides[name] if name in overrides else broker.topic_default(name).value
            if isinstance(value, list):
                value = tuple(value)
            values[name.replace(".", "_")] = value
        return cls(**values, overrides=overrides)

    def resolve(self, broker: BrokerConfig, name: str) -> ResolvedValue:
        key = TOPIC_KEYS[name]
        default = broker.topic_default(name)
        if name in self.overrides:
            chain = (
                (name, self.overrides[name], ConfigSource.TOPIC_CONFIG),
                *default.synonyms,
            )
            return ResolvedValue(name, self.overrides[name], ConfigSource.TOPIC_CONFIG, key, chain)
        return default

    @property
    def compact(self) -> bool:
        return "compact" in self.cleanup_policy

    @property
    def delete(self) -> bool:
        return "delete" in self.cleanup_policy


def describe_topic_configs(
    broker: BrokerConfig, config: LogConfig, names: Iterable[str] | None = None
) -> list[ResolvedValue]:
    wanted = list(TOPIC_KEYS) if names is None else [n for n in names if n in TOPIC_KEYS]
    return [config.resolve(broker, name) for name in wanted]
