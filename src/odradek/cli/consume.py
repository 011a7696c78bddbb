"""``odradek consume TOPIC``: print records, one line each, formatted by a template.

Without ``--group`` the consumer assigns itself the topic's partitions (``assign()``)
and never joins a group or commits, so it works on a broker with no group
coordination. librdkafka insists on a ``group.id`` even then, so a throwaway one is
set; nothing is subscribed or committed under it. With ``--group G`` it subscribes
as a member of G and commits as a group consumer does.

It stops after ``-n`` records, after ``--timeout-ms`` without a record, on Ctrl-C, or
when stdout is closed (``| head``), always closing the consumer cleanly.
"""

from __future__ import annotations

import contextlib
import os
import string
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import IO, Annotated, Any

import typer

from odradek.cli._kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)
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
    reported_errors,
    usage_error,
)

ASSIGN_TIMEOUT_S = 60.0
"""With --group and --timeout-ms: how long to wait for the group to assign partitions."""
POLL_SLICE_S = 0.5
"""Poll in short slices so that Ctrl-C and --timeout-ms are seen promptly."""
BATCH = 500

FIELDS = ("key", "value", "headers", "offset", "partition", "timestamp", "topic")
_ESCAPES = {"\\t": "\t", "\\n": "\n", "\\r": "\r", "\\\\": "\\"}


def register(app: typer.Typer) -> None:
    app.command("consume")(consume)


# --- output format ------------------------------------------------------------------------


def _unescape(template: str) -> str:
    r"""Turn the two-character sequences \t \n \r \\ into the characters they name."""
    out: list[str] = []
    i = 0
    while i < len(template):
        pair = template[i : i + 2]
        if pair in _ESCAPES:
            out.append(_ESCAPES[pair])
            i += 2
        else:
            out.append(template[i])
            i += 1
    return "".join(out)


def _text(data: bytes | str | None) -> str:
    if data is None:
        return "null"
    return data if isinstance(data, str) else data.decode("utf-8", errors="replace")


@dataclass(frozen=True, slots=True)
class RecordFormat:
    """A ``str.format`` template over the record fields in ``FIELDS``."""

    template: str

    @classmethod
    def parse(cls, template: str) -> RecordFormat:
        template = _unescape(template)
        try:
            names = [
                name for _, name, _, _ in string.Formatter().parse(template) if name is not None
            ]
        except ValueError as exc:
            raise usage_error(f"bad --format {template!r}: {exc}") from None
        for name in names:
            if name not in FIELDS:
                known = ", ".join(f"{{{field}}}" for field in FIELDS)
                raise usage_error(f"unknown field {{{name}}} in --format; use {known}")
        record_format = cls(template)
        sample = {name: "" for name in ("key", "value", "headers", "topic")}
        try:
            template.format_map({**sample, "offset": 0, "partition": 0, "timestamp": 0})
        except (ValueError, TypeError) as exc:
            raise usage_error(f"bad --format {template!r}: {exc}") from None
        return record_format

    def render(self, message: Message) -> str:
        headers = message.headers() or []
        pairs = headers.items() if isinstance(headers, Mapping) else headers
        fields: dict[str, Any] = {
            "key": _text(message.key()),
            "value": _text(message.value()),
            "headers": ",".join(f"{k}={_text(v)}" for k, v in pairs),
            "offset": message.offset(),
            "partition": message.partition(),
            "timestamp": message.timestamp()[1],
            "topic": message.topic(),
        }
        return self.template.format_map(fields)


# --- the command --------------------------------------------------------------------------


def _start_offset(offset: str | None, from_beginning: bool) -> int:
    if offset is None:
        return OFFSET_BEGINNING if from_beginning else OFFSET_END
    named = {"earliest": OFFSET_BEGINNING, "latest": OFFSET_END}
    if offset in named:
        return named[offset]
    if not offset.isdigit():
        raise usage_error(f"--offset must be a number >= 0, earliest or latest, got {offset!r}")
    return int(offset)


def consume(
    *,
    topic: Annotated[str, typer.Argument(help="Topic to read from.")],
    from_beginning: Annotated[
        bool,
        typer.Option("--from-beginning", help="Start at the oldest record, not the newest."),
    ] = False,
    offset: Annotated[
        str | None,
        typer.Option(
            "--offset", metavar="N", help="Start offset in --partition: N, earliest or latest."
        ),
    ] = None,
    partition: Annotated[
        int | None, typer.Option("--partition", "-p", min=0, help="Read this partition only.")
    ] = None,
    max_messages: Annotated[
        int | None,
        typer.Option("--max-messages", "-n", min=1, help="Stop after this many records."),
    ] = None,
    group: Annotated[
        str | None,
        typer.Option("--group", "-g", help="Consume as a member of this group (commits offsets)."),
    ] = None,
    timeout_ms: Annotated[
        int | None,
        typer.Option("--timeout-ms", min=0, help="Stop after this long with no record."),
    ] = None,
    format_: Annotated[
        str,
        typer.Option(
            "--format",
            "-f",
            help="Output template with {key} {value} {headers} {offset} {partition} "
            "{timestamp} {topic}; \\t and \\n are understood.",
        ),
    ] = "{value}",
    bootstrap: BootstrapOption = DEFAULT_BOOTSTRAP,
    command_config: CommandConfigOption = None,
    properties: PropertyOption = None,
) -> None:
    """Print records from TOPIC, one per line."""
    with reported_errors():
        record_format = RecordFormat.parse(format_)
        if offset is not None and partition is None:
            raise usage_error("--offset needs --partition")
        if offset is not None and from_beginning:
            raise usage_error("--offset and --from-beginning cannot be used together")
        if group is not None and (partition is not None or offset is not None):
            raise usage_error("--group cannot be combined with --partition or --offset")
        start = _start_offset(offset, from_beginning)

        options = ClientOptions.of(bootstrap, command_config, properties)
        defaults: dict[str, Any] = {
            "auto.offset.reset": "earliest" if from_beginning else "latest",
            "enable.partition.eof": False,
        }
        if group is None:
            defaults |= {
                "group.id": f"odradek-cli-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
            }
        flags: dict[str, Any] = {"group.id": group} if group is not None else {}
        if offset is not None and start >= 0:
            flags["auto.offset.reset"] = "error"  # an out-of-range --offset is an error
        consumer = _consumer(client_config(options, defaults=defaults, flags=flags))
        try:
            partitions = _partitions(consumer, options.bootstrap, topic, partition)
            assignment = _Assignment(group=group)
            if group is None:
                consumer.assign([TopicPartition(topic, p, start) for p in partitions])
            else:
                consumer.subscribe([topic], on_assign=assignment.on_assign)
            count = _loop(
                consumer,
                record_format,
                assignment=assignment,
                out=sys.stdout.buffer,
                max_messages=max_messages,
                timeout_ms=timeout_ms,
            )
        finally:
            _close(consumer)
        typer.echo(f"Processed a total of {count} messages", err=True)


