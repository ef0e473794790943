"""The report's money sections: the summary on top, recommendations, next best action, delivery,
attribution of orders to messages, impact against the holdout.

Each reads what the store holds, or what the demo's steps wrote beside it (``artifacts``: the
recommendation leaderboard and the policy simulation, as JSON). A section without data says why
in one line instead of drawing an empty chart.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from cartlift.act import attribution_summary, impact
from cartlift.analytics import METRIC_LABELS, format_money, store_metrics
from cartlift.errors import CartliftError
from cartlift.report._section import Section, Table
from cartlift.store import EventStore

__all__ = [
    "attribution_section",
    "delivery_section",
    "impact_section",
    "next_best_action_section",
    "recommendations_section",
    "summary_section",
]


def _read(folder: Path | None, name: str) -> dict[str, Any] | None:
    if folder is None:
        return None
    hits = sorted(folder.rglob(name))
    return json.loads(hits[0].read_text()) if hits else None


def _interval(block: dict[str, Any] | None, currency: str) -> str:
    if not block or block.get("estimate") is None:
        return "not measurable yet"
    return (
        f"{format_money(block['estimate'], currency)} "
        f"(95 % CI {format_money(block['ci_low'], currency)} to {format_money(block['ci_high'], currency)})"
    )


def _impact_or_note(store: EventStore) -> tuple[dict[str, Any] | None, str | None]:
    try:
        return impact(store), None
    except CartliftError as e:
        return None, str(e)


def summary_section(store: EventStore, *, artifacts: Path | None = None) -> Section:
    """The first section: carts, abandonment, recovered carts, money, incremental profit, model, experiments."""
    m = store_metrics(store)
    cur = m.currency
    doc, why = _impact_or_note(store)
    rows: list[tuple[str, str]] = [
        (METRIC_LABELS["carts"], f"{m.carts:,}"),
        (
            METRIC_LABELS["abandonment_rate"],
            "no carts yet"
            if m.abandonment_rate is None
            else f"{m.abandonment_rate:.1%} ({m.abandoned_carts:,} carts, {m.open_carts:,} of them still open)",
        ),
        (METRIC_LABELS["abandoned_value"], format_money(m.abandoned_value, cur)),
        (
            METRIC_LABELS["recovered_carts"],
            f"{m.recovered_carts:,} ({format_money(m.recovered_value, cur)} bought within {m.recovery_hours:g} h)",
        ),
        (METRIC_LABELS["orders"], f"{m.orders:,}"),
        (METRIC_LABELS["revenue"], format_money(m.revenue, cur)),
        (METRIC_LABELS["average_order_value"], format_money(m.average_order_value, cur)),
        ("Incremental profit vs the holdout", why or _program_line(doc, cur)),
    ]
    credited = attribution_summary(store)
    if credited is not None and credited["messages"]["sent"]:
        a = credited["attributed"]
        rows.append(
            (
                "Orders after a message (attribution)",
                f"{a['orders']:,} orders, {format_money(a['revenue'], cur)} "
                f"({a['click']['orders']:,} after a click, {a['view']['orders']:,} after an unclicked message)",
            )
        )
        rb = a["recommendation"]
        if credited["recommendations"]["lists_shown"]:
            rows.append(
                (
                    "Products bought after a recommendation",
                    f"{rb['items']:,} products in {rb['orders']:,} orders, {format_money(rb['revenue'], cur)}",
                )
            )
    evaluation = _read(artifacts, "abandonment-evaluation.json")
    if evaluation:
        rows.append(
            (
                "Abandonment model (held-out carts)",
                f"ROC-AUC {evaluation['roc_auc']:.3f}, calibration error {evaluation['ece']:.3f}",
            )
        )
    else:
        rows.append(("Abandonment model", "not evaluated here (see the prediction section)"))
    running = _experiments(store)
    rows.append(("Experiments", ", ".join(running) if running else "none running"))
    notes = [
        "A cart is a session's cart; it is abandoned when no purchase follows its last add in the session; "
        "an open cart's session is still going, so it may still convert; a recovered cart was bought by "
        f"the same customer within {m.recovery_hours:g} hours. Money in {cur}."
    ]
    return Section(
        "Summary",
        tables=[Table(pd.DataFrame(rows, columns=["Measure", "Value"]), title="The store at a glance")],
        notes=notes,
    )


def _program_line(doc: dict[str, Any] | None, cur: str) -> str:
    """The incremental profit with its interval, or why there is none to show yet."""
    if not doc:
        return "not measurable yet"
    decided = [a for a in doc.get("by_action", []) if a["action"] != "(not decided)"]
    if not decided:
        return "not measured yet: the program has not decided for any cart of this store"
    return _interval(doc.get("incremental_profit"), cur)


def _experiments(store: EventStore) -> list[str]:
    from cartlift.experiments import list_experiments

    try:
        frame = list_experiments(store)
    except CartliftError:
        return []
    return [f"{name} ({int(n):,} exposed)" for name, n in zip(frame["name"], frame["exposed"], strict=True)]


def impact_section(store: EventStore) -> Section:
    """Treated carts against the global holdout: conversion, revenue, profit, by action."""
    import plotly.graph_objects as go

    doc, why = _impact_or_note(store)
    title = "Impact against the holdout"
    if doc is None:
        return Section(title, notes=[f"Not available for this store: {why}"])
    cur = doc["currency"]
    n = doc["carts"]
    c = doc["conversion"]
    head = (
        f"{n['treated']:,} treated carts against {n['holdout']:,} held out "
        f"({doc['holdout_share']:.0%} of carts, phase {doc['phase']}); incremental profit "
        f"{_interval(doc['incremental_profit'], cur)}, revenue {_interval(doc['incremental_revenue'], cur)}."
    )
    notes = [head]
    if doc.get("holdout_cost"):
        forgone = doc["holdout_cost"]["estimate"]
        notes.append(
            f"What the holdout cost: about {format_money(forgone, cur)} of profit forgone on the held-out "
            "carts (their share times the per-cart gain)."
            if forgone >= 0
            else "What the holdout cost: nothing so far; the held-out carts made more profit per cart than "
            f"the treated ones (about {format_money(-forgone, cur)} more in all)."
        )
    notes.extend(doc.get("notes", []))
    if not n["holdout"] or not n["treated"]:
        return Section(
            title, notes=[*notes, "Nothing to compare yet: both groups need carts whose window closed."]
        )
    groups = pd.DataFrame(
        [
            {"Group": "held out", "Carts": n["holdout"], "Conversion": c["holdout"]},
            {"Group": "treated", "Carts": n["treated"], "Conversion": c["treated"]},
        ]
    )
    actions = pd.DataFrame(
        [
            {
                "Action": a["action"],
                "Carts": a["carts"],
                "Conversion": a["conversion"],
                f"Profit per cart ({cur})": a["profit_per_cart"],
                f"vs holdout per cart ({cur})": a["vs_holdout_per_cart"],
            }
            for a in doc["by_action"]
        ]
    )
    segments = pd.DataFrame(
        [
            {
                "Segment": f"{r['dimension']}: {r['segment']}",
                "Held out": r["carts"]["holdout"],
                "Treated": r["carts"]["treated"],
                "Conversion held out": r["conversion"]["holdout"],
                "Conversion treated": r["conversion"]["treated"],
                f"Incremental profit ({cur}, 95 % CI)": _interval(r["incremental_profit"], cur)
                if r["incremental_profit"]["estimate"] is not None
                else (r.get("note") or "not measurable yet"),
            }
            for r in doc.get("by_segment", [])
        ]
    )
    per_cart = doc["incremental_profit"]
    figs = []
    if not any(a["action"] != "(not decided)" for a in doc["by_action"]):
        return Section(
            title,
            tables=[Table(groups, title="Groups", formats={"Conversion": ".2%"})],
            notes=[
                f"The program has not decided for any cart of this store yet: {n['treated']:,} treated and "
                f"{n['holdout']:,} held-out carts ({doc['holdout_share']:.0%}) are waiting. The incremental "
                "profit is measured once decisions are logged and their 168-hour windows close.",
            ],
        )
    if per_cart.get("estimate") is not None:
        fig = go.Figure(
            go.Bar(
                x=["incremental profit", "incremental revenue"],
                y=[per_cart["estimate"], doc["incremental_revenue"]["estimate"]],
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": [
                        per_cart["ci_high"] - per_cart["estimate"],
                        doc["incremental_revenue"]["ci_high"] - doc["incremental_revenue"]["estimate"],
                    ],
                    "arrayminus": [
                        per_cart["estimate"] - per_cart["ci_low"],
                        doc["incremental_revenue"]["estimate"] - doc["incremental_revenue"]["ci_low"],
                    ],
                },
                marker_color=["#16a34a", "#2563eb"],
            )
        )
        fig.update_layout(
            yaxis_title=f"{cur}, with 95 % interval", margin={"t": 20}, template="plotly_white", height=380
        )
        figs.append(fig)
    return Section(
        title,
        figures=figs,
        tables=[
            Table(groups, title="Groups", formats={"Conversion": ".2%"}),
            Table(
                actions,
                title="By action (chosen by the policy, not randomised: descriptive)",
                formats={
                    "Conversion": ".2%",
                    f"Profit per cart ({cur})": ",.2f",
                    f"vs holdout per cart ({cur})": "+,.2f",
                },
            ),
            *(
                [
                    Table(
                        segments,
                        title="By segment (fixed before the decision, so randomised within each)",
                        formats={"Conversion held out": ".2%", "Conversion treated": ".2%"},
                    )
                ]
                if len(segments)
                else []
            ),
        ],
        notes=notes,
    )


def recommendations_section(store: EventStore, *, artifacts: Path | None = None) -> Section:
    """The offline leaderboard with intervals, and a few example lists."""
    import plotly.graph_objects as go

    title = "Recommendations"
    board = _read(artifacts, "recommend_leaderboard.json")
    if not board or not board.get("leaderboard"):
        return Section(
            title,
            notes=[
                "No leaderboard yet: run `cartlift recommend evaluate` (the demo writes one beside the store)."
            ],
        )
    rows = board["leaderboard"]
    frame = pd.DataFrame(
        [
            {
                "Model": r["model"],
                "NDCG@10": r.get("NDCG@10"),
                "NDCG@10 95 % CI": _ci(r.get("NDCG@10_ci")),
                "Hit rate@20": r.get("HR@20"),
                "Hit rate@20 95 % CI": _ci(r.get("HR@20_ci")),
                "Catalogue coverage@20": r.get("Coverage@20"),
                **({"NDCG@10 vs true tastes": r["taste_NDCG@10"]} if "taste_NDCG@10" in r else {}),
            }
            for r in rows
        ]
    )
    fig = go.Figure(
        go.Bar(
            x=[r["model"] for r in rows],
            y=[r.get("NDCG@10") for r in rows],
            error_y={
                "type": "data",
                "symmetric": False,
                "array": [(r.get("NDCG@10_ci") or [0, 0])[1] - r["NDCG@10"] for r in rows],
                "arrayminus": [r["NDCG@10"] - (r.get("NDCG@10_ci") or [0, 0])[0] for r in rows],
            },
            marker_color="#2563eb",
        )
    )
    fig.update_layout(
        yaxis_title="NDCG@10 (95 % interval)", margin={"t": 20}, template="plotly_white", height=380
    )
    tables = [
        Table(
            frame,
            title="Leaderboard (temporal split: the last 20 % of events held out)",
            formats={
                "NDCG@10": ".4f",
                "Hit rate@20": ".4f",
                "Catalogue coverage@20": ".1%",
                "NDCG@10 vs true tastes": ".4f",
            },
            caption="Intervals are bootstrap 95 % intervals over users; higher is better.",
        )
    ]
    examples = _stored_examples(board) or _examples(store, rows[0]["model"])
    if examples is not None:
        tables.append(examples)
    return Section(title, figures=[fig], tables=tables, notes=[f"Best model: {rows[0]['model']}."])


def _ci(pair: Any) -> str:
    return "" if not pair else f"{pair[0]:.4f} to {pair[1]:.4f}"


def _stored_examples(board: dict[str, Any]) -> Table | None:
    """The lists the leaderboard's best model gave a few held-out customers (written by the demo)."""
    examples = board.get("examples") or []
    if not examples:
        return None
    model = board["leaderboard"][0]["model"]
    frame = pd.DataFrame(
        {
            "Customer": [e["user_id"] for e in examples],
            "Before the split": [", ".join(e["before"]) for e in examples],
            "Recommended (* taken later)": [
                ", ".join(f"{r}*" if r in set(e["after"]) else r for r in e["recommended"]) for e in examples
            ],
            "Carted or bought later": [", ".join(e["after"][:5]) for e in examples],
        }
    )
    return Table(frame, title=f"Example lists ({model}, fitted on the training period)")


