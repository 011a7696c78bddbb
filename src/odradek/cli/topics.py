"""``odradek topics``: create, list, describe, alter-config and delete topics.

Everything goes through confluent-kafka's AdminClient (CreateTopics, Metadata,
DescribeConfigs, ListOffsets, IncrementalAlterConfigs, DeleteTopics).
"""

from __future__ import annotations

import enum
from concurrent.futures import Future
from typing import Annotated, Any, TypeVar

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from odradek.cli._kafka import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    KafkaError,
    KafkaException,
    ListOffsetsResultInfo,
    NewTopic,
    Node,
    ResourceType,
    TopicCollection,
    TopicDescription,
    TopicPartition,
    earliest,
    latest,
)
from odradek.cli.common import (
    DEFAULT_BOOTSTRAP,
    REQUEST_TIMEOUT_S,
    BootstrapOption,
    ClientOptions,
    CliError,
    CommandConfigOption,
    PropertyOption,
    admin_client,
    describe_kafka_error,
    fetch_metadata,
    kafka_error_of,
    parse_pairs,
    reported_errors,
    stdout_console,
    usage_error,
)
from odradek.config import ConfigSource

T = TypeVar("T")

topics_app = typer.Typer(
    help="Create, list, describe, alter and delete topics.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(topics_app, name="topics")


class _TopicError(CliError):
    """An admin request failed; keeps the KafkaError so callers can test its code."""

    def __init__(self, message: str, error: KafkaError | None) -> None:
        super().__init__(message)
        self.error = error

    def code(self) -> int | None:
        return self.error.code() if self.error is not None else None


def _result(future: Future[Any], action: str, kind: type[T]) -> T:
    """Wait for one admin future; a Kafka error becomes a CliError naming ``action``."""
    try:
        result = future.result(timeout=REQUEST_TIMEOUT_S + 5)
    except KafkaException as exc:
        error = kafka_error_of(exc)
        detail = describe_kafka_error(error) if error is not None else str(exc)
        raise _TopicError(f"{action}: {detail}", error) from None
    if not isinstance(result, kind):
        raise TypeError(f"{action}: expected {kind.__name__}, got {type(result).__name__}")
    return result


def _table(*columns: str) -> Table:
    """A plain table: one rule under the header, no borders; number columns right-aligned."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for column in columns:
        numeric = (
            column in {"partitions", "replication", "partition", "leader"} or "offset" in column
        )
        table.add_column(column, justify="right" if numeric else "left", no_wrap=True)
    return table


def _is_internal(name: str) -> bool:
    # Kafka's internal topics (__consumer_offsets, __transaction_state, ...) all start
    # with a double underscore; plain Metadata from librdkafka does not carry the flag.
    return name.startswith("__")


# --- create -------------------------------------------------------------------------------


@topics_app.command("create")
def create(
    *,
    name: Annotated[str, typer.Argument(help="Topic name.")],
    partitions: Annotated[
        int | None,
        typer.Option("--partitions", "-p", min=1, help="Partition count [default: broker's]."),
    ] = None,
    replication_factor: Annotated[
        int | None,
        typer.Option("--replication-factor", "-r", min=1, help="Replicas [default: broker's]."),
    ] = None,
    config: Annotated[
        list[str] | None,
        typer.Option("--config", "-c", metavar="KEY=VALUE", help="Topic config, repeatable."),
    ] = None,
    if_not_exists: Annotated[
        bool, typer.Option("--if-not-exists", help="Succeed if the topic already exists.")
    ] = False,
    bootstrap: BootstrapOption = DEFAULT_BOOTSTRAP,
    command_config: CommandConfigOption = None,
    properties: PropertyOption = None,
) -> None:
    """Create a topic."""
    with reported_errors():
        options = ClientOptions.of(bootstrap, command_config, properties)
        topic_config = parse_pairs(config or (), "--config")
        admin = admin_client(options)
        fetch_metadata(admin, options.bootstrap)
        new_topic = NewTopic(
            name,
            num_partitions=partitions if partitions is not None else -1,
            replication_factor=replication_factor if replication_factor is not None else -1,
            config=topic_config,
        )
        futures = admin.create_topics([new_topic], request_timeout=REQUEST_TIMEOUT_S)
        try:
            _result(futures[name], f'cannot create topic "{name}"', type(None))
        except _TopicError as exc:
            if exc.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                if if_not_exists:
                    typer.echo(f'Topic "{name}" already exists.', err=True)
                    return
                raise CliError(f"{exc.message} (use --if-not-exists to ignore)") from None
            raise
        typer.echo(f'Created topic "{name}".', err=True)


# --- list ---------------------------------------------------------------------------------


@topics_app.command("list")
def list_(
    *,
    internal: Annotated[
        bool, typer.Option("--internal", help="Include internal topics (__consumer_offsets...).")
    ] = False,
    bootstrap: BootstrapOption = DEFAULT_BOOTSTRAP,
    command_config: CommandConfigOption = None,
    properties: PropertyOption = None,
) -> None:
    """List topics with their partition count and replication factor."""
    with reported_errors():
        options = ClientOptions.of(bootstrap, command_config, properties)
        metadata = fetch_metadata(admin_client(options), options.bootstrap)
        table = _table("topic", "partitions", "replication")
        for name in sorted(metadata.topics):
            if _is_internal(name) and not internal:
                continue
            topic = metadata.topics[name]
            replication = max((len(p.replicas) for p in topic.partitions.values()), default=0)
            table.add_row(Text(name), str(len(topic.partitions)), str(replication))
        stdout_console().print(table)


# --- describe -----------------------------------------------------------------------------


def _node_ids(nodes: list[Node]) -> str:
    return ",".join(str(node.id) for node in nodes) or "-"


def _log_offsets(
    admin: AdminClient, topic: str, partitions: list[int], action: str
) -> dict[int, tuple[int, int]]:
    """{partition: (log start offset, end offset)} from ListOffsets (earliest, latest)."""
    if not partitions:
        return {}
    found: dict[str, dict[int, int]] = {}
    for label, spec in (("start", earliest()), ("end", latest())):
        request = {TopicPartition(topic, p): spec for p in partitions}
        listed = admin.list_offsets(request, request_timeout=REQUEST_TIMEOUT_S)
        found[label] = {
            tp.partition: _result(future, action, ListOffsetsResultInfo).offset
            for tp, future in listed.items()
        }
    return {p: (found["start"][p], found["end"][p]) for p in partitions}


def _partitions_table(description: TopicDescription, offsets: dict[int, tuple[int, int]]) -> Table:
    table = _table("partition", "leader", "replicas", "isr", "start offset", "end offset")
    for p in sorted(description.partitions, key=lambda p: p.id):
        start, end = offsets[p.id]
        leader = str(p.leader.id) if p.leader is not None else "none"
        table.add_row(
            str(p.id), leader, _node_ids(p.replicas), _node_ids(p.isr), str(start), str(end)
        )
    return table


def _source_name(source: object) -> str:
    """Kafka's name of a config source; confluent-kafka gives an enum or a bare int."""
    number = source.value if isinstance(source, enum.Enum) else source
    return ConfigSource(int(str(number))).name


def _configs_table(entries: dict[str, ConfigEntry]) -> Table | None:
    """The entries that are not defaults, or None when all are."""
    overrides = sorted((e for e in entries.values() if not e.is_default), key=lambda e: str(e.name))
    if not overrides:
        return None
    table = _table("config", "value", "source")
    for entry in overrides:
        value = "(sensitive)" if entry.is_sensitive else str(entry.value)
        table.add_row(Text(str(entry.name)), Text(value), _source_name(entry.source))
    return table


@topics_app.command("describe")
def describe(
    *,
    name: Annotated[str, typer.Argument(help="Topic name.")],
    bootstrap: BootstrapOption = DEFAULT_BOOTSTRAP,
    command_config: CommandConfigOption = None,
    properties: PropertyOption = None,
) -> None:
    """Show a topic's partitions (leader, replicas, ISR, offsets) and non-default configs."""
    with reported_errors():
        options = ClientOptions.of(bootstrap, command_config, properties)
        admin = admin_client(options)
        fetch_metadata(admin, options.bootstrap)
        action = f'cannot describe topic "{name}"'
        futures = admin.describe_topics(TopicCollection([name]), request_timeout=REQUEST_TIMEOUT_S)
        description = _result(futures[name], action, TopicDescription)
        partition_ids = [p.id for p in description.partitions]
        offsets = _log_offsets(admin, name, partition_ids, action)
        resource = ConfigResource(ResourceType.TOPIC, name)
        entries = _result(
            admin.describe_configs([resource], request_timeout=REQUEST_TIMEOUT_S)[resource],
            f'cannot describe configs of topic "{name}"',
            dict,
        )

        console = stdout_console()
        replication = max((len(p.replicas) for p in description.partitions), default=0)
        console.print(
            f"topic: {description.name}  id: {description.topic_id}  "
            f"partitions: {len(partition_ids)}  replication: {replication}",
            markup=False,
        )
        console.print(_partitions_table(description, offsets))
        configs = _configs_table(entries)
        console.print(configs if configs is not None else "configs: (all defaults)")


# --- delete -------------------------------------------------------------------------------


@topics_app.command("delete")
def delete(
    *,
    name: Annotated[str, typer.Argument(help="Topic name.")],
    if_exists: Annotated[
        bool, typer.Option("--if-exists", help="Succeed if the topic does not exist.")
    ] = False,
    bootstrap: BootstrapOption = DEFAULT_BOOTSTRAP,
    command_config: CommandConfigOption = None,
    properties: PropertyOption = None,
) -> None:
    """Delete a topic and all its records."""
    with reported_errors():
        options = ClientOptions.of(bootstrap, command_config, properties)
        admin = admin_client(options)
        fetch_metadata(admin, options.bootstrap)
        futures = admin.delete_topics([name], request_timeout=REQUEST_TIMEOUT_S)
        try:
            _result(futures[name], f'cannot delete topic "{name}"', type(None))
        except _TopicError as exc:
            if exc.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                if if_exists:
                    typer.echo(f'Topic "{name}" does not exist.', err=True)
                    return
                raise CliError(f"{exc.message} (use --if-exists to ignore)") from None
            raise
        typer.echo(f'Deleted topic "{name}".', err=True)


# --- alter-config -------------------------------------------------------------------------


@topics_app.command("alter-config")
def alter_config(
    *,
    name: Annotated[str, typer.Argument(help="Topic name.")],
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", metavar="KEY=VALUE", help="Set a topic config, repeatable."),
    ] = None,
    delete_: Annotated[
        list[str] | None,
        typer.Option(
            "--delete", metavar="KEY", help="Remove an override (back to default), repeatable."
        ),
    ] = None,
    bootstrap: BootstrapOption = DEFAULT_BOOTSTRAP,
    command_config: CommandConfigOption = None,
    properties: PropertyOption = None,
) -> None:
    """Change topic configs in place (IncrementalAlterConfigs)."""
    with reported_errors():
        to_set = parse_pairs(set_ or (), "--set")
        to_delete = list(delete_ or ())
        if not to_set and not to_delete:
            raise usage_error("alter-config needs at least one --set KEY=VALUE or --delete KEY")
        both = sorted(set(to_set) & set(to_delete))
        if both:
            raise usage_error(f"config {both[0]!r} is given to both --set and --delete")
        options = ClientOptions.of(bootstrap, command_config, properties)
        admin = admin_client(options)
        fetch_metadata(admin, options.bootstrap)
        changes = [
            ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET)
            for key, value in to_set.items()
        ] + [
            ConfigEntry(key, None, incremental_operation=AlterConfigOpType.DELETE)
            for key in to_delete
        ]
        resource = ConfigResource(ResourceType.TOPIC, name, incremental_configs=changes)
        futures = admin.incremental_alter_configs([resource], request_timeout=REQUEST_TIMEOUT_S)
        _result(futures[resource], f'cannot alter configs of topic "{name}"', type(None))
        done = [f"set {k}={v}" for k, v in to_set.items()] + [f"deleted {k}" for k in to_delete]
        typer.echo(f'Altered topic "{name}": {"; ".join(done)}.', err=True)
