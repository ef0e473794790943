"""Read the potential outcomes of abandoned carts and draw what happens under chosen actions.

These functions take the ``truth_carts`` table (from `SimulatedStore.truth` or read back from a
store with ``store.arrow("SELECT * FROM truth_carts")``), so they work in any later process.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias

import numpy as np
import pandas as pd
import pyarrow as pa

from cartlift._random import RandomState, check_random_state
from cartlift.errors import DataError, InvalidParameterError
from cartlift.simulate._config import ACTIONS

__all__ = ["draw_outcomes", "potential_outcomes", "true_uplift"]

CartTable: TypeAlias = pa.Table | pd.DataFrame


def _column(carts: CartTable, name: str) -> np.ndarray:
    names = carts.column_names if isinstance(carts, pa.Table) else list(carts.columns)
    if name not in names:
        raise DataError(
            f"The carts table has no column {name!r}; pass the simulator's truth_carts table "
            f"(columns cart_id, p_nothing, p_reminder_email_1h, ...). Got columns {names[:8]!r}."
        )
    return np.asarray(
        carts.column(name).to_numpy() if isinstance(carts, pa.Table) else carts[name].to_numpy()
    )


def _action_index(actions: str | Sequence[str] | np.ndarray, n: int) -> np.ndarray:
    names = (
        np.full(n, actions, dtype=object) if isinstance(actions, str) else np.asarray(actions, dtype=object)
    )
    if names.shape != (n,):
        raise InvalidParameterError(
            f"actions must be one action name or one per cart ({n}). Got {names.shape[0] if names.ndim else 1} instead."
        )
    lookup = {a: i for i, a in enumerate(ACTIONS)}
    idx = np.array([lookup.get(a, -1) for a in names], dtype=np.int64) if n else np.zeros(0, dtype=np.int64)
    if (idx < 0).any():
        bad = sorted({str(a) for a in names[idx < 0]})[:5]
        raise InvalidParameterError(f"Unknown action(s) {', '.join(bad)}. Use one of: {', '.join(ACTIONS)}.")
    return idx


def potential_outcomes(
    carts: CartTable, cart_ids: Sequence[str] | np.ndarray, actions: str | Sequence[str] | np.ndarray
) -> np.ndarray:
    """True probability that each cart is bought within the outcome window under its action.

    Parameters
    ----------
    carts : pyarrow.Table or pandas.DataFrame
        The ``truth_carts`` table.
    cart_ids : sequence of str, length n
        Abandoned carts (``cart_id`` = the session id where the cart was abandoned).
    actions : str or sequence of str, length n
        One of `ACTIONS` for all carts, or one per cart.

    Returns
    -------
    ndarray of float, shape (n,)
    """
    ids = np.asarray(cart_ids, dtype=object)
    index = pd.Index(_column(carts, "cart_id")).get_indexer(ids)
    if (index < 0).any():
        missing = [str(x) for x in ids[index < 0][:5]]
        raise DataError(
            f"{int((index < 0).sum())} cart id(s) are not abandoned carts of this simulation, "
            f"e.g. {', '.join(missing)}. Take cart ids from truth_carts.cart_id."
        )
    act = _action_index(actions, len(ids))
    probs = np.column_stack([_column(carts, f"p_{a}").astype(float) for a in ACTIONS])
    return np.asarray(probs[index, act], dtype=float)


def true_uplift(carts: CartTable, action: str) -> np.ndarray:
    """``P(buy | action) - P(buy | nothing)`` for every row of ``carts``, in table order."""
    _action_index(action, 1)
    return np.asarray(_column(carts, f"p_{action}") - _column(carts, "p_nothing"), dtype=float)


def draw_outcomes(
    carts: CartTable,
    cart_ids: Sequence[str] | np.ndarray,
    actions: str | Sequence[str] | np.ndarray,
    random_state: RandomState = None,
) -> np.ndarray:
    """Draw whether each cart is bought within the window after its action (a Bernoulli per cart).

    Parameters
    ----------
    carts, cart_ids, actions
        As in `potential_outcomes`.
    random_state : int, numpy.random.Generator or None
        Same seed, same outcomes.

    Returns
    -------
    ndarray of bool, shape (n,)
    """
    p = potential_outcomes(carts, cart_ids, actions)
    rng = check_random_state(random_state)
    return np.asarray(rng.random(len(p)) < p)
