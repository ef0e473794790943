"""Parameter validation from one declared table, with one message format.

Modelled on scikit-learn's ``_param_validation``: an estimator declares
``_parameter_constraints = {"k": [Interval(int, 1, None)], ...}`` and calls
``validate_params(self)`` at the start of ``fit``.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from cartlift.errors import InvalidParameterError

__all__ = ["Interval", "Options", "validate_params"]


@dataclass(frozen=True)
class Interval:
    """Numbers of ``kind`` (int or float) in [low, high] (``closed`` says which ends are included)."""

    kind: type
    low: float | None
    high: float | None
    closed: str = "both"  # "both", "left", "right" or "neither"

    def __call__(self, value: Any) -> bool:
        if isinstance(value, bool):
            return False
        ok_type = isinstance(value, numbers.Integral) if self.kind is int else isinstance(value, numbers.Real)
        if not ok_type:
            return False
        lo_ok = self.low is None or (
            value >= self.low if self.closed in ("both", "left") else value > self.low
        )
        hi_ok = self.high is None or (
            value <= self.high if self.closed in ("both", "right") else value < self.high
        )
        return bool(lo_ok and hi_ok)

    def __str__(self) -> str:
        name = "an int" if self.kind is int else "a float"
        left = "[" if self.closed in ("both", "left") else "("
        right = "]" if self.closed in ("both", "right") else ")"
        if self.low is not None and self.high is None:
            return f"{name} {'>=' if left == '[' else '>'} {self.low}"
        if self.high is not None and self.low is None:
            return f"{name} {'<=' if right == ']' else '<'} {self.high}"
        lo = "-inf" if self.low is None else self.low
        hi = "inf" if self.high is None else self.high
        return f"{name} in the range {left}{lo}, {hi}{right}"


@dataclass(frozen=True)
class Options:
    """One of a fixed set of values."""

    values: Collection[Any]

    def __call__(self, value: Any) -> bool:
        return value in self.values

    def __str__(self) -> str:
        return "one of " + ", ".join(repr(v) for v in self.values)


Constraint = Interval | Options | type | None | Callable[[Any], bool]


def _satisfies(constraint: Constraint, value: Any) -> bool:
    if constraint is None:
        return value is None
    if isinstance(constraint, type):
        return isinstance(value, constraint) and not (constraint is not bool and isinstance(value, bool))
    return bool(constraint(value))


def _describe(constraint: Constraint) -> str:
    if constraint is None:
        return "None"
    if isinstance(constraint, type):
        return f"an instance of {constraint.__name__}"
    return (
        str(constraint)
        if isinstance(constraint, Interval | Options)
        else getattr(constraint, "__doc__", None) or "valid"
    )


def validate_params(owner: object, constraints: Mapping[str, list[Constraint]] | None = None) -> None:
    """Check every declared parameter of ``owner`` and raise one clear error for the first bad one.

    The message reads: "The 'k' parameter of ItemKNN must be an int >= 1. Got 0 instead."
    """
    table = constraints if constraints is not None else getattr(owner, "_parameter_constraints", {})
    name = type(owner).__name__
    for param, allowed in table.items():
        value = getattr(owner, param)
        if any(_satisfies(c, value) for c in allowed):
            continue
        wanted = " or ".join(_describe(c) for c in allowed)
        raise InvalidParameterError(
            f"The {param!r} parameter of {name} must be {wanted}. Got {value!r} instead."
        )
