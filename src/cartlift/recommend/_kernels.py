"""All-pairs k-nearest neighbours by cosine with shrinkage: a Numba kernel and a SciPy fallback.

``HAS_NUMBA`` is the capability flag, set once at import; :func:`knn_all_pairs` picks the backend.
Both compute, for every column ``i`` of a non-negative matrix ``X`` (users x items),

.. math:: s_{ij} = \\frac{x_i \\cdot x_j}{\\lVert x_i \\rVert \\lVert x_j \\rVert + \\lambda}

over the columns ``j != i`` that share at least one row with ``i``, and keep the ``K`` largest
(ties: lower ``j`` first). With ``lambda = 0`` this is plain cosine; shrinkage ``lambda``
pulls similarities resting on few co-occurrences towards 0 (Koren, "Factor in the
neighbors", 2008).

The Numba kernel follows implicit's ``all_pairs_knn``: one pass per column with a dense
accumulator and a bounded heap, columns spread over threads; no co-occurrence matrix is ever
materialised, which is what makes it fast.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from cartlift.errors import InvalidParameterError

try:  # the fast path; without Numba the SciPy fallback gives the same neighbours, slower
    import numba

    HAS_NUMBA = True
except ImportError:  # pragma: no cover - depends on the environment
    numba = None  # type: ignore[assignment]
    HAS_NUMBA = False

__all__ = ["HAS_NUMBA", "knn_all_pairs", "row_filters", "similarity_topk", "sparse_topk_rows"]

BACKENDS = ("auto", "numba", "scipy")


def knn_all_pairs(
    X: sp.csr_matrix, n_neighbors: int, shrink: float = 0.0, backend: str = "auto"
) -> sp.csr_matrix:
    """The ``n_neighbors`` most similar columns of each column of ``X``.

    Parameters
    ----------
    X : csr_matrix, shape (n_rows, n_cols)
        Non-negative weights (users x items for item neighbours).
    n_neighbors : int
        Neighbours kept per column (``K``).
    shrink : float
        Shrinkage ``lambda >= 0`` added to the denominator.
    backend : {"auto", "numba", "scipy"}
        ``auto`` is Numba when installed.

    Returns
    -------
    csr_matrix of float32, shape (n_cols, n_cols)
        Row ``i`` holds the neighbours of column ``i``, by decreasing similarity.
    """
    if backend not in BACKENDS:
        raise InvalidParameterError(f"backend must be one of {BACKENDS}. Got {backend!r} instead.")
    if backend == "numba" and not HAS_NUMBA:
        raise InvalidParameterError("backend='numba' needs the numba package: pip install numba.")
    X = sp.csr_matrix(X, dtype=np.float64)
    X.sum_duplicates()
    X.eliminate_zeros()
    if X.nnz and X.data.min() < 0:
        raise InvalidParameterError("knn_all_pairs needs non-negative weights; got negative entries.")
    norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=0)).ravel())
    if backend == "scipy" or not HAS_NUMBA:
        return _knn_scipy(X, X.T.tocsr(), norms, int(n_neighbors), float(shrink))
    # float32 entries halve the memory traffic of the inner loop; sums stay in float64
    X = X.astype(np.float32)
    XT = X.T.tocsr()
    n_threads = numba.get_num_threads()
    # more chunks than threads: columns differ a lot in cost (popular items touch many users)
    idx, val, cnt = _numba_kernel()(
        XT.indptr.astype(np.int64),
        XT.indices.astype(np.int32),
        XT.data,
        X.indptr.astype(np.int64),
        X.indices.astype(np.int32),
        X.data,
        norms,
        int(n_neighbors),
        float(shrink),
        max(1, 16 * n_threads),
    )
    indptr = np.zeros(len(cnt) + 1, np.int64)
    np.cumsum(cnt, out=indptr[1:])
    mask = np.arange(idx.shape[1])[None, :] < cnt[:, None]
    n = X.shape[1]
    return sp.csr_matrix((val[mask], idx[mask], indptr), shape=(n, n))


def _knn_scipy(
    X: sp.csr_matrix, XT: sp.csr_matrix, norms: np.ndarray, k: int, shrink: float, block: int = 1024
) -> sp.csr_matrix:
    """Block-wise ``X.T @ X`` and a per-row selection: the readable reference of the kernel."""
    n = X.shape[1]
    parts_idx: list[np.ndarray] = []
    parts_val: list[np.ndarray] = []
    counts = np.zeros(n, np.int64)
    for lo in range(0, n, block):
        hi = min(n, lo + block)
        dots = (XT[lo:hi] @ X).tocsr()
        for r in range(hi - lo):
            i = lo + r
            cols = dots.indices[dots.indptr[r] : dots.indptr[r + 1]]
            vals = dots.data[dots.indptr[r] : dots.indptr[r + 1]]
            keep = (cols != i) & (vals > 0)
            cols, vals = cols[keep], vals[keep] / (norms[i] * norms[cols[keep]] + shrink)
            order = np.lexsort((cols, -vals))[:k]
            parts_idx.append(cols[order].astype(np.int32))
            parts_val.append(vals[order].astype(np.float32))
            counts[i] = len(order)
    indptr = np.zeros(n + 1, np.int64)
    np.cumsum(counts, out=indptr[1:])
    data = np.concatenate(parts_val) if parts_val else np.array([], np.float32)
    indices = np.concatenate(parts_idx) if parts_idx else np.array([], np.int32)
    return sp.csr_matrix((data, indices, indptr), shape=(n, n))


def row_filters(
    exclude: sp.csr_matrix | None, allowed: np.ndarray | None, n: int, m: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The exclusions of ``n`` rows as CSR ``indptr`` and ``indices`` (sorted within each row) and
    the business filter as booleans of shape (1 or n, m), as the kernels read them; nothing is
    built through SciPy when nothing is excluded (a constructor costs tens of microseconds)."""
    if exclude is not None and exclude.nnz:
        ex = sp.csr_matrix(exclude)
        ex.sort_indices()
        ex_indptr, ex_indices = ex.indptr, ex.indices
    else:
        ex_indptr, ex_indices = np.zeros(n + 1, np.int32), np.zeros(0, np.int32)
    ok = np.ones((1, m), bool) if allowed is None else np.atleast_2d(np.asarray(allowed, bool))
    return ex_indptr, ex_indices, ok


