"""``odradek groups``: list, describe, delete consumer groups and reset their offsets.

Like Kafka's ``kafka-consumer-groups``, over confluent-kafka's AdminClient only:
ListGroups, DescribeGroups, OffsetFetch, OffsetCommit (as a simple, non-member commit),
DeleteGroups, and ListOffsets for each partition's log start, log end and offset by time.

- ``describe GROUP``: state, assignor, coordinator, members and their partitions, and per
  partition the committed offset, the log end offset and the lag between them.
- ``reset-offsets GROUP --topic T (--to-earliest | --to-latest | --to-offset N |
  --to-datetime ISO | --shift-by N)``: prints the plan; ``--execute`` commits it. New
  offsets are clamped to [log start, log end]. As in Kafka, only a group without active
  members (Empty, or not there at all) can be reset.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import typer
from confluent_kafka import ConsumerGroupTopicPartitions
from confluent_kafka._model import ConsumerGroupState
from confluent_kafka.admin._group import (
    ConsumerGroupDescription,
    ListConsumerGroupsResult,
    MemberDescription,
)
from rich import box
from rich.table import Table
from rich.text import Text

from odradek.cli._kafka import (
    AdminClient,
    KafkaError,
    KafkaException,
    ListOffsetsResultInfo,
    OffsetSpec,
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
    reported_errors,
    stdout_console,
    usage_error,
)

T = TypeVar("T")

groups_app = typer.Typer(
    help="List, describe and delete consumer groups; reset their committed offsets.",
    no_args_is_help=True,
)

# Kafka's names for the states (ConsumerGroupState's are librdkafka's).
_STATE_NAMES = {
    ConsumerGroupState.UNKNOWN: "Unknown",
    ConsumerGroupState.PREPARING_REBALANCING: "PreparingRebalance",
    ConsumerGroupState.COMPLETING_REBALANCING: "CompletingRebalance",
    ConsumerGroupState.STABLE: "Stable",
    ConsumerGroupState.DEAD: "Dead",
    ConsumerGroupState.EMPTY: "Empty",
}
_INACTIVE = {ConsumerGroupState.EMPTY, ConsumerGroupState.DEAD}
_LISTABLE = set(_STATE_NAMES) - _INACTIVE - {ConsumerGroupState.UNKNOWN} | {
    ConsumerGroupState.EMPTY
}


def register(app: typer.Typer) -> None:
    app.add_typer(groups_app, name="groups")


def _connected_admin(
    bootstrap: str, command_config: Any, properties: list[str] | None
) -> AdminClient:
    options = ClientOptions.of(bootstrap, command_config, properties)
    admin = admin_client(options)
    fetch_metadata(admin, options.bootstrap)
    return admin


def _error_detail(exc: KafkaException) -> str:
    error = kafka_error_of(exc)
    return describe_kafka_error(error) if error is not None else str(exc)


def _result(future: Future[Any], action: str, kind: type[T]) -> T:
    """Wait for one admin future; a Kafka error becomes a CliError naming ``action``."""
    try:
        result = future.result(timeout=REQUEST_TIMEOUT_S + 5)
    except KafkaException as exc:
        raise CliError(f"{action}: {_error_detail(exc)}") from None
    if not isinstance(result, kind):
        raise TypeError(f"{action}: expected {kind.__name__}, got {type(result).__name__}")
    return result


def _table(*columns: str) -> Table:
    """A plain table: one rule under the header, no borders; number columns right-aligned."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for column in columns:
        numeric = column in {"partition", "lag"} or "offset" in column
        table.add_column(column, justify="right" if numeric else "left", no_wrap=True)
    return table


def state_name(state: object) -> str:
    """Kafka's name of a group state as confluent-kafka reports it."""
    if isinstance(state, ConsumerGroupState):
        return _STATE_NAMES.get(state, "Unknown")
    return "Unknown"


def _number(value: int | None) -> str:
    return "-" if value is None else str(value)


# --- list ---------------------------------------------------------------------------------


