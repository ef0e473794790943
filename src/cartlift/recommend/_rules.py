"""Frequent itemsets and association rules (support, confidence, lift), and "frequently bought
together" as a recommender.

Itemsets are mined by pattern growth, the recursion of FP-growth (Han, Pei and Yin, 2000): each
frequent prefix is extended only inside its conditional database, the baskets that contain it.
Here the conditional database is a set of basket rows of a sparse matrix rather than a prefix tree,
so one extension step counts all candidate items at once with a sparse column sum. Frequent pairs
come first from one ``X.T @ X`` (measured 60x faster than tree building on 50k baskets), and they
prune every deeper candidate (an itemset can be frequent only if all its pairs are).

Thresholds follow mlxtend exactly (``fpgrowth`` keeps itemsets with ``count >= ceil(min_support *
n)`` and ``support >= min_support``; ``association_rules`` computes confidence as
``sAC * n / (sA * n)``), so the rule counts are the same on the same data.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import scipy.sparse as sp

from cartlift._params import Constraint, Interval, Options
from cartlift.errors import DataError, InvalidParameterError
from cartlift.recommend._base import Recommender
from cartlift.recommend._interactions import Interactions
from cartlift.recommend._query import Query

__all__ = ["AssociationRules", "FrequentItemsets", "association_rules", "basket_matrix", "frequent_itemsets"]


@dataclass(frozen=True)
class FrequentItemsets:
    """Frequent itemsets of a basket matrix.

    Attributes
    ----------
    itemsets : list of tuple of int
        Column indices of each itemset, ascending.
    counts : ndarray of int64, shape (n_itemsets,)
        Baskets containing each itemset.
    n_baskets : int
        Baskets mined.
    item_ids : ndarray of str, shape (n_items,)
        Names of the columns.
    """

    itemsets: list[tuple[int, ...]]
    counts: np.ndarray
    n_baskets: int
    item_ids: np.ndarray

    def __len__(self) -> int:
        return len(self.itemsets)

    @property
    def support(self) -> np.ndarray:
        """Share of baskets containing each itemset, shape (n_itemsets,)."""
        return self.counts / float(self.n_baskets)

    def to_frame(self) -> pd.DataFrame:
        """``support, itemsets`` (itemsets as lists of item ids)."""
        return pd.DataFrame(
            {"support": self.support, "itemsets": [[str(self.item_ids[i]) for i in s] for s in self.itemsets]}
        )


def basket_matrix(baskets: Iterable[Iterable[Any]]) -> tuple[sp.csr_matrix, np.ndarray]:
    """Baskets (iterables of item ids) as a binary basket x item matrix and its item ids.

    Returns
    -------
    matrix : csr_matrix of int8, shape (n_baskets, n_items)
    item_ids : ndarray of str, shape (n_items,), sorted
    """
    rows: list[int] = []
    cols: list[str] = []
    for r, basket in enumerate(baskets):
        items = {str(i) for i in basket}
        rows.extend([r] * len(items))
        cols.extend(items)
    n = (max(rows) + 1) if rows else 0
    codes, uniques = pd.factorize(pd.Series(cols, dtype="object"), sort=True)
    m = sp.csr_matrix((np.ones(len(rows), np.int8), (rows, codes)), shape=(n, len(uniques)))
    m.sum_duplicates()
    m.data[:] = 1
    return m, np.asarray(uniques, dtype=str)


def frequent_itemsets(
    baskets: sp.spmatrix | sp.sparray,
    min_support: float,
    *,
    max_len: int | None = None,
    item_ids: Sequence[Any] | np.ndarray | None = None,
) -> FrequentItemsets:
    """All itemsets contained in at least ``min_support`` of the baskets.

    Parameters
    ----------
    baskets : sparse matrix, shape (n_baskets, n_items)
        Nonzero where the basket holds the item.
    min_support : float
        In (0, 1].
    max_len : int, optional
        Longest itemset to mine.
    item_ids : sequence, optional
        Column names (default ``"0", "1", ...``).

    Returns
    -------
    FrequentItemsets
    """
    if not 0 < min_support <= 1:
        raise InvalidParameterError(f"min_support must be in (0, 1]. Got {min_support!r} instead.")
    if max_len is not None and max_len < 1:
        raise InvalidParameterError(f"max_len must be >= 1 or None. Got {max_len!r} instead.")
    X = sp.csr_matrix(baskets, dtype=np.int32)
    X.sum_duplicates()
    X.data[:] = 1
    n, m = X.shape
    ids = np.asarray([str(i) for i in (range(m) if item_ids is None else item_ids)], dtype=str)
    if n == 0:
        raise DataError("No baskets to mine.")
    min_count = math.ceil(min_support * n)

    def frequent(count: np.ndarray) -> np.ndarray:
        return (count >= min_count) & (count / float(n) >= min_support)

    item_count = np.asarray(X.sum(axis=0)).ravel()
    kept = np.flatnonzero(frequent(item_count))
    itemsets: list[tuple[int, ...]] = [(int(i),) for i in kept]
    counts: list[int] = [int(item_count[i]) for i in kept]
    limit = max_len if max_len is not None else len(kept)
    if limit >= 2 and len(kept) >= 2:
        Xf = X[:, kept].tocsr()
        Xc = Xf.tocsc()
        # a dense 0/1 copy when it is small: NumPy row/column picks beat sparse fancy indexing
        Xd = Xf.toarray().astype(np.uint8) if n * len(kept) <= 50_000_000 else None
        pair = Xf.T @ Xf
        dense_pair = pair.toarray() if len(kept) <= 4000 else None
        pair_ok = frequent(dense_pair) if dense_pair is not None else None

        def pair_row(a: int) -> tuple[np.ndarray, np.ndarray]:
            if dense_pair is not None and pair_ok is not None:
                cols = np.flatnonzero(pair_ok[a, a + 1 :]) + a + 1
                return cols, dense_pair[a, cols]
            row = pair.getrow(a)
            cols, vals = row.indices, row.data
            keep = (cols > a) & frequent(vals)
            order = np.argsort(cols[keep])
            return cols[keep][order], vals[keep][order]

        partners = [pair_row(a) for a in range(len(kept))]
        partner_sets = [set(p[0].tolist()) for p in partners]

        def grow(prefix: tuple[int, ...], rows: np.ndarray, ext: np.ndarray) -> None:
            # ``prefix + (b,)`` is frequent for every b in ext; extend each by later candidates
            for pos, b in enumerate(ext):
                cand = np.array([c for c in ext[pos + 1 :] if c in partner_sets[b]], dtype=np.int64)
                if len(cand) == 0:
                    continue
                col = Xc.indices[Xc.indptr[b] : Xc.indptr[b + 1]]
                rows_b = np.intersect1d(rows, col, assume_unique=True)
                if Xd is not None:
                    c_count = Xd[np.ix_(rows_b, cand)].sum(axis=0, dtype=np.int64)
                else:
                    c_count = np.asarray(Xf[rows_b][:, cand].sum(axis=0)).ravel()
                good = frequent(c_count)
                base = (*prefix, int(b))
                for c, cnt in zip(cand[good], c_count[good], strict=True):
                    itemsets.append((*base, int(c)))
                    counts.append(int(cnt))
                if len(base) + 2 <= limit and good.sum() >= 2:
                    grow(base, rows_b, cand[good])

        for a, (cols, vals) in enumerate(partners):
            for c, cnt in zip(cols, vals, strict=True):
                itemsets.append((a, int(c)))
                counts.append(int(cnt))
            if limit >= 3 and len(cols) >= 2:
                rows_a = Xc.indices[Xc.indptr[a] : Xc.indptr[a + 1]]
                grow((a,), rows_a, cols)
        # back to the original column numbers
        itemsets = [
            itemsets[i] if len(itemsets[i]) == 1 else tuple(int(kept[j]) for j in itemsets[i])
            for i in range(len(itemsets))
        ]
    return FrequentItemsets(itemsets, np.asarray(counts, np.int64), n, ids)


def association_rules(
    itemsets: FrequentItemsets, min_confidence: float = 0.0, *, max_consequent: int | None = None
) -> pd.DataFrame:
    """Rules ``A -> C`` from frequent itemsets, kept when confidence >= ``min_confidence``.

    Parameters
    ----------
    itemsets : FrequentItemsets
        From :func:`frequent_itemsets`.
    min_confidence : float
        In [0, 1].
    max_consequent : int, optional
        Longest consequent (1 for "frequently bought together").

    Returns
    -------
    DataFrame
        ``antecedents``, ``consequents`` (tuples of column indices), ``support`` (of ``A u C``),
        ``antecedent_support``, ``consequent_support``, ``confidence`` (``s(A u C) / s(A)``),
        ``lift`` (``confidence / s(C)``), sorted by confidence then lift, decreasing.
    """
    if not 0 <= min_confidence <= 1:
        raise InvalidParameterError(f"min_confidence must be in [0, 1]. Got {min_confidence!r} instead.")
    n = float(itemsets.n_baskets)
    support = {s: c / n for s, c in zip(itemsets.itemsets, itemsets.counts, strict=True)}
    ante, cons, s_ac, s_a, s_c = [], [], [], [], []
    for items, s_all in support.items():
        if len(items) < 2:
            continue
        for size in range(len(items) - 1, 0, -1):
            if max_consequent is not None and len(items) - size > max_consequent:
                continue
            for a in combinations(items, size):
                c = tuple(i for i in items if i not in a)
                sa = support[a]
                # mlxtend's formula, term for term, so boundary cases round the same way
                if s_all * n / (sa * n) >= min_confidence:
                    ante.append(a)
                    cons.append(c)
                    s_ac.append(s_all)
                    s_a.append(sa)
                    s_c.append(support[c])
    frame = pd.DataFrame(
        {
            "antecedents": ante,
            "consequents": cons,
            "support": np.asarray(s_ac, np.float64),
            "antecedent_support": np.asarray(s_a, np.float64),
            "consequent_support": np.asarray(s_c, np.float64),
        }
    )
    frame["confidence"] = frame["support"] * n / (frame["antecedent_support"] * n)
    frame["lift"] = frame["confidence"] / frame["consequent_support"]
    return frame.sort_values(["confidence", "lift"], ascending=False, kind="stable").reset_index(drop=True)


class AssociationRules(Recommender):
    """Frequently bought together: rules ``A -> c`` mined from sessions, applied to the cart.

    Each session (or order) is a basket. For a cart or session context, every rule whose
    antecedent is inside the context votes for its consequent; an item's score is the best
    ``metric`` among the rules that recommend it.

    Parameters
    ----------
    min_support : float
        Minimum share of baskets holding the itemset.
    min_confidence : float
        Minimum confidence of a rule.
    max_len : int
        Longest itemset (antecedent plus the one consequent).
    metric : {"confidence", "lift"}
        What ranks the recommended items.

    Attributes
    ----------
    antecedents_ : csr_matrix of float32, shape (n_rules, n_items)
        Antecedent sets.
    consequent_ : ndarray of int64, shape (n_rules,)
    confidence_, lift_, support_ : ndarray of float64, shape (n_rules,)
    """

    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {
        "min_support": [Interval(float, 0, 1, closed="right")],
        "min_confidence": [Interval(float, 0, 1)],
        "max_len": [Interval(int, 2, None)],
        "metric": [Options(("confidence", "lift"))],
    }

    def __init__(
        self,
        min_support: float = 0.001,
        min_confidence: float = 0.05,
        max_len: int = 3,
        metric: str = "confidence",
    ) -> None:
        self.min_support = min_support
        self.min_confidence = min_confidence
        self.max_len = max_len
        self.metric = metric

    def _fit(self, interactions: Interactions) -> None:
        self._mine(interactions.session_matrix)

    def _mine(self, baskets: sp.csr_matrix) -> None:
        found = frequent_itemsets(baskets, self.min_support, max_len=self.max_len)
        rules = association_rules(found, self.min_confidence, max_consequent=1)
        n_items = len(self.item_ids_)
        lengths = np.array([len(a) for a in rules["antecedents"]], np.int64)
        cols = np.concatenate(
            [np.asarray(a, np.int64) for a in rules["antecedents"]] or [np.array([], np.int64)]
        )
        self.antecedents_ = sp.csr_matrix(
            (np.ones(len(cols), np.float32), cols, np.concatenate([[0], np.cumsum(lengths)])),
            shape=(len(rules), n_items),
        )
        self.consequent_ = np.array([c[0] for c in rules["consequents"]], np.int64)
        self.confidence_ = rules["confidence"].to_numpy(np.float64)
        self.lift_ = rules["lift"].to_numpy(np.float64)
        self.support_ = rules["support"].to_numpy(np.float64)

    def _score(self, query: Query) -> np.ndarray:
        n, n_items = len(query.rows), len(self.item_ids_)
        has_seq = np.array([len(s) > 0 for s in query.sequences], bool)
        # the current session is the basket: rules fire on what is in it now, else on the history
        context = (sp.diags((~has_seq).astype(np.float32)) @ query.history).tocsr()
        seq_rows = np.repeat(np.arange(n), [len(s) for s in query.sequences])
        seq_cols = np.concatenate(query.sequences) if n else np.array([], np.int64)
        context = (
            context + sp.csr_matrix((np.ones(len(seq_cols)), (seq_rows, seq_cols)), shape=(n, n_items))
        ).tocsr()
        context.eliminate_zeros()
        context.data[:] = 1.0
        hits = (context @ self.antecedents_.T).tocoo()
        need = np.diff(self.antecedents_.indptr)
        fired = hits.data >= need[hits.col]
        rows, rules = hits.row[fired], hits.col[fired]
        value = (self.confidence_ if self.metric == "confidence" else self.lift_)[rules]
        out = np.full(n * n_items, -np.inf)
        np.maximum.at(out, rows.astype(np.int64) * n_items + self.consequent_[rules], value)
        return out.reshape(n, n_items)
