"""A Numba kernel for the session-kNN family (SKNN, V-SKNN, STAN, VSTAN): neighbours, votes and
the top k of each query row in one pass.

The SciPy path of those models (`SessionKNN._score`, `STAN._score`) builds a dozen sparse
matrices per call; for one query that is ~1-2 ms of constructor overhead around microseconds of
arithmetic, most of a single-query recommendation. This kernel walks the same arrays with dense
accumulators that are reset after each row, so a row costs what its neighbours hold, and the
same code serves a batch row by row: a one-row query and the same row inside a batch get the
same list. It computes the same quantities as the SciPy path (equal up to the order of
floating-point sums, tested) and is used only when Numba is installed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cartlift.recommend._kernels import HAS_NUMBA, numba, row_filters

__all__ = ["neighbour_pool", "query_filters", "session_knn_topk"]


def neighbour_pool(
    model: Any, newest: float, snh_seconds: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float, float, int, int]:
    """The ``pool`` argument of :func:`session_knn_topk` for a fitted SessionKNN or STAN (their
    item -> sessions index and session sizes are cached under the same names)."""
    t_index = model.__dict__["_sessions_t_cache"]
    return (
        t_index.indptr,
        t_index.indices,
        model.__dict__["_size_sqrt_cache"],
        model.session_time_,
        newest,
        snh_seconds,
        model.sample_size,
        model.n_neighbors,
    )


def query_filters(query: Any, n_items: int) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray]:
    """A `Query`'s exclusions and business filter as the kernel reads them."""
    ex_indptr, ex_indices, allowed = row_filters(query.exclude, query.allowed, len(query.rows), n_items)
    return (ex_indptr, ex_indices), allowed


