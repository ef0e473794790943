"""`cartlift abandonment train | evaluate | score`: which carts will be abandoned."""

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
)

if TYPE_CHECKING:
    from cartlift.store import EventStore

TableOption = Annotated[
    Path | None,
    typer.Option(
        "--table",
        help="A feature table (CSV, Parquet, JSON lines) with a label column, instead of the store.",
    ),
]
LabelOption = Annotated[str | None, typer.Option("--label", help="The label column of --table.")]
PositiveOption = Annotated[
    str | None,
    typer.Option(
        "--positive", help="The label value that counts as positive (default: the larger of the two)."
    ),
]
DropOption = Annotated[
    list[str] | None, typer.Option("--drop", help="A column of --table to leave out (repeatable).")
]
ModelKind = Annotated[
    str,
    typer.Option(
        "--model",
        help="auto (the default: chosen by cross-validation on the training rows among LightGBM, "
        "logistic and their blends), lightgbm, logistic or blend.",
    ),
]
EvalModelKind = Annotated[
    str,
    typer.Option(
        "--model",
        help="The model whose full report is shown: auto (chosen by cross-validation on the training "
        "rows), lightgbm, logistic, blend, tree, forest, svm or mlp.",
    ),
]
ModelsOption = Annotated[
    str | None,
    typer.Option(
        "--models",
        help="Also rank these on the same split, e.g. lightgbm,logistic,tree,forest,svm,mlp (and auto, "
        "blend): metrics with 95% bootstrap intervals, a paired test of the best two, fit and predict times.",
    ),
]
TuneOption = Annotated[
    bool,
    typer.Option(
        "--tune",
        help="With --models: tune each family first by a seeded successive-halving search "
        "(12 candidates, 3-fold CV) on the training rows only.",
    ),
]
MomentsOption = Annotated[
    str,
    typer.Option(
        "--moments",
        help="Which moments to score: last_cart_event (when a customer leaves an open cart), "
        "cart_events (after every cart change) or last_event.",
    ),
]
WindowOption = Annotated[
    float | None,
    typer.Option(
        "--window-hours",
        help="A cart counts as bought if the customer buys within this many hours "
        "(default: a purchase later in the same session).",
    ),
]
FeaturesOption = Annotated[
    Path | None,
    typer.Option(
        "--features",
        help="A cart feature table as Parquet (a file, or the folder Spark writes), as "
        "`cartlift abandonment features --out` writes, instead of the store.",
    ),
]
ProductsOption = Annotated[
    Path | None,
    typer.Option("--products", help="With --events: the exported catalog (Parquet), for the price features."),
]
SeedOption = Annotated[int, typer.Option("--seed", help="Seed of the split and the model.")]
ModelDir = Annotated[Path, typer.Option("--model-dir", help="Folder of the saved model.")]

DEFAULT_MODEL_DIR = Path("abandonment-model")


def _need_label(table: Path | None, label: str | None) -> None:
    if table is not None and not label:
        raise typer.BadParameter("--table needs --label COLUMN (the outcome to predict).")


