"""The ranker's row-sum pair features in one compiled pass per matrix.

``follows_session``, ``follows_last`` and ``cooccurs_last`` read, for each query row, a weighted
sum of a few rows of a CSR matrix at the row's candidate items. The NumPy route gathers those
rows, sorts the (row, column) keys, sums equal keys with ``np.add.reduceat`` and searches the
candidates among them: about twenty small calls, ~90 us per feature for one query. This kernel
does the same per query row without the intermediate arrays.

Exactness: the features must stay bit for bit those the model was trained on. The entries of
one key are summed in the NumPy route's order (the stable sort keeps the source rows' order)
and the way ``np.add.reduceat`` sums them: the segment's first value plus NumPy's pairwise sum
of the rest (``pairwise_sum`` in numpy/_core/src/umath/loops_utils.h.src: sequential below 8
values, eight accumulators up to 128, halves above). Tested against the NumPy route with
repeated clicks, so that keys carry up to ten values.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cartlift.recommend._kernels import HAS_NUMBA, numba

__all__ = ["row_sums_at"]

_BLOCK = 128  # NumPy's PW_BLOCKSIZE


def _pairwise_body(vals: np.ndarray, order: np.ndarray, start: int, n: int) -> float:
    """NumPy's pairwise sum of ``vals[order[start:start + n]]``."""
    if n < 8:
        res = -0.0
        for k in range(n):
            res += vals[order[start + k]]
        return res
    if n <= _BLOCK:
        r0 = vals[order[start]]
        r1 = vals[order[start + 1]]
        r2 = vals[order[start + 2]]
        r3 = vals[order[start + 3]]
        r4 = vals[order[start + 4]]
        r5 = vals[order[start + 5]]
        r6 = vals[order[start + 6]]
        r7 = vals[order[start + 7]]
        i = 8
        while i < n - (n % 8):
            r0 += vals[order[start + i]]
            r1 += vals[order[start + i + 1]]
            r2 += vals[order[start + i + 2]]
            r3 += vals[order[start + i + 3]]
            r4 += vals[order[start + i + 4]]
            r5 += vals[order[start + i + 5]]
            r6 += vals[order[start + i + 6]]
            r7 += vals[order[start + i + 7]]
            i += 8
        res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
        while i < n:
            res += vals[order[start + i]]
            i += 1
        return res
    n2 = n // 2
    n2 -= n2 % 8
    return _pairwise(vals, order, start, n2) + _pairwise(vals, order, start + n2, n - n2)


_pairwise: Any = (
    numba.njit(cache=True, nogil=True, inline="never")(_pairwise_body) if HAS_NUMBA else _pairwise_body
)


def _row_sums_body(
    indptr: np.ndarray,
    indices: np.ndarray,
    data: np.ndarray,
    src_ptr: np.ndarray,
    src_rows: np.ndarray,
    window: int,
    decay: float,
    cand_ptr: np.ndarray,
    cand_items: np.ndarray,
    out: np.ndarray,
) -> None:
    for r in range(len(src_ptr) - 1):
        c0, c1 = cand_ptr[r], cand_ptr[r + 1]
        if c0 == c1:
            continue
        first = max(src_ptr[r], src_ptr[r + 1] - window)
        total = 0
        for k in range(first, src_ptr[r + 1]):
            s = src_rows[k]
            if s >= 0:
                total += indptr[s + 1] - indptr[s]
        if total == 0:
            continue
        cols = np.empty(total, np.int64)
        vals = np.empty(total, np.float64)
        t = 0
        # the newest source row weighs 1, each step back ``decay`` times less (powers of 0.5 are
        # exact, so repeated halving gives NumPy's ``0.5 ** arange``)
        w = 1.0
        for _ in range(src_ptr[r + 1] - first - 1):
            w *= decay
        for k in range(first, src_ptr[r + 1]):
            s = src_rows[k]
            if s >= 0:
                for e in range(indptr[s], indptr[s + 1]):
                    cols[t] = indices[e]
                    vals[t] = w * np.float64(data[e])
                    t += 1
            w /= decay
        order = np.argsort(cols, kind="mergesort")  # stable: equal columns keep the rows' order
        c = c0
        i = 0
        while i < total and c < c1:
            col = cols[order[i]]
            j = i + 1
            while j < total and cols[order[j]] == col:
                j += 1
            while c < c1 and cand_items[c] < col:
                c += 1
            if c < c1 and cand_items[c] == col:
                # np.add.reduceat: the first value, then the rest's pairwise sum added to it
                if j - i > 1:
                    out[c] = vals[order[i]] + _pairwise(vals, order, i + 1, j - i - 1)
                else:
                    out[c] = vals[order[i]]
                c += 1
            i = j


