"""``odradek transactions``: list and describe transactions, find a partition's
producers, and abort a hanging transaction (as Kafka's ``kafka-transactions``).

- ``list [--state S]``: every transactional id of every coordinator (ListTransactions
  to each broker).
- ``describe TXN_ID``: its coordinator, producer id and epoch, state, timeout, start time
  and the partitions of the open transaction (FindCoordinator, DescribeTransactions).
- ``describe-producers --topic T --partition P``: the active producers of a partition and
  the start offset of each one's open transaction (DescribeProducers to the leader).
- ``abort --topic T --partition P --start-offset O``: a transaction that holds the last
  stable offset back while no coordinator knows it (a hanging transaction) is ended by
  writing an abort marker into the partition, with the producer id, epoch and coordinator
  epoch that DescribeProducers reports for the transaction starting at O
  (WriteTxnMarkers to the leader). As in Kafka this is a repair tool: a transaction its
  coordinator still tracks should be left to the coordinator.

These APIs are not in librdkafka, so the requests go through ``cli/_wire.py``.
"""

from __future__ import annotations

import datetime
import struct
from dataclasses import dataclass
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from odradek.cli._wire import BrokerConnection, build_request, error_of, wire_brokers
from odradek.cli.common import (
    DEFAULT_BOOTSTRAP,
    BootstrapOption,
    ClientOptions,
    CliError,
    CommandConfigOption,
    PropertyOption,
    admin_client,
    fetch_metadata,
    reported_errors,
    stdout_console,
    usage_error,
)
from odradek.protocol import codec
from odradek.protocol.errors import ErrorCode

transactions_app = typer.Typer(
    help="List and describe transactions; abort a hanging one.", no_args_is_help=True
)

FIND_COORDINATOR, TRANSACTION_KEY = 10, 1
DESCRIBE_TRANSACTIONS, LIST_TRANSACTIONS = 65, 66
DESCRIBE_PRODUCERS, WRITE_TXN_MARKERS = 61, 27


def register(app: typer.Typer) -> None:
    app.add_typer(transactions_app, name="transactions")


def _request(api_key: int, version: int, **fields: Any) -> Any:
    return build_request(api_key, version, **fields)


def _brokers(options: ClientOptions) -> dict[int, tuple[str, int]]:
    return wire_brokers(options, "transactions")


def _error(code: int, what: str, message: str | None = None) -> CliError:
    return error_of(code, what, message)


def _table(*columns: str) -> Table:
    table = Table(box=box.SIMPLE, show_edge=False, pad_edge=False)
    for column in columns:
        table.add_column(column.upper(), no_wrap=True)
    return table


@transactions_app.command("list")
def list_transactions(
    *,
    state: Annotated[
        list[str] | None,
        typer.Option(
            "--state",
            help="Only transactions in this state (Empty, Ongoing, PrepareCommit, "
            "PrepareAbort, CompleteCommit, CompleteAbort, ...), repeatable.",
        ),
    ] = None,
    bootstrap: BootstrapOption = DEFAULT_BOOTSTRAP,
    command_config: CommandConfigOption = None,
    properties: PropertyOption = None,
) -> None:
    """Every transactional id, its coordinator, producer id and state."""
    with reported_errors():
        options = ClientOptions.of(bootstrap, command_config, properties)
        rows = []
        for broker_id, (host, port) in sorted(_brokers(options).items()):
            with BrokerConnection(host, port) as connection:
                response = connection.send(
                    _request(LIST_TRANSACTIONS, 0, state_filters=tuple(state or ()))
                )
            if response.error_code != ErrorCode.none:
                raise _error(response.error_code, f"broker {broker_id} cannot list transactions")
            if response.unknown_state_filters:
                raise usage_error(f"unknown state {', '.join(response.unknown_state_filters)}")
            for txn in response.transaction_states:
                rows.append(
                    (txn.transactional_id, broker_id, txn.producer_id, txn.transaction_state)
                )
        table = _table("transactional id", "coordinator", "producer id", "state")
        for txn_id, coordinator, producer_id, txn_state in sorted(rows):
            table.add_row(Text(txn_id), str(coordinator), str(producer_id), txn_state)
        stdout_console().print(table)


