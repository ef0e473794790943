"""The jobs behind ``cartlift abandonment``: train, evaluate and score, from a store or from a table.

Each function takes plain arguments and returns plain data (the ``--json`` shapes), so the CLI
only parses options and prints.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from cartlift.errors import DataError
from cartlift.guardrails import constant_scores
from cartlift.predict._batch import LABEL, cart_features, feature_table
from cartlift.predict._context import FeatureContext
from cartlift.predict._evaluate import SAVED_KINDS, evaluate_model, load_model, split_rows
from cartlift.predict._leaderboard import leaderboard
from cartlift.predict._live import SessionState
from cartlift.predict._metrics import binary_metrics, roc_auc
from cartlift.predict._models import binary_labels
from cartlift.predict._scoring import LiveScorer
from cartlift.predict._select import fit_named
from cartlift.predict._spec import FEATURE_NAMES
from cartlift.store import EventStore

__all__ = [
    "evaluate_store",
    "evaluate_table",
    "read_cart_features",
    "read_table",
    "run_demo",
    "score_session",
    "store_truth",
    "train_features",
    "train_store",
    "train_table",
]

_BASELINE_KEYS = ("roc_auc", "pr_auc", "log_loss", "brier", "ece")


def read_table(path: str | Path) -> pd.DataFrame:
    """A CSV/TSV, Parquet or JSON-lines file as a DataFrame (types detected by DuckDB)."""
    file = Path(path)
    if not file.is_file():
        raise DataError(f"No such file: {str(file)!r}.")
    lit = "'" + str(file).replace("'", "''") + "'"
    suffix = file.suffix.lower()
    reader = {".parquet": "read_parquet", ".json": "read_json_auto", ".jsonl": "read_json_auto"}.get(
        suffix, "read_csv_auto"
    )
    try:
        with duckdb.connect() as con:
            return con.execute(f"SELECT * FROM {reader}({lit})").df()
    except duckdb.Error as e:
        raise DataError(f"Cannot read {str(file)!r} as a table: {e}") from e


def read_cart_features(path: str | Path) -> pd.DataFrame:
    """A cart feature table saved as Parquet: one file, or a folder of part files as Spark writes.

    Rows come back in `cart_features`'s order (time, session, position in the session), whatever
    order the parts were written in, so a model trained on them is the one the store would give.
    """
    target = Path(path)
    if target.is_dir():
        source = str(target / "**" / "*.parquet")
        if not any(target.rglob("*.parquet")):
            raise DataError(f"No Parquet files under {str(target)!r}: write the features there first.")
    elif target.is_file():
        source = str(target)
    else:
        raise DataError(f"No such file or folder: {str(target)!r}.")
    lit = "'" + source.replace("'", "''") + "'"
    try:
        with duckdb.connect() as con:
            frame = con.execute(f"SELECT * FROM read_parquet({lit}, hive_partitioning = false)").df()
    except duckdb.Error as e:
        raise DataError(f"Cannot read {str(target)!r} as a cart feature table: {e}") from e
    frame = feature_table(frame)
    # (ts, session, seq) is unique per row, so this is the order of `cart_features`'s ORDER BY
    return frame.sort_values(["ts", "session_id", "seq"], ignore_index=True)


def _table_xy(
    frame: pd.DataFrame, label: str, positive: str | None, drop: Sequence[str], time_column: str | None
) -> tuple[pd.DataFrame, np.ndarray, Any, Any]:
    """Features, 0/1 label, the positive class and the time column of a user's table."""
    for name in (label, *drop, *([time_column] if time_column else [])):
        if name not in frame.columns:
            raise DataError(
                f"The table has no column {name!r}. Columns: {', '.join(map(str, frame.columns))}."
            )
    target = frame[label]
    if positive is not None:
        y = (target.astype(str) == str(positive)).to_numpy(dtype=float)
        if not y.any():
            raise DataError(
                f"No row of {label!r} equals {positive!r}; values: {sorted(target.astype(str).unique())[:5]}."
            )
        pos: Any = positive
    else:
        y, classes = binary_labels(target)
        pos = classes[1]
    time = frame[time_column] if time_column else None
    X = frame.drop(columns=[label, *drop, *([time_column] if time_column else [])])
    return X, y, pos, time


