"""Candidates and features of the two-stage ranker: the same code builds them for training and serving.

Everything here reads only what a query carries (its session so far, the user's history) and
statistics of the data the generators were fitted on, so a training row never sees an event
later than the cut (tested).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from cartlift.recommend._base import Recommender, row_entries
from cartlift.recommend._interactions import Interactions
from cartlift.recommend._pair_kernels import generator_columns, row_sums_at
from cartlift.recommend._query import Query

__all__ = ["STAT_FIELDS", "Candidates", "ItemStats", "candidates", "feature_names", "values_at"]

_DAY = 86_400.0
# follows_session reads the last clicks of the session, the latest weighing most (1/2 per step back)
_FOLLOW_WINDOW = 10
QUERY_FEATURES = ("returning", "session_length", "session_distinct", "history_size", "session_value")
PAIR_FEATURES = (
    "in_session",
    "clicks_ago",
    "count_in_session",
    "is_last",
    "follows_last",
    "follows_session",
    "cooccurs_last",
    "popularity",
    "popularity_day",
    "price",
    "price_ratio",
    "same_category_last",
    "category_share",
    "margin",
    "history_weight",
)


STAT_FIELDS = ("sessions", "transitions", "popularity", "popularity_day", "price", "margin", "category")
"""The :class:`ItemStats` fields a fitted ranker keeps (``sessions_t`` is derived)."""


def feature_names(generators: Sequence[str]) -> list[str]:
    """Column names of the feature matrix for generators named ``generators``."""
    per = [f"{g}_{kind}" for g in generators for kind in ("score", "rank", "relative")]
    return [*per, *QUERY_FEATURES, *PAIR_FEATURES]


@dataclass(frozen=True)
class ItemStats:
    """What the features know of the items, from the data the generators were fitted on.

    Attributes
    ----------
    sessions : csr_matrix, shape (n_sessions, n_items)
        Session item sets (ones).
    sessions_t : csr_matrix, shape (n_items, n_sessions)
    transitions : csr_matrix, shape (n_items, n_items)
        ``[i, j]``: how often a click on ``j`` directly followed a click on ``i`` (row-normalised).
    popularity, popularity_day : ndarray, shape (n_items,)
        Share of sessions with the item, over all the data and over its last day.
    price, margin : ndarray, shape (n_items,)
        From the catalog (NaN unknown).
    category : ndarray of int64, shape (n_items,)
        Category code (-1 unknown).
    """

    sessions: sp.csr_matrix
    sessions_t: sp.csr_matrix
    transitions: sp.csr_matrix
    popularity: np.ndarray
    popularity_day: np.ndarray
    price: np.ndarray
    margin: np.ndarray
    category: np.ndarray

    @functools.cached_property
    def cooccurrence(self) -> sp.csr_matrix:
        """``[i, j]``: sessions holding both ``i`` and ``j``. Built once, on first use, where a
        query's lookups would multiply the sessions of its last click by the session matrix."""
        return (self.sessions_t @ self.sessions).tocsr()

    @classmethod
    def of(cls, data: Interactions) -> ItemStats:
        """Statistics of ``data`` (its item columns are the model's)."""
        n = data.n_items
        sessions = data.session_matrix.astype(np.float64)
        order = np.lexsort((np.arange(len(data)), data.ts, data.session))
        s, i = data.session[order], data.item[order].astype(np.int64)
        same = s[1:] == s[:-1]
        trans = sp.csr_matrix((np.ones(int(same.sum())), (i[:-1][same], i[1:][same])), shape=(n, n))
        trans.sum_duplicates()
        out_deg = np.asarray(trans.sum(axis=1)).ravel()
        trans = sp.diags(1.0 / np.maximum(out_deg, 1.0)) @ trans
        n_sessions = max(data.n_sessions, 1)
        popularity = np.diff(sessions.tocsc().indptr) / n_sessions
        newest = float(data.ts.max()) if len(data) else 0.0
        recent = data.session_time[data.session] >= newest - _DAY
        day = sp.csr_matrix(
            (np.ones(int(recent.sum())), (data.session[recent], data.item[recent])),
            shape=(data.n_sessions, n),
        )
        day.sum_duplicates()
        day.data[:] = 1.0
        n_recent = max(int(np.count_nonzero(np.diff(day.indptr))), 1)
        popularity_day = np.diff(day.tocsc().indptr) / n_recent
        price = np.full(n, np.nan)
        margin = np.full(n, np.nan)
        category = np.full(n, -1, np.int64)
        catalog = data.catalog
        if catalog is not None:
            if "price" in catalog.columns:
                price = pd.to_numeric(catalog["price"], errors="coerce").to_numpy(np.float64)
                if "cost" in catalog.columns:
                    margin = price - pd.to_numeric(catalog["cost"], errors="coerce").to_numpy(np.float64)
            if "category" in catalog.columns:
                category = np.asarray(pd.factorize(catalog["category"])[0], np.int64)
        return cls(
            sessions=sessions,
            sessions_t=sessions.T.tocsr(),
            transitions=trans.tocsr(),
            popularity=popularity,
            popularity_day=popularity_day,
            price=price,
            margin=margin,
            category=category,
        )


