"""The `cartlift` command. Each command group lives in its own module and holds no logic."""

from __future__ import annotations

import typer

from cartlift.cli import (
    _act,
    _analytics,
    _deliver,
    _demo,
    _events,
    _experiments,
    _impact,
    _predict,
    _recommend,
    _serve,
    _simulate,
)

app = typer.Typer(
    name="cartlift",
    help="cartlift: turn more carts into orders, on your store's own data.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for _module in (
    _demo,
    _events,
    _simulate,
    _analytics,
    _recommend,
    _predict,
    _act,
    _deliver,
    _experiments,
    _impact,
    _serve,
):
    _module.register(app)


def main() -> None:
    """Entry point of the `cartlift` script."""
    app()


__all__ = ["app", "main"]
