"""``odradek topics``: create, list, describe, alter-config and delete topics.

Everything goes through confluent-kafka's AdminClient (CreateTopics, Metadata,
DescribeConfigs, ListOffsets, IncrementalAlterConfigs, DeleteTopics).
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import Annotated, Any, TypeVar

import typer
from rich import box
from rich.table import Table

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
    client_config,
    describe_kafka_error,
    fetch_metadata,
    invalid_config,
    kafka_error_of,
    parse_pairs,
    reported_errors,
    stdout_console,
    usage_error,
)

T = TypeVar("T")

topics_app = typer.Typer(
    help="Create, list, describe, alter and delete topics.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(topics_app, name="topics")


def _admin(options: ClientOptions) -> AdminClient:
    try:
        return AdminClient(client_config(options))
    except (KafkaException, ValueError, TypeError) as exc:
        raise invalid_config(exc) from None


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


class _TopicError(CliError):
    """An admin request failed; keeps the KafkaError so callers can test its code."""

    def __init__(self, message: str, error: KafkaError | None) -> None:
        super().__init__(message)
        self.error = error

    def code(self) -> int | None:
        return self.error.code() if self.error is not None else None


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
        admin = _admin(options)
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
        metadata = fetch_metadata(_admin(options), options.bootstrap)
        table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
        table.add_column("topic", no_wrap=True)
        table.add_column("partitions", justify="right")
        table.add_column("replication", justify="right")
        for name in sorted(metadata.topics):
            if _is_internal(name) and not internal:
                continue
            topic = metadata.topics[name]
            replication = max((len(p.replicas) for p in topic.partitions.values()), default=0)
            table.add_row(name, str(len(topic.partitions)), str(replication))
        stdout_console().print(table)


# --- describe -----------------------------------------------------------------------------


def _node_ids(nodes: list[Node]) -> str:
    return ",".join(str(node.id) for node in nodes) or "-"


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
        admin = _admin(options)
        fetch_metadata(admin, options.bootstrap)
        action = f'cannot describe topic "{name}"'
        futures = admin.describe_topics(TopicCollection([name]), request_timeout=REQUEST_TIMEOUT_S)
        description = _result(futures[name], action, TopicDescription)
        partitions = sorted(description.partitions, key=lambda p: p.id)

        offsets: dict[str, dict[int, int]] = {}
        for label, spec in (("start", earliest()), ("end", latest())):
            request = {TopicPartition(name, p.id): spec for p in partitions}
            offsets[label] = {}
            if not request:
                continue
            listed = admin.list_offsets(request, request_timeout=REQUEST_TIMEOUT_S)
            for tp, future in listed.items():
                info = _result(future, action, ListOffsetsResultInfo)
                offsets[label][tp.partition] = info.offset

        resource = ConfigResource(ResourceType.TOPIC, name)
        entries = _result(
            admin.describe_configs([resource], request_timeout=REQUEST_TIMEOUT_S)[resource],
            f'cannot describe configs of topic "{name}"',
            dict,
        )

        console = stdout_console()
        replication = max((len(p.replicas) for p in partitions), default=0)
        console.print(
            f"topic: {description.name}  id: {description.topic_id}  "
            f"partitions: {len(partitions)}  replication: {replication}",
            markup=False,
        )
        table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
        for column in ("partition", "leader", "replicas", "isr", "start offset", "end offset"):
            table.add_column(column, justify="right" if column != "replicas" else "left")
        for p in partitions:
            table.add_row(
                str(p.id),
                str(p.leader.id) if p.leader is not None else "none",
                _node_ids(p.replicas),
                _node_ids(p.isr),
                str(offsets["start"].get(p.id, "?")),
                str(offsets["end"].get(p.id, "?")),
            )
        console.print(table)

        overrides: list[ConfigEntry] = sorted(
            (entry for entry in entries.values() if not entry.is_default),
            key=lambda entry: str(entry.name),
        )
        if not overrides:
            console.print("configs: (all defaults)")
            return
        configs = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
        configs.add_column("config")
        configs.add_column("value")
        configs.add_column("source")
        for entry in overrides:
            value = "(sensitive)" if entry.is_sensitive else str(entry.value)
            configs.add_row(entry.name, value, entry.source.name)
        console.print(configs)


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
        admin = _admin(options)
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
        admin = _admin(options)
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