_row_sums: Any = numba.njit(cache=True, nogil=True)(_row_sums_body) if HAS_NUMBA else _row_sums_body


def row_sums_at(
    m: Any,
    src_ptr: np.ndarray,
    src_rows: np.ndarray,
    cand_ptr: np.ndarray,
    cand_items: np.ndarray,
    window: int = 1,
    decay: float = 0.5,
) -> np.ndarray:
    """For each query row r and each of its candidate items j: the sum over the last ``window``
    source rows s of r (``src_rows[src_ptr[r]:src_ptr[r + 1]]``, -1: none), the newest weighing 1
    and each older one ``decay`` times that, of ``weight_s * m[s, j]``; 0 where nothing is stored.

    ``cand_items[cand_ptr[r]:cand_ptr[r + 1]]`` are row r's candidates, sorted and distinct.
    ``decay`` must be a power of two (the weights are then exact).
    """
    out = np.zeros(len(cand_items), np.float64)
    _row_sums(
        m.indptr,  # the matrix's own index dtype: a kernel per dtype, no copy per query
        m.indices,
        m.data,
        np.asarray(src_ptr, np.int64),
        np.asarray(src_rows, np.int64),
        int(window),
        float(decay),
        np.asarray(cand_ptr, np.int64),
        np.asarray(cand_items, np.int64),
        out,
    )
    return out


def _placed_body(
    keys: np.ndarray, rows: np.ndarray, idx: np.ndarray, vals: np.ndarray, n_items: int, out: np.ndarray
) -> None:
    n_keys = len(keys)
    top = np.full(idx.shape[0], np.nan)
    for r in range(idx.shape[0]):
        if idx[r, 0] >= 0:
            top[r] = vals[r, 0]
        for c in range(idx.shape[1]):
            item = idx[r, c]
            if item < 0:
                continue
            key = r * n_items + item
            p = np.searchsorted(keys, key)
            if p < n_keys and keys[p] == key:
                # in the row's order: a repeated proposal keeps its last place, as NumPy's
                # fancy assignment does
                out[0, p] = vals[r, c]
                out[1, p] = c + 1.0
    for p in range(n_keys):
        out[2, p] = out[0, p] / top[rows[p]]


# error_model="numpy": x / 0 gives inf or NaN as in NumPy, not an exception
_placed: Any = (
    numba.njit(cache=True, nogil=True, error_model="numpy")(_placed_body) if HAS_NUMBA else _placed_body
)


def generator_columns(
    keys: np.ndarray, rows: np.ndarray, idx: np.ndarray, vals: np.ndarray, n_items: int, per_generator: int
) -> np.ndarray:
    """One generator's score, rank and score relative to the row's best at the sorted candidate
    ``keys`` (``row * n_items + item``, rows ``rows``), shape (3, n_keys): NaN, ``per_generator
    + 1`` and NaN where the generator did not propose the item. ``idx``/``vals``: its ranked lists
    (-1: none), at least one column."""
    out = np.empty((3, len(keys)))
    out[0] = np.nan
    out[1] = per_generator + 1.0
    if HAS_NUMBA:  # the kernel divides as NumPy without warnings; errstate costs ~5 us a call
        _placed(keys, rows, idx, vals, int(n_items), out)
    else:
        with np.errstate(invalid="ignore", divide="ignore"):  # the fallback's NumPy scalars
            _placed(keys, rows, idx, vals, int(n_items), out)
    return out
