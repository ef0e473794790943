"""`cartlift recommend train|evaluate|show|models` and `cartlift rules`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from cartlift.cli._common import (
    DbOption,
    JsonOption,
    console,
    emit_json,
    fail,
    guarded,
    open_store,
    out,
    progress_bar,
)

if TYPE_CHECKING:
    from cartlift.store import EventStore

HEADLINE = ("HR@20", "MRR@20", "NDCG@10")
WEIGHTS_HELP = "Event-type weights, e.g. view=1,cart_add=3,purchase=5 (the default)."


def register(app: typer.Typer) -> None:
    """Add the recommendation commands to ``app``."""
    rec = typer.Typer(
        help="Recommendations: train, evaluate offline, show a user's recommendations.",
        no_args_is_help=True,
    )
    app.add_typer(rec, name="recommend")

    @rec.command("models")
    @guarded
    def models_cmd(json: JsonOption = False) -> None:
        """List the models by name."""
        from cartlift.recommend import MODELS

        rows = [{"name": name, "description": desc} for name, (_, _, desc) in MODELS.items()]
        rows.append(
            {
                "name": "best",
                "description": "whichever of ranker, hybrid, vstan, itemknn, als, popularity evaluates best here",
            }
        )
        if json:
            emit_json({"models": rows})
            return
        table = Table("name", "what", title="models")
        for r in rows:
            table.add_row(r["name"], r["description"])
        out.print(table)

    @rec.command("train")
    @guarded
    def train(
        model: Annotated[
            str,
            typer.Option(
                "--model",
                "-m",
                help="Model name (see `cartlift recommend models`); `best`: the model that evaluates best on this store.",
            ),
        ],
        out_path: Annotated[
            Path | None,
            typer.Option("--out", "-o", help="Model file (default: models/STORE/NAME.npz beside the store)."),
        ] = None,
        half_life_days: Annotated[
            float | None, typer.Option(help="Time decay of interaction weights (days); none by default.")
        ] = None,
        weights: Annotated[str | None, typer.Option(help=WEIGHTS_HELP)] = None,
        seed: Annotated[int, typer.Option(help="Random seed (ALS).")] = 0,
        db: DbOption = None,
        json: JsonOption = False,
    ) -> None:
        """Fit a model on all product events of the store and save it (npz, no pickle)."""
        from cartlift.recommend._workflows import parse_weights, train_on_store
        from cartlift.store import store_identity

        with open_store(db, read_only=True) as store:
            if not json:
                console.print(f"training {model} on {store.path} ...")
            result = train_on_store(
                store,
                model,
                out=out_path,
                half_life_days=half_life_days,
                random_state=seed,
                weights=parse_weights(weights),
                store_id=store_identity(db),
            )
        if model in ("content", "hybrid"):
            from cartlift.recommend._embed import EMBEDDINGS_AVAILABLE, EMBEDDINGS_NOTE

            if not EMBEDDINGS_AVAILABLE:
                # a note on stderr, so --json output stays the same
                console.print(f"note: {EMBEDDINGS_NOTE}", markup=False)
        if json:
            emit_json(result)
            return
        out.print(
            f"[bold]{result['model']}[/]: {result['users']:,} users, {result['items']:,} items, "
            f"{result['events']:,} events, fitted in {result['fit_seconds']:.2f} s -> {result['path']}"
        )

    @rec.command("evaluate")
    @guarded
    def evaluate_cmd(
        models: Annotated[
            str, typer.Option("--models", help="Comma-separated model names, e.g. sknn,itemknn,popularity.")
        ] = "popularity,itemknn,als,vsknn,hybrid",
        protocol: Annotated[
            str | None,
            typer.Option(
                help="temporal, leave-last-out or next-item (default: temporal; next-item for files)."
            ),
        ] = None,
        format: Annotated[
            str | None, typer.Option("--format", help="External files' format (yoochoose); else the store.")
        ] = None,
        train: Annotated[Path | None, typer.Option("--train", help="External training file.")] = None,
        test: Annotated[Path | None, typer.Option("--test", help="External test file.")] = None,
        test_fraction: Annotated[
            float, typer.Option(help="Share of events (by time) in the test period.")
        ] = 0.2,
        metrics: Annotated[
            str,
            typer.Option(
                help="Comma-separated NAME@K (Precision, Recall, HR, MRR, NDCG, MAP, Coverage, Novelty)."
            ),
        ] = "HR@20,MRR@20,NDCG@10,Precision@10,Recall@20,MAP@10,Coverage@20,Novelty@10",
        relevant: Annotated[
            str | None,
            typer.Option(help="Event types that make a test item relevant, e.g. purchase,cart_add."),
        ] = None,
        weights: Annotated[str | None, typer.Option(help=WEIGHTS_HELP)] = None,
        half_life_days: Annotated[
            float | None, typer.Option(help="Time decay of training interaction weights (days).")
        ] = None,
        bootstrap: Annotated[
            int, typer.Option(help="Bootstrap draws for the 95% intervals (0: none).")
        ] = 1000,
        seed: Annotated[int, typer.Option(help="Random seed (bootstrap, ALS).")] = 0,
        db: DbOption = None,
        json: JsonOption = False,
    ) -> None:
        """Offline leaderboard: full ranking, HR/MRR/NDCG/MAP/precision/recall at k, coverage, novelty,
        bootstrap intervals over users and a paired test of the two best models."""
        from cartlift.recommend._workflows import evaluate_files, evaluate_store, parse_weights

        metric_list = [m.strip() for m in metrics.split(",") if m.strip()]
        with progress_bar() if not json else _no_progress() as bar:
            if format is not None or train is not None or test is not None:
                if format is None or train is None or test is None:
                    raise fail("External evaluation needs --format, --train and --test together.")
                board = evaluate_files(
                    train,
                    test,
                    models,
                    format=format,
                    protocol=protocol or "next-item",
                    metrics=metric_list,
                    n_bootstrap=bootstrap,
                    random_state=seed,
                    progress=bar,
                )
            else:
                with open_store(db, read_only=True) as store:
                    board = evaluate_store(
                        store,
                        models,
                        protocol=protocol or "temporal",
                        test_fraction=test_fraction,
                        weights=parse_weights(weights),
                        half_life_days=half_life_days,
                        relevant_types=[t.strip() for t in relevant.split(",")] if relevant else None,
                        metrics=metric_list,
                        n_bootstrap=bootstrap,
                        random_state=seed,
                        progress=bar,
                    )
        result = board.to_dict()
        if json:
            emit_json(result)
            return
        print_leaderboard(result, metric_list)

    @rec.command("show")
    @guarded
    def show(
        user_id: Annotated[str, typer.Argument(help="The user to recommend for.")],
        model: Annotated[
            str, typer.Option("--model", "-m", help="Model name; `best`: the model that evaluates best here.")
        ] = "best",
        model_path: Annotated[
            Path | None,
            typer.Option(help="Saved model file (default: models/STORE/NAME.npz beside the store)."),
        ] = None,
        k: Annotated[int, typer.Option("--k", "-k", help="How many items.")] = 10,
        category: Annotated[str | None, typer.Option(help="Only items of this category.")] = None,
        exclude_bought: Annotated[bool, typer.Option(help="Never items the user already bought.")] = True,
        db: DbOption = None,
        json: JsonOption = False,
    ) -> None:
        """A user's recent items and recommendations (trains the model first if it was not saved)."""
        from cartlift.recommend._interactions import catalog_frame
        from cartlift.recommend._workflows import build_filter, load_or_train, show_user
        from cartlift.store import store_identity

        with open_store(db, read_only=True) as store:
            fitted = load_or_train(
                store, model, model_path, notify=console.print, store_id=store_identity(db)
            )
            item_filter = build_filter(store, category=category, exclude_bought=exclude_bought)
            result = show_user(fitted, user_id, k=k, item_filter=item_filter, catalog=catalog_frame(store))
        if json:
            emit_json(result)
            return
        if not result["known_user"]:
            console.print(f"user {user_id!r} is not in the model: showing what a new visitor gets")
        if result["recent"]:
            out.print("recent: " + ", ".join(r.get("title", r["item_id"]) for r in result["recent"]))
        table = Table("rank", "item", "title", "category", "score", title=f"{result['model']} for {user_id}")
        for r in result["recommendations"]:
            table.add_row(
                str(r["rank"]), r["item_id"], r.get("title", ""), r.get("category", ""), f"{r['score']:.4g}"
            )
        out.print(table)

    @app.command("rules")
    @guarded
    def rules(
        baskets: Annotated[
            Path,
            typer.Option("--baskets", help="One basket per line (comma-separated) or order-id,item rows."),
        ],
        min_support: Annotated[float, typer.Option("--min-support", help="Minimum share of baskets.")] = 0.01,
        min_confidence: Annotated[float, typer.Option("--min-confidence", help="Minimum confidence.")] = 0.1,
        max_len: Annotated[int | None, typer.Option(help="Longest itemset.")] = None,
        basket_format: Annotated[str, typer.Option("--format", help="auto, lines or rows.")] = "auto",
        limit: Annotated[int | None, typer.Option(help="Print at most this many rules.")] = None,
        json: JsonOption = False,
    ) -> None:
        """Association rules (frequently bought together) with support, confidence and lift."""
        from cartlift.recommend._workflows import mine_rules

        result = mine_rules(
            baskets,
            min_support=min_support,
            min_confidence=min_confidence,
            max_len=max_len,
            basket_format=basket_format,
            limit=limit,
        )
        if json:
            emit_json(result)
            return
        table = Table(
            "if",
            "then",
            "support",
            "confidence",
            "lift",
            title=f"{result['rule_count']:,} rules from {result['baskets']:,} baskets, {result['itemsets']:,} itemsets",
        )
        for r in result["rules"][: limit or 50]:
            table.add_row(
                ", ".join(r["antecedents"]),
                ", ".join(r["consequents"]),
                f"{r['support']:.4f}",
                f"{r['confidence']:.3f}",
                f"{r['lift']:.2f}",
            )
        out.print(table)


