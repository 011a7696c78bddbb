"""The ``odradek`` command: one typer app, one module per command group."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="odradek",
    help="Odradek: a Kafka-compatible event streaming platform.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register() -> None:
    # Imported here so `odradek --help` stays fast and each module registers itself.
    from odradek.cli import consume, produce, server, topics  # noqa: PLC0415

    for module in (server, topics, produce, consume):
        module.register(app)


def main() -> None:
    _register()
    app()
