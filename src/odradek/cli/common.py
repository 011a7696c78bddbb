"""Plumbing shared by the client commands (topics, produce, consume).

These commands are ordinary Kafka clients: they talk to a broker only over the Kafka
protocol, through confluent-kafka (librdkafka), and never import broker internals.

What lives here:

- the common options: ``--bootstrap-server/-b`` (env ``ODRADEK_BOOTSTRAP_SERVERS``),
  ``--command-config FILE`` and ``--property k=v``;
- building a librdkafka config from them, with librdkafka's own logging silenced;
- error reporting: every failure becomes ONE line ``error: ...`` on stderr and exit
  code 1 (2 for a usage error), never a traceback;
- the connectivity check that turns "no broker there" into a line that says so.

"""

from __future__ import annotations

import logging
import socket
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

from odradek.cli._kafka import AdminClient, ClusterMetadata, KafkaError, KafkaException
from odradek.config import ConfigError, read_properties
from odradek.protocol.errors import ErrorCode

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"
CONNECT_TIMEOUT_S = 10.0
"""How long to wait for the first metadata response before saying the broker is not there."""
REQUEST_TIMEOUT_S = 30.0
"""Upper bound on one admin request once the broker has answered metadata."""

BootstrapOption = Annotated[
    str,
    typer.Option(
        "--bootstrap-server",
        "-b",
        envvar="ODRADEK_BOOTSTRAP_SERVERS",
        show_envvar=True,
        help="Broker(s) to connect to, host:port[,host:port...].",
    ),
]
CommandConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--command-config",
        exists=True,
        dir_okay=False,
        readable=True,
        help="Properties file (key=value lines) of client configs, e.g. security settings.",
    ),
]
PropertyOption = Annotated[
    list[str] | None,
    typer.Option(
        "--property",
        metavar="KEY=VALUE",
        help="A librdkafka client config, repeatable; overrides --command-config.",
    ),
]


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientOptions:
    """The connection options every client command takes."""

    bootstrap: str
    command_config: Path | None = None
    properties: tuple[str, ...] = ()

    @classmethod
    def of(
        cls, bootstrap: str, command_config: Path | None, properties: list[str] | None
    ) -> ClientOptions:
        return cls(
            bootstrap=bootstrap, command_config=command_config, properties=tuple(properties or ())
        )