def _consumer(config: dict[str, Any]) -> Consumer:
    try:
        return Consumer(config)
    except (KafkaException, ValueError, TypeError) as exc:
        raise invalid_config(exc) from None


def _close(consumer: Consumer) -> None:
    with contextlib.suppress(RuntimeError, KeyboardInterrupt):
        consumer.close()


def _partitions(consumer: Consumer, bootstrap: str, topic: str, only: int | None) -> list[int]:
    metadata = fetch_metadata(consumer, bootstrap, topic)
    info = metadata.topics.get(topic)
    error = info.error if info is not None else None
    if info is None or (error is not None and error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART):
        raise CliError(f'topic "{topic}" does not exist')
    if error is not None and error.code() != KafkaError.NO_ERROR:
        raise CliError(f'cannot consume from "{topic}": {describe_kafka_error(error)}')
    partitions = sorted(info.partitions)
    if only is None:
        return partitions
    if only not in info.partitions:
        raise CliError(
            f'partition {only} does not exist: topic "{topic}" has {len(partitions)} partitions'
        )
    return [only]


@dataclass(slots=True)
class _Assignment:
    """Whether partitions are assigned yet: at once with assign(), after a join with --group."""

    group: str | None
    started: float = field(default_factory=time.monotonic)
    assigned: bool = False

    def __post_init__(self) -> None:
        self.assigned = self.group is None

    def on_assign(self, _consumer: Consumer, _partitions: list[TopicPartition]) -> None:
        self.assigned = True

    def check(self) -> None:
        if not self.assigned and time.monotonic() - self.started > ASSIGN_TIMEOUT_S:
            raise CliError(
                f'no partitions assigned to group "{self.group}" within {ASSIGN_TIMEOUT_S:g}s '
                "(does the broker support consumer groups? try without --group)"
            )


def _loop(
    consumer: Consumer,
    record_format: RecordFormat,
    *,
    assignment: _Assignment,
    out: IO[bytes],
    max_messages: int | None,
    timeout_ms: int | None,
) -> int:
    """Print records until a stop condition; returns how many were printed.

    The --timeout-ms idle clock starts once partitions are assigned, so that a slow
    group join does not count as "no records".
    """
    count = 0
    idle_limit = None if timeout_ms is None else timeout_ms / 1000
    last_record = time.monotonic()
    try:
        while max_messages is None or count < max_messages:
            wait = POLL_SLICE_S
            if not assignment.assigned:
                if idle_limit is not None:
                    assignment.check()
                last_record = time.monotonic()
            elif idle_limit is not None:
                left = idle_limit - (time.monotonic() - last_record)
                if left <= 0:
                    break
                wait = min(wait, left)
            want = BATCH if max_messages is None else min(BATCH, max_messages - count)
            lines: list[bytes] = []
            for message in consumer.consume(num_messages=want, timeout=wait):
                _raise_if_fatal(message)
                if message.error() is None:
                    lines.append(record_format.render(message).encode("utf-8") + b"\n")
            if lines:
                count += len(lines)  # counted first: Ctrl-C may land right after the write
                last_record = time.monotonic()
                out.write(b"".join(lines))
                out.flush()
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:
        _silence_stdout()
    return count


def _raise_if_fatal(message: Message) -> None:
    """Stop on errors that retrying will not fix; librdkafka retries the others itself."""
    error = message.error()
    if error is None:
        return
    if error.code() == KafkaError._AUTO_OFFSET_RESET:
        raise CliError(
            f"offset out of range in partition {message.partition()}: {describe_kafka_error(error)}"
        )
    permanent = {
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError._UNKNOWN_TOPIC,
        KafkaError._UNKNOWN_PARTITION,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.GROUP_AUTHORIZATION_FAILED,
        KafkaError.INVALID_GROUP_ID,
    }
    if error.fatal() or error.code() in permanent:
        raise CliError(f'cannot consume from "{message.topic()}": {describe_kafka_error(error)}')


def _silence_stdout() -> None:
    # The reader went away (`| head`): point stdout at /dev/null so that the
    # interpreter's final flush does not raise BrokenPipeError again.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
