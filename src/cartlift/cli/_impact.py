"""`cartlift impact`, `cartlift holdout` and `cartlift attribution`: what the program earned, measured
against the global holdout, and which messages came before each order."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from cartlift.cli._common import DbOption, JsonOption, emit_json, guarded, open_store, out


def register(app: typer.Typer) -> None:
    """Add `cartlift impact`, `cartlift holdout` and `cartlift attribution` to ``app``."""

    @app.command()
    @guarded
    def attribution(
        click_window: Annotated[
            str | None,
            typer.Option(
                "--click-window",
                help="Credit an order to a message clicked this long before it, e.g. 7d, 48h "
                "(default CARTLIFT_ATTRIBUTION_CLICK_HOURS, 168 hours).",
            ),
        ] = None,
        view_window: Annotated[
            str | None,
            typer.Option(
                "--view-window",
                help="Else to a message sent this long before it, e.g. 1d, 0 for none "
                "(default CARTLIFT_ATTRIBUTION_VIEW_HOURS, 24 hours).",
            ),
        ] = None,
        rec_window: Annotated[
            str | None,
            typer.Option(
                "--rec-window",
                help="Credit a bought product to the last recommendation list that showed it this long before, "
                "e.g. 24h (default CARTLIFT_ATTRIBUTION_REC_HOURS, 24 hours).",
            ),
        ] = None,
        db: DbOption = None,
        json: JsonOption = False,
    ) -> None:
        """Link every order to the messages clicked or sent before it, and credit it to one.

        An order is credited to the customer's last click on a message within the click window,
        else to the last message sent within the view window. The links are stored in the
        ``attributions`` table (rewritten each run), and each decision's credited revenue and
        profit appear in ``decision_outcomes``. A bought product that a recommendation list showed
        the customer within the recommendation window (the impression log ``rec_impressions``) is
        credited to the last such list, with its revenue, in ``rec_attributions``. Attribution says
        which message or list came before a purchase, not that it caused it: `cartlift impact`
        measures that against the holdout.
        """
        from cartlift.act import attribute
        from cartlift.store import connect, parse_store_url

        url = parse_store_url(db)
        if url.is_postgres:  # the same SQL runs on PostgreSQL itself: no working copy needed
            pg = connect(url)
            try:
                doc = attribute(pg, click=click_window, view=view_window, rec=rec_window)
            finally:
                pg.close()
        else:
            with open_store(db) as store:
                doc = attribute(store, click=click_window, view=view_window, rec=rec_window)
        if json:
            emit_json(doc)
            return
        print_attribution(doc)

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
        forgone = cost["estimate"]
        table.add_row(
            "what the holdout cost",
            "",
            "",
            f"{_money(forgone, cur)} (profit forgone)"
            if forgone >= 0
            else f"nothing so far (held-out carts made {_money(-forgone, cur).lstrip('+')} more)",
        )
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
    if doc.get("by_segment"):
        segs = Table(
            "segment",
            "held out",
            "treated",
            "conversion held out / treated",
            "incremental profit (95 % CI)",
            title="by segment (randomised within each segment)",
        )
        for s in doc["by_segment"]:
            p_seg, conv = s["incremental_profit"], s["conversion"]
            segs.add_row(
                f"{s['dimension']}: {s['segment']}",
                f"{s['carts']['holdout']:,}",
                f"{s['carts']['treated']:,}",
                f"{pct(conv['holdout'])} / {pct(conv['treated'])}",
                "—"
                if p_seg["estimate"] is None
                else f"{_money(p_seg['estimate'], cur)} ({_money(p_seg['ci_low'], cur)} to {_money(p_seg['ci_high'], cur)})",
            )
        out.print(segs)
    for note in doc.get("notes", []):
        out.print(f"note: {note}")


def _hours(h: float) -> str:
    return f"{h / 24:g} day{'s' if h != 24 else ''}" if h >= 24 and h % 24 == 0 else f"{h:g} hours"


def print_attribution(doc: dict[str, Any]) -> None:
    """The headline, then one row per action and channel."""
    cur, a = doc["currency"], doc["attributed"]
    share = a["share_of_revenue"]
    out.print(
        f"[bold]{a['orders']:,} of {doc['orders']:,} orders credited to messages[/]: "
        f"{a['revenue']:,.2f} {cur}" + (f" ({share:.1%} of revenue)" if share is not None else "")
    )
    out.print(
        f"  {a['click']['orders']:,} after a click (within {_hours(doc['click_window_hours'])}), "
        f"{a['view']['orders']:,} after a message without a click (within {_hours(doc['view_window_hours'])}); "
        f"{doc['messages']['sent']:,} messages sent, {doc['messages']['clicked']:,} clicked"
    )
    if doc["by_action"]:
        table = Table(
            "action",
            "channel",
            "sent",
            "clicked",
            "orders",
            "revenue",
            "profit",
            title="by action (last touch)",
        )
        for r in doc["by_action"]:
            table.add_row(
                r["action"],
                r["channel"],
                f"{r['sent']:,}",
                f"{r['clicked']:,}",
                f"{r['orders']:,}",
                f"{r['revenue']:,.2f} {cur}",
                f"{r['profit']:,.2f} {cur}",
            )
        out.print(table)
    recs, rb = doc["recommendations"], a["recommendation"]
    if recs["lists_shown"]:
        out.print(
            f"[bold]{rb['items']:,} products in {rb['orders']:,} orders bought after a recommendation[/]: "
            f"{rb['revenue']:,.2f} {cur} (shown within {_hours(doc['rec_window_hours'])} before; "
            f"{recs['lists_shown']:,} lists, {recs['items_shown']:,} items shown)"
        )
        table = Table("shown in", "lists", "items shown", "products bought", "orders", "revenue",
                      title="by where the list was shown (last list)")  # fmt: skip
        for r in recs["by_context"]:
            table.add_row(r["context"], f"{r['lists']:,}", f"{r['items_shown']:,}", f"{r['items_bought']:,}",
                          f"{r['orders']:,}", f"{r['revenue']:,.2f} {cur}")  # fmt: skip
        out.print(table)
    else:
        out.print("no recommendation list logged yet (rec_impressions): nothing to credit to recommendations")
    out.print(
        "note: credit says which message or list came before an order, not that it caused it (see `cartlift impact`)."
    )
