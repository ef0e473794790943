"""The clustering methods behind customer segments: k-means, HDBSCAN and a self-organising map.

Each method is searched over a small grid of its one size setting (k for k-means, the smallest
cluster for HDBSCAN, the map's shape for the SOM), the setting with the best silhouette is kept,
and its stability is measured by refitting on bootstrap samples. All work on the same matrix
(log-scaled, standardised behaviour; `CustomerClusters` builds it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any, Final

import numpy as np
from minisom import MiniSom
from sklearn.cluster import HDBSCAN, KMeans
from sklearn.metrics import adjusted_rand_score, silhouette_samples
from sklearn.neighbors import NearestNeighbors

__all__ = ["METHODS", "Fit", "bootstrap_stability", "fit_method", "search", "silhouette"]

METHODS: Final = ("kmeans", "hdbscan", "som")
"""The clustering methods, in the order `auto` tries them."""

NOISE: Final = -1
"""HDBSCAN's label for customers that belong to no dense group."""

HDBSCAN_SHARES: Final = (0.02, 0.05, 0.1)
"""Smallest cluster tried by HDBSCAN, as a share of the customers: a segment below 2 % is too small
to run a campaign on."""

SOM_EPOCHS: Final = 5
"""Passes of the SOM over the customers (training is online, one customer at a time)."""

Assign = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Fit:
    """One fitted clustering: labels of the rows it was fitted on (`NOISE` for none) and how to label others."""

    method: str
    params: dict[str, Any]
    labels: np.ndarray
    assign: Assign = field(repr=False)


def _kmeans(X: np.ndarray, params: dict[str, Any], seed: int) -> Fit:
    model = KMeans(n_clusters=params["k"], n_init=params.get("n_init", 4), random_state=seed).fit(X)
    return Fit("kmeans", params, model.labels_.astype(int), model.predict)


def _hdbscan(X: np.ndarray, params: dict[str, Any], seed: int) -> Fit:
    # min_samples = 10 rather than the cluster size: customers with identical behaviour (one visit,
    # one view) are common, and a larger neighbourhood only merges the rest into them
    size = max(5, round(params["min_share"] * len(X)))
    labels = HDBSCAN(min_cluster_size=size, min_samples=min(10, size), copy=True).fit(X).labels_
    # HDBSCAN labels only what it was fitted on; another customer takes the label of the nearest
    # fitted customer (noise included), the usual way to extend a density clustering
    nn = NearestNeighbors(n_neighbors=1).fit(X)

    def assign(Z: np.ndarray) -> np.ndarray:
        return np.asarray(labels[nn.kneighbors(Z, return_distance=False)[:, 0]])

    return Fit("hdbscan", params, labels.astype(int), assign)


def _som(X: np.ndarray, params: dict[str, Any], seed: int) -> Fit:
    rows, cols = params["shape"]
    # sigma 1 (MiniSom's default, decaying to 1/3): on maps this small a neighbourhood reaching half
    # the map kept pulling the nodes together (planted groups: 1x3 silhouette 0.43 with sigma = 1.5,
    # 0.80 with 1, the k-means figure)
    som = MiniSom(
        rows, cols, X.shape[1], sigma=max(0.5, max(rows, cols) / 4), learning_rate=0.5, random_seed=seed
    )
    som.random_weights_init(X)
    som.train(X, SOM_EPOCHS * len(X), random_order=True)
    nodes = som.get_weights().reshape(rows * cols, X.shape[1])
    # a node no fitted customer won is no segment: later customers go to the nearest node that is
    nodes = nodes[np.unique(_nearest(X, nodes))]

    def assign(Z: np.ndarray) -> np.ndarray:
        return _nearest(Z, nodes)

    return Fit("som", params, assign(X), assign)


def _nearest(Z: np.ndarray, nodes: np.ndarray) -> np.ndarray:
    """The best-matching node of every row at once (MiniSom's winner() takes one row)."""
    d = (Z**2).sum(axis=1)[:, None] - 2 * Z @ nodes.T + (nodes**2).sum(axis=1)[None, :]
    return np.asarray(d.argmin(axis=1))