def _evaluate(
    X: pd.DataFrame,
    y: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    *,
    model: str,
    seed: int | None,
    n_jobs: int | None,
    baseline: bool,
    models: Sequence[str] = (),
    tune: bool = False,
) -> tuple[Any, dict[str, Any]]:
    if len(np.unique(y[train])) < 2 or len(np.unique(y[test])) < 2:
        raise DataError("Both parts of the split need both classes; use a larger table or test size.")
    fitted, selection = fit_named(model, X.iloc[train], y[train], seed=seed, n_jobs=n_jobs)
    result = evaluate_model(fitted, X.iloc[test], y[test])
    result = {"model": model, "n_train": int(train.size), "n_test": int(test.size), **result}
    if selection is not None:
        result["selection"] = selection
    if baseline and model != "logistic":
        base, _ = fit_named("logistic", X.iloc[train], y[train], seed=seed)
        metrics = binary_metrics(y[test], base.predict_proba(X.iloc[test])[:, 1])
        result["baseline"] = {"model": "logistic", **{k: metrics[k] for k in _BASELINE_KEYS}}
    if models:
        result["leaderboard"] = leaderboard(
            X, y, train, test, models=models, seed=seed, n_jobs=n_jobs, tune=tune
        )
    return fitted, result


def evaluate_table(
    path: str | Path,
    label: str,
    *,
    split: str = "random",
    test_size: float = 0.2,
    seed: int | None = 0,
    model: str = "auto",
    time_column: str | None = None,
    positive: str | None = None,
    drop: Sequence[str] = (),
    baseline: bool = True,
    n_jobs: int | None = None,
    models: Sequence[str] = (),
    tune: bool = False,
) -> dict[str, Any]:
    """Train on part of a feature table and report metrics on the held-out part.

    Returns the ``cartlift abandonment evaluate --table`` JSON: ``roc_auc, pr_auc, log_loss,
    brier, ece``, the positive rate and mean prediction, ``calibration`` (reliability curve),
    ``lift`` (by decile), ``feature_importance`` (mean |SHAP|) and a logistic ``baseline``.
    """
    frame = read_table(path)
    X, y, pos, time = _table_xy(frame, label, positive, drop, time_column)
    train, test = split_rows(len(X), split=split, test_size=test_size, seed=seed, time=time)
    _, result = _evaluate(
        X, y, train, test, model=model, seed=seed, n_jobs=n_jobs, baseline=baseline, models=models, tune=tune
    )
    return {
        "source": str(path),
        "label": label,
        "positive_class": pos,
        "split": split,
        "test_size": test_size,
        "seed": seed,
        **result,
    }


def train_table(
    path: str | Path,
    label: str,
    out: str | Path,
    *,
    model: str = "auto",
    positive: str | None = None,
    drop: Sequence[str] = (),
    seed: int | None = 0,
    n_jobs: int | None = None,
) -> dict[str, Any]:
    """Fit on every row of a feature table and save the model to ``out``."""
    frame = read_table(path)
    X, y, pos, _ = _table_xy(frame, label, positive, drop, None)
    fitted, _ = fit_named(_saveable(model), X, y, seed=seed, n_jobs=n_jobs)
    meta = {"features": "table", "source": str(path), "label": label, "positive_class": pos}
    return _saved(fitted, out, meta, y)


def _saveable(model: str) -> str:
    if model != "auto" and model not in SAVED_KINDS:
        raise DataError(
            f"A {model} model is for comparison (`abandonment evaluate --models`) and is not saved; "
            f"train one of auto, {', '.join(SAVED_KINDS)}."
        )
    return model


def _saved(fitted: Any, out: str | Path, meta: dict[str, Any], y: np.ndarray) -> dict[str, Any]:
    meta = {**meta, "trained_at": datetime.now(UTC).isoformat(timespec="seconds"), "rows": int(y.size)}
    folder = fitted.save(out, meta)
    return {
        "model": fitted.kind,
        "out": str(folder),
        "rows": int(y.size),
        "positive_rate": float(y.mean()),
        "n_train": fitted.n_train_,
        "n_calibration": fitted.n_calibration_,
        "features": [str(c) for c in fitted.encoder_.columns_],
        "dropped": dict(fitted.encoder_.dropped_),
        **({"best_iteration": fitted.best_iteration_} if hasattr(fitted, "best_iteration_") else {}),
    }


def _store_frame(store: EventStore, moments: str, window_hours: float | None) -> pd.DataFrame:
    frame = cart_features(store, moments=moments, window_hours=window_hours)
    if len(frame) < 2:
        raise DataError(
            f"The store has {len(frame)} open cart(s) to learn from ({moments}); load events with cart_add first."
        )
    return frame


