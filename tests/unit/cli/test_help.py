"""Every command and subcommand prints its help (rich renders the help text as markup:
a stray ``[...]`` in it crashed ``odradek server --help`` once)."""

from __future__ import annotations

from typing import Any

import typer
from typer.testing import CliRunner


def _paths(command: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command path under ``command`` (a click group or command)."""
    found = [prefix]
    for name, sub in getattr(command, "commands", {}).items():
        found += _paths(sub, (*prefix, name))
    return found


def test_every_command_prints_its_help() -> None:
    # The CLI blocks hypothesis's import when it is not loaded yet (see cli/main.py);
    # pytest's hypothesis plugin needs it, so it is loaded first.
    import hypothesis  # noqa: F401, PLC0415

    from odradek.cli.main import _register, app  # noqa: PLC0415

    _register()
    root = typer.main.get_command(app)
    paths = _paths(root)
    assert ("server",) in paths and ("configs", "alter") in paths
    runner = CliRunner()
    for path in paths:
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output, result.exception)
        assert "Usage" in result.output, path