def sparse_topk_rows(
    scores: sp.csr_matrix, k: int, exclude: sp.csr_matrix | None, allowed: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Top ``k`` stored entries of each row, skipping excluded and disallowed columns.

    Parameters
    ----------
    scores : csr_matrix, shape (n, n_items)
        Only stored, finite entries are candidates.
    k : int
    exclude : csr_matrix, shape (n, n_items), optional
        Stored entries are removed from the row's candidates.
    allowed : ndarray of bool, shape (n_items,) or (n, n_items), optional

    Returns
    -------
    idx : ndarray of int64, shape (n, k)
        Best first, -1 padding; ties by lower column.
    vals : ndarray of float64, shape (n, k)
        NaN padding.
    """
    n, m = scores.shape
    scores = sp.csr_matrix(scores)
    ex_indptr, ex_indices, ok = row_filters(exclude, allowed, n, m)
    idx = np.full((n, k), -1, np.int64)
    vals = np.full((n, k), np.nan)
    if HAS_NUMBA:
        # waking the thread pool costs more than a few rows take: small batches run serially
        kernel = _sparse_topk_parallel if n >= 64 else _sparse_topk_serial
        kernel(
            scores.indptr.astype(np.int64),
            scores.indices.astype(np.int64),
            scores.data.astype(np.float64),
            int(k),
            ex_indptr.astype(np.int64),
            ex_indices.astype(np.int64),
            ok,
            idx,
            vals,
        )
        return idx, vals
    for r in range(n):  # the NumPy path, without Numba
        cols = scores.indices[scores.indptr[r] : scores.indptr[r + 1]].astype(np.int64)
        v = scores.data[scores.indptr[r] : scores.indptr[r + 1]].astype(np.float64)
        keep = np.isfinite(v) & ok[r if ok.shape[0] > 1 else 0, cols]
        keep &= ~np.isin(cols, ex_indices[ex_indptr[r] : ex_indptr[r + 1]])
        cols, v = cols[keep], v[keep]
        order = np.lexsort((cols, -v))[:k]
        idx[r, : len(order)], vals[r, : len(order)] = cols[order], v[order]
    return idx, vals


def similarity_topk(
    history: sp.csr_matrix,
    similarity: sp.csr_matrix,
    k: int,
    exclude: sp.csr_matrix | None,
    allowed: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Top ``k`` of ``history @ similarity`` per row without forming the product (item-kNN scoring).

    Entries scored exactly 0 count as "no neighbour voted" and are never returned, as with
    :func:`sparse_topk_rows` on the product. Returns None without Numba (the caller then
    multiplies with SciPy).

    Parameters
    ----------
    history : csr_matrix, shape (n, n_items)
        Non-negative weights.
    similarity : csr_matrix, shape (n_items, n_items)
        Non-negative similarities.
    k : int
    exclude : csr_matrix, shape (n, n_items), optional
    allowed : ndarray of bool, shape (n_items,) or (n, n_items), optional
    """
    if not HAS_NUMBA:
        return None
    n, m = history.shape
    ex_indptr, ex_indices, ok = row_filters(exclude, allowed, n, m)
    idx = np.full((n, k), -1, np.int64)
    vals = np.full((n, k), np.nan)
    # no dtype conversion: copying a 2M-entry similarity matrix per call would cost milliseconds;
    # Numba compiles one version per dtype combination instead
    args = (
        history.indptr,
        history.indices,
        history.data,
        similarity.indptr,
        similarity.indices,
        similarity.data,
        int(k),
        ex_indptr,
        ex_indices,
        ok,
        idx,
        vals,
    )
    if n >= 64:
        _similarity_topk_parallel(*args, max(1, 4 * numba.get_num_threads()))
    else:
        # a thread pool wake-up costs more than a few rows take
        _similarity_topk_serial(*args)
    return idx, vals


def _numba_kernel() -> Any:
    """The compiled kernel (Numba compiles it on first call, then reuses its on-disk cache)."""
    return _kernel


if HAS_NUMBA:  # pragma: no branch

    @numba.njit(cache=True, inline="always")
    def worse(va: float, ia: int, vb: float, ib: int) -> bool:
        # "a ranks below b": lower similarity, or equal similarity and a higher column
        return va < vb or (va == vb and ia > ib)

    @numba.njit(cache=True)
    def sift_down(hv: np.ndarray, hi: np.ndarray, size: int, pos: int) -> None:
        while True:
            left = 2 * pos + 1
            if left >= size:
                return
            child = left
            right = left + 1
            if right < size and worse(hv[right], hi[right], hv[left], hi[left]):
                child = right
            if worse(hv[child], hi[child], hv[pos], hi[pos]):
                hv[pos], hv[child] = hv[child], hv[pos]
                hi[pos], hi[child] = hi[child], hi[pos]
                pos = child
            else:
                return

    @numba.njit(cache=True)
    def sift_up(hv: np.ndarray, hi: np.ndarray, pos: int) -> None:
        while pos > 0:
            parent = (pos - 1) // 2
            if worse(hv[pos], hi[pos], hv[parent], hi[parent]):
                hv[pos], hv[parent] = hv[parent], hv[pos]
                hi[pos], hi[parent] = hi[parent], hi[pos]
                pos = parent
            else:
                return

    @numba.njit(cache=True, inline="always")
    def heap_offer(hv: np.ndarray, hi: np.ndarray, size: int, k: int, v: float, j: int) -> int:
        """Offer candidate (v, j) to a min-heap of the best k; returns the new heap size."""
        if size < k:
            hv[size] = v
            hi[size] = j
            sift_up(hv, hi, size)
            return size + 1
        if worse(hv[0], hi[0], v, j):
            hv[0] = v
            hi[0] = j
            sift_down(hv, hi, size, 0)
        return size

    @numba.njit(cache=True, inline="always")
    def heap_drain(
        hv: np.ndarray, hi: np.ndarray, size: int, out_val: np.ndarray, out_idx: np.ndarray, r: int
    ) -> None:
        """Empty the heap into row r of the outputs, best first."""
        for last in range(size - 1, -1, -1):
            out_val[r, last] = hv[0]
            out_idx[r, last] = hi[0]
            hv[0] = hv[last]
            hi[0] = hi[last]
            sift_down(hv, hi, last, 0)

    @numba.njit(parallel=True, cache=True, nogil=True)
    def _kernel(
        t_indptr: np.ndarray,
        t_indices: np.ndarray,
        t_data: np.ndarray,
        x_indptr: np.ndarray,
        x_indices: np.ndarray,
        x_data: np.ndarray,
        norms: np.ndarray,
        K: int,
        shrink: float,
        n_chunks: int,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n = len(t_indptr) - 1
        out_idx = np.zeros((n, K), np.int32)
        out_val = np.zeros((n, K), np.float32)
        out_cnt = np.zeros(n, np.int64)
        per_chunk = (n + n_chunks - 1) // n_chunks
        for c in numba.prange(n_chunks):
            acc = np.zeros(n, np.float64)
            touched = np.empty(n, np.int32)
            hv = np.empty(K, np.float64)
            hi = np.empty(K, np.int32)
            for i in range(c * per_chunk, min(n, (c + 1) * per_chunk)):
                n_touched = 0
                for p in range(t_indptr[i], t_indptr[i + 1]):
                    u = t_indices[p]
                    w = t_data[p]
                    for q in range(x_indptr[u], x_indptr[u + 1]):
                        j = x_indices[q]
                        # entries are > 0, so a zero accumulator means "not touched yet"
                        if acc[j] == 0.0:
                            touched[n_touched] = j
                            n_touched += 1
                        acc[j] += w * x_data[q]
                size = 0
                for t in range(n_touched):
                    j = touched[t]
                    dot = acc[j]
                    acc[j] = 0.0
                    if j == i:
                        continue
                    s = dot / (norms[i] * norms[j] + shrink)
                    if size < K:
                        hv[size] = s
                        hi[size] = j
                        sift_up(hv, hi, size)
                        size += 1
                    elif worse(hv[0], hi[0], s, j):
                        hv[0] = s
                        hi[0] = j
                        sift_down(hv, hi, size, 0)
                # pop the heap worst-first into the tail: the row comes out best-first
                for pos in range(size - 1, -1, -1):
                    out_val[i, pos] = hv[0]
                    out_idx[i, pos] = hi[0]
                    last = pos
                    hv[0] = hv[last]
                    hi[0] = hi[last]
                    sift_down(hv, hi, last, 0)
                out_cnt[i] = size
        return out_idx, out_val, out_cnt

    @numba.njit(cache=True, nogil=True)
    def _topk_row(
        r: int,
        indptr: np.ndarray,
        indices: np.ndarray,
        data: np.ndarray,
        k: int,
        ex_indptr: np.ndarray,
        ex_indices: np.ndarray,
        row_ok: np.ndarray,
        out_idx: np.ndarray,
        out_val: np.ndarray,
    ) -> None:
        hv = np.empty(k, np.float64)
        hi = np.empty(k, np.int64)
        excluded = ex_indices[ex_indptr[r] : ex_indptr[r + 1]]  # sorted
        size = 0
        for p in range(indptr[r], indptr[r + 1]):
            j = indices[p]
            v = data[p]
            if not (v > -np.inf) or not row_ok[j]:
                continue
            if len(excluded):
                at = np.searchsorted(excluded, j)
                if at < len(excluded) and excluded[at] == j:
                    continue
            size = heap_offer(hv, hi, size, k, v, j)
        heap_drain(hv, hi, size, out_val, out_idx, r)

    @numba.njit(cache=True, nogil=True)
    def dense_topk(scores: np.ndarray, k: int, idx: np.ndarray, vals: np.ndarray) -> None:
        """The ``k`` best columns of each row of a dense block into ``idx`` / ``vals`` (left
        as they are past a row's count): one heap per row, NaN and ``-inf`` never taken, ties
        by lower column (`_topk.top_k`'s order)."""
        n, m = scores.shape
        hv = np.empty(k, np.float64)
        hi = np.empty(k, np.int64)
        for r in range(n):
            size = 0
            for j in range(m):
                v = np.float64(scores[r, j])
                if v != v or v == -np.inf:
                    continue
                size = heap_offer(hv, hi, size, k, v, j)
            heap_drain(hv, hi, size, vals, idx, r)

    @numba.njit(parallel=True, cache=True, nogil=True)
    def _sparse_topk_parallel(
        indptr: np.ndarray,
        indices: np.ndarray,
        data: np.ndarray,
        k: int,
        ex_indptr: np.ndarray,
        ex_indices: np.ndarray,
        allowed: np.ndarray,
        out_idx: np.ndarray,
        out_val: np.ndarray,
    ) -> None:
        per_row = allowed.shape[0] > 1
        for r in numba.prange(len(indptr) - 1):
            row_ok = allowed[r] if per_row else allowed[0]
            _topk_row(r, indptr, indices, data, k, ex_indptr, ex_indices, row_ok, out_idx, out_val)

    @numba.njit(cache=True, nogil=True)
    def _sparse_topk_serial(
        indptr: np.ndarray,
        indices: np.ndarray,
        data: np.ndarray,
        k: int,
        ex_indptr: np.ndarray,
        ex_indices: np.ndarray,
        allowed: np.ndarray,
        out_idx: np.ndarray,
        out_val: np.ndarray,
    ) -> None:
        per_row = allowed.shape[0] > 1
        for r in range(len(indptr) - 1):
            row_ok = allowed[r] if per_row else allowed[0]
            _topk_row(r, indptr, indices, data, k, ex_indptr, ex_indices, row_ok, out_idx, out_val)

    @numba.njit(cache=True, nogil=True)
    def _similarity_row(
        r: int,
        h_indptr: np.ndarray,
        h_indices: np.ndarray,
        h_data: np.ndarray,
        s_indptr: np.ndarray,
        s_indices: np.ndarray,
        s_data: np.ndarray,
        k: int,
        ex_indptr: np.ndarray,
        ex_indices: np.ndarray,
        row_ok: np.ndarray,
        acc: np.ndarray,
        touched: np.ndarray,
        out_idx: np.ndarray,
        out_val: np.ndarray,
    ) -> None:
        n_touched = 0
        for p in range(h_indptr[r], h_indptr[r + 1]):
            i = h_indices[p]
            w = h_data[p]
            for q in range(s_indptr[i], s_indptr[i + 1]):
                j = s_indices[q]
                if acc[j] == 0.0:
                    touched[n_touched] = j
                    n_touched += 1
                acc[j] += w * s_data[q]
        hv = np.empty(k, np.float64)
        hi = np.empty(k, np.int64)
        excluded = ex_indices[ex_indptr[r] : ex_indptr[r + 1]]
        size = 0
        for t in range(n_touched):
            j = touched[t]
            v = acc[j]
            acc[j] = 0.0
            if v == 0.0 or not row_ok[j]:
                continue
            if len(excluded):
                at = np.searchsorted(excluded, j)
                if at < len(excluded) and excluded[at] == j:
                    continue
            size = heap_offer(hv, hi, size, k, v, j)
        heap_drain(hv, hi, size, out_val, out_idx, r)

    @numba.njit(parallel=True, cache=True, nogil=True)
    def _similarity_topk_parallel(
        h_indptr: np.ndarray,
        h_indices: np.ndarray,
        h_data: np.ndarray,
        s_indptr: np.ndarray,
        s_indices: np.ndarray,
        s_data: np.ndarray,
        k: int,
        ex_indptr: np.ndarray,
        ex_indices: np.ndarray,
        allowed: np.ndarray,
        out_idx: np.ndarray,
        out_val: np.ndarray,
        n_chunks: int,
    ) -> None:
        n = len(h_indptr) - 1
        m = allowed.shape[1]
        per_row = allowed.shape[0] > 1
        per_chunk = (n + n_chunks - 1) // n_chunks
        for c in numba.prange(n_chunks):
            acc = np.zeros(m, np.float64)
            touched = np.empty(m, np.int64)
            for r in range(c * per_chunk, min(n, (c + 1) * per_chunk)):
                row_ok = allowed[r] if per_row else allowed[0]
                _similarity_row(
                    r, h_indptr, h_indices, h_data, s_indptr, s_indices, s_data, k,
                    ex_indptr, ex_indices, row_ok, acc, touched, out_idx, out_val,
                )  # fmt: skip

    @numba.njit(cache=True, nogil=True)
    def _similarity_topk_serial(
        h_indptr: np.ndarray,
        h_indices: np.ndarray,
        h_data: np.ndarray,
        s_indptr: np.ndarray,
        s_indices: np.ndarray,
        s_data: np.ndarray,
        k: int,
        ex_indptr: np.ndarray,
        ex_indices: np.ndarray,
        allowed: np.ndarray,
        out_idx: np.ndarray,
        out_val: np.ndarray,
    ) -> None:
        m = allowed.shape[1]
        per_row = allowed.shape[0] > 1
        acc = np.zeros(m, np.float64)
        touched = np.empty(m, np.int64)
        for r in range(len(h_indptr) - 1):
            row_ok = allowed[r] if per_row else allowed[0]
            _similarity_row(
                r, h_indptr, h_indices, h_data, s_indptr, s_indices, s_data, k,
                ex_indptr, ex_indices, row_ok, acc, touched, out_idx, out_val,
            )  # fmt: skip
