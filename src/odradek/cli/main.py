"""The ``odradek`` command: one typer app, one module per command group."""

from __future__ import annotations

import sys

# kio registers hypothesis strategies for its types at import whenever hypothesis is
# installed (as it is with our test extras). That costs seconds of start-up, a couple of
# hundred MB, and a `.hypothesis/` directory in the user's working directory; the CLI and
# the broker never use them. A None entry in sys.modules makes that import fail cleanly,
# which kio treats as "hypothesis not installed".
if "hypothesis" not in sys.modules:
    sys.modules["hypothesis"] = None  # type: ignore[assignment]

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
    from odradek.cli import (  # noqa: PLC0415
        cluster,
        consume,
        groups,
        produce,
        server,
        topics,
        transactions,
    )

    for module in (server, topics, produce, consume, groups, cluster, transactions):
        module.register(app)


def main() -> None:
    _register()
    app()