def store_truth(store: EventStore) -> pd.DataFrame | None:
    """The simulator's true purchase probability per session, when the store was simulated.

    Looks for a ``truth_*`` table with ``session_id`` and ``p_purchase`` columns; returns
    ``session_id, p_purchase`` or None.
    """
    columns = store.con.execute(
        "SELECT table_name, list(column_name) FROM information_schema.columns"
        " WHERE table_schema = 'main' AND starts_with(table_name, 'truth_') GROUP BY 1 ORDER BY 1"
    ).fetchall()
    for table, cols in columns:
        if {"session_id", "p_purchase"} <= set(cols):
            return store.query(f"SELECT session_id, p_purchase FROM {table} WHERE p_purchase IS NOT NULL")
    return None


def _truth_comparison(frame: pd.DataFrame, p_model: np.ndarray, truth: pd.DataFrame) -> dict[str, Any] | None:
    """AUC of the model next to the AUC of the simulator's own probabilities, on the same rows."""
    joined = frame[["session_id", LABEL]].assign(p_model=p_model).merge(truth, on="session_id", how="inner")
    y = joined[LABEL].to_numpy(dtype=float)
    if len(joined) < 2 or y.min() == y.max():
        return None
    p_true = 1.0 - joined["p_purchase"].to_numpy(dtype=float)  # P(abandoned)
    auc_model = roc_auc(y, joined["p_model"].to_numpy())
    auc_true = roc_auc(y, p_true)
    true_metrics = binary_metrics(y, p_true)
    return {
        "n": len(joined),
        "roc_auc_model": auc_model,
        "roc_auc_true": auc_true,
        "auc_ratio": auc_model / auc_true if auc_true > 0 else float("nan"),
        "true_probability": {k: true_metrics[k] for k in _BASELINE_KEYS},
    }


def evaluate_store(
    store: EventStore,
    *,
    test_size: float = 0.2,
    model: str = "auto",
    moments: str = "last_cart_event",
    window_hours: float | None = None,
    split: str = "time",
    seed: int | None = 0,
    baseline: bool = True,
    n_jobs: int | None = None,
    models: Sequence[str] = (),
    tune: bool = False,
) -> dict[str, Any]:
    """Build the cart features, train on the earlier part and evaluate on the later part.

    On a simulated store (``truth_*`` tables) the result also has ``truth``: the AUC of the
    simulator's true probabilities on the same held-out carts (the best any model can reach)
    and the model's share of it.
    """
    frame = _store_frame(store, moments, window_hours)
    X = frame[list(FEATURE_NAMES)]
    y = frame[LABEL].to_numpy(dtype=float)
    train, test = split_rows(len(frame), split=split, test_size=test_size, seed=seed, time=frame["ts"])
    fitted, result = _evaluate(
        X, y, train, test, model=model, seed=seed, n_jobs=n_jobs, baseline=baseline, models=models, tune=tune
    )
    out: dict[str, Any] = {
        "source": str(store.path),
        "label": LABEL,
        "positive_class": 1,
        "moments": moments,
        "window_hours": window_hours,
        "split": split,
        "test_size": test_size,
        "seed": seed,
        "test_from": frame["ts"].iloc[test].min(),
        # the label's base rate on every row (the held-out part's is ``positive_rate``); at the last
        # cart event without a window it counts the carts of `cartlift summary` holding items
        "rows": len(frame),
        "label_rate": float(y.mean()),
        **result,
    }
    truth = store_truth(store)
    if truth is not None:
        p_test = fitted.predict_proba(X.iloc[test])[:, 1]
        out["truth"] = _truth_comparison(frame.iloc[test], p_test, truth)
    return out


def train_store(
    store: EventStore,
    out: str | Path,
    *,
    model: str = "auto",
    moments: str = "last_cart_event",
    window_hours: float | None = None,
    seed: int | None = 0,
    n_jobs: int | None = None,
) -> dict[str, Any]:
    """Fit on every scored moment of the store and save the model (ready for live scoring)."""
    frame = _store_frame(store, moments, window_hours)
    return train_features(
        frame,
        out,
        model=model,
        seed=seed,
        n_jobs=n_jobs,
        source=str(store.path),
        moments=moments,
        window_hours=window_hours,
    )