@dataclass(frozen=True)
class Candidates:
    """Candidate (row, item) pairs of a batch of queries and their features.

    Attributes
    ----------
    rows, items : ndarray of int64, shape (n_pairs,)
        Sorted by row, then item.
    features : ndarray of float32, shape (n_pairs, n_features)
    """

    rows: np.ndarray
    items: np.ndarray
    features: np.ndarray


def _session_positions(query: Query, n_items: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Keys (row * n_items + item) of the session's items, their last position, count, and lengths."""
    keys, pos = [], []
    lengths = np.zeros(len(query.sequences), np.float64)
    for r, seq in enumerate(query.sequences):
        seq = np.asarray(seq, np.int64)
        lengths[r] = len(seq)
        keys.append(r * n_items + seq)
        pos.append(np.arange(1, len(seq) + 1, dtype=np.float64))
    if not keys:
        empty = np.array([], np.int64)
        return empty, empty.astype(np.float64), empty.astype(np.float64), lengths
    flat = np.concatenate(keys)
    uniq, inverse, counts = np.unique(flat, return_inverse=True, return_counts=True)
    last = np.zeros(len(uniq))
    np.maximum.at(last, inverse, np.concatenate(pos))
    return uniq, last, counts.astype(np.float64), lengths


def _lookup(sorted_keys: np.ndarray, values: np.ndarray, keys: np.ndarray, default: float) -> np.ndarray:
    at = np.searchsorted(sorted_keys, keys)
    at_ok = np.minimum(at, max(len(sorted_keys) - 1, 0))
    found = (
        (at < len(sorted_keys)) & (sorted_keys[at_ok] == keys)
        if len(sorted_keys)
        else np.zeros(len(keys), bool)
    )
    out = np.full(len(keys), default, np.float64)
    out[found] = values[at_ok[found]]
    return out


def values_at(m: sp.csr_matrix, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``m[rows[p], cols[p]]`` for every pair p (0 where not stored)."""
    m = m if sp.isspmatrix_csr(m) else sp.csr_matrix(m)
    entry_rows = np.repeat(np.arange(m.shape[0], dtype=np.int64), np.diff(m.indptr))
    keys = entry_rows * m.shape[1] + m.indices
    order = np.argsort(keys, kind="stable")
    return _lookup(keys[order], m.data[order].astype(np.float64), rows * m.shape[1] + cols, 0.0)


def _gather_rows(m: sp.csr_matrix, of_row: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The entries of rows ``of_row`` of ``m`` (-1: none) as (position in ``of_row``, column,
    value) arrays: `take_rows` without the matrix (a SciPy constructor costs tens of microseconds)."""
    indptr, gather = row_entries(m, of_row)
    owner = np.repeat(np.arange(len(indptr) - 1, dtype=np.int64), np.diff(indptr))
    return owner, m.indices[gather].astype(np.int64), m.data[gather].astype(np.float64)


def _summed(keys: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct ``keys`` and the sum of ``values`` under each."""
    order = np.argsort(keys, kind="stable")
    keys, values = keys[order], values[order]
    if not len(keys):
        return keys, values
    first = np.flatnonzero(np.concatenate([[True], keys[1:] != keys[:-1]]))
    return keys[first], np.add.reduceat(values, first)


def row_values(m: sp.csr_matrix, of_row: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``m[of_row[rows[p]], cols[p]]`` for every pair p (0 where not stored or ``of_row`` is -1),
    reading only the rows asked for."""
    owner, col, val = _gather_rows(m, of_row)
    keys, vals = _summed(owner * m.shape[1] + col, val)
    return _lookup(keys, vals, rows * m.shape[1] + cols, 0.0)


def candidates(
    query: Query,
    generators: Sequence[tuple[str, Recommender]],
    stats: ItemStats,
    per_generator: int,
    returning: np.ndarray | None = None,
) -> Candidates:
    """The union of each generator's top ``per_generator`` items, the session's own items and the
    items that most often followed its last click, with one feature row per pair.

    ``returning`` (per row) marks the question "what will this known user touch later" (a home
    page, an e-mail) apart from "what comes next in this session or cart"; default: rows with a
    known user (``query.rows >= 0``) are returning users, as `Recommender.recommend` asks.
    """
    n, n_items = len(query.rows), stats.sessions.shape[1]
    keys_s, last_pos, count, lengths = _session_positions(query, n_items)
    last_item = np.full(n, -1, np.int64)
    for row, seq in enumerate(query.sequences):
        if len(seq):
            last_item[row] = int(seq[-1])
    ranked = []
    known: dict[int, tuple[Recommender, np.ndarray, np.ndarray]] = {}
    for name, g in generators:
        reuse = getattr(g, "_ranked_with", None)  # the hybrid: its members may have been asked already
        idx, vals = (
            reuse(query, per_generator, known) if reuse is not None else g._ranked(query, per_generator)
        )
        known[id(g)] = (g, idx, vals)
        ranked.append((name, idx, vals))
    f_row, f_item, _ = _gather_rows(stats.transitions, last_item)
    # each generator's proposals as keys, in (row, place) order
    row_base = np.arange(n, dtype=np.int64)[:, None] * n_items
    proposal_keys = [(row_base + idx)[idx >= 0] for _, idx, _ in ranked]
    parts = [keys_s, *proposal_keys]
    # the items that followed the last click: sequential evidence no neighbourhood model ranks first
    parts.append(f_row * n_items + f_item)
    # sorted distinct keys (np.unique hashes first: seconds on the millions of keys of a batch)
    keys = np.sort(np.concatenate(parts))
    keys = keys[np.concatenate([[True], keys[1:] != keys[:-1]])] if len(keys) else keys
    rows, items = keys // n_items, keys % n_items
    if query.exclude is not None and query.exclude.nnz:
        gone = values_at(query.exclude.tocsr(), rows, items) != 0
        keys, rows, items = keys[~gone], rows[~gone], items[~gone]
    if query.allowed is not None:
        allowed = np.broadcast_to(np.atleast_2d(query.allowed), (n, n_items))
        ok = allowed[rows, items]
        keys, rows, items = keys[ok], rows[ok], items[ok]
    # each generator's score, rank and score relative to its best: one compiled pass per
    # generator places its proposals among the candidates
    cols: list[np.ndarray] = []
    for _, idx, vals in ranked:
        cols += list(generator_columns(keys, rows, idx, vals, n_items, per_generator))
    # the query
    history_size = np.diff(query.history.indptr).astype(np.float64)
    seq_value = np.zeros(n)
    if len(keys_s):
        np.add.at(seq_value, keys_s // n_items, np.nan_to_num(stats.price[keys_s % n_items]))
    back = (query.rows >= 0) if returning is None else np.asarray(returning, bool)
    cols += [
        back[rows].astype(np.float64),
        lengths[rows],
        _distinct(keys_s, n_items, n)[rows],
        history_size[rows],
        seq_value[rows],
    ]
    # the pair
    last = _lookup(keys_s, last_pos, keys, np.nan)
    in_session = np.isfinite(last)
    # the row-sum features by one compiled pass each (bit for bit the NumPy route's sums)
    cand_ptr = np.searchsorted(rows, np.arange(n + 1))
    seq_ptr = np.zeros(n + 1, np.int64)
    seq_ptr[1:] = np.cumsum(lengths)
    flat = np.concatenate([np.asarray(s, np.int64) for s in query.sequences]) if n else np.array([], np.int64)
    last_ptr = np.arange(n + 1)
    follows_session = row_sums_at(stats.transitions, seq_ptr, flat, cand_ptr, items, window=_FOLLOW_WINDOW)
    follows_last = row_sums_at(stats.transitions, last_ptr, last_item, cand_ptr, items)
    cooc = _cooccurs(
        stats, last_item, rows, row_sums_at(stats.cooccurrence, last_ptr, last_item, cand_ptr, items)
    )
    price = stats.price[items]
    mean_price = _session_mean(keys_s, stats.price, n_items, n)
    last_cat = np.where(last_item >= 0, stats.category[np.maximum(last_item, 0)], -1)
    cat = stats.category[items]
    cols += [
        in_session.astype(np.float64),
        lengths[rows] - last,
        _lookup(keys_s, count, keys, 0.0),
        (items == last_item[rows]).astype(np.float64),
        follows_last,
        follows_session,
        cooc,
        stats.popularity[items],
        stats.popularity_day[items],
        price,
        price / mean_price[rows],
        np.where((cat >= 0) & (last_cat[rows] >= 0), (cat == last_cat[rows]).astype(np.float64), np.nan),
        _category_share(keys_s, stats.category, n_items, n, rows, cat),
        stats.margin[items],
        # the user's weighted events with the item (a cart add or purchase weighs more than a
        # view): what the user showed for it, not only that they clicked it
        values_at(query.history.tocsr(), rows, items),
    ]
    # filled column by column (each float64, rounded to float32 as `astype` would)
    features = np.empty((len(keys), len(cols)), np.float32)
    for j, col in enumerate(cols):
        features[:, j] = col if col.dtype == np.float64 else col.astype(np.float64)
    return Candidates(rows=rows, items=items, features=features)


def _distinct(keys_s: np.ndarray, n_items: int, n: int) -> np.ndarray:
    return np.bincount(keys_s // n_items, minlength=n).astype(np.float64)


def _session_mean(keys_s: np.ndarray, values: np.ndarray, n_items: int, n: int) -> np.ndarray:
    v = values[keys_s % n_items]
    ok = np.isfinite(v)
    sums = np.bincount(keys_s[ok] // n_items, weights=v[ok], minlength=n)
    counts = np.bincount(keys_s[ok] // n_items, minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / counts, np.nan)


def _category_share(
    keys_s: np.ndarray, category: np.ndarray, n_items: int, n: int, rows: np.ndarray, cat: np.ndarray
) -> np.ndarray:
    """Share of the session's items in the candidate's category (NaN without categories)."""
    if (category < 0).all():
        return np.full(len(rows), np.nan)
    n_cat = int(category.max()) + 1
    sc = category[keys_s % n_items]
    ok = sc >= 0
    keys, counts = _summed((keys_s[ok] // n_items) * n_cat + sc[ok], np.ones(int(ok.sum())))
    total = np.maximum(np.bincount(keys_s // n_items, minlength=n), 1)
    share = _lookup(keys, counts, rows * n_cat + np.maximum(cat, 0), 0.0) / total[rows]
    return np.where(cat >= 0, share, np.nan)


def _cooccurs(stats: ItemStats, last_item: np.ndarray, rows: np.ndarray, together: np.ndarray) -> np.ndarray:
    """Share of the past sessions with the last clicked item that also hold the candidate
    (``together``: the sessions holding both, per candidate)."""
    holding = np.where(last_item >= 0, np.diff(stats.sessions_t.indptr)[np.maximum(last_item, 0)], 0)
    n_last = np.maximum(holding, 1).astype(np.float64)
    return together / n_last[rows]
