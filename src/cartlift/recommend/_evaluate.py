"""Offline evaluation: fit each model, rank the full catalogue per query, score, compare.

Confidence intervals come from a bootstrap over users (or test sessions for next-item): whole
users are resampled, so the several queries of one user move together. The paired comparison
of two models uses the same users for both: the per-user difference of the metric, a bootstrap
interval of its mean and a paired t-test.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy import stats

from cartlift._random import RandomState, check_random_state
from cartlift.errors import DataError, InvalidParameterError
from cartlift.recommend._base import Recommender
from cartlift.recommend._hybrid import Hybrid
from cartlift.recommend._metrics import (
    AGGREGATE,
    PER_QUERY,
    catalog_coverage,
    hits,
    novelty,
    parse_metric,
)
from cartlift.recommend._split import EvalTask

__all__ = ["DEFAULT_METRICS", "Leaderboard", "PairedTest", "bootstrap_ci", "evaluate", "paired_test"]

DEFAULT_METRICS: Final = (
    "HR@20",
    "MRR@20",
    "NDCG@10",
    "Precision@10",
    "Recall@20",
    "MAP@10",
    "Coverage@20",
    "Novelty@10",
)

Progress = Callable[[str, float], None]


def _group_sums(values: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    codes, _ = pd.factorize(groups, sort=True)
    ok = ~np.isnan(values)
    sums = np.bincount(codes[ok], weights=values[ok], minlength=codes.max() + 1)
    counts = np.bincount(codes[ok], minlength=codes.max() + 1).astype(np.float64)
    return sums, counts


def bootstrap_ci(
    values: np.ndarray,
    groups: np.ndarray,
    *,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    random_state: RandomState = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of per-query ``values``, resampling whole groups.

    The statistic is the mean over all queries of the resampled groups (a ratio of sums), the
    same mean the leaderboard reports.

    Parameters
    ----------
    values : ndarray, shape (n_queries,)
    groups : ndarray, shape (n_queries,)
        Resampling unit of each query (user or session).
    n_bootstrap : int
    confidence : float
    random_state : int, Generator or None

    Returns
    -------
    (low, high) : tuple of float
    """
    sums, counts = _group_sums(np.asarray(values, np.float64), np.asarray(groups))
    if counts.sum() == 0 or n_bootstrap < 1:
        return float("nan"), float("nan")
    rng = check_random_state(random_state)
    n = len(sums)
    stats_ = np.empty(n_bootstrap)
    chunk = max(1, 20_000_000 // max(n, 1))  # bounds memory at about 160 MB of indices
    for start in range(0, n_bootstrap, chunk):
        size = min(chunk, n_bootstrap - start)
        draw = rng.integers(0, n, size=(size, n))
        num, den = sums[draw].sum(axis=1), counts[draw].sum(axis=1)
        stats_[start : start + size] = np.divide(num, den, out=np.full(size, np.nan), where=den > 0)
    alpha = (1 - confidence) / 2
    low, high = np.nanquantile(stats_, [alpha, 1 - alpha])
    return float(low), float(high)


@dataclass(frozen=True)
class PairedTest:
    """Model ``a`` against model ``b`` on the same users.

    Attributes
    ----------
    metric : str
    a, b : str
        Model names.
    mean_a, mean_b : float
        Means over the queries both models answered.
    difference : float
        ``mean_a - mean_b``.
    ci_low, ci_high : float
        95% bootstrap interval of the difference (whole users resampled).
    p_value : float
        Two-sided cluster-robust paired t-test.
    n : int
        Paired units (users or sessions).
    """

    metric: str
    a: str
    b: str
    mean_a: float
    mean_b: float
    difference: float
    ci_low: float
    ci_high: float
    p_value: float
    n: int

    def to_dict(self) -> dict[str, Any]:
        """Plain values for JSON."""
        return dict(self.__dict__)


def paired_test(
    values_a: np.ndarray,
    values_b: np.ndarray,
    groups: np.ndarray,
    *,
    metric: str = "",
    names: tuple[str, str] = ("a", "b"),
    n_bootstrap: int = 1000,
    random_state: RandomState = 0,
) -> PairedTest:
    """Compare two models' per-query metric values on the same queries, clustered by user.

    The difference is the mean over queries (the leaderboard's mean). Its interval is a bootstrap
    over whole groups; its p-value a cluster-robust paired t-test: with per-group sums of
    differences ``d_g``, query counts ``n_g`` and ``G`` groups,

    .. math:: \\hat\\delta = \frac{\\sum_g d_g}{\\sum_g n_g}, \\quad
              \\widehat{se}^2 = \frac{G}{G - 1} \frac{\\sum_g (d_g - \\hat\\delta n_g)^2}{(\\sum_g n_g)^2},

    and ``t = delta / se`` on ``G - 1`` degrees of freedom (the linearised ratio estimator). With
    one query per group this is exactly the ordinary paired t-test.

    Parameters
    ----------
    values_a, values_b : ndarray, shape (n_queries,)
    groups : ndarray, shape (n_queries,)
        Resampling unit of each query (user or session).
    metric : str
        Name, for the report.
    names : (str, str)
    n_bootstrap : int
    random_state : int, Generator or None
    """
    a = np.asarray(values_a, np.float64)
    b = np.asarray(values_b, np.float64)
    ok = ~(np.isnan(a) | np.isnan(b))
    a, b, g = a[ok], b[ok], np.asarray(groups)[ok]
    diff_sum, counts = _group_sums(a - b, g) if len(a) else (np.array([]), np.array([]))
    n_groups = len(diff_sum)
    if n_groups < 2:
        raise DataError(f"A paired test needs at least 2 users with values; got {n_groups}.")
    total = counts.sum()
    delta = float(diff_sum.sum() / total)
    resid = diff_sum - delta * counts
    se = float(np.sqrt(n_groups / (n_groups - 1) * (resid**2).sum()) / total)
    # se == 0: every group differs by exactly delta, so there is no noise to test against
    p = (1.0 if delta == 0 else 0.0) if se == 0 else float(2 * stats.t.sf(abs(delta / se), df=n_groups - 1))
    low, high = bootstrap_ci(a - b, g, n_bootstrap=n_bootstrap, random_state=random_state)
    return PairedTest(
        metric=metric,
        a=names[0],
        b=names[1],
        mean_a=float(a.mean()),
        mean_b=float(b.mean()),
        difference=delta,
        ci_low=low,
        ci_high=high,
        p_value=p,
        n=n_groups,
    )


@dataclass
class Leaderboard:
    """Results of :func:`evaluate`, best model first.

    Attributes
    ----------
    rows : list of dict
        Per model: ``model``, each metric, ``<metric>_ci`` = [low, high] for per-query metrics,
        ``composite`` (a blend of other models: hybrid, ranker), ``fit_seconds``,
        ``predict_seconds``, ``queries``, and except for the best single model ``vs_best_single``:
        ``{"model", "metric", "difference", "ci", "p_value"}``, the paired comparison with it on
        the first per-query metric.
    per_query : dict of str to dict of str to ndarray
        Model -> metric -> per-query values (for paired tests).
    groups : ndarray, shape (n_queries,)
    metrics : list of str
    info : dict
        The protocol and the data sizes.
    """

    rows: list[dict[str, Any]]
    per_query: dict[str, dict[str, np.ndarray]]
    groups: np.ndarray
    metrics: list[str]
    info: dict[str, Any] = field(default_factory=dict)

    def compare(self, a: str, b: str, metric: str | None = None, **kwargs: Any) -> PairedTest:
        """Paired test of model ``a`` against ``b`` on ``metric`` (default: the first one)."""
        name = metric or self.metrics[0]
        for model in (a, b):
            if model not in self.per_query:
                raise InvalidParameterError(f"No model {model!r} in the leaderboard: {list(self.per_query)}.")
        if name not in self.per_query[a]:
            raise InvalidParameterError(f"{name!r} is not a per-query metric of this leaderboard.")
        return paired_test(
            self.per_query[a][name], self.per_query[b][name], self.groups, metric=name, names=(a, b), **kwargs
        )

    def to_dict(self) -> dict[str, Any]:
        """``{"leaderboard": [...], "protocol": ..., "info": ..., "comparison": ...}`` for JSON."""
        out: dict[str, Any] = {
            "leaderboard": self.rows,
            "protocol": self.info.get("protocol"),
            "info": self.info,
        }
        if len(self.rows) >= 2:
            with contextlib.suppress(DataError, InvalidParameterError):
                out["comparison"] = self.compare(self.rows[0]["model"], self.rows[1]["model"]).to_dict()
        return out


def evaluate(
    models: Mapping[str, Recommender],
    task: EvalTask,
    *,
    metrics: Sequence[str] = DEFAULT_METRICS,
    n_bootstrap: int = 1000,
    random_state: RandomState = 0,
    progress: Progress | None = None,
    skip_unfit: bool = True,
) -> Leaderboard:
    """Fit every model on ``task.train``, rank the whole catalogue for every query, and score.

    Parameters
    ----------
    models : mapping of str to Recommender
        Unfitted models by name (fitted in place).
    task : EvalTask
        From :func:`temporal_split`, :func:`leave_last_out` or :func:`next_item`.
    metrics : sequence of str
        ``NAME@K`` with NAME in Precision, Recall, HR, MRR, NDCG, MAP, Coverage, Novelty. The
        leaderboard is sorted by the first.
    n_bootstrap : int
        Bootstrap draws for the intervals (0: none).
    random_state : int, Generator or None
        Seed of the bootstrap.
    progress : callable, optional
        ``progress(label, percent)``.
    skip_unfit : bool
        Leave out (and list in ``info["skipped"]``) models that cannot be fitted on the data
        (content-based without a catalogue ...), instead of failing.

    Returns
    -------
    Leaderboard
    """
    parsed = [(m, *parse_metric(m)) for m in metrics]
    k_max = max(k for _, _, k in parsed)
    train = task.train
    item_index = pd.Index(train.item_ids)
    relevant = _relevant_matrix(task.relevant, item_index)
    n_relevant = np.array([len(set(r.tolist())) for r in task.relevant])
    item_users = np.diff(train.matrix.tocsc().indptr).astype(np.float64)
    rows: list[dict[str, Any]] = []
    per_query: dict[str, dict[str, np.ndarray]] = {}
    skipped: dict[str, str] = {}
    seed = int(check_random_state(random_state).integers(2**31 - 1))
    for number, (name, model) in enumerate(models.items()):
        if progress:
            progress(f"{name}: fit", 0.0)
        start = time.perf_counter()
        try:
            model.fit(train)
        except DataError as e:
            if not skip_unfit:
                raise
            skipped[name] = str(e)
            continue
        fit_seconds = time.perf_counter() - start
        if progress:
            progress(f"{name}: fit", 100.0)
        start = time.perf_counter()
        recommended = _rank(model, task, k_max, progress=progress, label=f"{name}: rank")
        predict_seconds = time.perf_counter() - start
        hit = hits(recommended, relevant)
        row: dict[str, Any] = {"model": name}
        values: dict[str, np.ndarray] = {}
        for metric, kind, k in parsed:
            if kind == "Coverage":
                row[metric] = catalog_coverage(recommended, train.n_items, k)
                continue
            if kind == "Novelty":
                per = novelty(recommended, item_users, train.n_users, k)
            else:
                per = PER_QUERY[kind](hit, n_relevant, k)
            values[metric] = per
            row[metric] = float(np.nanmean(per)) if np.isfinite(per).any() else float("nan")
            if n_bootstrap and kind not in AGGREGATE:
                low, high = bootstrap_ci(
                    per, task.groups, n_bootstrap=n_bootstrap, random_state=seed + number
                )
                row[f"{metric}_ci"] = [low, high]
        row["composite"] = isinstance(model, Hybrid)
        row["fit_seconds"] = round(fit_seconds, 4)
        row["predict_seconds"] = round(predict_seconds, 4)
        row["queries"] = len(task)
        rows.append(row)
        per_query[name] = values
    if not rows:
        raise DataError(f"No model could be evaluated: {skipped}")
    primary = parsed[0][0]
    rows.sort(key=lambda r: -(r[primary] if np.isfinite(r[primary]) else -np.inf))
    info = {"protocol": task.protocol, **task.info, "exclude_seen": task.exclude_seen}
    if skipped:
        info["skipped"] = skipped
    board = Leaderboard(rows=rows, per_query=per_query, groups=task.groups, metrics=list(metrics), info=info)
    _compare_to_best_single(board, n_bootstrap=n_bootstrap, random_state=seed)
    return board


def _compare_to_best_single(board: Leaderboard, *, n_bootstrap: int, random_state: int) -> None:
    """Add ``vs_best_single`` to every other row: the paired difference on the first per-query
    metric to the best model that is not itself a blend of models."""
    metric = next((m for m in board.metrics if m in next(iter(board.per_query.values()), {})), None)
    singles = [r["model"] for r in board.rows if not r["composite"]]
    if metric is None or not singles:
        return
    best = singles[0]
    board.info["best_single"] = best
    for row in board.rows:
        if row["model"] == best:
            continue
        with contextlib.suppress(DataError):
            test = board.compare(
                row["model"], best, metric, n_bootstrap=n_bootstrap, random_state=random_state
            )
            row["vs_best_single"] = {
                "model": best,
                "metric": metric,
                "difference": test.difference,
                "ci": [test.ci_low, test.ci_high],
                "p_value": test.p_value,
            }


def _relevant_matrix(relevant: list[np.ndarray], item_index: pd.Index) -> sp.csr_matrix:
    lengths = np.array([len(r) for r in relevant], np.int64)
    flat = np.concatenate(relevant) if relevant else np.array([], str)
    cols = item_index.get_indexer(pd.Index(flat))
    rows = np.repeat(np.arange(len(relevant)), lengths)
    # relevant items the model never saw stay relevant (counted in R) but cannot be hit
    ok = cols >= 0
    m = sp.csr_matrix((np.ones(int(ok.sum())), (rows[ok], cols[ok])), shape=(len(relevant), len(item_index)))
    m.sum_duplicates()
    return m


def _rank(model: Recommender, task: EvalTask, k: int, *, progress: Progress | None, label: str) -> np.ndarray:
    n = len(task)
    out = np.empty((n, k), np.int64)
    step = 2048
    for start in range(0, n, step):
        stop = min(n, start + step)
        if task.contexts is not None:
            recs = model.recommend_for_items(task.contexts[start:stop], k, exclude_given=task.exclude_seen)
        elif task.user_ids is not None:
            recs = model.recommend(task.user_ids[start:stop], k, exclude_seen=task.exclude_seen)
        else:  # pragma: no cover - EvalTask always has one of the two
            raise DataError("The task has neither users nor contexts.")
        out[start:stop] = recs.indices
        if progress:
            progress(label, 100.0 * stop / n)
    return out
