"""`cartlift impact` and `cartlift holdout`: the program's incremental profit against the global holdout."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from cartlift.cli._common import DbOption, JsonOption, emit_json, guarded, open_store, out


def register(app: typer.Typer) -> None:
    """Add `cartlift impact` and `cartlift holdout` to ``app``."""

    @app.command()
    @guarded
    def impact(
        start: Annotated[
            str | None, typer.Option("--from", help="Carts abandoned from this date or time (UTC).")
        ] = None,
        end: Annotated[
            str | None, typer.Option("--to", help="Carts abandoned up to this date (included) or time (UTC).")
        ] = None,
        phase: Annotated[
            int | None, typer.Option(help="Holdout phase (default: the one in force).", min=1)
        ] = None,
        window_hours: Annotated[
            float, typer.Option("--window-hours", help="How long after a cart a purchase counts.", min=1)
        ] = 168.0,
        db: DbOption = None,
        json: JsonOption = False,
    ) -> None:
        """How much more profit, revenue and conversion the program brought, with 95 % intervals.

        Abandoned carts are split by a hash into a global holdout (never messaged; 10 % by default,
        see `cartlift holdout`) and treated carts; the difference of their mean profit, times the
        treated carts, is the incremental profit. A cart counts once its outcome window has closed.
        """
        from cartlift.act import impact as compute

        with open_store(db) as store:
            doc = compute(store, start=start, end=end, phase=phase, window_hours=window_hours)
        if json:
            emit_json(doc)
            return
        print_impact(doc)

    @app.command()
    @guarded
    def holdout(
        share: Annotated[
            float | None,
            typer.Option(
                help="Hold out this share of carts from now on (a new share starts a new phase).",
                min=0,
                max=0.5,
            ),
        ] = None,
        db: DbOption = None,
        json: JsonOption = False,
    ) -> None:
        """Show the global holdout's phases, or set its share (e.g. --share 0.05)."""
        from cartlift.act import current_holdout, holdout_phases, set_holdout

        with open_store(db) as store:
            now = set_holdout(store, share) if share is not None else current_holdout(store)
            phases = holdout_phases(store)
        doc = {"current": now.to_dict(), "phases": phases.to_dict("records")}
        if json:
            emit_json(doc)
            return
        table = Table("phase", "share", "salt", "carts from", title="global holdout (carts never messaged)")
        for r in phases.itertuples():
            started = (
                "the beginning" if r.started_at is None or str(r.started_at) == "NaT" else str(r.started_at)
            )
            table.add_row(str(r.phase), f"{r.share:.0%}", str(r.salt), started)
        out.print(table)


def _money(x: Any, currency: str) -> str:
    return "—" if x is None else f"{x:+,.2f} {currency}"


def print_impact(doc: dict[str, Any]) -> None:
    """The headline, then the groups and the per-action rows, as tables."""
    cur = doc["currency"]
    p, r, c = doc["incremental_profit"], doc["incremental_revenue"], doc["conversion"]
    carts = doc["carts"]
    out.print(
        f"[bold]incremental profit {_money(p['estimate'], cur)}[/] "
        f"(95 % CI {_money(p['ci_low'], cur)} to {_money(p['ci_high'], cur)}) on {carts['treated']:,} treated carts, "
        f"against {carts['holdout']:,} held out ({doc['holdout_share']:.0%}, phase {doc.get('phase')})"
    )
    table = Table(
        "measure", "held out", "treated", "difference (95 % CI)", title="treated carts vs the holdout"
    )

    def pct(x: Any) -> str:
        return "—" if x is None else f"{x:.2%}"

    diff = (
        "—"
        if c["difference"] is None
        else f"{c['difference']:+.2%} ({c['ci_low']:+.2%} to {c['ci_high']:+.2%})"
    )
    table.add_row("conversion", pct(c["holdout"]), pct(c["treated"]), diff)
    for name, block in (("revenue", r), ("profit", p)):
        table.add_row(
            f"incremental {name}",
            "",
            "",
            f"{_money(block['estimate'], cur)} ({_money(block['ci_low'], cur)} to {_money(block['ci_high'], cur)})",
        )
    cost = doc.get("holdout_cost")
    if cost:
        table.add_row("what the holdout cost", "", "", f"{_money(-cost['estimate'], cur)} (profit forgone)")
    out.print(table)
    if doc["by_action"]:
        acts = Table(
            "action",
            "carts",
            "conversion",
            "profit per cart",
            "vs holdout per cart (95 % CI)",
            title="by action (chosen by the policy, not randomised: descriptive)",
        )
        for a in doc["by_action"]:
            vs = (
                "—"
                if a["vs_holdout_per_cart"] is None
                else (f"{a['vs_holdout_per_cart']:+.2f} ({a['ci_low']:+.2f} to {a['ci_high']:+.2f})")
            )
            acts.add_row(
                a["action"], f"{a['carts']:,}", pct(a["conversion"]), f"{a['profit_per_cart']:.2f} {cur}", vs
            )
        out.print(acts)
    for note in doc.get("notes", []):
        out.print(f"note: {note}")
