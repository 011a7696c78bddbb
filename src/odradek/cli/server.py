"""``odradek server``: run a broker in the foreground until SIGTERM or SIGINT.

Config precedence, lowest first: Kafka's defaults, ``--config FILE``, the short flags
(``--data-dir``, ``--listeners``, ...), then ``--override key=value`` (as
kafka-server-start's ``--override``).
"""

from __future__ import annotations

import asyncio
import errno
import faulthandler
import gc
import logging
import signal
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from odradek.config import BrokerConfig, ConfigError, parse_override, read_properties

SHUTDOWN_DEADLINE_SECONDS = 10.0
EXIT_DEADLINE_SECONDS = 10.0
"""After a clean shutdown, how long the interpreter may take to exit (``asyncio.run``
cancelling what is left, threads being joined) before the process dumps every thread's
stack to stderr and exits with status 1: a task or thread that never ends would
otherwise keep a stopped broker alive until something kills it, with no clue why."""
LEFTOVER_TASKS_SECONDS = 2.0
"""How long the tasks a shutdown left running get to end once cancelled."""

log = logging.getLogger("odradek.server")


def server(  # noqa: PLR0917 - one parameter per command-line option, as typer needs
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir", help="Directory for the logs (log.dirs). [default: ./odradek-data]"
        ),
    ] = None,
    listeners: Annotated[
        str | None,
        typer.Option(help="Comma-separated listeners. [default: PLAINTEXT://127.0.0.1:9092]"),
    ] = None,
    advertised_listeners: Annotated[
        str | None,
        typer.Option(help="Listeners given to clients, when they differ from --listeners."),
    ] = None,
    broker_id: Annotated[int | None, typer.Option(help="This broker's id. [default: 1]")] = None,
    zookeeper: Annotated[
        str | None,
        typer.Option(
            help="ZooKeeper host:port\\[/chroot] (zookeeper.connect): join a cluster. "
            "[default: none, a single node]"
        ),
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="server.properties-style config file.")
    ] = None,
    override: Annotated[
        list[str] | None,
        typer.Option(help="A config key=value with Kafka's names; repeatable."),
    ] = None,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING or ERROR.")] = "INFO",
) -> None:
    """Run a broker: a single node, or a member of a cluster with --zookeeper."""
    level = logging.getLevelName(log_level.upper())
    if not isinstance(level, int):
        _fail(f"--log-level {log_level!r} is not one of DEBUG, INFO, WARNING, ERROR", code=2)
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        props = read_properties(config) if config is not None else {}
        if data_dir is not None:
            props["log.dirs"] = str(data_dir)
        if listeners is not None:
            props["listeners"] = listeners
        if advertised_listeners is not None:
            props["advertised.listeners"] = advertised_listeners
        if broker_id is not None:
            props["broker.id"] = str(broker_id)
        if zookeeper is not None:
            props["zookeeper.connect"] = zookeeper
        for item in override or []:
            key, value = parse_override(item)
            props[key] = value
        broker_config = BrokerConfig(props)
    except ConfigError as exc:
        _fail(str(exc))
    for name in broker_config.unknown:
        log.warning("ignoring unknown config %s", name)
    code = asyncio.run(_run(broker_config))
    raise typer.Exit(code)


async def _run(config: BrokerConfig) -> int:
    # Imported here so client commands never load the broker.
    from odradek.broker.server import Broker, BrokerStartError  # noqa: PLC0415
    from odradek.storage.errors import KafkaStorageError  # noqa: PLC0415

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        broker = Broker(config)
        # Starting may wait (for ZooKeeper to answer); a signal meanwhile stops it.
        starting = asyncio.ensure_future(broker.start())
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():
            starting.cancel()
            log.info("stopped before the broker was ready")
            await broker.stop()
            return 0
        stopping.cancel()
        starting.result()
        _freeze_what_lives_on()
    except (ConfigError, BrokerStartError) as exc:
        _fail(str(exc))
    except OSError as exc:
        _fail(_describe_os_error(exc, config))
    except KafkaStorageError as exc:  # e.g. a full disk while writing meta.properties
        _fail(f"cannot start the broker: {exc}")
    await stop.wait()
    code = 0
    try:
        async with asyncio.timeout(SHUTDOWN_DEADLINE_SECONDS):
            await broker.stop()
    except TimeoutError:
        log.error("shutdown took longer than %.0fs; exiting anyway", SHUTDOWN_DEADLINE_SECONDS)
        code = 1
    await _cancel_leftover_tasks()
    faulthandler.dump_traceback_later(EXIT_DEADLINE_SECONDS, exit=True)
    return code


async def _cancel_leftover_tasks() -> None:
    """Cancel what the broker's stop left running, as ``asyncio.run`` would, but name
    each task that outlives its cancellation: ``asyncio.run`` would wait for it for
    ever, and the stack dump of ``EXIT_DEADLINE_SECONDS`` shows only the event loop."""
    this = asyncio.current_task()
    leftovers = [task for task in asyncio.all_tasks() if task is not this]
    for task in leftovers:
        task.cancel()
    if not leftovers:
        return
    _, stubborn = await asyncio.wait(leftovers, timeout=LEFTOVER_TASKS_SECONDS)
    for task in stubborn:
        log.error(
            "%r outlived its cancellation; the process exits in %.0fs regardless",
            task,
            EXIT_DEADLINE_SECONDS,
        )


def _freeze_what_lives_on() -> None:
    """Take everything the started broker holds (modules, loaded logs, metadata) out of
    the garbage collector's full collections (``gc.freeze``): those objects live as long
    as the process, yet each full collection walked them all, stopping the event loop for
    30-80 ms even on a fresh broker, which made the whole 99.9th percentile of produce-to-
    consume latency. Collections still find garbage made from now on."""
    gc.collect()
    gc.freeze()


def _describe_os_error(exc: OSError, config: BrokerConfig) -> str:
    if exc.errno == errno.EADDRINUSE:
        return (
            f"cannot listen on {', '.join(config.listeners)}: address already in use "
            "(is another broker running? pick another port with --listeners)"
        )
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        where = f" {exc.filename}" if exc.filename else ""
        return f"permission denied{where}: choose a writable --data-dir"
    return f"cannot start the broker: {exc.strerror or exc}"


def _fail(message: str, code: int = 1) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(code)


def register(app: typer.Typer) -> None:
    app.command("server")(server)
