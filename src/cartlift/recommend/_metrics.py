"""Top-k ranking metrics on full rankings (no sampled negatives), per query.

Notation: ``hit_j`` is 1 when the item at rank ``j`` (1-based) is relevant, ``R`` the number of
relevant items of the query.

- Precision@k = sum_{j<=k} hit_j / k
- Recall@k = sum_{j<=k} hit_j / R
- HR@k (hit rate) = 1 if any hit_j (j <= k)
- MRR@k = 1 / (rank of the first hit), 0 without a hit in the top k
- NDCG@k = sum_j hit_j / log2(j + 1) divided by the same for the ideal ranking,
  sum_{j <= min(k, R)} 1 / log2(j + 1) (Jarvelin and Kekalainen, 2002)
- MAP@k = sum_j Precision@j * hit_j / min(k, R)
- Coverage@k: distinct items in all top-k lists / catalogue size
- Novelty@k: mean self-information -log2(p_i) of the recommended items, p_i the share of
  training users who interacted with item i (a never-seen item counts as one user)
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

import numpy as np
import scipy.sparse as sp

from cartlift.errors import InvalidParameterError

__all__ = [
    "average_precision_at_k",
    "catalog_coverage",
    "hit_rate_at_k",
    "hits",
    "ndcg_at_k",
    "novelty",
    "parse_metric",
    "precision_at_k",
    "recall_at_k",
    "reciprocal_rank_at_k",
]


def hits(recommended: np.ndarray, relevant: sp.csr_matrix) -> np.ndarray:
    """Which recommended items are relevant.

    Parameters
    ----------
    recommended : ndarray of int, shape (n, k)
        Item columns by rank; -1 pads short lists.
    relevant : csr_matrix, shape (n, n_items)
        Nonzero where the item is relevant to the query.

    Returns
    -------
    ndarray of bool, shape (n, k)
    """
    rel = sp.csr_matrix(relevant)
    n = recommended.shape[0]
    n_items = max(rel.shape[1], 1)
    rows = np.repeat(np.arange(rel.shape[0], dtype=np.int64), np.diff(rel.indptr))
    rel_keys = np.sort(rows * n_items + rel.indices)
    rec_keys = np.arange(n, dtype=np.int64)[:, None] * n_items + recommended
    found = np.isin(rec_keys, rel_keys)
    return found & (recommended >= 0)


def precision_at_k(hit: np.ndarray, k: int) -> np.ndarray:
    """Precision@k per query, shape (n,)."""
    return hit[:, :k].sum(axis=1) / float(k)


def recall_at_k(hit: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """Recall@k per query, shape (n,) (NaN when a query has no relevant item)."""
    n_rel = np.asarray(n_relevant, np.float64)
    return np.asarray(
        np.divide(hit[:, :k].sum(axis=1), n_rel, out=np.full(len(n_rel), np.nan), where=n_rel > 0)
    )


def hit_rate_at_k(hit: np.ndarray, k: int) -> np.ndarray:
    """HR@k per query: 1.0 when a relevant item is in the top k, shape (n,)."""
    return np.asarray(hit[:, :k].any(axis=1), np.float64)


def reciprocal_rank_at_k(hit: np.ndarray, k: int) -> np.ndarray:
    """Reciprocal rank of the first hit within the top k (0 without one), shape (n,)."""
    top = hit[:, :k]
    first = np.argmax(top, axis=1)
    return np.where(top.any(axis=1), 1.0 / (first + 1.0), 0.0)


def _discounts(k: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, k + 2))


def ndcg_at_k(hit: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """NDCG@k with binary gains per query, shape (n,) (NaN without relevant items)."""
    top = hit[:, :k].astype(np.float64)
    disc = _discounts(k)
    dcg = top @ disc[: top.shape[1]]
    ideal_len = np.minimum(np.asarray(n_relevant, np.int64), k)
    ideal = np.concatenate([[0.0], np.cumsum(disc)])[ideal_len]
    return np.divide(dcg, ideal, out=np.full(len(dcg), np.nan), where=ideal > 0)


def average_precision_at_k(hit: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """AP@k per query (its mean is MAP@k), shape (n,) (NaN without relevant items)."""
    top = hit[:, :k].astype(np.float64)
    prec = np.cumsum(top, axis=1) / np.arange(1, top.shape[1] + 1)
    denom = np.minimum(np.asarray(n_relevant, np.float64), k)
    return np.divide((prec * top).sum(axis=1), denom, out=np.full(len(denom), np.nan), where=denom > 0)


def catalog_coverage(recommended: np.ndarray, n_items: int, k: int) -> float:
    """Share of the catalogue appearing in at least one top-k list."""
    top = recommended[:, :k]
    return float(len(np.unique(top[top >= 0])) / n_items) if n_items else 0.0


def novelty(recommended: np.ndarray, item_users: np.ndarray, n_users: int, k: int) -> np.ndarray:
    """Mean self-information of each query's top k, shape (n,) (NaN for empty lists).

    Parameters
    ----------
    recommended : ndarray of int, shape (n, k)
    item_users : ndarray, shape (n_items,)
        Training users per item.
    n_users : int
        Training users.
    k : int
    """
    top = recommended[:, :k]
    ok = top >= 0
    info = -np.log2(np.maximum(item_users, 1.0) / max(n_users, 1))
    values = np.where(ok, info[np.maximum(top, 0)], 0.0)
    count = ok.sum(axis=1)
    return np.divide(values.sum(axis=1), count, out=np.full(len(count), np.nan), where=count > 0)


PER_QUERY: Final[dict[str, Callable[..., np.ndarray]]] = {
    "Precision": lambda h, r, k: precision_at_k(h, k),
    "Recall": recall_at_k,
    "HR": lambda h, r, k: hit_rate_at_k(h, k),
    "MRR": lambda h, r, k: reciprocal_rank_at_k(h, k),
    "NDCG": ndcg_at_k,
    "MAP": average_precision_at_k,
}
"""Metrics computed per query from (hits, n_relevant, k)."""

AGGREGATE: Final = ("Coverage", "Novelty")

_NAME = re.compile(r"^([A-Za-z]+)@(\d+)$")


def parse_metric(name: str) -> tuple[str, int]:
    """``"NDCG@10"`` -> ``("NDCG", 10)``; refuses unknown metrics."""
    m = _NAME.match(name.strip())
    known = [*PER_QUERY, *AGGREGATE]
    if not m or m.group(1) not in known or int(m.group(2)) < 1:
        raise InvalidParameterError(
            f"Unknown metric {name!r}: use NAME@K with NAME one of {', '.join(known)}."
        )
    return m.group(1), int(m.group(2))
