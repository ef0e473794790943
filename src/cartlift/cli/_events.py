"""`cartlift ingest`, `export`, `quarantine` and `summary`."""

from __future__ import annotations

import shlex
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
        map_columns: Annotated[
            list[str] | None,
            typer.Option(
                "--map",
                help='Read a column from a source column of another name: ts="Event Time",user_id=Customer.',
            ),
        ] = None,
        event_type: Annotated[
            list[str] | None,
            typer.Option(
                "--event-type",
                help="Map the source's event names onto ours: add_to_cart=cart_add,remove=cart_remove.",
            ),
        ] = None,
        mapping_file: Annotated[
            Path | None,
            typer.Option(
                "--mapping",
                help="A TOML file with \\[columns], \\[event_types], \\[constants] and time_format "
                "(--map and --event-type override it).",
            ),
        ] = None,
        db: DbOption = None,
        json: JsonOption = False,
    ) -> None:
        """Load events (or a product catalog) into the store.

        Every row is accepted, counted as a duplicate (its event id is already stored) or
        quarantined with a reason; a load that fails writes nothing, and loading twice is harmless.
        A file with its own column or event names loads through --map/--event-type or --mapping.
        """
        from cartlift.events import check_readable
        from cartlift.events._mapping import merge, parse_pairs, read_mapping

        check_readable(path)  # before the store is opened, so a wrong PATH creates no --db file
        mapping = None
        if map_columns or event_type or mapping_file is not None:
            base = read_mapping(mapping_file) if mapping_file is not None else None
            mapping = merge(
                base, parse_pairs(map_columns or [], "--map"), parse_pairs(event_type or [], "--event-type")
            )
        with open_store(db) as store:
            if json:
                result = store.ingest(path, format, mapping=mapping)
            else:
                with progress_bar() as bar:
                    result = store.ingest(path, format, mapping=mapping, progress=bar)
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
            where = f" --db {shlex.quote(str(db))}" if db is not None else ""
            console.print(f"See them with: cartlift quarantine{where}", soft_wrap=True)

    @app.command()
    @guarded
    def export(
        table: Annotated[
            str,
            typer.Argument(
                help="Table to export (events, products, quarantine, ...), or `audiences`: one row per "
                "customer with e-mail (with consent only), RFM segment, cluster, CLV, P(alive), price "
                "sensitivity, open-cart abandonment risk and top recommended products."
            ),
        ],
        out_path: Annotated[Path, typer.Option("--out", "-o", help="File to write.")],
        segment: Annotated[
            str | None,
            typer.Option(
                "--segment",
                help="audiences: only this RFM segment (e.g. Champions) or cluster (e.g. 'cluster 2').",
            ),
        ] = None,
        min_clv: Annotated[
            float | None, typer.Option("--min-clv", help="audiences: only customers with predicted CLV >= X.")
        ] = None,
        fmt: Annotated[
            str, typer.Option("--format", help="audiences: csv or parquet (tables are always Parquet).")
        ] = "csv",
        top: Annotated[
            int, typer.Option("--top", min=1, help="audiences: recommended products per customer.")
        ] = 5,
        model_dir: Annotated[
            Path,
            typer.Option(
                "--model-dir", help="audiences: the saved abandonment model (fitted now if absent)."
            ),
        ] = Path("abandonment-model"),
        db: DbOption = None,
        json: JsonOption = False,
    ) -> None:
        """Write a table of the store to a Parquet file, or an audience to CSV/Parquet.

        Prints ``{"table", "rows", "out"}`` as JSON on stdout (with or without ``--json``, so
        scripts can read it) and a readable line on stderr. For ``audiences`` the JSON also has
        ``format``, ``segment``, ``min_clv``, ``columns`` and ``notes``.
        """
        if table == "audiences":
            _export_audience(
                out_path,
                segment=segment,
                min_clv=min_clv,
                fmt=fmt,
                top=top,
                model_dir=model_dir,
                db=db,
                json=json,
            )
            return
        if segment is not None or min_clv is not None:
            raise typer.BadParameter(
                "--segment and --min-clv filter `cartlift export audiences`, not a table."
            )
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


def _export_audience(
    out_path: Path,
    *,
    segment: str | None,
    min_clv: float | None,
    fmt: str,
    top: int,
    model_dir: Path,
    db: str | None,
    json: bool,
) -> None:
    from cartlift.audiences import COLUMNS, build_audience
    from cartlift.serve import ServeSettings
    from cartlift.serve._erasure import audit_secret
    from cartlift.store import parse_store_url

    if fmt not in ("csv", "parquet"):
        raise typer.BadParameter(f"--format must be csv or parquet; got {fmt!r}.")
    # erasures are audited under the service's keyed hash: the same secret recognises them here
    key = audit_secret(ServeSettings(db=parse_store_url(db).url))
    with open_store(db, read_only=True) as store:
        audience = build_audience(
            store, segment=segment, min_clv=min_clv, top=top, model_dir=model_dir, audit_key=key
        )
    audience.write(out_path, fmt)
    rows = len(audience.rows)
    emit_json(
        {
            "table": "audiences",
            "rows": rows,
            "out": str(out_path),
            "format": fmt,
            "segment": segment,
            "min_clv": min_clv,
            "columns": list(COLUMNS),
            "notes": list(audience.notes),
        }
    )
    if not json:
        for note in audience.notes:
            console.print(note)
        console.print(f"wrote {rows:,} customers of audience {audience.name!r} to {out_path} ({fmt})")


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
