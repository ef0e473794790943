"""The abandonment part of the HTML report: quality, calibration, lift and what drives the score.

`collect_sections` calls `prediction_sections(store)`; the figures are built from the evaluation
dict of `evaluate_store`, so any caller holding one can reuse them.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from cartlift.errors import DataError
from cartlift.predict import evaluate_store
from cartlift.report._section import Section, Table
from cartlift.store import EventStore

__all__ = ["evaluation_sections", "prediction_sections"]

_METRICS = ("roc_auc", "pr_auc", "log_loss", "brier", "ece")


def prediction_sections(store: EventStore) -> list[Section]:
    """Evaluate the abandonment model on the store (time split) and describe it for the report."""
    try:
        evaluation = evaluate_store(store)
    except DataError as e:
        return [Section("Abandonment prediction", notes=[f"No model could be evaluated: {e}"])]
    return evaluation_sections(evaluation)


def evaluation_sections(evaluation: dict[str, Any]) -> list[Section]:
    """Report sections (metrics table, reliability curve, lift and gains, SHAP importances) of one evaluation."""
    import plotly.graph_objects as go

    rows = [{"model": evaluation["model"], **{k: evaluation[k] for k in _METRICS}}]
    if "baseline" in evaluation:
        rows.append({"model": "logistic baseline", **{k: evaluation["baseline"][k] for k in _METRICS}})
    truth = evaluation.get("truth")
    if truth:
        rows.append({"model": "simulator's true probabilities", **truth["true_probability"]})
    quality = Table(
        pd.DataFrame(rows),
        title=f"held-out carts: {evaluation['n_test']:,} (trained on {evaluation['n_train']:,})",
        caption="ROC-AUC and PR-AUC: higher is better; log loss, Brier score and ECE: lower is better.",
        formats=dict.fromkeys(_METRICS, ".4f"),
    )
    notes = [
        f"Each row is a cart at its {evaluation.get('moments', 'scored moment').replace('_', ' ')}; the "
        f"model predicts P(abandoned). The last {evaluation['test_size']:.0%} of the time range is held "
        "out, so the model is judged on carts later than those it learnt from.",
    ]
    if truth:
        notes.append(
            f"On this simulated store the true probabilities reach ROC-AUC {truth['roc_auc_true']:.3f}, the "
            f"best any model can do; the model reaches {truth['auc_ratio']:.1%} of it."
        )

    cal = pd.DataFrame(evaluation["calibration"])
    reliability = go.Figure(
        [
            go.Scatter(
                x=[0, 1], y=[0, 1], mode="lines", name="perfect", line={"dash": "dash", "color": "grey"}
            ),
            go.Scatter(
                x=cal["mean_predicted"],
                y=cal["observed_rate"],
                mode="lines+markers",
                name="model",
                text=[f"{n:,} carts" for n in cal["n"]],
            ),
        ]
    )
    reliability.update_layout(
        title="Calibration: predicted vs observed abandonment",
        xaxis_title="mean predicted P(abandoned)",
        yaxis_title="observed share abandoned",
    )

    lift = pd.DataFrame(evaluation["lift"])
    gains = go.Figure(
        [
            go.Bar(x=lift["group"], y=lift["lift"], name="lift"),
            go.Scatter(x=lift["group"], y=lift["cumulative_gain"], name="cumulative gain", yaxis="y2"),
        ]
    )
    gains.update_layout(
        title="Lift and cumulative gains by decile (highest risk first)",
        xaxis_title="decile",
        yaxis_title="lift",
        yaxis2={
            "title": "share of abandoned carts found",
            "overlaying": "y",
            "side": "right",
            "tickformat": ".0%",
        },
    )

    shap = pd.DataFrame(evaluation["feature_importance"]).iloc[::-1]
    importance = go.Figure(go.Bar(x=shap["mean_abs_shap"], y=shap["feature"], orientation="h"))
    importance.update_layout(title="What drives the score: mean |SHAP value| (log-odds)", height=500)
    return [
        Section(
            "Abandonment prediction",
            figures=[reliability, gains, importance],
            tables=[
                quality,
                Table(
                    lift[["group", "n", "rate", "lift", "cumulative_gain"]],
                    title="by decile",
                    formats={"rate": ".1%", "lift": ".2f", "cumulative_gain": ".1%"},
                ),
            ],
            notes=notes,
        )
    ]