def train_features(
    frame: pd.DataFrame,
    out: str | Path,
    *,
    model: str = "auto",
    seed: int | None = 0,
    n_jobs: int | None = None,
    source: str = "features",
    moments: str | None = None,
    window_hours: float | None = None,
) -> dict[str, Any]:
    """Fit on a cart feature table (`cart_features`, `spark_cart_features` or `read_cart_features`)
    and save the model, ready for live scoring like one trained on the store.

    ``source``, ``moments`` and ``window_hours`` only describe the table in the saved metadata.
    """
    frame = feature_table(frame)
    if len(frame) < 2:
        raise DataError(f"The feature table has {len(frame)} row(s); a model needs at least two carts.")
    y = frame[LABEL].to_numpy(dtype=float)
    if y.min() == y.max():
        raise DataError(
            "Every cart in the store has the same outcome; a model needs both bought and abandoned carts."
        )
    fitted, _ = fit_named(_saveable(model), frame[list(FEATURE_NAMES)], y, seed=seed, n_jobs=n_jobs)
    # a model that gives every cart the same probability ranks nothing: said here, refused by
    # the service's registry (`cartlift.serve.train_all`)
    scores = fitted.predict_proba(frame[list(FEATURE_NAMES)])
    constant = constant_scores(scores[:, 1] if scores.ndim == 2 else scores, "abandonment model")
    meta = {
        "features": "cart",
        "source": source,
        "label": LABEL,
        "positive_class": 1,
        "moments": moments,
        "window_hours": window_hours,
        "last_event": frame["ts"].max().isoformat(),
    }
    info = _saved(fitted, out, meta, y)
    info["warnings"] = [constant.to_dict()] if constant is not None else []
    return info


def score_session(
    store: EventStore, model_dir: str | Path, session_id: str, *, top: int = 5
) -> dict[str, Any]:
    """Score one session's cart as of its latest event, with the features that drive the score."""
    fitted, meta = load_model(model_dir)
    if meta.get("features") != "cart":
        raise DataError(
            f"The model in {str(model_dir)!r} was trained on a table, not on a store's cart features; "
            "train one with `cartlift abandonment train` on the store."
        )
    events: list[dict[str, Any]] = store.query(
        "SELECT * FROM events WHERE session_id = ? ORDER BY ts, event_id", [session_id]
    ).to_dict("records")  # type: ignore[assignment]  # pandas types record keys as Hashable
    if not events:
        raise DataError(f"The store has no session {session_id!r}.")
    scorer = LiveScorer(fitted, FeatureContext.from_store(store))
    state: SessionState = scorer.session()
    for event in events:
        state.update(event)
    features = state.features()
    p = scorer.score(state)
    contrib = fitted.contributions(pd.DataFrame([features])[list(fitted.feature_names_in_)]).iloc[0]
    reasons = contrib.drop("bias").sort_values(key=np.abs, ascending=False).head(top)
    return {
        "session_id": session_id,
        "user_id": state.user_id,
        "events": state.n_events,
        "as_of": events[-1]["ts"],
        "cart_open": state.cart_open,
        "cart_value": features["cart_value"],
        "p_abandon": p,
        "p_purchase": 1.0 - p,
        "top_features": [
            {"feature": str(k), "value": features.get(str(k)), "contribution": float(v)}
            for k, v in reasons.items()
        ],
        "features": features,
    }


def run_demo(store: EventStore, out_dir: str | Path, *, n_jobs: int | None = None) -> dict[str, Any]:
    """Evaluate on a time split, train on everything, save both; return the headline numbers.

    Writes ``abandonment-evaluation.json`` (the full evaluation) and the model folder
    ``abandonment-model`` under ``out_dir``.
    """
    import json

    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    evaluation = evaluate_store(store, n_jobs=n_jobs)
    report = folder / "abandonment-evaluation.json"
    report.write_text(json.dumps(_jsonable(evaluation), indent=1))
    trained = train_store(store, folder / "abandonment-model", n_jobs=n_jobs)
    headline: dict[str, Any] = {k: evaluation[k] for k in ("n_train", "n_test", *_BASELINE_KEYS)}
    headline["top_decile_lift"] = evaluation["lift"][0]["lift"]
    headline["baseline_roc_auc"] = evaluation.get("baseline", {}).get("roc_auc")
    truth = evaluation.get("truth")
    if truth:
        headline["roc_auc_true"] = truth["roc_auc_true"]
        headline["auc_ratio"] = truth["auc_ratio"]
    headline["top_features"] = [f["feature"] for f in evaluation["feature_importance"][:5]]
    headline["evaluation"] = str(report)
    headline["model"] = trained["out"]
    return headline


def _jsonable(value: Any) -> Any:
    """NumPy scalars, timestamps and NaN made JSON-safe (NaN becomes null)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    return value
