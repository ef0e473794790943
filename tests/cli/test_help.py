"""Every command's --help renders, and says what it means (Rich markup must not eat text)."""

from __future__ import annotations

from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from cartlift.cli import app

runner = CliRunner()


def _commands(group: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found: list[tuple[str, ...]] = []
    for name, command in group.commands.items():
        found.append((*prefix, name))
        if hasattr(command, "commands"):  # a group (typer vendors its own click)
            found += _commands(command, (*prefix, name))
    return found


COMMANDS = _commands(typer.main.get_command(app))


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help_renders(command: tuple[str, ...]) -> None:
    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


@pytest.mark.parametrize(
    "command",
    [
        c
        for c in COMMANDS
        if c in [("funnel",), ("segments",), ("clv",), ("train",), ("abandonment", "features")]
    ],
    ids=" ".join,
)
def test_engine_help_keeps_the_install_command(command: tuple[str, ...]) -> None:
    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert "cartlift[spark]" in result.output


def _helps(group: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for name, command in group.commands.items():
        where = " ".join((*prefix, name))
        found += [(f"{where} {p.name}", p.help) for p in command.params if getattr(p, "help", None)]
        if command.help:
            found.append((where, command.help))
        if hasattr(command, "commands"):
            found += _helps(command, (*prefix, name))
    return found


def test_no_help_text_is_eaten_as_markup() -> None:
    """Rich reads ``[default: x]`` as a style tag and prints nothing of it: every help text must
    print as written (17 options had lost their defaults this way)."""
    from rich.text import Text

    eaten = [
        (where, text)
        for where, text in _helps(typer.main.get_command(app))
        if Text.from_markup(text).plain != text.replace("\\[", "[")
    ]
    assert not eaten, eaten