@groups_app.command("list")
def list_(
    *,
    state: Annotated[
        list[str] | None,
        typer.Option(
            "--state",
            metavar="STATE",
            help="Only groups in this state (Empty, Stable, PreparingRebalance, "
            "CompletingRebalance), repeatable.",
        ),
    ] = None,
    bootstrap: BootstrapOption = DEFAULT_BOOTSTRAP,
    command_config: CommandConfigOption = None,
    properties: PropertyOption = None,
) -> None:
    """List consumer groups with their state and protocol type."""
    with reported_errors():
        by_name = {name.lower(): s for s, name in _STATE_NAMES.items()}
        states: set[ConsumerGroupState] = set()
        for name in state or ():
            if name.lower() not in by_name:
                known = ", ".join(n for s, n in _STATE_NAMES.items() if s in _LISTABLE)
                raise usage_error(f"unknown --state {name!r}; use one of {known}")
            states.add(by_name[name.lower()])
        admin = _connected_admin(bootstrap, command_config, properties)
        kwargs: dict[str, Any] = {"request_timeout": REQUEST_TIMEOUT_S}
        if states:
            kwargs["states"] = states
        listed = _result(
            admin.list_consumer_groups(**kwargs), "cannot list groups", ListConsumerGroupsResult
        )
        if listed.errors:
            raise CliError(f"cannot list groups: {_describe_any(listed.errors[0])}")
        table = _table("group", "state", "protocol type")
        for listing in sorted(listed.valid or [], key=lambda g: str(g.group_id)):
            # ListGroups gives a protocol type; librdkafka only says whether it is empty
            # (a "simple" group: offsets committed by a tool or an assign()-only consumer).
            protocol_type = "-" if listing.is_simple_consumer_group else "consumer"
            table.add_row(Text(str(listing.group_id)), state_name(listing.state), protocol_type)
        stdout_console().print(table)


def _describe_any(error: object) -> str:
    if isinstance(error, KafkaError):
        return describe_kafka_error(error)
    if isinstance(error, KafkaException):
        return _error_detail(error)
    return str(error)


# --- shared lookups -----------------------------------------------------------------------


def _describe_group(admin: AdminClient, group: str) -> ConsumerGroupDescription:
    futures = admin.describe_consumer_groups([group], request_timeout=REQUEST_TIMEOUT_S)
    return _result(futures[group], f'cannot describe group "{group}"', ConsumerGroupDescription)


def _committed(
    admin: AdminClient, group: str, partitions: list[TopicPartition] | None = None
) -> dict[TopicPartition, int]:
    """The committed offsets of ``group`` (OffsetFetch), of ``partitions`` or of all."""
    request = ConsumerGroupTopicPartitions(group, partitions)
    futures = admin.list_consumer_group_offsets([request], request_timeout=REQUEST_TIMEOUT_S)
    fetched = _result(
        futures[group], f'cannot fetch offsets of group "{group}"', ConsumerGroupTopicPartitions
    )
    found: dict[TopicPartition, int] = {}
    for tp in fetched.topic_partitions or []:
        if tp.error is not None:
            raise CliError(
                f'cannot fetch offsets of group "{group}" for {tp.topic}:{tp.partition}: '
                f"{_describe_any(tp.error)}"
            )
        if tp.offset >= 0:
            found[TopicPartition(tp.topic, tp.partition)] = tp.offset
    return found


def _list_offsets(
    admin: AdminClient, partitions: Iterable[TopicPartition], spec: OffsetSpec
) -> dict[TopicPartition, int | KafkaError]:
    """ListOffsets for each partition: the offset, or the error of that partition."""
    request = {TopicPartition(tp.topic, tp.partition): spec for tp in partitions}
    if not request:
        return {}
    listed = admin.list_offsets(request, request_timeout=REQUEST_TIMEOUT_S)
    found: dict[TopicPartition, int | KafkaError] = {}
    for tp, future in listed.items():
        key = TopicPartition(tp.topic, tp.partition)
        try:
            info = future.result(timeout=REQUEST_TIMEOUT_S + 5)
        except KafkaException as exc:
            error = kafka_error_of(exc)
            found[key] = error if error is not None else KafkaError(KafkaError._FAIL, str(exc))
            continue
        assert isinstance(info, ListOffsetsResultInfo)
        found[key] = info.offset
    return found


