"""What a funnel returns: steps, time to convert, trend and breakdown, as frozen dataclasses."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd

__all__ = [
    "Breakdown",
    "BreakdownGroup",
    "FunnelResult",
    "FunnelStep",
    "HistogramBin",
    "TimeToConvert",
    "TrendPoint",
]


@dataclass(frozen=True)
class FunnelStep:
    """One step: how many units reached it, and the conversions with 95 % Wilson intervals.

    ``ci_low``/``ci_high`` bound ``conversion_from_first``; ``ci_previous_low``/``_high`` bound
    ``conversion_from_previous``. Times are seconds from the previous step (None for step 1).
    """

    name: str
    count: int
    conversion_from_previous: float | None
    conversion_from_first: float | None
    ci_low: float | None
    ci_high: float | None
    ci_previous_low: float | None
    ci_previous_high: float | None
    median_seconds_from_previous: float | None = None
    p90_seconds_from_previous: float | None = None


@dataclass(frozen=True)
class HistogramBin:
    """Units that converted in ``[low_seconds, high_seconds)``."""

    label: str
    low_seconds: float
    high_seconds: float | None
    count: int


@dataclass(frozen=True)
class TimeToConvert:
    """Time from the first to the last step, over the units that reached the last step."""

    converted: int
    median_seconds: float | None
    p90_seconds: float | None
    mean_seconds: float | None
    histogram: tuple[HistogramBin, ...] = ()


@dataclass(frozen=True)
class TrendPoint:
    """Units that entered in one period and how many of them reached the last step.

    ``complete`` is False when the conversion window of some entrants had not closed by the
    last event in the store, so the rate may still rise.
    """

    period: datetime
    entered: int
    converted: int
    conversion: float | None
    ci_low: float | None
    ci_high: float | None
    complete: bool


@dataclass(frozen=True)
class BreakdownGroup:
    """One value of the breakdown column: step counts and its overall conversion.

    ``p_value`` tests this group against all others (Pearson chi-square on the 2x2 table of
    converted / not converted); ``p_value_adjusted`` is Holm-adjusted over the groups.
    """

    value: str
    counts: tuple[int, ...]
    entered: int
    converted: int
    conversion: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    p_value_adjusted: float | None


@dataclass(frozen=True)
class Breakdown:
    """The funnel split by one column, with a chi-square test of whether conversion differs."""

    column: str
    groups: tuple[BreakdownGroup, ...]
    chi2: float | None
    dof: int
    p_value: float | None
    cramers_v: float | None
    note: str | None = None


@dataclass(frozen=True)
class FunnelResult:
    """A funnel: its steps, time to convert, trend by period and optional breakdown."""

    steps: tuple[FunnelStep, ...]
    unit: str
    order: str
    window_seconds: float | None
    start: datetime | None
    end: datetime | None
    entered: int
    excluded: int
    time_to_convert: TimeToConvert
    trend: tuple[TrendPoint, ...] = ()
    trend_period: str = "day"
    breakdown: Breakdown | None = None
    skipped_steps: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        """The ``cartlift funnel --json`` document (plain Python types)."""
        return asdict(self)

    def steps_frame(self) -> pd.DataFrame:
        """The steps as a DataFrame (one row per step)."""
        return pd.DataFrame([asdict(s) for s in self.steps])

    def trend_frame(self) -> pd.DataFrame:
        """The trend as a DataFrame (one row per period)."""
        return pd.DataFrame([asdict(t) for t in self.trend])

    def breakdown_frame(self) -> pd.DataFrame:
        """The breakdown groups as a DataFrame (empty without a breakdown)."""
        if self.breakdown is None:
            return pd.DataFrame()
        rows = []
        for g in self.breakdown.groups:
            row = asdict(g)
            counts = row.pop("counts")
            row.update({s.name: c for s, c in zip(self.steps, counts, strict=True)})
            rows.append(row)
        return pd.DataFrame(rows)