@transactions_app.command("describe")
def describe(
    transactional_id: Annotated[str, typer.Argument(help="The transactional.id.")],
    *,
    bootstrap: BootstrapOption = DEFAULT_BOOTSTRAP,
    command_config: CommandConfigOption = None,
    properties: PropertyOption = None,
) -> None:
    """A transactional id's coordinator, producer, state and open partitions."""
    with reported_errors():
        options = ClientOptions.of(bootstrap, command_config, properties)
        brokers = _brokers(options)
        host, port = next(iter(brokers.values()))
        with BrokerConnection(host, port) as connection:
            found = connection.send(
                _request(
                    FIND_COORDINATOR,
                    4,
                    key_type=TRANSACTION_KEY,
                    coordinator_keys=(transactional_id,),
                )
            ).coordinators[0]
        if found.error_code != ErrorCode.none:
            raise _error(found.error_code, "cannot find the coordinator", found.error_message)
        with BrokerConnection(found.host, found.port) as connection:
            body = connection.send_for_body(
                _request(DESCRIBE_TRANSACTIONS, 0, transactional_ids=(transactional_id,))
            )
        txn = _described_transactions(body)[0]
        if txn.error_code != ErrorCode.none:
            raise _error(txn.error_code, f"cannot describe {transactional_id}")
        table = _table(
            "coordinator",
            "transactional id",
            "producer id",
            "epoch",
            "state",
            "timeout ms",
            "start time",
            "partitions",
        )
        started = txn.transaction_start_ms
        partitions = ",".join(f"{topic}-{index}" for topic, index in txn.partitions)
        table.add_row(
            str(found.node_id),
            Text(txn.transactional_id),
            str(txn.producer_id),
            str(txn.producer_epoch),
            txn.transaction_state,
            str(txn.transaction_timeout_ms),
            _timestamp(started),
            Text(partitions or "-"),
        )
        stdout_console().print(table)


@dataclass(frozen=True, slots=True)
class _DescribedTransaction:
    error_code: int
    transactional_id: str
    transaction_state: str
    transaction_timeout_ms: int
    transaction_start_ms: int
    producer_id: int
    producer_epoch: int
    partitions: tuple[tuple[str, int], ...]


def _described_transactions(body: bytes) -> list[_DescribedTransaction]:
    """A DescribeTransactions v0 response body, decoded here rather than by kio, which
    refuses the start time -1 that a broker sends for an id with no transaction open.
    A flexible version (arrays and strings prefixed by unsigned varint length + 1, each
    structure ending in tagged fields)::

        correlation_id int32, header tagged fields,
        throttle_time_ms int32,
        transaction_states [] of
          error_code int16, transactional_id string, transaction_state string,
          transaction_timeout_ms int32, transaction_start_time_ms int64,
          producer_id int64, producer_epoch int16,
          topics [] of (topic string, partitions [] of int32, tagged fields),
          tagged fields
    """
    view = memoryview(body)
    position = 4

    def take(fmt: str) -> Any:
        nonlocal position
        (value,) = struct.unpack_from(fmt, view, position)
        position += struct.calcsize(fmt)
        return value

    def uvarint() -> int:
        nonlocal position
        value = shift = 0
        while True:
            byte = view[position]
            position += 1
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7
            if shift > 28:
                raise ValueError("varint too long")

    def skip_tagged_fields() -> None:
        nonlocal position
        for _ in range(uvarint()):
            uvarint()
            position += uvarint()

    def string() -> str:
        nonlocal position
        length = max(uvarint() - 1, 0)
        text = bytes(view[position : position + length]).decode()
        position += length
        return text

    found = []
    try:
        skip_tagged_fields()
        take(">i")
        for _ in range(uvarint() - 1):
            error, txn_id, state = take(">h"), string(), string()
            timeout, start, producer_id, epoch = take(">i"), take(">q"), take(">q"), take(">h")
            partitions: list[tuple[str, int]] = []
            for _ in range(uvarint() - 1):
                topic = string()
                partitions += [(topic, take(">i")) for _ in range(uvarint() - 1)]
                skip_tagged_fields()
            skip_tagged_fields()
            found.append(
                _DescribedTransaction(
                    error, txn_id, state, timeout, start, producer_id, epoch, tuple(partitions)
                )
            )
    except (struct.error, IndexError, ValueError) as exc:
        raise CliError(f"cannot read the broker's DescribeTransactions answer: {exc}") from None
    if not found:
        raise CliError("the broker described no transaction")
    return found


def _timestamp(millis: int) -> str:
    if millis < 0:
        return "-"
    moment = datetime.datetime.fromtimestamp(millis / 1000, datetime.UTC)
    return moment.isoformat(timespec="milliseconds")


