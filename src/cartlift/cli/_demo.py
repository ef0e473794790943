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
from rich.table import Table

from cartlift.analytics import format_money
from cartlift.cli import _act, _analytics, _deliver, _experiments, _predict, _recommend, _simulate
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
        abandonment prediction, next best action, experiments, and delivery (every abandoned
        cart decided with the global holdout first, sent as .eml files into outbox/, answered by
        the simulated customers), attribution of their orders to the messages; write the report.
        Prints where everything went."""
        from cartlift.act import attribute
        from cartlift.analytics import store_summary
        from cartlift.store import EventStore

        out_dir.mkdir(parents=True, exist_ok=True)
        db = out_dir / "cartlift.duckdb"
        db.unlink(missing_ok=True)  # a demo starts from a fresh store, so its numbers are its own
        results: dict[str, Any] = {"store": str(db.resolve())}
        with EventStore(db) as store:
            steps: list[tuple[str, Callable[[], Any]]] = [
                ("simulate", lambda: _simulate.demo_step(store, out_dir, users=users, days=days, seed=seed)),
                ("summary", lambda: store_summary(store)),
                ("analytics", lambda: _analytics.demo_step(store, out_dir)),
                ("recommend", lambda: _recommend.demo_step(store, out_dir)),
                ("abandonment", lambda: _predict.demo_step(store, out_dir)),
                ("act", lambda: _act.demo_step(store, out_dir)),
                ("experiments", lambda: _experiments.demo_step(store, out_dir)),
                # the simulated customers' answers add purchases to the store's events
                ("deliver", lambda: _deliver.demo_step(store, out_dir)),
                # the answered messages' orders, credited (so decision_outcomes carries their revenue)
                ("attribution", lambda: attribute(store)),
                ("report", lambda: _analytics.report_step(store, out_dir)),  # last: it shows every step
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
        out.print(highlights(results))
        out.print(f"\nstore:  {results['store']}")
        report = (results.get("report") or {}).get("report")
        if report:
            out.print(f"report: {Path(report).resolve()}")


def highlights(results: dict[str, Any]) -> Table:
    """One line per step of the loop, from the numbers each step returned."""
    table = Table("step", "result", title="the loop on the simulated store", show_lines=False)
    funnel = (results.get("analytics") or {}).get("funnel") or []
    if funnel:
        table.add_row("funnel", " → ".join(f"{s['name']} {s['count']:,}" for s in funnel))
    summary = results.get("summary") or {}
    if summary.get("cart_abandonment_rate") is not None:
        table.add_row(
            "carts",
            f"{summary['sessions_with_cart']:,} sessions with a cart, {summary['cart_abandonment_rate']:.1%} abandoned "
            f"({format_money(summary['abandoned_cart_value'], summary.get('currency'), decimals=0)} of value)",
        )
    board = (results.get("recommend") or {}).get("leaderboard") or []
    if board:
        best = board[0]
        taste = best.get("taste_NDCG@10")
        table.add_row(
            "recommend",
            f"best {best['model']}: NDCG@10 {best['NDCG@10']:.3f}, HR@20 {best['HR@20']:.3f}"
            + (f"; NDCG@10 against the true tastes {taste:.3f}" if taste is not None else ""),
        )
    model = results.get("abandonment") or {}
    if "roc_auc" in model:
        truth = model.get("roc_auc_true")
        table.add_row(
            "predict",
            f"abandonment ROC-AUC {model['roc_auc']:.3f}"
            + (f" vs {truth:.3f} for the true probabilities ({model['auc_ratio']:.1%})" if truth else "")
            + f", ECE {model['ece']:.3f}",
        )
    shares = (results.get("act") or {}).get("share_of_oracle") or {}
    if shares:
        table.add_row(
            "act",
            "profit per abandoned cart, share of the oracle's: "
            + ", ".join(f"{name} {share:.0%}" for name, share in shares.items() if name != "oracle"),
        )
    sent = results.get("deliver") or {}
    if sent.get("carts"):
        table.add_row(
            "deliver",
            f"{sent['scheduled']:,} messages scheduled for {sent['carts']:,} abandoned carts "
            f"({sent['policy']} policy; {sent.get('held_out_carts', 0):,} carts held out): {sent['sent']:,} sent to {sent['outbox']}, {sent['cancelled']:,} cancelled, "
            f"{sent['deferred']:,} deferrals; {sent['clicked']:,} clicked, {sent['recovered']:,} carts recovered "
            f"({sent['recovered_anyway']:,} would have come back without a message)",
        )
    credited = (results.get("attribution") or {}).get("attributed")
    if credited and (results.get("attribution") or {}).get("messages", {}).get("sent"):
        table.add_row(
            "attribute",
            f"{credited['orders']:,} orders ({format_money(credited['revenue'], results['attribution'].get('currency'))}) "
            "came after a message: "
            f"{credited['click']['orders']:,} after a click, {credited['view']['orders']:,} after an unclicked message",
        )
    experiment = results.get("experiments") or {}
    if "verdict" in experiment:
        table.add_row("prove", str(experiment["verdict"]))
    return table
