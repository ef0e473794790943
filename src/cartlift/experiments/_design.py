"""Experiment definitions and assignment: variants with weights, a salt, targeting, coverage, holdout.

A unit's fate is decided in this order, each step a pure function of the unit id (and, for
targeting, its attributes):

1. **targeting** -- conditions on attributes (GrowthBook's condition syntax, a subset): units that
   do not match are not in the experiment;
2. **holdout** -- a share of targeted units, chosen by a hash with its own salt, sees the default
   experience for the whole programme and is kept out of this analysis (long-term measurement);
3. **coverage and variant** -- the unit's bucket :math:`h \\in [0, 1)` falls in one variant's
   range (see :func:`~cartlift.experiments.bucket_ranges`) or in none (not covered).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import pandas as pd

from cartlift._params import Interval, Options, validate_params
from cartlift.errors import InvalidParameterError
from cartlift.experiments._hashing import bucket_ranges, choose_variant, hash_units

__all__ = [
    "ASSIGNED",
    "HOLDOUT",
    "NOT_COVERED",
    "NOT_TARGETED",
    "Assignment",
    "Experiment",
    "assign",
    "assign_units",
]

ASSIGNED: Final = "assigned"
HOLDOUT: Final = "holdout"
NOT_TARGETED: Final = "not_targeted"
NOT_COVERED: Final = "not_covered"

_OPERATORS = ("$eq", "$ne", "$in", "$nin", "$gt", "$gte", "$lt", "$lte", "$exists")


def _names(value: object) -> bool:
    """a sequence of at least 2 distinct non-empty variant names"""
    return (
        isinstance(value, tuple)
        and len(value) >= 2
        and all(isinstance(v, str) and v.strip() for v in value)
        and len(set(value)) == len(value)
    )


def _weights(value: object) -> bool:
    """a sequence of positive weights, one per variant, summing to 1"""
    return (
        isinstance(value, tuple)
        and all(isinstance(w, numbers.Real) and not isinstance(w, bool) and float(w) > 0 for w in value)
        and math.isclose(sum(value), 1.0, abs_tol=1e-6)
    )


def _text(value: object) -> bool:
    """a non-empty string"""
    return isinstance(value, str) and bool(value.strip())


@dataclass(frozen=True)
class Experiment:
    """An experiment: what to assign, in which proportions, to whom.

    Parameters
    ----------
    name : str
        Unique name (the key in the store's ``experiments`` table).
    variants : sequence of str
        Variant names; the first is the control unless ``control`` says otherwise.
    weights : sequence of float, optional
        Share of covered units per variant (default equal), summing to 1.
    salt : str, optional
        Hashing seed (default the name). A new salt reshuffles every unit: it starts a new phase.
    coverage : float
        Share of targeted, non-held-out units that enter the test (ramp-up without reshuffling).
    holdout : float
        Share of targeted units kept out of this and every later phase (a long-term holdout).
    targeting : mapping, optional
        Conditions on unit attributes: ``{"country": "FR"}``, ``{"device": {"$in": ["ios", "android"]}}``,
        ``{"orders": {"$gte": 1}}``; all must hold.
    hash_version : {1, 2}
        GrowthBook's hash version (2 unless matching a legacy test).
    control : str, optional
        The control variant (default the first).
    """

    name: str
    variants: Sequence[str] = ("control", "treatment")
    weights: Sequence[float] | None = None
    salt: str | None = None
    coverage: float = 1.0
    holdout: float = 0.0
    targeting: Mapping[str, Any] = field(default_factory=dict)
    hash_version: int = 2
    control: str | None = None

    _parameter_constraints = {  # noqa: RUF012  (a class-level table, read by validate_params)
        "name": [_text],
        "variants": [_names],
        "weights": [_weights],
        "salt": [_text],
        "coverage": [Interval(float, 0, 1, closed="right")],
        "holdout": [Interval(float, 0, 1, closed="left")],
        "hash_version": [Options((1, 2))],
        "control": [_text],
    }

    def __post_init__(self) -> None:
        variants = (
            tuple(self.variants)
            if isinstance(self.variants, Sequence) and not isinstance(self.variants, str)
            else self.variants
        )
        object.__setattr__(self, "variants", variants)
        if self.weights is None and isinstance(variants, tuple) and variants:
            object.__setattr__(self, "weights", tuple([1 / len(variants)] * len(variants)))
        elif self.weights is not None and not isinstance(self.weights, str):
            object.__setattr__(self, "weights", tuple(float(w) for w in self.weights))
        if self.salt is None:
            object.__setattr__(self, "salt", self.name)
        if self.control is None and isinstance(variants, tuple) and variants:
            object.__setattr__(self, "control", variants[0])
        validate_params(self)
        assert isinstance(self.weights, tuple)  # for mypy: normalised above
        if len(self.weights) != len(self.variants):
            raise InvalidParameterError(
                f"Experiment {self.name!r} has {len(self.variants)} variants but {len(self.weights)} weights "
                f"({list(self.weights)}); give one weight per variant."
            )
        if self.control not in self.variants:
            raise InvalidParameterError(
                f"The control {self.control!r} of experiment {self.name!r} is not one of its variants "
                f"{list(self.variants)}."
            )
        _check_targeting(self.targeting)

    @property
    def expected_shares(self) -> dict[str, float]:
        """Expected share of assigned units per variant (what the SRM check compares against)."""
        assert self.weights is not None
        return dict(zip(self.variants, self.weights, strict=True))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description."""
        return {
            "name": self.name,
            "variants": list(self.variants),
            "weights": list(self.weights or ()),
            "salt": self.salt,
            "coverage": self.coverage,
            "holdout": self.holdout,
            "targeting": dict(self.targeting),
            "hash_version": self.hash_version,
            "control": self.control,
        }


def _check_targeting(targeting: Mapping[str, Any]) -> None:
    if not isinstance(targeting, Mapping):
        raise InvalidParameterError(
            f"targeting must be a mapping of attribute to condition. Got {targeting!r} instead."
        )
    for attr, cond in targeting.items():
        if isinstance(cond, Mapping):
            unknown = [op for op in cond if op not in _OPERATORS]
            if unknown:
                raise InvalidParameterError(
                    f"Unknown targeting operator(s) {unknown} for attribute {attr!r}; use {', '.join(_OPERATORS)}."
                )
            for op in ("$in", "$nin"):
                if op in cond and (isinstance(cond[op], str) or not isinstance(cond[op], Sequence)):
                    raise InvalidParameterError(
                        f"{op} for attribute {attr!r} needs a list. Got {cond[op]!r} instead."
                    )


def _condition(column: pd.Series | None, cond: Any, size: int) -> np.ndarray:
    """Vectorised evaluation of one attribute's condition; a missing attribute matches only $ne/$nin/$exists false."""
    if not isinstance(cond, Mapping):
        cond = {"$eq": cond}
    present = np.zeros(size, dtype=bool) if column is None else column.notna().to_numpy()
    values = pd.Series([None] * size, dtype=object) if column is None else column
    ok = np.ones(size, dtype=bool)
    for op, target in cond.items():
        if op == "$exists":
            ok &= present if target else ~present
            continue
        if op in ("$in", "$nin"):
            hit = values.isin(list(target)).to_numpy() & present
            ok &= hit if op == "$in" else ~hit
            continue
        if op == "$ne":
            ok &= ~((values == target).to_numpy() & present)
            continue
        with np.errstate(invalid="ignore"):
            try:
                compare = {
                    "$eq": values == target,
                    "$gt": values > target,
                    "$gte": values >= target,
                    "$lt": values < target,
                    "$lte": values <= target,
                }[op]
            except TypeError as e:  # e.g. comparing text with a number
                raise InvalidParameterError(
                    f"Targeting condition {op} {target!r} cannot be compared with the attribute's values: {e}"
                ) from None
        ok &= compare.fillna(False).to_numpy(dtype=bool) & present
    return ok


@dataclass(frozen=True)
class Assignment:
    """Where one unit goes: its variant (None outside the test), bucket and status."""

    unit_id: str
    variant: str | None
    bucket: float
    status: str


def assign_units(
    experiment: Experiment,
    unit_ids: Sequence[object] | np.ndarray | pd.Series,
    attributes: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Assign many units at once.

    Parameters
    ----------
    experiment : Experiment
    unit_ids : sequence of shape (n,)
        Unit ids (turned into text).
    attributes : DataFrame of shape (n, k), optional
        Attributes aligned with ``unit_ids`` for targeting.

    Returns
    -------
    DataFrame
        ``unit_id``, ``variant`` (None unless assigned), ``bucket``, ``status``
        (``assigned``, ``holdout``, ``not_targeted`` or ``not_covered``).
    """
    ids = pd.Series(unit_ids).astype(str).to_numpy()
    n = ids.size
    targeted = np.ones(n, dtype=bool)
    if experiment.targeting:
        if attributes is None:
            raise InvalidParameterError(
                f"Experiment {experiment.name!r} targets on {sorted(experiment.targeting)}; pass the units' attributes."
            )
        if len(attributes) != n:
            raise InvalidParameterError(
                f"attributes has {len(attributes)} rows for {n} unit ids; align them."
            )
        frame = attributes.reset_index(drop=True)
        for attr, cond in experiment.targeting.items():
            targeted &= _condition(frame.get(attr), cond, n)
    salt = str(experiment.salt)
    held = np.zeros(n, dtype=bool)
    if experiment.holdout > 0:
        held = hash_units(salt + "/holdout", ids, experiment.hash_version) < experiment.holdout
    buckets = hash_units(salt, ids, experiment.hash_version)
    index = choose_variant(buckets, bucket_ranges(list(experiment.weights or ()), experiment.coverage))
    names = np.asarray(experiment.variants, dtype=object)
    status = np.where(
        ~targeted, NOT_TARGETED, np.where(held, HOLDOUT, np.where(index < 0, NOT_COVERED, ASSIGNED))
    )
    variant = np.where(status == ASSIGNED, names[np.maximum(index, 0)], None)
    return pd.DataFrame({"unit_id": ids, "variant": variant, "bucket": buckets, "status": status})


def assign(
    experiment: Experiment, unit_id: object, attributes: Mapping[str, Any] | None = None
) -> Assignment:
    """Assign one unit (the same answer as :func:`assign_units`, in any process)."""
    frame = pd.DataFrame([dict(attributes)]) if attributes else None
    row = assign_units(experiment, [unit_id], frame).iloc[0]
    variant = row["variant"]
    return Assignment(
        str(row["unit_id"]),
        None if pd.isna(variant) else str(variant),
        float(row["bucket"]),
        str(row["status"]),
    )
