"""Simulate and write out in one call: what `cartlift simulate` and `cartlift demo` run."""

from __future__ import annotations

import numbers
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cartlift._random import RandomState
from cartlift.simulate._simulate import simulate

if TYPE_CHECKING:
    from cartlift.store import EventStore

__all__ = ["simulate_to"]


def simulate_to(
    store: EventStore | None = None,
    out_dir: str | Path | None = None,
    *,
    random_state: RandomState = None,
    progress: Callable[[str, float], None] | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """Simulate a store, load it into ``store`` and/or write its Parquet files to ``out_dir``.

    Parameters
    ----------
    store : EventStore, optional
        Loaded with `SimulatedStore.write_to` (events through the validated ingest path).
    out_dir : str or Path, optional
        Receives events.parquet, products.parquet and truth_*.parquet.
    random_state : int, numpy.random.Generator or None
        The seed.
    progress : callable, optional
        ``progress(label, percent)`` for progress bars.
    **overrides
        Knobs of `SimulationConfig` (``n_users``, ``n_days``, ``start`` ...).

    Returns
    -------
    dict
        The numbers of `Stats.to_dict`, plus ``seed``, ``run_id``, ``simulate_seconds``,
        ``loaded`` (accepted / duplicates / quarantined of events and products, rows per truth
        table) and ``db`` when a store was given, ``paths`` when files were written, and
        ``seconds`` in all.
    """
    began = time.perf_counter()
    sim = simulate(random_state=random_state, progress=progress, **overrides)
    seed = int(random_state) if isinstance(random_state, numbers.Integral) else None
    result: dict[str, Any] = {**sim.stats.to_dict(), "seed": seed, "run_id": sim.run_id}
    result["simulate_seconds"] = time.perf_counter() - began
    if store is not None:
        loaded = sim.write_to(store, progress=progress)
        result["db"] = str(store.path)
        result["loaded"] = {
            "events": {k: loaded["events"][k] for k in ("accepted", "duplicates", "quarantined", "reasons")},
            "products": {k: loaded["products"][k] for k in ("accepted", "duplicates", "quarantined")},
            "truth": loaded["truth"],
        }
    if out_dir is not None:
        result["paths"] = {name: str(path) for name, path in sim.write_parquet(out_dir).items()}
    result["seconds"] = time.perf_counter() - began
    return result