def _examples(store: EventStore, model_name: str, n: int = 3) -> Table | None:
    """A few customers' recent items and what the best model recommends them (fitted on the whole store)."""
    from cartlift.recommend import Interactions, make_model

    try:
        data = Interactions.from_store(store)
        model = make_model(model_name, random_state=0).fit(data)
        users = store.query(
            """SELECT user_id, string_agg(DISTINCT product_id, ', ') AS items FROM events
               WHERE event_type IN ('cart_add', 'purchase') AND product_id IS NOT NULL
               GROUP BY user_id HAVING count(DISTINCT product_id) >= 2 ORDER BY max(ts) DESC LIMIT ?""",
            [n],
        )
        if users.empty:
            return None
        recs = model.recommend(users["user_id"].astype(str).tolist(), k=5).to_lists()
    except CartliftError:
        return None
    frame = pd.DataFrame(
        {
            "Customer": users["user_id"],
            "Carted or bought": users["items"].str.slice(0, 60),
            "Recommended": [", ".join(map(str, r)) for r in recs],
        }
    )
    return Table(frame, title=f"Example lists ({model_name}, fitted on every event)")


def next_best_action_section(store: EventStore, *, artifacts: Path | None = None) -> Section:
    """The policies against the simulator's true reactions, and the decisions logged in the store."""
    import plotly.graph_objects as go

    title = "Next best action"
    sim = _read(artifacts, "act_simulation.json")
    logged = _decisions(store)
    tables = []
    figs = []
    notes = []
    cur = store_metrics(store).currency
    policies = (sim or {}).get("policies") or {}
    if policies:
        frame = pd.DataFrame(
            [
                {
                    "Policy": name,
                    f"Profit per abandoned cart ({cur})": p["profit_per_cart"],
                    "Share of the oracle's profit": p.get("share_of_oracle"),
                    "Conversion": p.get("conversion"),
                    "Messages": p.get("messages"),
                    "Coupons": p.get("coupons"),
                }
                for name, p in sorted(policies.items(), key=lambda kv: -kv[1]["profit_per_cart"])
            ]
        )
        fig = go.Figure(
            go.Bar(
                x=frame["Policy"],
                y=frame["Share of the oracle's profit"],
                text=[f"{v:.0%}" for v in frame["Share of the oracle's profit"]],
                textposition="auto",
                marker_color="#16a34a",
            )
        )
        fig.update_layout(
            yaxis={"title": "share of the oracle's profit", "tickformat": ".0%"},
            margin={"t": 20},
            template="plotly_white",
            height=380,
        )
        figs.append(fig)
        carts = next(iter(policies.values())).get("carts")
        tables.append(
            Table(
                frame,
                title=f"Policies scored with the simulated customers' true reactions ({carts:,} abandoned carts)",
                formats={
                    f"Profit per abandoned cart ({cur})": ",.3f",
                    "Share of the oracle's profit": ".0%",
                    "Conversion": ".1%",
                },
                caption="The oracle knows every customer's true reaction: the ceiling. The policies ran on a "
                "larger simulated store than this one, whose carts are too few to learn nine actions from.",
            )
        )
    else:
        notes.append("No policy simulation beside this store (`cartlift act simulate` writes one).")
    if logged is not None and len(logged):
        tables.append(
            Table(
                logged,
                title="Decisions logged in the store",
                formats={"Conversion": ".1%", f"Profit ({cur})": ",.2f"},
            )
        )
    else:
        notes.append(
            "No decisions logged in this store yet (`cartlift act decide`, or the service's decide route)."
        )
    return Section(title, figures=figs, tables=tables, notes=notes)