def _producers(
    options: ClientOptions, topic: str, partition: int
) -> tuple[tuple[str, int], list[Any]]:
    """The leader's address and the active producers of one partition."""
    # Every topic's metadata: asked for by name, librdkafka's admin handle (a producer
    # inside) lets the broker auto-create a topic that does not exist.
    metadata = fetch_metadata(admin_client(options), options.bootstrap)
    found = metadata.topics.get(topic)
    if found is None or found.error is not None or partition not in found.partitions:
        raise CliError(f"no partition {partition} of topic {topic}")
    leader = found.partitions[partition].leader
    broker = metadata.brokers.get(leader)
    if broker is None:
        raise CliError(f"{topic}-{partition} has no leader now")
    address = (str(broker.host), broker.port)
    with BrokerConnection(*address) as connection:
        response = connection.send(
            _request(
                DESCRIBE_PRODUCERS,
                0,
                topics=(
                    codec.build(
                        codec.request_module(DESCRIBE_PRODUCERS, 0).TopicRequest,
                        name=topic,
                        partition_indexes=(partition,),
                    ),
                ),
            )
        )
    result = response.topics[0].partitions[0]
    if result.error_code != ErrorCode.none:
        raise _error(result.error_code, f"cannot describe producers of {topic}-{partition}")
    return address, list(result.active_producers)


TopicOption = Annotated[str, typer.Option("--topic", "-t", help="The topic.")]
PartitionOption = Annotated[int, typer.Option("--partition", "-p", min=0, help="The partition.")]


@transactions_app.command("describe-producers")
def describe_producers(
    *,
    topic: TopicOption,
    partition: PartitionOption,
    bootstrap: BootstrapOption = DEFAULT_BOOTSTRAP,
    command_config: CommandConfigOption = None,
    properties: PropertyOption = None,
) -> None:
    """The active producers of a partition and their open transactions."""
    with reported_errors():
        options = ClientOptions.of(bootstrap, command_config, properties)
        _leader, producers = _producers(options, topic, partition)
        table = _table(
            "producer id",
            "epoch",
            "last sequence",
            "last timestamp",
            "coordinator epoch",
            "txn start offset",
        )
        for state in sorted(producers, key=lambda s: s.producer_id):
            table.add_row(
                str(state.producer_id),
                str(state.producer_epoch),
                str(state.last_sequence),
                _timestamp(state.last_timestamp),
                str(state.coordinator_epoch),
                str(state.current_txn_start_offset) if state.current_txn_start_offset >= 0 else "-",
            )
        stdout_console().print(table)


@transactions_app.command("abort")
def abort(
    *,
    topic: TopicOption,
    partition: PartitionOption,
    start_offset: Annotated[
        int,
        typer.Option(
            "--start-offset",
            min=0,
            help="First offset of the hanging transaction (see describe-producers).",
        ),
    ],
    bootstrap: BootstrapOption = DEFAULT_BOOTSTRAP,
    command_config: CommandConfigOption = None,
    properties: PropertyOption = None,
) -> None:
    """Abort the transaction that starts at --start-offset in a partition."""
    with reported_errors():
        options = ClientOptions.of(bootstrap, command_config, properties)
        leader, producers = _producers(options, topic, partition)
        matching = [p for p in producers if p.current_txn_start_offset == start_offset]
        if not matching:
            raise CliError(
                f"no open transaction starts at offset {start_offset} of {topic}-{partition} "
                "(see odradek transactions describe-producers)"
            )
        state = matching[0]
        module = codec.request_module(WRITE_TXN_MARKERS, 1)
        marker = codec.build(
            module.WritableTxnMarker,
            producer_id=state.producer_id,
            producer_epoch=state.producer_epoch,
            transaction_result=False,
            topics=(
                codec.build(
                    module.WritableTxnMarkerTopic, name=topic, partition_indexes=(partition,)
                ),
            ),
            coordinator_epoch=state.coordinator_epoch,
        )
        with BrokerConnection(*leader) as connection:
            response = connection.send(_request(WRITE_TXN_MARKERS, 1, markers=(marker,)))
        code = response.markers[0].topics[0].partitions[0].error_code
        if code != ErrorCode.none:
            raise _error(code, f"cannot abort the transaction of producer {state.producer_id}")
        stdout_console().print(
            f"aborted the transaction of producer {state.producer_id} (epoch "
            f"{state.producer_epoch}) starting at offset {start_offset} of {topic}-{partition}",
            markup=False,
        )
