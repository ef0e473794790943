"""Saving models without pickle: NumPy arrays in one ``.npz`` plus a JSON header inside it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from cartlift.errors import DataError

__all__ = ["FORMAT", "read_npz", "state_of", "write_npz"]

FORMAT = "cartlift-recommender/1"
_META = "__meta__"


def write_npz(path: str | Path, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> Path:
    """Write ``arrays`` and the JSON ``meta`` to ``path`` (``.npz`` is appended when missing)."""
    target = Path(path)
    if target.suffix != ".npz":
        target = target.with_name(target.name + ".npz")
    target.parent.mkdir(parents=True, exist_ok=True)
    for name, arr in arrays.items():
        if arr.dtype == object:
            raise DataError(
                f"Cannot save {name!r}: object arrays would need pickle; convert it to str first."
            )
    payload: dict[str, Any] = {_META: np.array(json.dumps({"format": FORMAT, **meta})), **arrays}
    np.savez(target, **payload)
    return target


def read_npz(path: str | Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read what :func:`write_npz` wrote; refuses pickled content."""
    source = Path(path)
    if not source.exists() and source.suffix != ".npz":
        source = source.with_name(source.name + ".npz")
    try:
        with np.load(source, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError) as e:
        raise DataError(f"Cannot read a saved model from {str(source)!r}: {e}") from e
    if _META not in arrays:
        raise DataError(f"{str(source)!r} is not a cartlift model file (no header).")
    meta = json.loads(str(arrays.pop(_META)))
    if meta.get("format") != FORMAT:
        raise DataError(f"{str(source)!r} has format {meta.get('format')!r}; this version reads {FORMAT!r}.")
    return meta, arrays


def state_of(obj: object) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Split an estimator's learned attributes (names ending in ``_``) into JSON values and arrays.

    Sparse matrices become ``name@data``, ``name@indices``, ``name@indptr`` and ``name@shape``.
    """
    scalars: dict[str, Any] = {}
    arrays: dict[str, np.ndarray] = {}
    for name, value in vars(obj).items():
        if not name.endswith("_") or name.startswith("_"):
            continue
        if sp.issparse(value):
            m = sp.csr_matrix(value)
            arrays[f"{name}@data"] = m.data
            arrays[f"{name}@indices"] = m.indices
            arrays[f"{name}@indptr"] = m.indptr
            arrays[f"{name}@shape"] = np.asarray(m.shape, np.int64)
        elif isinstance(value, np.ndarray):
            arrays[name] = value
        elif value is None or isinstance(value, bool | int | float | str | list | dict):
            scalars[name] = value
    return scalars, arrays


def restore_state(obj: object, scalars: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """Set the attributes :func:`state_of` took apart back on ``obj``."""
    for name, value in scalars.items():
        setattr(obj, name, value)
    sparse = {k.split("@")[0] for k in arrays if "@" in k}
    for name in sparse:
        m = sp.csr_matrix(
            (arrays[f"{name}@data"], arrays[f"{name}@indices"], arrays[f"{name}@indptr"]),
            shape=tuple(int(x) for x in arrays[f"{name}@shape"]),
        )
        setattr(obj, name, m)
    for name, value in arrays.items():
        if "@" not in name:
            setattr(obj, name, value)