def register(app: typer.Typer) -> None:
    """Add the `abandonment` group to ``app``."""
    group = typer.Typer(
        help="Predict which carts will be abandoned: train, evaluate, score.", no_args_is_help=True
    )
    app.add_typer(group, name="abandonment")

    @group.command()
    @guarded
    def train(
        table: TableOption = None,
        features: FeaturesOption = None,
        label: LabelOption = None,
        positive: PositiveOption = None,
        drop: DropOption = None,
        model: ModelKind = "auto",
        moments: MomentsOption = "last_cart_event",
        window_hours: WindowOption = None,
        model_dir: ModelDir = DEFAULT_MODEL_DIR,
        seed: SeedOption = 0,
        db: DbOption = None,
        json: JsonOption = False,
    ) -> None:
        """Train a calibrated model on the store's carts (or on --features, or --table) and save it to --model-dir."""
        from cartlift.predict import read_cart_features, train_features, train_store, train_table

        _need_label(table, label)
        if features is not None:
            if table is not None:
                raise typer.BadParameter("Give --features or --table, not both.")
            result = train_features(
                read_cart_features(features), model_dir, model=model, seed=seed, source=str(features)
            )
        elif table is not None and label is not None:
            result = train_table(
                table, label, model_dir, model=model, positive=positive, drop=drop or (), seed=seed
            )
        else:
            with open_store(db, read_only=True) as store:
                result = train_store(
                    store, model_dir, model=model, moments=moments, window_hours=window_hours, seed=seed
                )
        print_warnings(result.get("warnings", []))
        if json:
            emit_json(result)
            return
        out.print(
            f"trained {result['model']} on {result['rows']:,} rows (positive rate "
            f"{result['positive_rate']:.3f}; {result['n_calibration']:,} held out for calibration)"
        )
        out.print(f"saved to {result['out']}")
        for name, why in result["dropped"].items():
            console.print(f"left out {name}: {why}")

    @group.command("features")
    @guarded
    def features_cmd(
        out_path: Annotated[
            Path, typer.Option("--out", "-o", help="Where to write the feature table (Parquet).")
        ],
        moments: MomentsOption = "last_cart_event",
        window_hours: WindowOption = None,
        engine: EngineOption = "duckdb",
        events: EventsOption = None,
        products: ProductsOption = None,
        spark_master: SparkMasterOption = None,
        db: DbOption = None,
        json: JsonOption = False,
    ) -> None:
        """Write the training table (one row per cart moment: 43 features and the label) as Parquet.

        With --engine spark it is computed by Spark SQL (from --events, or from the store's
        tables); `cartlift abandonment train --features PATH` trains on either.
        """
        from cartlift.spark import SparkUnavailableError, check_engine

        try:
            name = check_engine(engine)
        except SparkUnavailableError as e:
            raise fail(str(e)) from None
        if name == "duckdb":
            if events is not None:
                raise typer.BadParameter("--events is read by --engine spark; the DuckDB engine reads --db.")
            from cartlift.predict import cart_features

            with open_store(db, read_only=True) as store:
                frame = cart_features(store, moments=moments, window_hours=window_hours)
            out_path.parent.mkdir(parents=True, exist_ok=True)
            frame.to_parquet(out_path, index=False)
        else:
            from cartlift.spark import read_events, read_products, spark_cart_features, spark_session
            from cartlift.spark._tables import parquet_tables

            with parquet_tables(events, products, lambda: open_store(db, read_only=True)) as (ev, pr):
                spark = spark_session(spark_master)
                frame = spark_cart_features(
                    read_events(spark, ev),
                    None if pr is None else read_products(spark, pr),
                    moments=moments,
                    window_hours=window_hours,
                    out=out_path,
                )
        result = {
            "out": str(out_path),
            "engine": name,
            "rows": len(frame),
            "positive_rate": float(frame["abandoned"].mean()) if len(frame) else None,
            "moments": moments,
            "window_hours": window_hours,
        }
        if json:
            emit_json(result)
            return
        rate = "" if result["positive_rate"] is None else f" (abandoned share {result['positive_rate']:.3f})"
        out.print(f"wrote {len(frame):,} cart moments{rate} to {out_path} with {name}")

    @group.command()
    @guarded
    def evaluate(
        table: TableOption = None,
        label: LabelOption = None,
        positive: PositiveOption = None,
        drop: DropOption = None,
        split: Annotated[
            str | None,
            typer.Option("--split", help="random or time (default: random for --table, time for the store)."),
        ] = None,
        time_column: Annotated[
            str | None, typer.Option("--time-column", help="The time column of --table for --split time.")
        ] = None,
        test_size: Annotated[float, typer.Option("--test-size", help="Share of rows held out.")] = 0.2,
        model: EvalModelKind = "auto",
        models: ModelsOption = None,
        tune: TuneOption = False,
        moments: MomentsOption = "last_cart_event",
        window_hours: WindowOption = None,
        seed: SeedOption = 0,
        db: DbOption = None,
        json: JsonOption = False,
    ) -> None:
        """Train on one part, report ROC-AUC, PR-AUC, log loss, Brier, ECE, lift and SHAP on the rest.

        With --models, a leaderboard of model families on the same split as well.
        """
        from cartlift.predict import evaluate_store, evaluate_table, parse_models

        _need_label(table, label)
        if tune and not models:
            raise typer.BadParameter("--tune tunes the --models of the leaderboard; name them with --models.")
        ranked = parse_models(models) if models else []
        if table is not None and label is not None:
            result = evaluate_table(
                table,
                label,
                split=split or "random",
                test_size=test_size,
                seed=seed,
                model=model,
                time_column=time_column,
                positive=positive,
                drop=drop or (),
                models=ranked,
                tune=tune,
            )
        else:
            with open_store(db, read_only=True) as store:
                result = evaluate_store(
                    store,
                    test_size=test_size,
                    model=model,
                    moments=moments,
                    window_hours=window_hours,
                    split=split or "time",
                    seed=seed,
                    models=ranked,
                    tune=tune,
                )
        if json:
            emit_json(result)
            return
        _print_evaluation(result)

    @group.command()
    @guarded
    def score(
        session: Annotated[str, typer.Option("--session", help="The session id to score.")],
        model_dir: ModelDir = DEFAULT_MODEL_DIR,
        db: DbOption = None,
        json: JsonOption = False,
    ) -> None:
        """Score one session's cart as of its latest event, with the features behind the score."""
        from cartlift.predict import score_session

        with open_store(db, read_only=True) as store:
            result = score_session(store, model_dir, session)
        if json:
            emit_json(result)
            return
        state = "open" if result["cart_open"] else "empty"
        out.print(
            f"session {result['session_id']} ({result['events']} events, cart {state}, value "
            f"{result['cart_value']:,.2f}): [bold]P(abandon) = {result['p_abandon']:.3f}[/]"
        )
        table = Table("feature", "value", "log-odds contribution", title="what drives the score")
        for row in result["top_features"]:
            table.add_row(row["feature"], _fmt(row["value"]), f"{row['contribution']:+.3f}")
        out.print(table)


