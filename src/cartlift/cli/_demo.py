"""`cartlift demo`: the whole loop on a simulated store, in one command.

Each capability contributes one step (its ``demo_step`` in its CLI module); this module only
runs them in order, times them and prints what each wrote.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from cartlift.cli import _analytics, _experiments, _predict, _recommend, _simulate
from cartlift.cli._common import JsonOption, console, emit_json, guarded, out
from cartlift.cli._events import print_summary


def register(app: typer.Typer) -> None:
    """Add `cartlift demo` to ``app``."""

    @app.command()
    @guarded
    def demo(
        out_dir: Annotated[
            Path, typer.Option("--out", "-o", help="Folder for the store and the report.")
        ] = Path("cartlift-demo"),
        users: Annotated[int, typer.Option(help="Simulated customers.", min=10)] = 5_000,
        days: Annotated[int, typer.Option(help="Simulated days.", min=1)] = 30,
        seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same store.")] = 0,
        json: JsonOption = False,
    ) -> None:
        """Simulate a store, load it, and run the loop: funnel and customers, recommendations,
        abandonment prediction, experiments; write the report. Prints where everything went."""
        from cartlift.events import EventStore

        out_dir.mkdir(parents=True, exist_ok=True)
        db = out_dir / "cartlift.duckdb"
        db.unlink(missing_ok=True)  # a demo starts from a fresh store, so its numbers are its own
        results: dict[str, Any] = {"store": str(db.resolve())}
        with EventStore(db) as store:
            steps: list[tuple[str, Callable[[], Any]]] = [
                ("simulate", lambda: _simulate.demo_step(store, out_dir, users=users, days=days, seed=seed)),
                ("summary", store.summary),
                ("analytics", lambda: _analytics.demo_step(store, out_dir)),
                ("recommend", lambda: _recommend.demo_step(store, out_dir)),
                ("abandonment", lambda: _predict.demo_step(store, out_dir)),
                ("experiments", lambda: _experiments.demo_step(store, out_dir)),
            ]
            for name, step in steps:
                console.print(f"[bold]{name}[/] ...")
                t0 = time.perf_counter()
                results[name] = step()
                console.print(f"  done in {time.perf_counter() - t0:.1f} s")
                if name == "summary" and not json:
                    print_summary(results[name])
        if json:
            emit_json(results)
            return
        out.print(f"\nstore:  {results['store']}")
        report = (results.get("analytics") or {}).get("report")
        if report:
            out.print(f"report: {Path(report).resolve()}")
