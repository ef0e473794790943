"""Top-k selection on dense score blocks and on sparse rows, with a fixed tie order."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from cartlift.recommend._kernels import HAS_NUMBA

if HAS_NUMBA:
    from cartlift.recommend._kernels import dense_topk

__all__ = ["densify", "sparse_row_topk", "top_k"]


def densify(scores: np.ndarray | sp.spmatrix | sp.sparray) -> np.ndarray:
    """Dense float64 scores; for a sparse input, ``-inf`` wherever nothing is stored."""
    if not sp.issparse(scores):
        return np.asarray(scores, np.float64)
    m = sp.csr_matrix(scores)
    dense = np.full(m.shape, -np.inf)
    rows = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
    dense[rows, m.indices] = m.data
    return dense


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best columns of each row, best first; ``-inf`` scores are never selected.

    Parameters
    ----------
    scores : ndarray of float, shape (n_rows, n_items)
        Scores; ``-inf`` marks items that must not be returned (seen, filtered, unscored).
    k : int
        How many to keep per row.

    Returns
    -------
    idx : ndarray of int64, shape (n_rows, k)
        Column indices, best first; ``-1`` pads rows with fewer than ``k`` finite scores.
    vals : ndarray of float64, shape (n_rows, k)
        Their scores; NaN where padded. Equal scores are ordered by column index, also at the
        boundary of the selection.
    """
    n, m = scores.shape
    idx = np.full((n, k), -1, np.int64)
    vals = np.full((n, k), np.nan)
    kk = min(k, m)
    if n == 0 or kk == 0:
        return idx, vals
    if HAS_NUMBA and scores.dtype.kind == "f":
        # a heap per row: ~10x faster than the partition, sort and tie pass below on one row
        # of a few thousand items (ALS inside the ranker); the same selection and order
        dense_topk(np.ascontiguousarray(scores), kk, idx, vals)
        return idx, vals
    return _top_k_numpy(scores, k)


def _top_k_numpy(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """`top_k` by NumPy's partition (without Numba, and the reference of its tests)."""
    n, m = scores.shape
    idx = np.full((n, k), -1, np.int64)
    vals = np.full((n, k), np.nan)
    kk = min(k, m)
    if n == 0 or kk == 0:
        return idx, vals
    if kk < m:
        part = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
        got = np.take_along_axis(scores, part, axis=1)
        # argpartition picks arbitrarily among items tied with the k-th score; take the lowest
        # columns instead, so a list never depends on how many items were asked for
        kth = got.min(axis=1)
        for r in np.flatnonzero((scores >= kth[:, None]).sum(axis=1) > kk):
            if not np.isfinite(kth[r]):
                continue
            above = np.flatnonzero(scores[r] > kth[r])
            tied = np.flatnonzero(scores[r] == kth[r])[: kk - len(above)]
            part[r] = np.concatenate([above, tied])
        got = np.take_along_axis(scores, part, axis=1)
    else:
        part = np.broadcast_to(np.arange(m), (n, m)).copy()
        got = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -got), axis=-1)
    part = np.take_along_axis(part, order, axis=1)
    got = np.take_along_axis(got, order, axis=1)
    ok = np.isfinite(got) | (got == np.inf)
    idx[:, :kk] = np.where(ok, part, -1)
    vals[:, :kk] = np.where(ok, got, np.nan)
    return idx, vals


def sparse_row_topk(m: sp.csr_matrix, k: int, *, exclude: np.ndarray | None = None) -> sp.csr_matrix:
    """Keep the ``k`` largest stored values of each row of a CSR matrix (ties: lower column first).

    Parameters
    ----------
    m : csr_matrix, shape (n_rows, n_cols)
        Scores; only stored entries are candidates.
    k : int
        Entries to keep per row.
    exclude : ndarray of int, shape (n_rows,), optional
        A column to drop from each row first (the row's own user or item); ``-1`` drops nothing.

    Returns
    -------
    csr_matrix, shape (n_rows, n_cols)
        At most ``k`` entries per row, columns sorted by decreasing value.
    """
    m = m.tocsr()
    indptr, indices, data = m.indptr, m.indices, m.data
    out_idx: list[np.ndarray] = []
    out_val: list[np.ndarray] = []
    counts = np.zeros(m.shape[0], np.int64)
    for r in range(m.shape[0]):
        cols = indices[indptr[r] : indptr[r + 1]]
        vals = data[indptr[r] : indptr[r + 1]]
        if exclude is not None and exclude[r] >= 0:
            keep = cols != exclude[r]
            cols, vals = cols[keep], vals[keep]
        if len(cols) > k:
            # a cheap partition first: sorting thousands of candidates per row to keep 100 is waste
            cut = np.partition(vals, len(vals) - k)[len(vals) - k]
            keep = vals >= cut
            cols, vals = cols[keep], vals[keep]
        order = np.lexsort((cols, -vals))[:k]
        out_idx.append(cols[order])
        out_val.append(vals[order])
        counts[r] = len(order)
    indptr_out = np.zeros(m.shape[0] + 1, np.int64)
    np.cumsum(counts, out=indptr_out[1:])
    cat_idx = np.concatenate(out_idx) if out_idx else np.array([], np.int32)
    cat_val = np.concatenate(out_val) if out_val else np.array([], m.dtype)
    return sp.csr_matrix((cat_val, cat_idx, indptr_out), shape=m.shape)
