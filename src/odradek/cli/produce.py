"""``odradek produce TOPIC``: one record per line of stdin.

Behaves like ``kafka-console-producer``: each line (without its line ending) is a
record value; with ``--key-separator SEP`` the line is split at the first SEP into
key and value, and a line without SEP is an error (reported with its line number,
after the records before it have been delivered). The command waits until every
record is acknowledged (or has failed), prints a one-line summary on stderr, and
exits non-zero if any delivery failed.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import IO, Annotated, Any

import typer

from odradek.cli._kafka import KafkaError, KafkaException, Message, Producer
from odradek.cli.common import (
    DEFAULT_BOOTSTRAP,
    BootstrapOption,
    ClientOptions,
    CliError,
    CommandConfigOption,
    PropertyOption,
    client_config,
    describe_kafka_error,
    fetch_metadata,
    invalid_config,
    parse_pairs,
    reported_errors,
    usage_error,
)

_Headers = list[tuple[str, str | bytes | None]]

FLUSH_SLICE_S = 0.5
"""Flush in short slices so that Ctrl-C is seen promptly."""


class Acks(StrEnum):
    none = "0"
    leader = "1"
    all = "all"


class Compression(StrEnum):
    none = "none"
    gzip = "gzip"
    snappy = "snappy"
    lz4 = "lz4"
    zstd = "zstd"


def register(app: typer.Typer) -> None:
    app.command("produce")(produce)


@dataclass(slots=True)
class _Deliveries:
    """Delivery reports, counted as librdkafka calls back."""

    delivered: int = 0
    failed: Counter[str] = field(default_factory=Counter)

    def on_delivery(self, error: KafkaError | None, _message: Message) -> None:
        if error is None:
            self.delivered += 1
        else:
            self.failed[describe_kafka_error(error)] += 1


def _lines(stream: IO[bytes]) -> Iterator[tuple[int, bytes]]:
    """Numbered lines without their ending (\\n, \\r\\n); a last unterminated line counts."""
    for number, raw in enumerate(stream, start=1):
        line = raw[:-1] if raw.endswith(b"\n") else raw
        yield number, line[:-1] if line.endswith(b"\r") else line


def produce(
    *,
    topic: Annotated[str, typer.Argument(help="Topic to write to.")],
    key_separator: Annotated[
        str | None,
        typer.Option(
            "--key-separator",
            metavar="SEP",
            help="Split each line at the first SEP into key and value.",
        ),
    ] = None,
    header: Annotated[
        list[str] | None,
        typer.Option("--header", "-H", metavar="KEY=VALUE", help="Header on every record."),
    ] = None,
    partition: Annotated[
        int | None,
        typer.Option("--partition", "-p", min=0, help="Write to this partition only."),
    ] = None,
    acks: Annotated[
        Acks | None, typer.Option("--acks", help="Acknowledgements to wait for [default: all].")
    ] = None,
    compression: Annotated[
        Compression | None,
        typer.Option("--compression", help="Compression codec [default: none]."),
    ] = None,
    bootstrap: BootstrapOption = DEFAULT_BOOTSTRAP,
    command_config: CommandConfigOption = None,
    properties: PropertyOption = None,
) -> None:
    """Write one record per line of stdin to TOPIC."""
    with reported_errors():
        if key_separator == "":
            raise usage_error("--key-separator must not be empty")
        headers: _Headers = [
            (k, v.encode()) for k, v in parse_pairs(header or (), "--header").items()
        ]
        options = ClientOptions.of(bootstrap, command_config, properties)
        flags: dict[str, Any] = {}
        if acks is not None:
            flags["acks"] = acks.value
        if compression is not None:
            flags["compression.type"] = compression.value
        producer = _producer(client_config(options, flags=flags))
        _check_topic(producer, options.bootstrap, topic, partition)
        separator = key_separator.encode() if key_separator is not None else None
        _run(
            producer=producer,
            topic=topic,
            stream=sys.stdin.buffer,
            separator=separator,
            headers=headers,
            partition=partition,
        )


def _producer(config: dict[str, Any]) -> Producer:
    try:
        return Producer(config)
    except (KafkaException, ValueError, TypeError) as exc:
        raise invalid_config(exc) from None


def _check_topic(producer: Producer, bootstrap: str, topic: str, partition: int | None) -> None:
    """Fail early, with a useful line, on a missing topic or partition."""
    info = fetch_metadata(producer, bootstrap, topic).topics.get(topic)
    code = info.error.code() if info is not None and info.error is not None else None
    if info is None or code == KafkaError.UNKNOWN_TOPIC_OR_PART:
        raise CliError(
            f'topic "{topic}" does not exist (create it with: odradek topics create {topic})'
        )
    if code == KafkaError.LEADER_NOT_AVAILABLE:
        return  # being created (auto-creation): the producer waits for a leader itself
    if info.error is not None and code != KafkaError.NO_ERROR:
        raise CliError(f'cannot produce to "{topic}": {describe_kafka_error(info.error)}')
    if partition is not None and partition not in info.partitions:
        count = len(info.partitions)
        raise CliError(
            f'partition {partition} does not exist: topic "{topic}" has '
            f"{count} partitions (0-{count - 1})"
        )


def _run(
    *,
    producer: Producer,
    topic: str,
    stream: IO[bytes],
    separator: bytes | None,
    headers: _Headers,
    partition: int | None,
) -> None:
    deliveries = _Deliveries()
    target = partition if partition is not None else -1  # -1: the partitioner picks
    if stream.isatty():
        typer.echo(f'Type records for "{topic}", one per line; Ctrl-D to finish.', err=True)
    bad_line: CliError | None = None
    interrupted = False
    try:
        for number, line in _lines(stream):
            key: bytes | None = None
            value = line
            if separator is not None:
                key, found, value = line.partition(separator)
                if not found:
                    bad_line = CliError(
                        f"line {number} has no key separator {separator.decode()!r} "
                        f"(with --key-separator every line must be KEY{separator.decode()}VALUE)"
                    )
                    break
            _send(
                producer=producer,
                topic=topic,
                key=key,
                value=value,
                headers=headers,
                partition=target,
                deliveries=deliveries,
            )
    except KeyboardInterrupt:
        interrupted = True
    try:
        _flush(producer)
    except KeyboardInterrupt:  # a (second) Ctrl-C gives up on unacknowledged records
        raise CliError("interrupted before all records were acknowledged", exit_code=130) from None
    failed = sum(deliveries.failed.values())
    noun = "record" if deliveries.delivered == 1 else "records"
    summary = f'{deliveries.delivered} {noun} delivered to "{topic}"'
    if interrupted:
        summary += " (interrupted)"
    if failed:
        reasons = "; ".join(sorted(deliveries.failed))
        raise CliError(f"{summary}, {failed} failed: {reasons}")
    if bad_line is not None:
        raise CliError(f"{bad_line.message}; {summary} before it")
    typer.echo(summary, err=True)
    if interrupted:
        raise typer.Exit(130)


def _send(
    *,
    producer: Producer,
    topic: str,
    key: bytes | None,
    value: bytes,
    headers: _Headers,
    partition: int,
    deliveries: _Deliveries,
) -> None:
    while True:
        try:
            producer.produce(
                topic,
                value=value,
                key=key,
                partition=partition,
                headers=headers or None,
                on_delivery=deliveries.on_delivery,
            )
            break
        except BufferError:  # local queue full: let deliveries drain it
            producer.poll(FLUSH_SLICE_S)
    producer.poll(0)


def _flush(producer: Producer) -> None:
    """Wait for every outstanding record, in slices so that Ctrl-C is seen promptly."""
    while producer.flush(FLUSH_SLICE_S) > 0:
        pass
