"""Sample ratio mismatch (SRM): does the observed split of units match the configured weights?"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from cartlift.errors import InvalidParameterError
from cartlift.experiments._messages import SampleRatioMismatchWarning

__all__ = ["SrmResult", "srm_test"]


@dataclass(frozen=True)
class SrmResult:
    """Chi-square goodness-of-fit of the unit counts against the expected shares."""

    statistic: float
    p_value: float
    df: int
    observed: dict[str, int]
    expected_shares: dict[str, float]
    threshold: float
    mismatch: bool

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready fields."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def srm_test(
    counts: Mapping[str, int],
    expected_shares: Mapping[str, float] | None = None,
    *,
    threshold: float = 0.001,
    warn: bool = True,
) -> SrmResult:
    """Pearson chi-square test of the observed unit counts against the expected shares.

    .. math::  \\chi^2 = \\sum_i (n_i - N w_i)^2 / (N w_i), \\quad \\nu = k - 1

    Equal to ``scipy.stats.chisquare(counts, N * weights)``. A p-value below ``threshold`` (0.001,
    strict because the check runs on every experiment) flags a mismatch and, with ``warn``, emits
    :class:`~cartlift.experiments.SampleRatioMismatchWarning`: the assignment or the exposure logging
    is broken and the lift should not be trusted (Fabijan et al. 2019).
    """
    names = list(counts)
    if len(names) < 2:
        raise InvalidParameterError(f"The SRM check needs at least 2 variants. Got {names!r} instead.")
    if expected_shares is None:
        shares = np.full(len(names), 1 / len(names))
    else:
        missing = [n for n in names if n not in expected_shares]
        if missing:
            raise InvalidParameterError(
                f"No expected share for variant(s) {missing}; shares given: {dict(expected_shares)}."
            )
        shares = np.array([float(expected_shares[n]) for n in names])
        if np.any(shares <= 0):
            raise InvalidParameterError(f"Expected shares must be > 0. Got {dict(expected_shares)} instead.")
        shares = shares / shares.sum()
    observed = np.array([int(counts[n]) for n in names], dtype=float)
    total = observed.sum()
    if total == 0:
        return SrmResult(
            0.0,
            1.0,
            len(names) - 1,
            dict.fromkeys(names, 0),
            dict(zip(names, shares.tolist(), strict=True)),
            threshold,
            False,
        )
    expected = total * shares
    chi2 = float(((observed - expected) ** 2 / expected).sum())
    p = float(stats.chi2.sf(chi2, len(names) - 1))
    mismatch = p < threshold
    if mismatch and warn:
        split = ", ".join(
            f"{n} {int(o):,} (expected {e:,.0f})" for n, o, e in zip(names, observed, expected, strict=True)
        )
        warnings.warn(
            f"Sample ratio mismatch: p = {p:.2e} < {threshold}. Units: {split}. The assignment or exposure "
            "logging is broken (bots, redirects, a variant failing before logging); find the cause before "
            "trusting any lift.",
            SampleRatioMismatchWarning,
            stacklevel=2,
        )
    return SrmResult(
        chi2,
        p,
        len(names) - 1,
        {n: int(o) for n, o in zip(names, observed, strict=True)},
        dict(zip(names, shares.tolist(), strict=True)),
        threshold,
        mismatch,
    )