def _fmt(value: Any) -> str:
    return f"{value:,.4g}" if isinstance(value, float) else str(value)


def _print_evaluation(result: dict[str, Any]) -> None:
    """Metrics, lift by decile and the top features as tables."""
    metrics = Table(
        "metric", result["model"], "logistic baseline", title=f"held out: {result['n_test']:,} rows"
    )
    base = result.get("baseline", {})
    for key in ("roc_auc", "pr_auc", "log_loss", "brier", "ece"):
        metrics.add_row(key, f"{result[key]:.4f}", f"{base[key]:.4f}" if key in base else "")
    out.print(metrics)
    selection = result.get("selection")
    if selection:
        out.print(
            f"auto chose {selection['chosen']} by {selection['folds']}-fold cross-validation on the "
            "training rows ("
            + ", ".join(f"{c['name']} {c['cv_roc_auc']:.4f}" for c in selection["candidates"])
            + ")"
        )
    if result.get("leaderboard"):
        _print_leaderboard(result["leaderboard"])
    if "label_rate" in result:
        definition = (
            "abandoned = no purchase after the cart's last add in the session, as in `cartlift summary`"
            if result.get("moments") == "last_cart_event" and result.get("window_hours") is None
            else f"abandoned = no purchase after the moment ({result.get('moments')}, window {result.get('window_hours')} h)"
        )
        out.print(
            f"label: {definition}; {result['label_rate']:.1%} of {result['rows']:,} carts holding items, "
            f"{result['positive_rate']:.1%} of the held-out ones"
        )
    truth = result.get("truth")
    if truth:
        out.print(
            f"simulator's true probabilities: ROC-AUC {truth['roc_auc_true']:.4f}; "
            f"the model reaches {truth['auc_ratio']:.1%} of it"
        )
    lift = Table(
        "decile", "rows", "rate", "lift", "cumulative gain", title="lift by decile (highest risk first)"
    )
    for row in result["lift"]:
        lift.add_row(
            str(row["group"]),
            f"{row['n']:,}",
            f"{row['rate']:.3f}",
            f"{row['lift']:.2f}",
            f"{row['cumulative_gain']:.1%}",
        )
    out.print(lift)
    if not result["feature_importance"]:
        return
    shap = Table("feature", "mean |SHAP|", title="feature importance")
    for row in result["feature_importance"][:10]:
        shap.add_row(row["feature"], f"{row['mean_abs_shap']:.4f}")
    out.print(shap)


def _print_leaderboard(board: dict[str, Any]) -> None:
    """The families ranked by held-out ROC-AUC, with 95 % intervals and times."""
    title = "leaderboard (same split; 95% bootstrap intervals" + (", tuned)" if board["tuned"] else ")")
    table = Table("model", "ROC-AUC", "PR-AUC", "log loss", "Brier", "ECE", "fit s", "predict s", title=title)
    for row in board["rows"]:
        ci = row["intervals"]

        def cell(key: str, row: dict[str, Any] = row, ci: dict[str, list[float]] = ci) -> str:
            return f"{row[key]:.4f} [{ci[key][0]:.4f}, {ci[key][1]:.4f}]"

        table.add_row(
            row["model"],
            cell("roc_auc"),
            cell("pr_auc"),
            cell("log_loss"),
            cell("brier"),
            f"{row['ece']:.4f}",
            f"{row['fit_seconds']:.2f}",
            f"{row['predict_seconds']:.3f}",
        )
    out.print(table)
    test = board.get("paired_test")
    if test:
        lo, hi = test["interval"]
        out.print(
            f"{test['best']} - {test['second']}: ROC-AUC difference {test['roc_auc_difference']:+.4f} "
            f"[{lo:+.4f}, {hi:+.4f}], p = {test['p_value']:.3f} ({test['method']})"
        )


def demo_step(store: EventStore, out_dir: Path) -> dict[str, Any]:
    """`cartlift demo`'s abandonment step: time-split evaluation, then a model trained on everything."""
    from cartlift.predict import run_demo

    return run_demo(store, out_dir)
