"""Guardrails: before a number is reported, checks of what the data can support.

Each check is a pure function that returns a `Guardrail` (a named warning with a stable code, a
message saying what is wrong and what to do, and the columns concerned) or ``None``. Results
carry their guardrails in a ``warnings`` list; the CLI prints them, the report and the dashboard
show them, so every way a number is seen carries the same caveat.

Two checks protect causal estimates in randomised tables (uplift):

* a column whose distribution differs between the arms cannot be a pre-treatment feature: in a
  randomised test the arms are alike before treatment, so such a column followed the treatment
  (a visit, a spend) and conditioning on it biases the effect (Montgomery, Nyhan & Torres 2018,
  "How conditioning on posttreatment variables can ruin your experiment");
* a column that alone separates the outcome almost perfectly (single-column AUC >= 0.99) decides
  the label: a model that sees it learns the label, not the treatment's effect.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Final

import numpy as np
import pandas as pd

__all__ = [
    "Guardrail",
    "constant_scores",
    "degenerate_bgnbd",
    "label_deciders",
    "post_treatment_columns",
    "short_history",
    "too_few",
]

POST_TREATMENT_ALPHA: Final = 1e-3
"""A randomised pre-treatment column differs between arms at this level one time in a thousand."""
LABEL_AUC: Final = 0.99
"""A column ranking the outcome this well on its own decides it."""


@dataclass(frozen=True)
class Guardrail:
    """A named warning about what the data can support.

    Attributes
    ----------
    code : str
        Stable machine-readable name (``short_history``, ``post_treatment`` ...).
    message : str
        What is wrong, the values seen, and what to do.
    columns : tuple of str
        The columns concerned (dropped, for the column checks).
    """

    code: str
    message: str
    columns: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` shape: ``{"code", "message", "columns"}``."""
        return {"code": self.code, "message": self.message, "columns": list(self.columns)}


def _span_text(span: timedelta) -> str:
    hours = span.total_seconds() / 3600
    if hours < 48:
        return f"{int(hours)} h {int(span.total_seconds() % 3600 // 60)} min"
    return f"{hours / 24:.0f} days"


def short_history(span: timedelta, needed_days: float, what: str) -> Guardrail | None:
    """Warn when ``span`` of history is shorter than the ``needed_days`` that ``what`` assumes."""
    if span >= timedelta(days=needed_days):
        return None
    return Guardrail(
        "short_history",
        f"The store holds {_span_text(span)} of history; {what} assumes at least {needed_days:g} days, "
        "so its labels and figures reflect the short history, not the customers. Load more history.",
    )


def too_few(n: int, minimum: int, what: str) -> Guardrail | None:
    """Warn when only ``n`` (< ``minimum``) units support ``what``."""
    if n >= minimum:
        return None
    return Guardrail(
        "too_few", f"Only {n:,} {what}; at least {minimum:,} are needed for a figure worth reporting."
    )


def constant_scores(scores: np.ndarray, what: str, *, tolerance: float = 1e-6) -> Guardrail | None:
    """Warn when a model gives (almost) every unit the same score: it ranks nothing."""
    values = np.asarray(scores, dtype=float)
    values = values[np.isfinite(values)]
    if values.size and float(np.ptp(values)) > tolerance:
        return None
    only = f"{values[0]:.3f}" if values.size else "none"
    return Guardrail(
        "constant_model",
        f"The {what} gives every unit the same score ({only}): it learned nothing that ranks them, "
        "so it is not reported as a model. Train it on more data.",
    )


def degenerate_bgnbd(params: dict[str, float | None], p_alive: np.ndarray) -> Guardrail | None:
    """Warn when a BG/NBD fit sits on a boundary: ``a`` or ``b`` near 0, or everyone surely alive.

    With ``a -> 0`` the dropout probability vanishes and P(alive) is 1 for every customer: the fit
    found no sign of churn (too short a history, or too few repeat buyers), not that none churn.
    """
    # a and b are None for one common drop-out probability (a, b -> inf): a fit, not this boundary
    a, b = (np.inf if params.get(k, np.nan) is None else float(params.get(k, np.nan) or 0.0) for k in "ab")
    alive = np.asarray(p_alive, dtype=float)
    boundary = not (a > 1e-4 and b > 1e-4)
    all_alive = alive.size > 0 and float(np.nanmin(alive)) > 0.999
    if not (boundary or all_alive):
        return None
    return Guardrail(
        "degenerate_fit",
        f"The BG/NBD fit is degenerate (a = {a:.3g}, b = {b:.3g}; P(alive) from {np.nanmin(alive):.2f} "
        f"to {np.nanmax(alive):.2f}): the data shows no dropout to learn from, so P(alive) and the "
        "expected purchases are not estimates. Use a longer history or more repeat buyers.",
    )


def post_treatment_columns(
    frame: pd.DataFrame, arms: np.ndarray, columns: Sequence[str], *, alpha: float = POST_TREATMENT_ALPHA
) -> Guardrail | None:
    """Columns whose distribution differs between the arms (Kruskal-Wallis for numbers, chi-squared
    for categories, p < ``alpha``): in a randomised table they followed the treatment."""
    from scipy import stats

    groups = pd.Series(arms, index=frame.index).astype(str)
    found: list[tuple[str, float]] = []
    for col in columns:
        values = frame[col]
        numeric = pd.to_numeric(values, errors="coerce")
        if numeric.notna().mean() > 0.99:
            samples = [numeric[groups == g].dropna().to_numpy() for g in groups.unique()]
            if sum(len(s) > 0 for s in samples) < 2 or np.ptp(numeric.dropna()) == 0:
                continue
            p = float(stats.kruskal(*[s for s in samples if len(s)]).pvalue)
        else:
            table = pd.crosstab(values.astype(str), groups)
            if min(table.shape) < 2:
                continue
            p = float(stats.chi2_contingency(table.to_numpy()).pvalue)
        if p < alpha:
            found.append((col, p))
    if not found:
        return None
    names = ", ".join(f"{c} (p = {p:.1g})" for c, p in found)
    return Guardrail(
        "post_treatment",
        f"Column(s) {names} differ between the arms of this randomised table, so they followed the "
        "treatment; a model that conditions on them cannot see its effect. They were dropped.",
        tuple(c for c, _ in found),
    )


def label_deciders(
    frame: pd.DataFrame, y: np.ndarray, columns: Sequence[str], *, threshold: float = LABEL_AUC
) -> Guardrail | None:
    """Columns that alone rank the binary outcome ``y`` with AUC >= ``threshold`` (either way)."""
    from sklearn.metrics import roc_auc_score

    labels = np.asarray(y, dtype=int)
    if labels.min() == labels.max():
        return None
    found: list[tuple[str, float]] = []
    for col in columns:
        numeric = pd.to_numeric(frame[col], errors="coerce")
        if numeric.notna().mean() > 0.99:
            score = numeric.fillna(numeric.median()).to_numpy(dtype=float)
        else:  # a category's outcome rate is its score
            text = frame[col].astype(str)
            score = text.map(pd.Series(labels, index=frame.index).groupby(text).mean()).to_numpy(dtype=float)
        auc = float(roc_auc_score(labels, score))
        auc = max(auc, 1 - auc)
        if auc >= threshold:
            found.append((col, auc))
    if not found:
        return None
    names = ", ".join(f"{c} (AUC {a:.3f})" for c, a in found)
    return Guardrail(
        "label_leak",
        f"Column(s) {names} decide the outcome on their own, so a model learns the label from them "
        "instead of the treatment's effect. They were dropped.",
        tuple(c for c, _ in found),
    )
