"""`cartlift ingest`, `export`, `quarantine` and `summary`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from cartlift.cli._common import (
    DbOption,
    JsonOption,
    console,
    emit_json,
    guarded,
    open_store,
    out,
    progress_bar,
)

FORMAT_NAMES = ["auto", "rees46", "retailrocket", "yoochoose", "online-retail", "cartlift", "products"]


def register(app: typer.Typer) -> None:
    """Add the event-store commands to ``app``."""

    @app.command()
    @guarded
    def ingest(
        path: Annotated[Path, typer.Argument(help="File to load: CSV/TSV, xlsx, Parquet or JSON lines.")],
        format: Annotated[
            str,
            typer.Option("--format", "-f", help=f"Source format: {', '.join(FORMAT_NAMES)}."),
        ] = "auto",
        db: DbOption = None,
        json: JsonOption = False,
    ) -> None:
        """Load events (or a product catalog) into the store.

        Every row is accepted, counted as a duplicate (its event id is already stored) or
        quarantined with a reason; a load that fails writes nothing, and loading twice is harmless.
        """
        with open_store(db) as store:
            if json:
                result = store.ingest(path, format)
            else:
                with progress_bar() as bar:
                    result = store.ingest(path, format, progress=bar)
        if json:
            emit_json(result.to_dict())
            return
        out.print(
            f"[bold]{result.source}[/] ({result.format}): {result.rows_read:,} rows read, "
            f"[green]{result.accepted:,} accepted[/], {result.duplicates:,} duplicates, "
            f"[red]{result.quarantined:,} quarantined[/]"
        )
        for reason, n in result.reasons.items():
            out.print(f"  {n:>10,}  {reason}")
        if result.quarantined:
            console.print("See them with: cartlift quarantine")

    @app.command()
    @guarded
    def export(
        table: Annotated[str, typer.Argument(help="Table to export (events, products, quarantine, ...).")],
        out_path: Annotated[Path, typer.Option("--out", "-o", help="Parquet file to write.")],
        db: DbOption = None,
        json: JsonOption = False,
    ) -> None:
        """Write a table of the store to a Parquet file.

        Prints ``{"table", "rows", "out"}`` as JSON on stdout (with or without ``--json``, so
        scripts can read it) and a readable line on stderr.
        """
        with open_store(db, read_only=True) as store:
            rows = store.export(table, out_path)
        emit_json({"table": table, "rows": rows, "out": str(out_path)})
        if not json:
            console.print(f"wrote {rows:,} rows of {table} to {out_path}")

    @app.command()
    @guarded
    def quarantine(
        limit: Annotated[int, typer.Option(help="Show at most this many rows.")] = 50,
        reason: Annotated[str | None, typer.Option(help="Only rows rejected for this reason.")] = None,
        db: DbOption = None,
        json: JsonOption = False,
    ) -> None:
        """List rejected rows with their source, row, line, reason and raw record."""
        with open_store(db, read_only=True) as store:
            rows = store.quarantine(limit=limit, reason=reason)
            total = store.count("quarantine")
            counts = store.query("SELECT reason, count(*) AS n FROM quarantine GROUP BY 1 ORDER BY 2 DESC")
        if json:
            emit_json(
                {
                    "total": total,
                    "reasons": dict(zip(counts["reason"], counts["n"].astype(int), strict=True)),
                    "rows": rows.astype(object).where(rows.notna(), None).to_dict("records"),
                }
            )
            return
        table = Table("source", "row", "line", "reason", "raw", title=f"{total:,} quarantined rows")
        for r in rows.itertuples():
            table.add_row(str(r.source), str(r.row_number), str(r.line), str(r.reason), str(r.raw)[:80])
        out.print(table)

    @app.command()
    @guarded
    def summary(db: DbOption = None, json: JsonOption = False) -> None:
        """Headline numbers of the store: events, users, sessions, carts and abandonment, recovered
        carts, orders, revenue and average order value (money in CARTLIFT_CURRENCY).

        A cart is a session's cart (what it added since its last purchase before its last add); it is
        abandoned when no purchase follows its last add; open carts (sessions still going) may still
        convert; a recovered cart was bought later by the same customer within 7 days. These are the
        definitions of `abandoned-carts`, the abandonment model, the report and the dashboard."""
        from cartlift.analytics import store_summary

        with open_store(db, read_only=True) as store:
            data = store_summary(store)
        if json:
            emit_json(data)
            return
        print_summary(data)


def print_summary(data: dict[str, object]) -> None:
    """A small table of the store's headline numbers."""
    table = Table("measure", "value", title="store summary", show_header=False)
    money = {"abandoned_cart_value", "recovered_value", "revenue", "average_order_value"}
    currency = str(data.get("currency") or "")
    for key, value in data.items():
        if key == "currency":
            continue
        if key in money and isinstance(value, float | int):
            value = f"{value:,.2f} {currency}".strip()
        elif key == "cart_abandonment_rate" and isinstance(value, float):
            value = f"{value:.1%}"
        elif isinstance(value, dict):
            value = ", ".join(f"{k} {v:,}" for k, v in value.items() if v)
        elif isinstance(value, float):
            value = f"{value:.4f}" if value < 1 else f"{value:,.2f}"
        elif isinstance(value, int):
            value = f"{value:,}"
        table.add_row(key.replace("_", " "), str(value))
    out.print(table)
