"""Deterministic assignment hashing: FNV-1a 32-bit, as GrowthBook's SDKs do it.

Assignment is a pure function of (salt, unit id): every process, the HTTP service and any
GrowthBook SDK given the same salt ("seed") put a unit in the same bucket, with no lookup table.

* version 2 (default): :math:`h = \\mathrm{fnv1a32}(\\mathrm{str}(\\mathrm{fnv1a32}(salt + id))) \\bmod 10^4 / 10^4`
* version 1 (legacy):  :math:`h = \\mathrm{fnv1a32}(id + salt) \\bmod 1000 / 1000`

The double hash of version 2 removes the correlation version 1 shows between experiments whose
salts share a prefix. The vectorised version processes one byte position of all ids at a time,
so a million ids hash in well under a second.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from numpy.typing import ArrayLike

from cartlift.errors import InvalidParameterError

__all__ = ["bucket_ranges", "choose_variant", "fnv1a32", "hash_unit", "hash_units"]

_OFFSET = np.uint32(0x811C9DC5)
_PRIME = np.uint32(0x01000193)


def fnv1a32(text: str) -> int:
    """The 32-bit FNV-1a hash of the UTF-8 bytes of ``text``."""
    h = 0x811C9DC5
    for byte in text.encode("utf-8"):
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return h


def _check_version(version: int) -> None:
    if version not in (1, 2):
        raise InvalidParameterError(f"hash_version must be 1 or 2. Got {version!r} instead.")


def hash_unit(salt: str, unit_id: object, version: int = 2) -> float:
    """The bucket in [0, 1) of one unit (``unit_id`` is turned into text, so 123 and "123" agree)."""
    _check_version(version)
    value = str(unit_id)
    if version == 1:
        return (fnv1a32(value + salt) % 1000) / 1000
    return (fnv1a32(str(fnv1a32(salt + value))) % 10000) / 10000


def _feed(state: np.ndarray, codes: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Continue FNV-1a on each row with its own bytes ``codes[i, :lengths[i]]``."""
    with np.errstate(over="ignore"):
        for j in range(codes.shape[1]):
            live = lengths > j
            if not live.any():
                break
            mixed = (state ^ codes[:, j].astype(np.uint32)) * _PRIME
            state = np.where(live, mixed, state)
    return state


def _feed_constant(state: np.ndarray, text: str) -> np.ndarray:
    with np.errstate(over="ignore"):
        for byte in text.encode("utf-8"):
            state = (state ^ np.uint32(byte)) * _PRIME
    return state


def _hash_decimal(values: np.ndarray) -> np.ndarray:
    """FNV-1a of ``str(v)`` for each uint32 ``v``, feeding decimal digits from the most significant one."""
    v = values.astype(np.int64)
    state = np.full(v.size, _OFFSET, dtype=np.uint32)
    started = np.zeros(v.size, dtype=bool)
    with np.errstate(over="ignore"):
        for k in range(9, -1, -1):
            digit = (v // 10**k) % 10
            live = started | (digit != 0) | (k == 0)  # skip leading zeros; "0" keeps its one digit
            mixed = (state ^ (digit + 48).astype(np.uint32)) * _PRIME
            state = np.where(live, mixed, state)
            started = live
    return state


def hash_units(salt: str, unit_ids: Iterable[object] | np.ndarray, version: int = 2) -> np.ndarray:
    """Vectorised :func:`hash_unit` over many ids; returns a float array of buckets in [0, 1)."""
    _check_version(version)
    texts = [str(u) for u in (unit_ids.tolist() if isinstance(unit_ids, np.ndarray) else unit_ids)]
    if not texts:
        return np.empty(0)
    if "\x00" in "".join(texts):  # NumPy strings drop trailing NULs: hash such ids one by one
        return np.array([hash_unit(salt, t, version) for t in texts])
    ids = np.asarray(texts, dtype=np.str_)
    try:  # ASCII ids (the usual case) convert without a per-item encode
        encoded = ids.astype(np.bytes_)
    except UnicodeEncodeError:
        encoded = np.char.encode(ids.astype(np.str_), "utf-8")
    width = max(int(encoded.dtype.itemsize), 1)
    codes = np.frombuffer(encoded.astype(f"S{width}").tobytes(), dtype=np.uint8).reshape(ids.size, width)
    lengths = np.char.str_len(encoded).astype(np.int64)
    state = np.full(ids.size, _OFFSET, dtype=np.uint32)
    if version == 1:
        state = _feed(state, codes, lengths)
        state = _feed_constant(state, salt)
        return (state % np.uint32(1000)).astype(float) / 1000
    state = _feed_constant(state, salt)
    state = _feed(state, codes, lengths)
    return (_hash_decimal(state) % np.uint32(10000)).astype(float) / 10000


def bucket_ranges(weights: Sequence[float], coverage: float = 1.0) -> list[tuple[float, float]]:
    """Bucket range of each variant: variant ``i`` owns :math:`[c_i, c_i + coverage \\cdot w_i)`.

    :math:`c_i` is the cumulative weight before ``i`` (GrowthBook's ``getBucketRanges``). Raising the
    coverage only grows each range at its end, so units already in the test keep their variant.
    """
    starts = np.concatenate([[0.0], np.cumsum(weights)[:-1]])
    return [(float(s), float(s + coverage * w)) for s, w in zip(starts, weights, strict=True)]


def choose_variant(buckets: ArrayLike, ranges: Sequence[tuple[float, float]]) -> np.ndarray:
    """Index of the range holding each bucket (first match), or -1 when none does (not covered)."""
    b = np.asarray(buckets, dtype=float)
    out = np.full(b.shape, -1, dtype=np.int64)
    for i, (lo, hi) in reversed(list(enumerate(ranges))):
        out = np.where((b >= lo) & (b < hi), i, out)
    return out
