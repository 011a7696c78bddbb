"""``odradek log-dirs``: the log dirs of brokers and the replicas in them (as Kafka's
``kafka-log-dirs.sh --describe``), and moving a replica to another log dir of its
broker (what ``kafka-reassign-partitions.sh`` does with a ``log_dirs`` entry).

- ``describe [--broker N]... [--topics a,b] [--json]``: per broker and log dir, its error
  (an offline dir), volume size and free space, and each partition's size, offset lag
  and whether it is a future log (a move under way). ``--json`` prints Kafka's
  ``kafka-log-dirs.sh`` document instead of tables.
- ``move TOPIC PARTITION DIR [--broker N]``: AlterReplicaLogDirs; the move goes on in
  the broker, ``describe`` shows the future log until it is done.

librdkafka has neither API, so the requests go through ``cli/_wire.py``.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from odradek.cli._wire import BrokerConnection, wire_brokers
from odradek.cli.common import (
    DEFAULT_BOOTSTRAP,
    BootstrapOption,
    ClientOptions,
    CliError,
    CommandConfigOption,
    PropertyOption,
    kafka_error_name,
    reported_errors,
    stdout_console,
    usage_error,
)
from odradek.protocol import codec
from odradek.protocol.errors import ErrorCode

log_dirs_app = typer.Typer(
    help="Describe brokers' log dirs; move a replica to another log dir.", no_args_is_help=True
)

ALTER_REPLICA_LOG_DIRS, DESCRIBE_LOG_DIRS = 34, 35
BrokerOption = Annotated[
    list[int] | None,
    typer.Option("--broker", help="Only this broker (repeatable; default: every broker)."),
]


def register(app: typer.Typer) -> None:
    app.add_typer(log_dirs_app, name="log-dirs")


def _brokers(options: ClientOptions) -> dict[int, tuple[str, int]]:
    return wire_brokers(options, "log-dirs")


def _chosen(brokers: dict[int, tuple[str, int]], wanted: list[int] | None) -> list[int]:
    if not wanted:
        return sorted(brokers)
    unknown = sorted(set(wanted) - set(brokers))
    if unknown:
        raise usage_error(f"no broker {', '.join(map(str, unknown))} in the cluster")
    return sorted(set(wanted))


def _error_name(code: int) -> str:
    return kafka_error_name(code) or str(code)


def _bytes(count: int) -> str:
    if count < 0:
        return "-"
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(count)


def describe_log_dirs(
    options: ClientOptions, brokers: list[int] | None, topics: set[str] | None
) -> list[dict[str, Any]]:
    """Kafka's ``kafka-log-dirs.sh`` document's brokers: [{broker, logDirs: [{logDir,
    error, totalBytes, usableBytes, partitions: [{partition, size, offsetLag,
    isFuture}]}]}]."""
    known = _brokers(options)
    found = []
    for broker_id in _chosen(known, brokers):
        host, port = known[broker_id]
        with BrokerConnection(host, port) as connection:
            request = codec.build(codec.request_class(DESCRIBE_LOG_DIRS, 4), topics=None)
            response = connection.send(request)
        if response.error_code != ErrorCode.none:
            raise CliError(
                f"broker {broker_id} cannot describe its log dirs: "
                f"{_error_name(response.error_code)}"
            )
        dirs = []
        for result in response.results:
            partitions = [
                {
                    "partition": f"{topic.name}-{partition.partition_index}",
                    "size": int(partition.partition_size),
                    "offsetLag": int(partition.offset_lag),
                    "isFuture": bool(partition.is_future_key),
                }
                for topic in result.topics
                if topics is None or topic.name in topics
                for partition in topic.partitions
            ]
            error = None if result.error_code == ErrorCode.none else result.error_code
            dirs.append(
                {
                    "logDir": result.log_dir,
                    "error": None if error is None else _error_name(error),
                    "totalBytes": int(result.total_bytes),
                    "usableBytes": int(result.usable_bytes),
                    "partitions": partitions,
                }
            )
        found.append({"broker": broker_id, "logDirs": dirs})
    return found


@log_dirs_app.command("describe")
def describe(
    *,
    broker: BrokerOption = None,
    topics: Annotated[
        str | None,
        typer.Option("--topics", help="Comma-separated topics to list (default: all)."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Kafka's kafka-log-dirs.sh JSON document.")
    ] = False,
    bootstrap: BootstrapOption = DEFAULT_BOOTSTRAP,
    command_config: CommandConfigOption = None,
    properties: PropertyOption = None,
) -> None:
    """Each broker's log dirs and the partitions in them."""
    with reported_errors():
        options = ClientOptions.of(bootstrap, command_config, properties)
        wanted = None if topics is None else {t.strip() for t in topics.split(",") if t.strip()}
        found = describe_log_dirs(options, broker, wanted)
        console = stdout_console()
        if as_json:
            typer.echo(json.dumps({"version": 1, "brokers": found}))
            return
        for entry in found:
            for log_dir in entry["logDirs"]:
                state = (
                    f"error {log_dir['error']}"
                    if log_dir["error"]
                    else f"{_bytes(log_dir['usableBytes'])} free of {_bytes(log_dir['totalBytes'])}"
                )
                console.print(Text(f"broker {entry['broker']}  {log_dir['logDir']}  ({state})"))
                if not log_dir["partitions"]:
                    continue
                table = Table(box=box.SIMPLE, show_edge=False, pad_edge=False)
                for column in ("PARTITION", "SIZE", "OFFSET LAG", "FUTURE"):
                    table.add_column(column, no_wrap=True)
                for partition in sorted(log_dir["partitions"], key=lambda p: p["partition"]):
                    table.add_row(
                        Text(partition["partition"]),
                        str(partition["size"]),
                        str(partition["offsetLag"]),
                        "yes" if partition["isFuture"] else "no",
                    )
                console.print(table)


@log_dirs_app.command("move")
def move(
    topic: Annotated[str, typer.Argument(help="The topic.")],
    partition: Annotated[int, typer.Argument(help="The partition.")],
    log_dir: Annotated[str, typer.Argument(help="Absolute path of the target log dir.")],
    *,
    broker: BrokerOption = None,
    bootstrap: BootstrapOption = DEFAULT_BOOTSTRAP,
    command_config: CommandConfigOption = None,
    properties: PropertyOption = None,
) -> None:
    """Move a partition's replica to another log dir of its broker(s)."""
    with reported_errors():
        options = ClientOptions.of(bootstrap, command_config, properties)
        known = _brokers(options)
        chosen = _chosen(known, broker)
        if len(chosen) > 1 and not broker:
            raise usage_error("give --broker: the cluster has several brokers")
        module = codec.request_module(ALTER_REPLICA_LOG_DIRS, 2)
        request = codec.build(
            codec.request_class(ALTER_REPLICA_LOG_DIRS, 2),
            dirs=(
                codec.build(
                    module.AlterReplicaLogDir,
                    path=log_dir,
                    topics=(
                        codec.build(
                            module.AlterReplicaLogDirTopic, name=topic, partitions=(partition,)
                        ),
                    ),
                ),
            ),
        )
        for broker_id in chosen:
            host, port = known[broker_id]
            with BrokerConnection(host, port) as connection:
                response = connection.send(request)
            for result in response.results:
                for item in result.partitions:
                    if item.error_code != ErrorCode.none:
                        raise CliError(
                            f"broker {broker_id} cannot move {topic}-{partition} to "
                            f"{log_dir}: {_error_name(item.error_code)}"
                        )
            stdout_console().print(
                Text(f"broker {broker_id}: moving {topic}-{partition} to {log_dir}")
            )