_FITTERS: dict[str, Callable[[np.ndarray, dict[str, Any], int], Fit]] = {
    "kmeans": _kmeans,
    "hdbscan": _hdbscan,
    "som": _som,
}


def fit_method(method: str, X: np.ndarray, params: dict[str, Any], seed: int) -> Fit:
    """Fit ``method`` with fixed ``params`` on the rows of ``X``."""
    return _FITTERS[method](X, params, seed)


def _som_shape(n: int) -> tuple[int, int]:
    """The most nearly square map of ``n`` nodes (5 nodes: 1 x 5; 6: 2 x 3)."""
    rows = max(r for r in range(1, int(np.sqrt(n)) + 1) if n % r == 0)
    return rows, n // rows


def grid(method: str, k_min: int, k_max: int, n_init: int) -> Iterator[dict[str, Any]]:
    """The settings searched for ``method``: as many segments as k-means is allowed."""
    if method == "kmeans":
        yield from ({"k": k, "n_init": n_init} for k in range(k_min, k_max + 1))
    elif method == "hdbscan":
        yield from ({"min_share": s} for s in HDBSCAN_SHARES)
    else:
        yield from ({"shape": _som_shape(k)} for k in range(k_min, k_max + 1))


def silhouette(X: np.ndarray, labels: np.ndarray, sample: np.ndarray) -> float:
    """Mean silhouette over the ``sample`` rows, a noise row counting 0 (it fits no cluster).

    Counting noise as 0 keeps a method that leaves most customers unclustered from scoring well
    on the few it kept. NaN when fewer than two clusters are found.
    """
    lab = labels[sample]
    kept = lab != NOISE
    if len(np.unique(lab[kept])) < 2:
        return float("nan")
    s = np.zeros(len(lab))
    s[kept] = silhouette_samples(X[sample][kept], lab[kept])
    return float(s.mean())


def search(
    method: str, X: np.ndarray, rng: np.random.Generator, *, k_min: int, k_max: int, n_init: int, sample: int
) -> tuple[Fit | None, dict[str, float]]:
    """Each setting of ``method`` fitted on ``X`` and scored by `silhouette`; the best fit and all scores.

    The scores are keyed by the setting's label (``"3"``, ``"5%"``, ``"2x3"``). None when no setting
    found two clusters.
    """
    idx = rng.choice(len(X), size=min(sample, len(X)), replace=False)
    best, scores, best_score = None, {}, -np.inf
    for params in grid(method, k_min, k_max, n_init):
        fit = fit_method(method, X, params, int(rng.integers(2**31 - 1)))
        score = silhouette(X, fit.labels, idx)
        if np.isnan(score):
            continue
        scores[setting_label(params)] = score
        if score > best_score:
            best, best_score = fit, score
    return best, scores


def setting_label(params: dict[str, Any]) -> str:
    """How a setting is shown: k, the smallest cluster share or the map's shape."""
    if "k" in params:
        return str(params["k"])
    if "min_share" in params:
        return f"{params['min_share']:.0%}"
    return "x".join(map(str, params["shape"]))


def bootstrap_stability(
    fit: Fit,
    X: np.ndarray,
    rng: np.random.Generator,
    n_boot: int,
    confidence: float = 0.95,
    tick: Callable[[float], None] | None = None,
) -> tuple[float, float, float]:
    """Mean adjusted Rand index between bootstrap refits, with a percentile interval over the pairs.

    ``fit``'s method is refitted with its settings on ``n_boot`` bootstrap samples of ``X``; each
    refit labels every row of ``X``, and the ARI (Hubert & Arabie 1985) of every pair of those
    labellings is computed. 1 means every resample finds the same segments; near 0, chance.
    """
    labellings = []
    for i in range(n_boot):
        rows = rng.integers(0, len(X), len(X))
        refit = fit_method(fit.method, X[rows], fit.params, int(rng.integers(2**31 - 1)))
        labellings.append(refit.assign(X))
        if tick is not None:
            tick((i + 1) / n_boot)
    aris = np.array([adjusted_rand_score(a, b) for a, b in combinations(labellings, 2)])
    tail = (1 - confidence) / 2 * 100
    lo, hi = np.percentile(aris, [tail, 100 - tail])
    return float(aris.mean()), float(lo), float(hi)