def _key(tp: TopicPartition) -> tuple[str, int]:
    return (str(tp.topic), int(tp.partition))


def _format_partitions(partitions: Iterable[TopicPartition]) -> str:
    by_topic: dict[str, list[int]] = {}
    for tp in partitions:
        by_topic.setdefault(str(tp.topic), []).append(int(tp.partition))
    return " ".join(
        f"{topic}:{','.join(str(p) for p in sorted(ids))}"
        for topic, ids in sorted(by_topic.items())
    )


# --- describe -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PartitionLag:
    topic: str
    partition: int
    committed: int | None
    log_end: int | None
    member: MemberDescription | None

    @property
    def lag(self) -> int | None:
        if self.committed is None or self.log_end is None:
            return None
        return max(self.log_end - self.committed, 0)


def partition_lags(
    admin: AdminClient, group: str, description: ConsumerGroupDescription
) -> list[PartitionLag]:
    """Every partition the group has an offset in or a member assigned, with its lag."""
    owner: dict[tuple[str, int], MemberDescription] = {}
    for member in description.members or []:
        for tp in member.assignment.topic_partitions if member.assignment else []:
            owner[_key(tp)] = member
    committed = {_key(tp): offset for tp, offset in _committed(admin, group).items()}
    keys = sorted(set(owner) | set(committed))
    ends = _list_offsets(admin, (TopicPartition(t, p) for t, p in keys), latest())
    end_by_key = {_key(tp): value for tp, value in ends.items()}
    rows = []
    for key in keys:
        end = end_by_key.get(key)
        rows.append(
            PartitionLag(
                topic=key[0],
                partition=key[1],
                committed=committed.get(key),
                log_end=end if isinstance(end, int) else None,
                member=owner.get(key),
            )
        )
    return rows


@groups_app.command("describe")
def describe(
    *,
    group: Annotated[str, typer.Argument(help="Group id.")],
    bootstrap: BootstrapOption = DEFAULT_BOOTSTRAP,
    command_config: CommandConfigOption = None,
    properties: PropertyOption = None,
) -> None:
    """Show a group's state, members and, per partition, committed offset, log end and lag."""
    with reported_errors():
        admin = _connected_admin(bootstrap, command_config, properties)
        description = _describe_group(admin, group)
        if description.state == ConsumerGroupState.DEAD:
            raise CliError(f'group "{group}" does not exist')
        lags = partition_lags(admin, group, description)

        console = stdout_console()
        coordinator = description.coordinator
        where = (
            f"{coordinator.id} ({coordinator.host}:{coordinator.port})"
            if coordinator is not None
            else "-"
        )
        members = description.members or []
        console.print(
            f"group: {group}  state: {state_name(description.state)}  "
            f"assignor: {description.partition_assignor or '-'}  "
            f"coordinator: {where}  members: {len(members)}",
            markup=False,
        )
        if members:
            table = _table("member id", "instance id", "client id", "host", "partitions")
            for member in sorted(members, key=lambda m: str(m.member_id)):
                assigned = member.assignment.topic_partitions if member.assignment else []
                table.add_row(
                    Text(str(member.member_id)),
                    Text(member.group_instance_id or "-"),
                    Text(str(member.client_id)),
                    Text(str(member.host)),
                    Text(_format_partitions(assigned) or "-"),
                )
            console.print(table)
        if lags:
            table = _table(
                "topic", "partition", "committed offset", "log end offset", "lag", "member id"
            )
            for row in lags:
                table.add_row(
                    Text(row.topic),
                    str(row.partition),
                    _number(row.committed),
                    _number(row.log_end),
                    _number(row.lag),
                    Text(str(row.member.member_id) if row.member is not None else "-"),
                )
            console.print(table)
            total = sum(row.lag or 0 for row in lags)
            console.print(f"total lag: {total}", markup=False)
        else:
            console.print("offsets: (none committed)", markup=False)


# --- delete -------------------------------------------------------------------------------