def _decisions(store: EventStore) -> pd.DataFrame | None:
    if "decisions" not in store.tables():
        return None
    frame = store.query(
        """SELECT action AS "Action", count(*) AS "Decisions", avg(CAST(purchased AS DOUBLE)) AS "Conversion",
                  sum(profit) AS "Profit"
           FROM decision_outcomes GROUP BY 1 ORDER BY 2 DESC"""
    )
    cur = store_metrics(store).currency
    return frame.rename(columns={"Profit": f"Profit ({cur})"})


def delivery_section(store: EventStore) -> Section:
    """Messages scheduled, sent, clicked and the carts they recovered (from the ``messages`` outbox)."""
    title = "Delivery"
    if "messages" not in store.tables():
        return Section(
            title,
            notes=[
                "No messages yet: this store has no outbox (the delivery step fills this section once it runs)."
            ],
        )
    clicks = (
        "(SELECT DISTINCT message_id FROM message_events WHERE kind = 'click')"
        if "message_events" in store.tables()
        else "(SELECT NULL::VARCHAR AS message_id WHERE false)"
    )
    frame = store.query(
        f"""SELECT m.action AS "Action", m.channel AS "Channel", count(*) AS "Scheduled",
                   count(*) FILTER (WHERE m.status = 'sent') AS "Sent",
                   count(*) FILTER (WHERE m.status IN ('dead', 'cancelled')) AS "Failed or cancelled",
                   count(c.message_id) AS "Clicked",
                   count(*) FILTER (WHERE o.purchased) AS "Carts recovered",
                   coalesce(sum(o.profit), 0) AS "Profit"
            FROM messages m LEFT JOIN {clicks} c USING (message_id)
            LEFT JOIN decision_outcomes o ON o.decision_id = m.decision_id
            GROUP BY 1, 2 ORDER BY 3 DESC"""
    )
    if frame.empty:
        return Section(title, notes=["The outbox is empty: no message has been scheduled yet."])
    cur = store_metrics(store).currency
    frame = frame.rename(columns={"Profit": f"Profit ({cur})"})
    return Section(
        title,
        tables=[Table(frame, title="Messages by action and channel", formats={f"Profit ({cur})": ",.2f"})],
        notes=[
            "A message recovered its cart when the customer bought one of the cart's products within the decision's window."
        ],
    )


