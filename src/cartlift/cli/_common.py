"""What every command shares: the --db, --json and engine options, opening the store, output, errors."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from cartlift._jsonable import jsonable
from cartlift.errors import CartliftError

if TYPE_CHECKING:
    from cartlift.store import EventStore

console = Console(stderr=True)
"""Messages and progress go to stderr, so stdout carries only the result (and --json stays parseable)."""
out = Console()

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        envvar=["CARTLIFT_DB", "CARTLIFT_SERVE_DB"],
        help="The store: a DuckDB file (default: cartlift.duckdb, or the CARTLIFT_DB variable), "
        "or postgresql://user@host/db[?schema=NAME] (commands work on a copy and write back what they add).",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as JSON (for scripts).")]
EngineOption = Annotated[
    str,
    typer.Option(
        "--engine", help="Batch engine: duckdb (embedded) or spark (pip install 'cartlift\\[spark]')."
    ),
]
SparkMasterOption = Annotated[
    str | None,
    typer.Option("--spark-master", help="Spark master URL: local[*] (default), spark://host:7077, yarn ..."),
]
EventsOption = Annotated[
    Path | None,
    typer.Option(
        "--events",
        help="With --engine spark: an exported event table (Parquet file, folder or glob) instead of the store.",
    ),
]


def open_store(db: str | None, *, read_only: bool = False) -> AbstractContextManager[EventStore]:
    """Open the store named by ``--db`` (`cartlift.store.open_store`; use it in a ``with`` block)."""
    from cartlift.store import open_store as open_named

    return open_named(db, read_only=read_only)


def one_line(error: str) -> str:
    """An error as one line; DuckDB's lock conflict becomes what to do about it.

    DuckDB lets one process at a time open a file (even read-only opens wait for the writer to
    go), so a running `cartlift serve` keeps every other command out of its store.
    """
    held = re.search(r'lock on file "([^"]+)"', error)
    if held is None or "Conflicting lock" not in error:
        return " ".join(error.split())
    pid = re.search(r"\(PID (\d+)\)", error)
    holder = f"process {pid.group(1)}" if pid else "another process"
    return (
        f"The store {held.group(1)!r} is in use by {holder} (a running `cartlift serve`?) and a DuckDB "
        "file has one user at a time: stop that process and run this again, use the service's API "
        "meanwhile, or keep the store on PostgreSQL (--db postgresql://...) so both can use it."
    )


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
    # one line (no wrapping: logs and scripts read it whole); a message may hold [brackets]
    console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    return typer.Exit(code)


def guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn cartlift's own errors into a one-line message and exit code 2."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except CartliftError as e:
            raise fail(one_line(str(e))) from None
        except KeyboardInterrupt:
            # loads and writes are transactions: an interrupted one is rolled back
            raise fail("interrupted; nothing of this command was written.", 130) from None
        except RuntimeError as e:
            # Ctrl-C inside a DuckDB query arrives as DuckDB's "Query interrupted", not as KeyboardInterrupt
            if "interrupted" not in str(e).lower():
                raise
            raise fail("interrupted; nothing of this command was written.", 130) from None
        except OSError as e:
            raise fail(f"{e.strerror or e}: {e.filename!r}" if e.filename else str(e)) from None

    return wrapper


def print_warnings(warnings: list[dict[str, Any]]) -> None:
    """Print each guardrail (`cartlift.guardrails`) as one line on stderr, also with ``--json``."""
    for w in warnings:
        console.print(f"[bold yellow]warning ({w['code']}):[/] {escape(w['message'])}", soft_wrap=True)