@groups_app.command("delete")
def delete(
    *,
    groups: Annotated[list[str], typer.Argument(help="Group ids.", metavar="GROUP...")],
    bootstrap: BootstrapOption = DEFAULT_BOOTSTRAP,
    command_config: CommandConfigOption = None,
    properties: PropertyOption = None,
) -> None:
    """Delete groups and their committed offsets; a group with active members cannot be."""
    with reported_errors():
        admin = _connected_admin(bootstrap, command_config, properties)
        futures = admin.delete_consumer_groups(list(groups), request_timeout=REQUEST_TIMEOUT_S)
        failures = []
        for group in groups:
            try:
                futures[group].result(timeout=REQUEST_TIMEOUT_S + 5)
            except KafkaException as exc:
                failures.append(f'cannot delete group "{group}": {_error_detail(exc)}')
                continue
            typer.echo(f'Deleted group "{group}".', err=True)
        if failures:
            raise CliError("; ".join(failures))


# --- reset-offsets ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PlannedReset:
    topic: str
    partition: int
    current: int | None
    new: int


def parse_datetime(text: str) -> int:
    """An ISO-8601 date-time as epoch milliseconds; no zone means local time (as Kafka)."""
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise usage_error(
            f"--to-datetime expects an ISO-8601 date-time such as 2024-05-01T12:00:00Z, "
            f"got {text!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.astimezone()
    return int(moment.timestamp() * 1000)


def _topic_partitions(admin: AdminClient, bootstrap: str, topic: str, only: list[int]) -> list[int]:
    # Metadata for all topics: naming the topic would let the broker auto-create it
    # (librdkafka's admin client asks for that, as a producer does).
    metadata = fetch_metadata(admin, bootstrap)
    info = metadata.topics.get(topic)
    error = info.error if info is not None else None
    if info is None or (error is not None and error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART):
        raise CliError(f'topic "{topic}" does not exist')
    if error is not None and error.code() != KafkaError.NO_ERROR:
        raise CliError(f'cannot look up topic "{topic}": {describe_kafka_error(error)}')
    partitions = sorted(info.partitions)
    for partition in only:
        if partition not in info.partitions:
            raise CliError(
                f'partition {partition} does not exist: topic "{topic}" has '
                f"{len(partitions)} partitions"
            )
    return sorted(set(only)) if only else partitions


def _offsets_or_fail(
    found: dict[TopicPartition, int | KafkaError], what: str
) -> dict[tuple[str, int], int]:
    out = {}
    for tp, value in found.items():
        if isinstance(value, KafkaError):
            raise CliError(
                f"cannot list the {what} of {tp.topic}:{tp.partition}: "
                f"{describe_kafka_error(value)}"
            )
        out[_key(tp)] = value
    return out


def _require_inactive(description: ConsumerGroupDescription, group: str) -> None:
    if description.state not in _INACTIVE:
        raise CliError(
            f'assignments can only be reset if the group "{group}" is inactive, but the '
            f"current state is {state_name(description.state)} (stop its consumers first)"
        )


@groups_app.command("reset-offsets")
def reset_offsets(
    *,
    group: Annotated[str, typer.Argument(help="Group id.")],
    topic: Annotated[str, typer.Option("--topic", "-t", help="Topic whose offsets to reset.")],
    partition: Annotated[
        list[int] | None,
        typer.Option("--partition", "-p", min=0, help="Only this partition, repeatable."),
    ] = None,
    to_earliest: Annotated[
        bool, typer.Option("--to-earliest", help="To each partition's log start.")
    ] = False,
    to_latest: Annotated[
        bool, typer.Option("--to-latest", help="To each partition's log end.")
    ] = False,
    to_offset: Annotated[
        int | None, typer.Option("--to-offset", metavar="N", help="To offset N.")
    ] = None,
    to_datetime: Annotated[
        str | None,
        typer.Option(
            "--to-datetime",
            metavar="ISO8601",
            help="To the first record at or after this time (e.g. 2024-05-01T12:00:00Z; "
            "no zone = local time).",
        ),
    ] = None,
    shift_by: Annotated[
        int | None,
        typer.Option("--shift-by", metavar="N", help="Move the committed offset by N (+/-)."),
    ] = None,
    execute: Annotated[
        bool, typer.Option("--execute", help="Commit the new offsets (default: dry run).")
    ] = False,
    bootstrap: BootstrapOption = DEFAULT_BOOTSTRAP,
    command_config: CommandConfigOption = None,
    properties: PropertyOption = None,
) -> None:
    """Show (or with --execute, commit) new offsets for a group without active members."""
    with reported_errors():
        chosen = [
            name
            for name, given in (
                ("--to-earliest", to_earliest),
                ("--to-latest", to_latest),
                ("--to-offset", to_offset is not None),
                ("--to-datetime", to_datetime is not None),
                ("--shift-by", shift_by is not None),
            )
            if given
        ]
        if len(chosen) != 1:
            raise usage_error(
                "give exactly one of --to-earliest, --to-latest, --to-offset, --to-datetime, "
                f"--shift-by (got {', '.join(chosen) or 'none'})"
            )
        timestamp = parse_datetime(to_datetime) if to_datetime is not None else None

        options = ClientOptions.of(bootstrap, command_config, properties)
        admin = admin_client(options)
        partitions = _topic_partitions(admin, options.bootstrap, topic, list(partition or ()))
        _require_inactive(_describe_group(admin, group), group)

        tps = [TopicPartition(topic, p) for p in partitions]
        starts = _offsets_or_fail(_list_offsets(admin, tps, earliest()), "log start offset")
        ends = _offsets_or_fail(_list_offsets(admin, tps, latest()), "log end offset")
        committed = {_key(tp): offset for tp, offset in _committed(admin, group, tps).items()}
        by_time: dict[tuple[str, int], int] = {}
        if timestamp is not None:
            spec: OffsetSpec = OffsetSpec.for_timestamp(timestamp)
            by_time = _offsets_or_fail(_list_offsets(admin, tps, spec), "offset by time")

        plan = []
        for p in partitions:
            key = (topic, p)
            start, end, current = starts[key], ends[key], committed.get(key)
            if to_earliest:
                wanted = start
            elif to_latest:
                wanted = end
            elif to_offset is not None:
                wanted = to_offset
            elif timestamp is not None:
                # No record that late: the log end, as Kafka's tool does.
                wanted = by_time[key] if by_time[key] >= 0 else end
            else:
                assert shift_by is not None
                if current is None:
                    raise CliError(
                        f'cannot shift the offset of {topic}:{p}: group "{group}" has no '
                        "committed offset there"
                    )
                wanted = current + shift_by
            plan.append(PlannedReset(topic, p, current, min(max(wanted, start), end)))

        table = _table("topic", "partition", "current offset", "new offset")
        for row in plan:
            table.add_row(Text(row.topic), str(row.partition), _number(row.current), str(row.new))
        stdout_console().print(table)
        if not execute:
            typer.echo(
                "Dry run: nothing changed (use --execute to commit these offsets).", err=True
            )
            return
        _commit(admin, group, plan)
        typer.echo(f'Reset {len(plan)} offsets of group "{group}".', err=True)


def _commit(admin: AdminClient, group: str, plan: list[PlannedReset]) -> None:
    request = ConsumerGroupTopicPartitions(
        group, [TopicPartition(row.topic, row.partition, row.new) for row in plan]
    )
    futures = admin.alter_consumer_group_offsets([request], request_timeout=REQUEST_TIMEOUT_S)
    try:
        result = futures[group].result(timeout=REQUEST_TIMEOUT_S + 5)
    except KafkaException as exc:
        error = kafka_error_of(exc)
        if error is not None and error.code() == KafkaError.UNKNOWN_MEMBER_ID:
            # The group gained members after our check: the broker refuses a non-member
            # commit then (Kafka answers UNKNOWN_MEMBER_ID).
            raise CliError(
                f'cannot reset offsets of group "{group}": it has active members now '
                f"({describe_kafka_error(error)})"
            ) from None
        raise CliError(f'cannot reset offsets of group "{group}": {_error_detail(exc)}') from None
    assert isinstance(result, ConsumerGroupTopicPartitions)
    for tp in result.topic_partitions or []:
        if tp.error is not None:
            raise CliError(
                f'cannot reset offset of {tp.topic}:{tp.partition} for group "{group}": '
                f"{_describe_any(tp.error)}"
            )
