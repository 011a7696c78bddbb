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
    """Every public module of this package with a ``register(app)`` adds its commands: a
    new command group is a new module. Imported here so ``odradek --help`` stays fast."""
    import importlib  # noqa: PLC0415
    import pkgutil  # noqa: PLC0415

    import odradek.cli  # noqa: PLC0415

    first = ("server", "topics", "produce", "consume")

    def order(info: pkgutil.ModuleInfo) -> tuple[int, str]:
        return (first.index(info.name) if info.name in first else len(first), info.name)

    for info in sorted(pkgutil.iter_modules(odradek.cli.__path__), key=order):
        if info.name.startswith("_") or info.name in ("main", "common"):
            continue
        module = importlib.import_module(f"odradek.cli.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(app)


def main() -> None:
    _register()
    app()
