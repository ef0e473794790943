"""`cartlift funnel`, `abandoned-carts`, `segments`, `clv` and `report`, plus the demo's analytics step."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from cartlift.cli._common import (
    DbOption,
    EngineOption,
    EventsOption,
    JsonOption,
    SparkMasterOption,
    console,
    emit_json,
    fail,
    guarded,
    open_store,
    out,
    print_warnings,
    progress_bar,
)

if TYPE_CHECKING:
    from cartlift.analytics import SegmentsResult
    from cartlift.store import EventStore

UnitOption = Annotated[str, typer.Option("--unit", "-u", help="Who goes through: session or user.")]
WindowOption = Annotated[
    str,
    typer.Option(
        "--window",
        "-w",
        help="Conversion window: 30m, 12h, 1d, 2w or none (default: auto = the session, 1d for users).",
    ),
]
FromOption = Annotated[str | None, typer.Option("--from", help="First entry day or time (ISO), inclusive.")]
ToOption = Annotated[
    str | None, typer.Option("--to", help="Last entry day (inclusive) or time (exclusive), ISO.")
]


def _pct(x: float | None) -> str:
    return "" if x is None else f"{x:.2%}"


def _print_clusters(result: SegmentsResult) -> None:
    """The methods compared, then each segment of the one kept with its value and description."""
    doc = result.to_dict()["clusters"]
    methods = Table(
        "method", "setting", "segments", "noise", "silhouette", "stability (ARI) [95 % interval]",
        title="Clustering methods",
    )  # fmt: skip
    for m in doc["methods"]:
        st = m["stability"]
        methods.add_row(
            m["method"] + (" (kept)" if m["method"] == doc["method"] else ""),
            m["setting"],
            str(m["segments"]),
            _pct(m["noise_share"]),
            f"{m['silhouette']:.3f}",
            "" if st is None else f"{st['mean_ari']:.3f} [{st['interval'][0]:.3f}, {st['interval'][1]:.3f}]",
        )
    out.print(methods)
    table = Table(
        "#", "customers", "share", "revenue share", "mean CLV", "description",
        title=f"{doc['k']} segments ({doc['method']}, {doc['setting']})",
    )  # fmt: skip
    for c in doc["clusters"]:
        clv = "" if c["mean_clv"] is None else f"{c['mean_clv']:,.2f}"
        table.add_row(
            str(c["cluster"]), f"{c['customers']:,}", _pct(c["share"]), _pct(c["revenue_share"]), clv,
            c["description"],
        )  # fmt: skip
    out.print(table)


def register(app: typer.Typer) -> None:
    """Add the analytics commands to ``app``."""

    @app.command()
    @guarded
    def funnel(
        step: Annotated[
            list[str] | None,
            typer.Option(
                "--step",
                "-s",
                help="A step, in order (repeat it): view, 'view|cart_add', 'purchase:brand=apple', or a "
                "comma list 'view,cart_add,purchase' (default: view, cart_add, checkout, purchase).",
            ),
        ] = None,
        unit: UnitOption = "session",
        window: WindowOption = "auto",
        order: Annotated[str, typer.Option("--order", help="ordered, strict or unordered.")] = "ordered",
        exclude: Annotated[
            list[str] | None,
            typer.Option(
                "--exclude", "-x", help="Drop units doing this between steps: cart_remove or cart_remove@2-3."
            ),
        ] = None,
        breakdown: Annotated[
            str | None,
            typer.Option(
                "--breakdown",
                "-b",
                help="Split by an events/products column, properties.<key>, price_band, new_vs_returning, hour or weekday.",
            ),
        ] = None,
        breakdown_limit: Annotated[int, typer.Option(help="Most frequent breakdown values kept.")] = 10,
        start: FromOption = None,
        end: ToOption = None,
        trend: Annotated[
            str, typer.Option("--trend", help="Trend period: hour, day, week or month.")
        ] = "day",
        db: DbOption = None,
        events: Annotated[
            Path | None,
            typer.Option(
                "--events",
                help="Read an exported event table (Parquet file, directory or glob) instead of the store.",
            ),
        ] = None,
        products: Annotated[
            Path | None,
            typer.Option(
                "--products",
                help="The catalog Parquet for catalog steps and breakdowns with --events "
                "(default: products.parquet beside the events, if there).",
            ),
        ] = None,
        engine: EngineOption = "duckdb",
        spark_master: SparkMasterOption = None,
        json: JsonOption = False,
    ) -> None:
        """Funnel counts and conversion per step with 95% Wilson intervals, time to convert, trend, breakdown."""
        from cartlift.analytics import Funnel, parse_exclusion, parse_steps
        from cartlift.spark import SparkUnavailableError, check_engine

        spec = Funnel(
            steps=parse_steps(step) if step else None,
            unit=unit,
            window=window,
            order=order,
            exclusions=[parse_exclusion(x) for x in exclude or []],
            breakdown=breakdown,
            breakdown_limit=breakdown_limit,
            start=start,
            end=end,
            trend=trend,
        )
        try:
            name = check_engine(engine)
        except SparkUnavailableError as e:
            raise fail(str(e)) from None
        if products is not None and events is None:
            raise fail("--products goes with --events (a store has its own products table).")
        if events is not None or name == "spark":
            from cartlift.spark import funnel_on_parquet

            if events is None:
                # the Spark engine reads Parquet: export the store's events (and catalog, beside them) once
                import tempfile

                with tempfile.TemporaryDirectory() as tmp, open_store(db, read_only=True) as store:
                    target = Path(tmp) / "events.parquet"
                    store.export("events", target)
                    store.export("products", Path(tmp) / "products.parquet")
                    result = funnel_on_parquet(target, spec, engine=name, master=spark_master)
            else:
                result = funnel_on_parquet(events, spec, engine=name, master=spark_master, products=products)
        else:
            with open_store(db, read_only=True) as store:
                result = spec.compute(store)
        if json:
            emit_json(result.to_dict())
            return
        table = Table(
            "step", f"{result.unit}s", "from previous", "from first", "95% CI", "median time", title="funnel"
        )
        for s in result.steps:
            ci = "" if s.ci_low is None else f"{_pct(s.ci_low)} - {_pct(s.ci_high)}"
            med = "" if s.median_seconds_from_previous is None else f"{s.median_seconds_from_previous:,.0f} s"
            table.add_row(
                s.name,
                f"{s.count:,}",
                _pct(s.conversion_from_previous),
                _pct(s.conversion_from_first),
                ci,
                med,
            )
        out.print(table)
        if result.breakdown is not None:
            bd = result.breakdown
            t2 = Table(bd.column, "entered", "converted", "conversion", "Holm p", title=f"by {bd.column}")
            for g in bd.groups:
                p = "" if g.p_value_adjusted is None else f"{g.p_value_adjusted:.3g}"
                t2.add_row(g.value, f"{g.entered:,}", f"{g.converted:,}", _pct(g.conversion), p)
            out.print(t2)
            if bd.p_value is not None:
                console.print(f"chi-square {bd.chi2:.1f} on {bd.dof} df, p = {bd.p_value:.3g}")
        for note in result.notes:
            console.print(note)

    @app.command("abandoned-carts")
    @guarded
    def abandoned_carts(
        unit: UnitOption = "session",
        window: WindowOption = "auto",
        start: FromOption = None,
        end: ToOption = None,
        db: DbOption = None,
        json: JsonOption = False,
    ) -> None:
        """Abandoned carts: rate, value, and what distinguishes them (effect sizes, Holm-adjusted p-values)."""
        from cartlift.analytics import CartAbandonment

        with open_store(db, read_only=True) as store:
            result = CartAbandonment(unit=unit, window=window, start=start, end=end).compute(store)
        if json:
            emit_json(result.to_dict())
            return
        out.print(
            f"{result.abandoned:,} of {result.carts:,} carts abandoned ({_pct(result.abandonment_rate)}), "
            f"abandoned value {result.abandoned_value:,.2f}"
        )
        table = Table(
            "feature", "effect", "size", "magnitude", "Holm p", title="what distinguishes abandoned carts"
        )
        for f in result.features:
            size = "" if f.effect_size is None else f"{f.effect_size:+.3f}"
            p = "" if f.p_value_adjusted is None else f"{f.p_value_adjusted:.3g}"
            table.add_row(f.label, f.effect_measure, size, f.magnitude or (f.note or ""), p)
        out.print(table)

    @app.command()
    @guarded
    def segments(
        as_of: Annotated[
            str | None, typer.Option("--as-of", help="Day recency is measured to (default: last order).")
        ] = None,
        method: Annotated[
            str,
            typer.Option(
                "--method",
                help="Clustering: kmeans, hdbscan (density), som (self-organising map) or auto "
                "(all three; the best silhouette among those stable across bootstrap samples).",
            ),
        ] = "auto",
        k_min: Annotated[int, typer.Option(help="Fewest clusters tried (k-means, SOM nodes).")] = 2,
        k_max: Annotated[int, typer.Option(help="Most clusters tried (k-means, SOM nodes).")] = 8,
        boot: Annotated[
            int, typer.Option("--boot", help="Bootstrap refits for the stability (ARI); 0 skips it.")
        ] = 10,
        seed: Annotated[int, typer.Option(help="Random seed of the clustering.")] = 0,
        include_anonymous: Annotated[
            bool,
            typer.Option(
                "--include-anonymous", help="Count anonymous buyers (anonymous:<invoice>) as customers."
            ),
        ] = False,
        db: DbOption = None,
        engine: Annotated[
            str,
            typer.Option(
                "--engine",
                help="Engine of the RFM scores: duckdb (embedded) or spark (pip install 'cartlift\\[spark]'); "
                "clusters and price sensitivity are computed in the store.",
            ),
        ] = "duckdb",
        spark_master: SparkMasterOption = None,
        json: JsonOption = False,
    ) -> None:
        """Customer segments: RFM scores and named segments, behavioural clusters in plain words (size, revenue
        share, CLV), price sensitivity.

        Clusters come from k-means, HDBSCAN or a self-organising map, compared by silhouette and by
        stability (mean adjusted Rand index between refits on bootstrap samples).
        """
        from dataclasses import replace

        from cartlift.analytics import segments as compute
        from cartlift.spark import SparkUnavailableError, check_engine

        try:
            name = check_engine(engine)
        except SparkUnavailableError as e:
            raise fail(str(e)) from None
        with open_store(db, read_only=True) as store, progress_bar() as bar:
            result = compute(
                store,
                as_of=as_of,
                method=method,
                k_min=k_min,
                k_max=k_max,
                n_boot=boot,
                random_state=seed,
                include_anonymous=include_anonymous,
                progress=None if json else bar,
            )
            if name == "spark" and result.rfm is not None:
                import tempfile

                from cartlift.spark import read_events, spark_rfm, spark_session

                # the Spark engine reads Parquet: export the store's events once
                with tempfile.TemporaryDirectory(prefix="cartlift-spark-") as tmp:
                    target = Path(tmp) / "events.parquet"
                    store.export("events", target)
                    scores = spark_rfm(read_events(spark_session(spark_master), target), as_of=as_of)
                result = replace(result, rfm=scores, notes=(*result.notes, "RFM scores computed on Spark"))
        if result.rfm is not None:
            print_warnings([w.to_dict() for w in result.rfm.warnings])
        if json:
            emit_json(result.to_dict())
            return
        if result.rfm is not None:
            table = Table("segment", "customers", "share", "revenue share", "meaning", title="RFM segments")
            for r in result.rfm.segments.itertuples():
                table.add_row(
                    str(r.segment),
                    f"{r.customers:,}",
                    _pct(float(r.share)),  # type: ignore[arg-type]
                    _pct(float(r.revenue_share)),  # type: ignore[arg-type]
                    str(r.meaning),
                )
            out.print(table)
        if result.clusters is not None:
            _print_clusters(result)
        out.print(
            "price sensitivity: "
            + ", ".join(f"{k} {v:,}" for k, v in result.to_dict()["price_sensitivity"].items())
        )
        for note in result.notes:
            console.print(note)

    @app.command()
    @guarded
    def clv(
        summary: Annotated[
            Path | None,
            typer.Option(
                "--summary", help="CSV of one row per customer: frequency, recency, T [, monetary_value]."
            ),
        ] = None,
        transactions: Annotated[
            Path | None, typer.Option("--transactions", help="File of transactions: customer, date, value.")
        ] = None,
        frequency_col: Annotated[str, typer.Option(help="Summary column of repeat purchases.")] = "frequency",
        recency_col: Annotated[str, typer.Option(help="Summary column of recency.")] = "recency",
        t_col: Annotated[str, typer.Option("--T-col", help="Summary column of customer age T.")] = "T",
        monetary_col: Annotated[
            str | None,
            typer.Option(help="Summary column of mean repeat spend (default: monetary_value if present)."),
        ] = None,
        customer_col: Annotated[
            str | None, typer.Option(help="Transactions column of the customer id.")
        ] = None,
        date_col: Annotated[str | None, typer.Option(help="Transactions column of the date.")] = None,
        value_col: Annotated[str | None, typer.Option(help="Transactions column of the amount.")] = None,
        observation_end: Annotated[
            str | None, typer.Option(help="Last day of the calibration period (default: last transaction).")
        ] = None,
        time_unit: Annotated[
            str, typer.Option(help="Unit of recency, T and the horizon: days or weeks.")
        ] = "weeks",
        include_anonymous: Annotated[
            bool,
            typer.Option(
                "--include-anonymous", help="Count anonymous buyers (anonymous:<invoice>) as customers."
            ),
        ] = False,
        horizon: Annotated[float | None, typer.Option(help="Prediction horizon (default: one year).")] = None,
        discount_rate: Annotated[float, typer.Option(help="Discount rate per time unit.")] = 0.0,
        margin: Annotated[float, typer.Option(help="Share of spend that is profit.")] = 1.0,
        top: Annotated[int, typer.Option(help="Customers listed, by value.")] = 10,
        save: Annotated[
            Path | None, typer.Option("--out", help="Write per-customer predictions (CSV or .parquet).")
        ] = None,
        db: DbOption = None,
        events: EventsOption = None,
        engine: Annotated[
            str,
            typer.Option(
                "--engine",
                help="Engine of the store's (or --events') summary: duckdb (embedded) or spark "
                "(pip install 'cartlift\\[spark]').",
            ),
        ] = "duckdb",
        spark_master: SparkMasterOption = None,
        json: JsonOption = False,
    ) -> None:
        """Customer lifetime value: BG/NBD + Gamma-Gamma by maximum likelihood, from a summary, transactions or the store."""
        from cartlift.analytics import (
            clv_from_summary,
            read_transactions,
            summary_from_store,
            summary_from_transactions,
        )
        from cartlift.spark import SparkUnavailableError, check_engine

        if sum(x is not None for x in (summary, transactions, events)) > 1:
            raise typer.BadParameter("Give one of --summary, --transactions or --events.")
        try:
            name = check_engine(engine)
        except SparkUnavailableError as e:
            raise fail(str(e)) from None
        if name == "spark" and (summary is not None or transactions is not None):
            raise typer.BadParameter("--engine spark summarises events: give --events or --db, not a file.")
        if events is not None and name != "spark":
            raise typer.BadParameter("--events is read by --engine spark; the DuckDB engine reads --db.")
        if name == "spark":
            from cartlift.spark import read_events, spark_clv_summary, spark_session
            from cartlift.spark._tables import parquet_tables

            with parquet_tables(events, None, lambda: open_store(db, read_only=True)) as (ev, _):
                data = spark_clv_summary(
                    read_events(spark_session(spark_master), ev),
                    observation_end=observation_end,
                    time_unit=time_unit,
                )
            kind = "store" if events is None else "events"
        elif summary is not None:
            import pandas as pd

            data = pd.read_csv(summary)
            kind = "summary"
        elif transactions is not None:
            tx = read_transactions(transactions, customer=customer_col, date_col=date_col, value=value_col)
            data = summary_from_transactions(tx, observation_end=observation_end, time_unit=time_unit)
            kind = "transactions"
        else:
            with open_store(db, read_only=True) as store:
                data = summary_from_store(
                    store,
                    observation_end=observation_end,
                    time_unit=time_unit,
                    include_anonymous=include_anonymous,
                )
            kind = "store"
        result = clv_from_summary(
            data,
            frequency=frequency_col if kind == "summary" else "frequency",
            recency=recency_col if kind == "summary" else "recency",
            T=t_col if kind == "summary" else "T",
            monetary_value=monetary_col if (kind == "summary" and monetary_col) else "auto",
            time_unit=time_unit,
            horizon=horizon,
            discount_rate=discount_rate,
            margin=margin,
        )
        if save is not None:
            save.parent.mkdir(parents=True, exist_ok=True)
            frame = result.customers.reset_index()
            frame.to_parquet(save) if save.suffix == ".parquet" else frame.to_csv(save, index=False)
        print_warnings([w.to_dict() for w in result.warnings])
        if json:
            emit_json({"source": kind, **result.to_dict(top=top)})
            return
        bg = result.bgnbd
        dropout = (
            f"one drop-out probability p={bg['p']:.4f}"
            if bg["a"] is None
            else f"a={bg['a']:.4f} b={bg['b']:.4f}"
        )
        out.print(
            f"BG/NBD: r={bg['r']:.4f} alpha={bg['alpha']:.4f} {dropout} "
            f"(log-likelihood {bg['log_likelihood']:,.2f}, {bg['customers']:,} customers)"
        )
        gg = result.gamma_gamma
        if gg:
            out.print(
                f"Gamma-Gamma: p={gg['p']:.4f} q={gg['q']:.4f} v={gg['v']:.4f} ({gg['customers']:,} repeat customers)"
            )
        d = result.to_dict(top=top)
        if d["clv"]:
            out.print(
                f"CLV over {result.horizon:g} {result.time_unit}: total {d['clv']['total']:,.2f}, "
                f"median {d['clv']['median']:,.2f}, 90th percentile {d['clv']['p90']:,.2f}"
            )
        for note in result.notes:
            console.print(note)

    @app.command()
    @guarded
    def report(
        out_path: Annotated[Path, typer.Option("--out", "-o", help="HTML file to write.")] = Path(
            "report.html"
        ),
        unit: UnitOption = "session",
        title: Annotated[str, typer.Option(help="Title at the top of the report.")] = "cartlift report",
        artifacts: Annotated[
            Path | None,
            typer.Option(
                help="Folder with results the demo's steps wrote (leaderboard, evaluation, policy simulation); "
                "default: the store's folder."
            ),
        ] = None,
        db: DbOption = None,
        json: JsonOption = False,
    ) -> None:
        """Write one self-contained HTML report (interactive charts, works offline): a summary, then
        funnel and customers, recommendations, abandonment prediction, next best action, delivery,
        impact against the holdout and experiments."""
        from cartlift.report import collect_sections, write_report

        # writable: the impact reads (and on first use records) the holdout's phase
        with open_store(db) as store:
            folder = artifacts if artifacts is not None else Path(store.path).parent
            sections = collect_sections(store, unit=unit, artifacts=folder)
            path = write_report(sections, out_path, title=title, subtitle=f"Store: {store.path}")
        if json:
            emit_json(
                {"out": str(path), "sections": [s.title for s in sections], "bytes": path.stat().st_size}
            )
            return
        out.print(f"wrote {path} ({len(sections)} sections, {path.stat().st_size / 1e6:.1f} MB)")


def report_step(store: EventStore, out_dir: Path) -> dict[str, Any]:
    """`cartlift demo`'s last step: the report of every part, from the store and what the steps wrote."""
    from cartlift.report import collect_sections, write_report

    sections = collect_sections(store, artifacts=out_dir)
    path = write_report(sections, Path(out_dir) / "report.html", subtitle=f"Store: {store.path}")
    return {"report": str(path), "sections": [s.title for s in sections]}


def demo_step(store: EventStore, out_dir: Path) -> dict[str, Any]:
    """The analytics part of `cartlift demo`: funnel, abandonment and segments on ``store``.

    Returns the headline figures (the report is written last, by `report_step`).
    """
    from cartlift.analytics import CartAbandonment, Funnel, segments

    f = Funnel().compute(store)
    ab = CartAbandonment().compute(store)
    seg = segments(store, random_state=0)
    return {
        "report": str(Path(out_dir) / "report.html"),  # where `report_step` writes it, at the end
        "funnel": [
            {"name": s.name, "count": s.count, "conversion_from_first": s.conversion_from_first}
            for s in f.steps
        ],
        "conversion": f.steps[-1].conversion_from_first,
        "carts": ab.carts,
        "cart_abandonment_rate": ab.abandonment_rate,
        "abandoned_value": ab.abandoned_value,
        "rfm_segments": {}
        if seg.rfm is None
        else dict(zip(seg.rfm.segments["segment"], seg.rfm.segments["customers"].astype(int), strict=True)),
        "clusters": list(seg.descriptions),
    }
