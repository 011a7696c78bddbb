"""``odradek cluster``: describe the cluster, elect leaders, reassign partitions.

``describe`` and ``elect-leaders`` go through confluent-kafka's AdminClient
(DescribeCluster, Metadata, ElectLeaders). ``reassign`` sends AlterPartitionReassignments
and ListPartitionReassignments itself (``_reassignments``), to the controller, since
librdkafka lacks them.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from concurrent.futures import Future
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from odradek.cli import _reassignments
from odradek.cli._kafka import (
    AdminClient,
    ClusterMetadata,
    ElectionType,
    KafkaError,
    KafkaException,
    Node,
    TopicPartition,
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
    kafka_error_name,
    kafka_error_of,
    reported_errors,
    stdout_console,
    usage_error,
)

cluster_app = typer.Typer(
    help="Describe the cluster, elect partition leaders, reassign partitions.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(cluster_app, name="cluster")


def _wait(future: Future[Any], action: str) -> Any:
    try:
        return future.result(timeout=REQUEST_TIMEOUT_S + 5)
    except KafkaException as exc:
        error = kafka_error_of(exc)
        detail = describe_kafka_error(error) if error is not None else str(exc)
        raise CliError(f"{action}: {detail}") from None


def _table(*columns: str) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for column in columns:
        numeric = column in {"id", "partition", "leader", "preferred"}
        table.add_column(column, justify="right" if numeric else "left", no_wrap=True)
    return table


def _ids(ids: Iterable[int]) -> str:
    return ",".join(str(i) for i in ids) or "-"


# --- describe -----------------------------------------------------------------------------


def _partition_rows(metadata: ClusterMetadata) -> list[tuple[str, int, int, list[int], list[int]]]:
    rows = []
    for name in sorted(metadata.topics):
        for p in sorted(metadata.topics[name].partitions.values(), key=lambda p: p.id):
            rows.append((name, p.id, p.leader, list(p.replicas), list(p.isrs)))
    return rows


def _partitions_table(rows: list[tuple[str, int, int, list[int], list[int]]]) -> Table:
    table = _table("topic", "partition", "leader", "replicas", "isr")
    for name, index, leader, replicas, isr in rows:
        shown = str(leader) if leader >= 0 else "none"
        table.add_row(Text(name), str(index), shown, _ids(replicas), _ids(isr))
    return table


@cluster_app.command("describe")
def describe(
    *,
    bootstrap: BootstrapOption = DEFAULT_BOOTSTRAP,
    command_config: CommandConfigOption = None,
    properties: PropertyOption = None,
) -> None:
    """Brokers, controller, and the partitions that need attention: under-replicated,
    offline, and not led by their preferred replica."""
    with reported_errors():
        options = ClientOptions.of(bootstrap, command_config, properties)
        admin = admin_client(options)
        metadata = fetch_metadata(admin, options.bootstrap)
        cluster = _wait(
            admin.describe_cluster(request_timeout=REQUEST_TIMEOUT_S), "cannot describe cluster"
        )
        controller: Node | None = cluster.controller
        controller_id = controller.id if controller is not None else -1
        console = stdout_console()
        console.print(
            f"cluster: {cluster.cluster_id}  controller: "
            f"{controller_id if controller_id >= 0 else 'none'}  brokers: {len(cluster.nodes)}",
            markup=False,
        )
        brokers = _table("id", "endpoint", "rack", "role")
        for node in sorted(cluster.nodes, key=lambda n: n.id):
            brokers.add_row(
                str(node.id),
                Text(f"{node.host}:{node.port}"),
                Text(node.rack or "-"),
                "controller" if node.id == controller_id else "",
            )
        console.print(brokers)
        rows = _partition_rows(metadata)
        sections = (
            ("under-replicated partitions", [r for r in rows if len(r[4]) < len(r[3])]),
            ("offline partitions", [r for r in rows if r[2] < 0]),
            (
                "partitions not led by their preferred replica",
                [r for r in rows if r[2] >= 0 and r[3] and r[2] != r[3][0]],
            ),
        )
        for title, selected in sections:
            if selected:
                console.print(f"{title}: {len(selected)}", markup=False)
                console.print(_partitions_table(selected))
            else:
                console.print(f"{title}: none", markup=False)


# --- elect-leaders --------------------------------------------------------------------------


class Election(enum.StrEnum):
    preferred = "preferred"
    unclean = "unclean"


@cluster_app.command("elect-leaders")
def elect_leaders(
    *,
    topic: Annotated[
        str | None, typer.Option("--topic", "-t", help="Only this topic [default: all].")
    ] = None,
    partition: Annotated[
        int | None,
        typer.Option("--partition", "-p", min=0, help="Only this partition (needs --topic)."),
    ] = None,
    election_type: Annotated[
        Election,
        typer.Option(
            "--type",
            help="preferred: the first replica leads again if in sync; unclean: elect any "
            "live replica for a partition with no leader (may lose records).",
        ),
    ] = Election.preferred,
    bootstrap: BootstrapOption = DEFAULT_BOOTSTRAP,
    command_config: CommandConfigOption = None,
    properties: PropertyOption = None,
) -> None:
    """Elect partition leaders (ElectLeaders)."""
    with reported_errors():
        if partition is not None and topic is None:
            raise usage_error("--partition needs --topic")
        options = ClientOptions.of(bootstrap, command_config, properties)
        admin = admin_client(options)
        metadata = fetch_metadata(admin, options.bootstrap)
        partitions: list[TopicPartition] | None = None
        if topic is not None:
            known = metadata.topics.get(topic)
            if known is None or known.error is not None:
                raise CliError(f'cannot elect leaders: topic "{topic}" does not exist')
            indices = [partition] if partition is not None else sorted(known.partitions)
            partitions = [TopicPartition(topic, p) for p in indices]
        kind = (
            ElectionType.PREFERRED if election_type is Election.preferred else ElectionType.UNCLEAN
        )
        # No request_timeout: confluent-kafka 2.16's elect_leaders fails on any keyword
        # argument (SystemError from its argument parsing); socket.timeout.ms bounds it.
        results = _wait(admin.elect_leaders(kind, partitions), "cannot elect leaders")
        _report_elections(results, election_type)


def _report_elections(results: dict[TopicPartition, Any], election_type: Election) -> None:
    rows: list[tuple[str, int, str]] = []
    failed = 0
    for tp in sorted(results, key=lambda tp: (tp.topic, tp.partition)):
        problem = results[tp]
        if problem is None:
            rows.append((tp.topic, tp.partition, "elected"))
            continue
        # confluent-kafka gives a KafkaError here (its docs say KafkaException).
        error = problem if isinstance(problem, KafkaError) else kafka_error_of(problem)
        name = kafka_error_name(error.code()) if error is not None else None
        if name == "ELECTION_NOT_NEEDED":
            rows.append((tp.topic, tp.partition, "not needed (leader already eligible)"))
            continue
        failed += 1
        detail = describe_kafka_error(error) if error is not None else str(problem)
        rows.append((tp.topic, tp.partition, detail))
    if len(rows) == 1 and failed:
        name, index, detail = rows[0]
        raise CliError(f"cannot elect a leader for {name}-{index}: {detail}")
    if not rows:
        typer.echo(f"No partition needed a {election_type.value} election.", err=True)
        return
    table = _table("topic", "partition", "result")
    for name, index, detail in rows:
        table.add_row(Text(name), str(index), Text(detail))
    stdout_console().print(table)
    if failed:
        raise CliError(f"{failed} of {len(rows)} elections failed")


# --- reassign -------------------------------------------------------------------------------


def _parse_replicas(text: str) -> list[int]:
    items = [item.strip() for item in text.split(",")]
    if items == [""]:
        return []
    try:
        return [int(item) for item in items]
    except ValueError:
        raise usage_error(
            f"--replicas expects broker ids separated by commas (e.g. 2,3,1), got {text!r}"
        ) from None


def _controller(admin: AdminClient) -> tuple[str, int]:
    cluster = _wait(
        admin.describe_cluster(request_timeout=REQUEST_TIMEOUT_S), "cannot describe cluster"
    )
    node: Node | None = cluster.controller
    if node is None:
        raise CliError("the cluster has no controller right now; try again shortly")
    return node.host, node.port


@cluster_app.command("reassign")
def reassign(
    *,
    topic: Annotated[str | None, typer.Option("--topic", "-t", help="Topic.")] = None,
    partition: Annotated[
        int | None, typer.Option("--partition", "-p", min=0, help="Partition.")
    ] = None,
    replicas: Annotated[
        str | None,
        typer.Option(
            "--replicas",
            metavar="IDS",
            help="Target broker ids in order, e.g. 2,3,1 (the first is the preferred leader).",
        ),
    ] = None,
    list_: Annotated[
        bool, typer.Option("--list", help="List the reassignments in progress.")
    ] = False,
    cancel: Annotated[
        bool, typer.Option("--cancel", help="Cancel the partition's reassignment.")
    ] = False,
    bootstrap: BootstrapOption = DEFAULT_BOOTSTRAP,
    command_config: CommandConfigOption = None,
    properties: PropertyOption = None,
) -> None:
    """Move a partition to other brokers: new replicas copy the data first, and the
    switch happens once they are in sync (AlterPartitionReassignments)."""
    with reported_errors():
        modes = [
            m
            for m, on in (
                ("--replicas", replicas is not None),
                ("--list", list_),
                ("--cancel", cancel),
            )
            if on
        ]
        if len(modes) != 1:
            raise usage_error("give exactly one of --replicas IDS, --list or --cancel")
        if not list_ and (topic is None or partition is None):
            raise usage_error(f"{modes[0]} needs --topic and --partition")
        if list_ and partition is not None and topic is None:
            raise usage_error("--partition needs --topic")
        target = _parse_replicas(replicas) if replicas is not None else None
        options = ClientOptions.of(bootstrap, command_config, properties)
        admin = admin_client(options)
        fetch_metadata(admin, options.bootstrap)
        host, port = _controller(admin)
        try:
            if list_:
                _list_reassignments(host, port, topic, partition)
                return
            assert topic is not None and partition is not None
            key = (topic, partition)
            results = _reassignments.alter(host, port, {key: target}, REQUEST_TIMEOUT_S)
        except _reassignments.ProtocolError as exc:
            raise CliError(f"cannot reach the controller: {exc}") from None
        code, message = results.get(key, (0, None))
        if code:
            name = kafka_error_name(code) or str(code)
            detail = f"{name}: {message}" if message else name
            action = "cancel the reassignment of" if cancel else "reassign"
            raise CliError(f"cannot {action} {topic}-{partition}: {detail}")
        if cancel:
            typer.echo(f"Cancelled the reassignment of {topic}-{partition}.", err=True)
        else:
            typer.echo(
                f"Reassigning {topic}-{partition} to {_ids(target or [])}: new replicas copy "
                'the data, then take over (follow with "odradek cluster reassign --list").',
                err=True,
            )


def _list_reassignments(host: str, port: int, topic: str | None, partition: int | None) -> None:
    # One partition is asked for by name; a whole topic is filtered from the full list
    # (an empty partition list would ask for none of the topic's partitions).
    wanted = {topic: [partition]} if topic is not None and partition is not None else None
    code, message, ongoing = _reassignments.list_ongoing(host, port, wanted, REQUEST_TIMEOUT_S)
    ongoing = [o for o in ongoing if topic is None or o.topic == topic]
    if code:
        name = kafka_error_name(code) or str(code)
        raise CliError(f"cannot list reassignments: {name}: {message}" if message else name)
    if not ongoing:
        typer.echo("No reassignment in progress.", err=True)
        return
    table = _table("topic", "partition", "replicas", "adding", "removing")
    for item in ongoing:
        table.add_row(
            Text(item.topic),
            str(item.partition),
            _ids(item.replicas),
            _ids(item.adding),
            _ids(item.removing),
        )
    stdout_console().print(table)