def _window(hours: float) -> str:
    return (
        f"{hours / 24:g} day{'s' if hours != 24 else ''}"
        if hours >= 24 and hours % 24 == 0
        else f"{hours:g} hours"
    )


def attribution_section(store: EventStore) -> Section:
    """Orders credited to the messages before them (last click, else last message), by action and channel."""
    title = "Attribution: orders after a message"
    doc = attribution_summary(store)
    if doc is None:
        return Section(
            title, notes=["No messages yet: this store has no outbox, so no order follows a message."]
        )
    if not doc["messages"]["sent"]:
        return Section(title, notes=["No message has been sent yet, so no order can follow one."])
    cur, a = doc["currency"], doc["attributed"]
    share = "" if a["share_of_revenue"] is None else f" ({a['share_of_revenue']:.1%} of the store's revenue)"
    notes = [
        f"{a['orders']:,} of {doc['orders']:,} orders came after a message: {format_money(a['revenue'], cur)}{share}. "
        f"{a['click']['orders']:,} followed a click within {_window(doc['click_window_hours'])}, "
        f"{a['view']['orders']:,} an unclicked message sent within {_window(doc['view_window_hours'])} "
        "(CARTLIFT_ATTRIBUTION_CLICK_HOURS / _VIEW_HOURS). Each order is credited once: to the last click, "
        "else to the last message.",
        "Credit says which message came before an order, not that it caused it: some of these customers "
        "would have bought anyway. The impact section measures that against the holdout.",
    ]
    frame = pd.DataFrame(
        [
            {
                "Action": r["action"],
                "Channel": r["channel"],
                "Sent": r["sent"],
                "Clicked": r["clicked"],
                "Orders credited": r["orders"],
                f"Revenue ({cur})": r["revenue"],
                f"Profit ({cur})": round(r["profit"], 2) + 0.0,  # a cost of 0.001 reads 0.00, not -0.00
            }
            for r in doc["by_action"]
        ]
    )
    tables = [
        Table(
            frame,
            title="Credited orders by action and channel (profit: the carts' margin on them, less coupons and sending)",
            formats={f"Revenue ({cur})": ",.2f", f"Profit ({cur})": ",.2f"},
        )
    ]
    recs = _recommendation_credit(doc)
    if recs is not None:
        notes.append(recs[0])
        tables.append(recs[1])
    return Section(title, tables=tables, notes=notes)