class _no_progress:
    """A stand-in for the progress bar when the output is JSON."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def print_leaderboard(result: dict[str, Any], metrics: list[str], per_table: int = 5) -> None:
    """The leaderboard as Rich tables: one column per model (best first, at most ``per_table`` models
    a table, so it fits 80 columns), one row per metric, the 95% interval under each headline metric."""
    info = result.get("info", {})
    rows = result["leaderboard"]
    queries = rows[0].get("queries", 0) if rows else 0
    for start in range(0, len(rows), per_table):
        part = rows[start : start + per_table]
        title = f"leaderboard ({result.get('protocol')}, {queries:,} queries)"
        if len(rows) > per_table:
            title += f", models {start + 1}-{start + len(part)} of {len(rows)}"
        table = Table("metric", *[r["model"] for r in part], title=title)
        for m in metrics:
            cells = []
            for row in part:
                value = row.get(m)
                text = "-" if value is None else f"{value:.4f}"
                ci = row.get(f"{m}_ci")
                if ci and m in HEADLINE and None not in ci:
                    text += f"\n[dim]{ci[0]:.3f}-{ci[1]:.3f}[/]"
                cells.append(text)
            table.add_row(m, *cells)
        if any("vs_best_single" in r for r in part):
            table.add_row(f"vs {info.get('best_single')}", *[_versus(r.get("vs_best_single")) for r in part])
        table.add_row("fit s", *[f"{r['fit_seconds']:.2f}" for r in part])
        table.add_row("rank s", *[f"{r['predict_seconds']:.2f}" for r in part])
        out.print(table)
    comp = result.get("comparison")
    if comp:
        out.print(
            f"{comp['a']} vs {comp['b']} on {comp['metric']}: difference {comp['difference']:+.4f} "
            f"(95% CI {comp['ci_low']:+.4f} to {comp['ci_high']:+.4f}), paired t-test p = {comp['p_value']:.3g}, "
            f"n = {comp['n']:,}"
        )
    for name, reason in info.get("skipped", {}).items():
        console.print(f"skipped {name}: {reason}")


def _versus(comp: dict[str, Any] | None) -> str:
    """A paired difference to the best single model, with its 95% interval (a dash for that model)."""
    if not comp:
        return "-"
    low, high = comp["ci"]
    return f"{comp['difference']:+.4f}\n[dim]{low:+.3f} to {high:+.3f}[/]"


def demo_step(store: EventStore, out_dir: Path) -> dict[str, Any]:
    """For `cartlift demo`: a temporal-split leaderboard of a few models on the store (and, with the
    simulator's truth in the store, each model's NDCG@10 against the true tastes), with a progress
    bar per model (the ranker's fit is the long part)."""
    from cartlift.recommend._workflows import demo_leaderboard

    with progress_bar() as bar:
        return demo_leaderboard(store, out_dir, progress=bar)
