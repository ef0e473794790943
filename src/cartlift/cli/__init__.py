"""The `cartlift` command. Each command group lives in its own module and holds no logic."""

from __future__ import annotations

import typer

from cartlift.cli import _events

app = typer.Typer(
    name="cartlift",
    help="cartlift: turn more carts into orders, on your store's own data.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_events.register(app)


def main() -> None:
    """Entry point of the `cartlift` script."""
    app()


__all__ = ["app", "main"]