def _recommendation_credit(doc: dict[str, Any]) -> tuple[str, Table] | None:
    """The recommendation touches of an attribution summary: a sentence and a table per context."""
    recs, rb, cur = doc["recommendations"], doc["attributed"]["recommendation"], doc["currency"]
    if not recs["lists_shown"]:
        return None
    note = (
        f"Recommendations: {rb['items']:,} products in {rb['orders']:,} orders ({format_money(rb['revenue'], cur)}) "
        f"were bought within {_window(doc['rec_window_hours'])} after a list showed them to the customer "
        f"(CARTLIFT_ATTRIBUTION_REC_HOURS), each credited to the last list; {recs['lists_shown']:,} lists showed "
        f"{recs['items_shown']:,} items. This is per product, beside the orders credited to messages."
    )
    frame = pd.DataFrame(
        [
            {
                "Shown in": r["context"],
                "Lists": r["lists"],
                "Items shown": r["items_shown"],
                "Products bought": r["items_bought"],
                "Orders": r["orders"],
                f"Revenue ({cur})": r["revenue"],
            }
            for r in recs["by_context"]
        ]
    )
    return note, Table(
        frame, title="Products bought after a recommendation, by where the list was shown",
        formats={f"Revenue ({cur})": ",.2f"},
    )  # fmt: skip