def session_knn_topk(
    query: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    pool: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float, float, int, int],
    votes: tuple[np.ndarray, np.ndarray, np.ndarray, float, np.ndarray, float, bool],
    k: int,
    exclude: tuple[np.ndarray, np.ndarray],
    allowed: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Top ``k`` items of each query row by the votes of its nearest past sessions.

    Parameters
    ----------
    query : (indptr, items, weight, position, length, own)
        Per row, its distinct items (CSR layout), each item's weight in the overlap, its last
        position in the row's session (1-based), the session's length, and the row's own past
        session (never a neighbour; -1: none).
    pool : (st_indptr, st_indices, size_sqrt, time, newest, snh_seconds, sample_size, n_neighbors)
        The item -> past sessions index, each session's sqrt(distinct items) and time; the
        neighbours' age decay length in seconds (0: off) measured from ``newest``; how many of the
        most recent overlapping sessions are compared, and how many nearest ones vote.
    votes : (indptr, indices, positions, inh, idf_boost, ipw, remind)
        Each past session's items and their last positions; the decay length of the distance to
        the shared item inside the neighbour (0: off), a per-item factor (empty: off), VSTAN's
        decay of the shared item's position in the query (0: off), and whether items of the
        query's own session may be voted for.
    k : int
    exclude : (indptr, indices)
        Per row, items never returned (CSR layout).
    allowed : ndarray of bool, shape (1 or n, n_items)

    Returns
    -------
    (idx, vals)
        As :func:`~cartlift.recommend._kernels.sparse_topk_rows`: the columns (int64, -1
        padding, ties by lower column) and their scores (NaN padding), shape (n, k) each.
    """
    n = len(query[0]) - 1
    idx = np.full((n, k), -1, np.int64)
    vals = np.full((n, k), np.nan)
    _kernel(*query, *pool, *votes, int(k), *exclude, allowed, idx, vals)
    return idx, vals


def _kernel_body(
    q_indptr: np.ndarray,
    q_items: np.ndarray,
    q_weight: np.ndarray,
    q_pos: np.ndarray,
    q_len: np.ndarray,
    own: np.ndarray,
    st_indptr: np.ndarray,
    st_indices: np.ndarray,
    size_sqrt: np.ndarray,
    stime: np.ndarray,
    newest: float,
    snh: float,
    sample_size: int,
    n_neighbors: int,
    v_indptr: np.ndarray,
    v_indices: np.ndarray,
    v_pos: np.ndarray,
    inh: float,
    idf_boost: np.ndarray,
    ipw: float,
    remind: bool,
    k: int,
    ex_indptr: np.ndarray,
    ex_indices: np.ndarray,
    ok: np.ndarray,
    out_idx: np.ndarray,
    out_val: np.ndarray,
) -> None:
    n = len(q_indptr) - 1
    n_sessions = len(v_indptr) - 1
    n_items = ok.shape[1]
    acc_s = np.zeros(n_sessions, np.float64)
    seen_s = np.zeros(n_sessions, np.bool_)
    touched_s = np.empty(n_sessions, np.int64)
    acc_i = np.zeros(n_items, np.float64)
    seen_i = np.zeros(n_items, np.bool_)
    touched_i = np.empty(n_items, np.int64)
    cur = np.zeros(n_items, np.float64)  # the row's items: their last position (0: not in the row)
    banned = np.zeros(n_items, np.bool_)
    hv = np.empty(max(k, 1), np.float64)
    hi = np.empty(max(k, 1), np.int64)
    nv = np.empty(max(n_neighbors, 1), np.float64)
    ni = np.empty(max(n_neighbors, 1), np.int64)
    sims_out = np.empty((1, max(n_neighbors, 1)), np.float64)
    cand_out = np.empty((1, max(n_neighbors, 1)), np.int64)
    for r in range(n):
        # overlap of the row with every past session sharing an item, and the row's norm
        n_s = 0
        sq = 0.0
        for p in range(q_indptr[r], q_indptr[r + 1]):
            w = q_weight[p]
            sq += w * w
            item = q_items[p]
            for t in range(st_indptr[item], st_indptr[item + 1]):
                s = st_indices[t]
                if not seen_s[s]:
                    seen_s[s] = True
                    touched_s[n_s] = s
                    n_s += 1
                acc_s[s] += w
        norm = np.sqrt(sq)
        m = 0
        cand = np.empty(n_s, np.int64)
        dots = np.empty(n_s, np.float64)
        for t in range(n_s):
            s = touched_s[t]
            if s != own[r] and acc_s[s] > 0:
                cand[m] = s
                dots[m] = acc_s[s]
                m += 1
            acc_s[s] = 0.0
            seen_s[s] = False
        if m > sample_size:  # the most recent ones (equal times: the lower sessions)
            times = stime[cand[:m]]
            kth = np.partition(times, m - sample_size)[m - sample_size]
            newer = np.flatnonzero(times > kth)
            tied = np.flatnonzero(times == kth)
            tied = tied[np.argsort(cand[tied], kind="mergesort")][: sample_size - len(newer)]
            kept = np.concatenate((newer, tied))
            cand, dots, m = cand[kept], dots[kept], len(kept)
        # the nearest ones, by a bounded heap: most similar first, ties to the lower session
        size = 0
        for t in range(m):
            s = cand[t]
            sim = dots[t] / (norm * size_sqrt[s])
            if snh > 0:
                sim = sim * np.exp(-(newest - stime[s]) / snh)
            size = heap_offer(nv, ni, size, n_neighbors, sim, s)
        m = size
        heap_drain(nv, ni, size, sims_out, cand_out, 0)
        cand = cand_out[0, :m].copy()
        sims = sims_out[0, :m].copy()
        # the neighbours vote for their items
        for p in range(q_indptr[r], q_indptr[r + 1]):
            cur[q_items[p]] = q_pos[p]
        n_i = 0
        for t in range(m):
            s = cand[t]
            anchor = 0.0
            shared = 0.0
            for u in range(v_indptr[s], v_indptr[s + 1]):
                j = v_indices[u]
                if cur[j] > 0:
                    anchor = max(anchor, v_pos[u])
                    shared = max(shared, cur[j])
            for u in range(v_indptr[s], v_indptr[s + 1]):
                j = v_indices[u]
                if not remind and cur[j] > 0:
                    continue
                w = sims[t]
                if inh > 0:
                    w = w * np.exp(-abs(v_pos[u] - anchor) / inh)
                if len(idf_boost):
                    w = w * idf_boost[j]
                if ipw > 0:
                    w = w * np.exp((shared - q_len[r]) / ipw)
                if not seen_i[j]:
                    seen_i[j] = True
                    touched_i[n_i] = j
                    n_i += 1
                acc_i[j] += w
        for p in range(q_indptr[r], q_indptr[r + 1]):
            cur[q_items[p]] = 0.0
        # the top k of the voted items (a zero vote is no vote), after exclusions and filters
        for p in range(ex_indptr[r], ex_indptr[r + 1]):
            banned[ex_indices[p]] = True
        row_ok = ok[r if ok.shape[0] > 1 else 0]
        size = 0
        for t in range(n_i):
            j = touched_i[t]
            v = acc_i[j]
            acc_i[j] = 0.0
            seen_i[j] = False
            if v != 0 and np.isfinite(v) and row_ok[j] and not banned[j]:
                size = heap_offer(hv, hi, size, k, v, j)
        for p in range(ex_indptr[r], ex_indptr[r + 1]):
            banned[ex_indices[p]] = False
        heap_drain(hv, hi, size, out_val, out_idx, r)


def _empty(*args: Any) -> None:  # pragma: no cover - replaced when Numba is installed
    raise RuntimeError("session_knn_topk needs Numba")


_kernel: Any = _empty
if HAS_NUMBA:  # pragma: no branch
    from cartlift.recommend._kernels import heap_drain, heap_offer

    _kernel = numba.njit(cache=True, nogil=True)(_kernel_body)
