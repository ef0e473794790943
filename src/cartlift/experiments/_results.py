"""Configuration and results of an analysis (dataclasses; the maths is in :mod:`._analysis`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cartlift._params import Interval, Options, validate_params
from cartlift.errors import InvalidParameterError
from cartlift.experiments._bayesian import BayesianResult
from cartlift.experiments._frequentist import Inference
from cartlift.experiments._multiple import CORRECTIONS
from cartlift.experiments._srm import SrmResult

__all__ = ["METHODS", "AnalysisConfig", "ExperimentResult", "VariantResult"]

METHODS = ("frequentist", "bayesian", "sequential", "bootstrap")


@dataclass(frozen=True)
class AnalysisConfig:
    """How to analyse.

    Parameters
    ----------
    method : {"frequentist", "bayesian", "sequential", "bootstrap"}
        Fixed-horizon Welch/delta method; Bayesian (Beta-Binomial or normal); always-valid
        confidence sequence (safe to peek); percentile bootstrap (needs unit values).
    alpha : float
        Two-sided level (0.05 for 95 % intervals).
    relative : bool
        Report the relative lift (default) or the absolute difference.
    correction : {"holm", "bh", "none"}
        Multiple-comparison correction across the variants of an A/B/n test.
    tuning_n : float
        Sequential method: total sample size where the confidence sequence is tightest.
    prior : tuple of float
        Beta prior of conversion rates for the Bayesian model.
    srm_threshold : float
        SRM p-value below which the split is flagged (and a warning raised).
    fisher_max_units : int
        Run Fisher's exact test only up to this many units (its cost grows with the counts).
    n_resamples, random_state : int
        Bootstrap replicates and seed.
    """

    method: str = "frequentist"
    alpha: float = 0.05
    relative: bool = True
    correction: str = "holm"
    tuning_n: float = 5000.0
    prior: tuple[float, float] = (1.0, 1.0)
    srm_threshold: float = 0.001
    fisher_max_units: int = 200_000
    n_resamples: int = 2000
    random_state: int = 0

    _parameter_constraints = {  # noqa: RUF012  (a class-level table, read by validate_params)
        "method": [Options(METHODS)],
        "alpha": [Interval(float, 0, 1, closed="neither")],
        "relative": [bool],
        "correction": [Options(CORRECTIONS)],
        "tuning_n": [Interval(float, 0, None, closed="neither")],
        "srm_threshold": [Interval(float, 0, 1, closed="neither")],
        "fisher_max_units": [Interval(int, 0, None)],
        "n_resamples": [Interval(int, 100, None)],
        "random_state": [int],
    }

    def __post_init__(self) -> None:
        validate_params(self)


@dataclass(frozen=True)
class VariantResult:
    """One variant's row: its mean and, except for the control, its comparison with the control."""

    name: str
    n: int
    mean: float
    mean_ci_low: float
    mean_ci_high: float
    is_control: bool = False
    lift: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    p_value_adjusted: float | None = None
    chance_to_beat_control: float | None = None
    expected_loss: float | None = None
    absolute_lift: float | None = None
    absolute_ci_low: float | None = None
    absolute_ci_high: float | None = None
    ci_low_unadjusted: float | None = None
    ci_high_unadjusted: float | None = None
    tests: dict[str, Inference] = field(default_factory=dict)
    bayesian: BayesianResult | None = None
    error_code: str | None = None
    error_message: str | None = None

    @property
    def significant(self) -> bool:
        """The (adjusted) interval excludes "no effect": the same as ``p_value_adjusted < alpha``."""
        if self.is_control or self.error_code or self.ci_low is None or self.ci_high is None:
            return False
        return self.ci_low > 0 or self.ci_high < 0

    def to_dict(self) -> dict[str, Any]:
        """The JSON row (contract keys first, then the details)."""
        return {
            "name": self.name,
            "n": self.n,
            "mean": self.mean,
            "lift": self.lift,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "p_value": self.p_value,
            "p_value_adjusted": self.p_value_adjusted,
            "chance_to_beat_control": self.chance_to_beat_control,
            "is_control": self.is_control,
            "mean_ci_low": self.mean_ci_low,
            "mean_ci_high": self.mean_ci_high,
            "expected_loss": self.expected_loss,
            "absolute_lift": self.absolute_lift,
            "absolute_ci_low": self.absolute_ci_low,
            "absolute_ci_high": self.absolute_ci_high,
            "ci_low_unadjusted": self.ci_low_unadjusted,
            "ci_high_unadjusted": self.ci_high_unadjusted,
            "significant": self.significant,
            "tests": {k: v.to_dict() for k, v in self.tests.items()},
            "error_code": self.error_code,
            "error_message": self.error_message,
        }


@dataclass(frozen=True)
class ExperimentResult:
    """The analysis of one metric of one experiment."""

    metric: str
    method: str
    control: str
    alpha: float
    relative: bool
    correction: str
    binary: bool
    kind: str
    srm: SrmResult
    variants: tuple[VariantResult, ...]
    cuped_theta: float | None = None
    variance_reduction: float | None = None
    notes: tuple[str, ...] = ()

    @property
    def srm_p_value(self) -> float:
        """p-value of the sample ratio mismatch check."""
        return self.srm.p_value

    def variant(self, name: str) -> VariantResult:
        """The row of variant ``name``."""
        for v in self.variants:
            if v.name == name:
                return v
        raise InvalidParameterError(f"No variant {name!r}; variants: {[v.name for v in self.variants]}.")

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` document: ``{"srm_p_value", "variants": [...], ...}``."""
        return {
            "srm_p_value": self.srm.p_value,
            "variants": [v.to_dict() for v in self.variants],
            "metric": self.metric,
            "method": self.method,
            "control": self.control,
            "alpha": self.alpha,
            "relative": self.relative,
            "correction": self.correction,
            "metric_type": "binary" if self.binary else "continuous",
            "kind": self.kind,
            "srm": self.srm.to_dict(),
            "cuped_theta": self.cuped_theta,
            "variance_reduction": self.variance_reduction,
            "notes": list(self.notes),
        }
