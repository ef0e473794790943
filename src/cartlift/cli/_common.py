"""What every command shares: the --db and --json options, opening the store, output, errors."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from cartlift._jsonable import jsonable
from cartlift.errors import CartliftError

console = Console(stderr=True)
"""Messages and progress go to stderr, so stdout carries only the result (and --json stays parseable)."""
out = Console()

DbOption = Annotated[
    Path | None,
    typer.Option(
        "--db",
        envvar="CARTLIFT_DB",
        help="The store's DuckDB file (default: cartlift.duckdb, or the CARTLIFT_DB variable).",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as JSON (for scripts).")]


def open_store(db: Path | None, *, read_only: bool = False) -> Any:
    """Open the event store (imported here so `cartlift --help` stays fast)."""
    from cartlift.events import EventStore

    return EventStore(db, read_only=read_only)


def emit_json(data: Any) -> None:
    """Print ``data`` as JSON on stdout."""
    sys.stdout.write(json.dumps(jsonable(data), indent=2) + "\n")


@contextmanager
def progress_bar() -> Iterator[Callable[[str, float], None]]:
    """A Rich progress bar fed by ``callback(label, percent)``; one line per stage label."""
    tasks: dict[str, TaskID] = {}
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>5.1f}%"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:

        def update(label: str, percent: float) -> None:
            if label not in tasks:
                tasks[label] = progress.add_task(label, total=100)
            progress.update(tasks[label], completed=min(percent, 100.0))

        yield update


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print an error and return the Exit to raise (no stack trace for expected errors)."""
    console.print(f"[bold red]error:[/] {escape(message)}")  # a message may hold [brackets]
    return typer.Exit(code)


def guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn cartlift's own errors into a one-line message and exit code 2."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except CartliftError as e:
            raise fail(str(e)) from None

    return wrapper