class CliError(Exception):
    """A failure reported as one line on stderr: exit code 1, or 2 for a usage error."""

    def __init__(self, message: str, *, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


def usage_error(message: str) -> CliError:
    return CliError(message, exit_code=2)


def print_error(message: str) -> None:
    """Write one ``error: ...`` line to stderr."""
    sys.stderr.write(f"error: {message}\n")
    sys.stderr.flush()


def exit_with(error: CliError) -> NoReturn:
    print_error(error.message)
    raise typer.Exit(error.exit_code)


@contextmanager
def reported_errors() -> Iterator[None]:
    """Turn CliError and stray Kafka exceptions into one line on stderr and an exit code.

    Ctrl-C that a command does not handle itself exits with 130, quietly.
    """
    try:
        yield
    except CliError as exc:
        exit_with(exc)
    except KafkaException as exc:
        exit_with(CliError(describe_kafka_exception(exc)))
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


def stdout_console() -> Console:
    """A console for tables on stdout; when piped, wide enough that rows never wrap."""
    width = None if sys.stdout.isatty() else 4096
    return Console(highlight=False, width=width, soft_wrap=False)


# --- configuration --------------------------------------------------------------------


def parse_pairs(items: Iterable[str], option: str) -> dict[str, str]:
    """Parse ``key=value`` items (value may contain '='); a malformed one is a usage error."""
    pairs: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise usage_error(f"{option} expects KEY=VALUE, got {item!r}")
        pairs[key.strip()] = value
    return pairs


def read_properties_file(path: Path) -> dict[str, str]:
    """A ``--command-config`` file, in the broker's own properties syntax."""
    try:
        return read_properties(path)
    except ConfigError as exc:
        raise CliError(f"--command-config: {exc}") from None


def _silent_logger() -> logging.Logger:
    # librdkafka logs through this logger instead of printing to stderr itself.
    logger = logging.getLogger("odradek.cli.librdkafka")
    if not logger.handlers:
        logger.addHandler(logging.NullHandler())
    logger.propagate = False
    return logger


def client_config(
    options: ClientOptions,
    *,
    defaults: Mapping[str, Any] | None = None,
    flags: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Build a librdkafka config.

    Precedence, lowest first: our defaults, the command's ``defaults``, the
    ``--command-config`` file, ``--property`` items, then the command's explicit
    ``flags`` (options such as ``--acks`` that the user gave on the command line).
    """
    config: dict[str, Any] = {
        "client.id": "odradek-cli",
        "logger": _silent_logger(),
        "log.connection.close": False,
    }
    config.update(defaults or {})
    if options.command_config is not None:
        config.update(read_properties_file(options.command_config))
    config.update(parse_pairs(options.properties, "--property"))
    config.update(flags or {})
    # The address comes from -b (or its env var) only, so that error messages name it.
    config["bootstrap.servers"] = options.bootstrap
    return config


def admin_client(options: ClientOptions) -> AdminClient:
    """An AdminClient for the command's options; a bad config is one clear line."""
    try:
        return AdminClient(client_config(options))
    except (KafkaException, ValueError, TypeError) as exc:
        raise invalid_config(exc) from None


def invalid_config(exc: Exception) -> CliError:
    """A client constructor rejected the config (unknown key, bad value)."""
    error = kafka_error_of(exc)
    detail = error.str() if error is not None else str(exc)
    return CliError(f"invalid client configuration: {detail} (check --property/--command-config)")


# --- Kafka errors -----------------------------------------------------------------------


def kafka_error_of(exc: BaseException) -> KafkaError | None:
    """The KafkaError carried by a KafkaException, if it carries one."""
    if exc.args and isinstance(exc.args[0], KafkaError):
        return exc.args[0]
    return None


def describe_kafka_error(error: KafkaError) -> str:
    """``NAME: message`` with the broker's (or librdkafka's) own message.

    Broker errors go by Kafka's names (INVALID_TOPIC_EXCEPTION), which librdkafka
    abbreviates differently (TOPIC_EXCEPTION); local client errors keep librdkafka's.
    """
    message = error.str()
    name = kafka_error_name(error.code()) or error.name()
    return f"{name}: {message}" if message and message != name else name


def kafka_error_name(code: int) -> str | None:
    """Kafka's name for a broker error code, or None for librdkafka's local codes."""
    try:
        return ErrorCode(code).name.upper() if code > 0 else None
    except ValueError:
        return None


def describe_kafka_exception(exc: KafkaException) -> str:
    error = kafka_error_of(exc)
    return describe_kafka_error(error) if error is not None else str(exc)


def unreachable(bootstrap: str, why: str | None = None) -> CliError:
    reason = why or f"within {CONNECT_TIMEOUT_S:g}s"
    return CliError(
        f"cannot reach a broker at {bootstrap} {reason} "
        '(is "odradek server" running? use --bootstrap-server)'
    )


def _refused_everywhere(bootstrap: str) -> bool:
    """Whether every bootstrap address actively refuses a TCP connection.

    librdkafka would retry until the metadata timeout; a refused connection is a
    definite answer, so the user hears it at once.
    """
    addresses = [item.strip() for item in bootstrap.split(",") if item.strip()]
    for address in addresses:
        host, _, port = address.rpartition(":")
        try:
            with socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=2):
                return False
        except ConnectionRefusedError:
            continue
        except (OSError, ValueError):
            return False
    return bool(addresses)


def fetch_metadata(client: Any, bootstrap: str, topic: str | None = None) -> ClusterMetadata:
    """Metadata from the cluster, or a CliError saying the broker cannot be reached.

    ``client`` is an AdminClient, Producer or Consumer: all three have ``list_topics``.
    With ``topic``, only that topic is asked for.
    """
    if _refused_everywhere(bootstrap):
        raise unreachable(bootstrap, "(connection refused)")
    try:
        metadata = client.list_topics(topic=topic, timeout=CONNECT_TIMEOUT_S)
    except KafkaException as exc:
        error = kafka_error_of(exc)
        no_broker = {
            KafkaError._TRANSPORT,
            KafkaError._TIMED_OUT,
            KafkaError._ALL_BROKERS_DOWN,
            KafkaError._RESOLVE,
        }
        if error is None or error.code() in no_broker:
            raise unreachable(bootstrap) from None
        raise CliError(f"cannot fetch metadata: {describe_kafka_error(error)}") from None
    assert isinstance(metadata, ClusterMetadata)
    return metadata
