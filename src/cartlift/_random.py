"""The one place that turns a `random_state` argument into a NumPy generator."""

from __future__ import annotations

import numbers

import numpy as np

from cartlift.errors import InvalidParameterError

RandomState = int | np.random.Generator | None


def check_random_state(random_state: RandomState) -> np.random.Generator:
    """Return a `numpy.random.Generator` for ``random_state``.

    Parameters
    ----------
    random_state : int, numpy.random.Generator or None
        A seed (same seed, same numbers), an existing generator (returned as is) or None
        (fresh OS entropy).
    """
    if random_state is None or isinstance(random_state, np.random.Generator):
        return np.random.default_rng(random_state)
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        return np.random.default_rng(int(random_state))
    raise InvalidParameterError(
        f"random_state must be an int, a numpy.random.Generator or None. Got {random_state!r} instead."
    )
