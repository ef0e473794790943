"""One call that analyses an A/B or A/B/n test: SRM, every variant against the control, corrections.

:func:`analyze` takes per-variant sufficient statistics (from :mod:`cartlift.experiments._sql` or
built by hand) and returns an :class:`ExperimentResult` whose ``to_dict()`` is the JSON shape of
``cartlift experiment analyze --json``.

Headline numbers per variant, whatever the method:

* ``lift`` -- relative lift :math:`m_b/m_a - 1` (or the difference with ``relative=False``);
* ``ci_low``/``ci_high`` -- its interval, adjusted for multiple comparisons so that it excludes 0
  exactly when ``p_value_adjusted < alpha``;
* ``p_value`` and ``p_value_adjusted`` -- from the same statistic as the interval (frequentist:
  Welch/delta method as in gbstats; sequential: always-valid), None for the Bayesian method;
* ``chance_to_beat_control`` -- always, from the Bayesian model (Beta-Binomial for conversions,
  normal otherwise).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy import stats

from cartlift.errors import InvalidParameterError
from cartlift.experiments import _messages as msg
from cartlift.experiments._bayesian import beta_binomial, normal_model
from cartlift.experiments._bootstrap import bootstrap_test
from cartlift.experiments._frequentist import (
    Inference,
    chi_square_test,
    difference_test,
    fisher_exact_test,
    newcombe_interval,
    two_proportion_ztest,
    wilson_interval,
)
from cartlift.experiments._multiple import adjust_p_values, interval_alpha
from cartlift.experiments._results import METHODS, AnalysisConfig, ExperimentResult, VariantResult
from cartlift.experiments._sequential import confidence_sequence
from cartlift.experiments._sql import MetricStats
from cartlift.experiments._srm import srm_test
from cartlift.experiments._statistics import (
    ArmEstimate,
    CovariateStats,
    JointStats,
    RatioStats,
    SampleStats,
    cuped_estimate,
    cuped_theta,
    mean_estimate,
    ratio_estimate,
)

__all__ = ["METHODS", "AnalysisConfig", "ExperimentResult", "VariantResult", "analyze"]


Stats = SampleStats | JointStats


def _kind(stats_: Mapping[str, Stats]) -> str:
    kinds = {type(s) for s in stats_.values()}
    if kinds <= {SampleStats}:
        return "mean"
    if kinds <= {RatioStats}:
        return "ratio"
    if kinds <= {CovariateStats}:
        return "cuped"
    raise InvalidParameterError(
        "All variants need statistics of one kind (SampleStats, RatioStats or CovariateStats). "
        f"Got {sorted(k.__name__ for k in kinds)} instead."
    )


def _estimates(
    stats_: Mapping[str, Stats], kind: str
) -> tuple[dict[str, ArmEstimate], float | None, float | None, list[str]]:
    notes: list[str] = []
    if kind == "mean":
        return (
            {k: mean_estimate(s) for k, s in stats_.items() if isinstance(s, SampleStats)},
            None,
            None,
            notes,
        )
    joint = [s for s in stats_.values() if isinstance(s, JointStats)]
    if kind == "ratio":
        if any(s.sum_x == 0 for s in joint):
            notes.append(msg.message(msg.ZERO_DENOMINATOR))
        return (
            {k: ratio_estimate(s) for k, s in stats_.items() if isinstance(s, JointStats)},
            None,
            None,
            notes,
        )
    pooled = joint[0]
    for s in joint[1:]:
        pooled = pooled + s
    theta = cuped_theta(pooled)
    if pooled.x.variance == 0:
        notes.append(msg.message(msg.COVARIATE_CONSTANT))
    mean_x = pooled.sum_x / pooled.n if pooled.n else 0.0
    adjusted = {k: cuped_estimate(s, theta, mean_x) for k, s in stats_.items() if isinstance(s, JointStats)}
    raw = sum(s.y.variance / s.n for s in joint if s.n)
    new = sum(e.variance for e in adjusted.values())
    reduction = 1 - new / raw if raw > 0 else 0.0
    return adjusted, theta, reduction, notes


def _mean_interval(s: Stats, est: ArmEstimate, binary: bool, alpha: float) -> tuple[float, float]:
    if binary and isinstance(s, SampleStats):
        return wilson_interval(s.sum, s.n, alpha=alpha)
    if est.n < 2:
        return est.mean, est.mean
    q = stats.t.isf(alpha / 2, est.n - 1) if isinstance(s, SampleStats) else stats.norm.isf(alpha / 2)
    half = float(q * np.sqrt(est.variance))
    return est.mean - half, est.mean + half


def _primary(
    control: ArmEstimate,
    variant: ArmEstimate,
    config: AnalysisConfig,
    level: float,
    values: tuple[np.ndarray, np.ndarray] | None,
) -> Inference:
    if config.method == "sequential":
        return confidence_sequence(
            control,
            variant,
            relative=config.relative,
            alpha=config.alpha,
            tuning_n=config.tuning_n,
            interval_alpha=level,
        )
    if config.method == "bootstrap":
        assert values is not None
        return bootstrap_test(
            values[0],
            values[1],
            relative=config.relative,
            alpha=level,
            n_resamples=config.n_resamples,
            random_state=config.random_state,
        )
    return difference_test(control, variant, relative=config.relative, alpha=level)


def _binary_tests(control: SampleStats, variant: SampleStats, config: AnalysisConfig) -> dict[str, Inference]:
    tests = {
        "welch": difference_test(
            mean_estimate(control), mean_estimate(variant), relative=False, alpha=config.alpha
        ),
        "z_test": two_proportion_ztest(control, variant, alpha=config.alpha),
        "chi_square": chi_square_test(control, variant),
        "newcombe": newcombe_interval(control, variant, alpha=config.alpha),
    }
    if control.n + variant.n <= config.fisher_max_units:
        tests["fisher_exact"] = fisher_exact_test(control, variant)
    return tests


def analyze(
    data: MetricStats | Mapping[str, Stats],
    *,
    control: str | None = None,
    config: AnalysisConfig | None = None,
    expected_shares: Mapping[str, float] | None = None,
    values: Mapping[str, np.ndarray] | None = None,
    metric: str | None = None,
) -> ExperimentResult:
    """Analyse every variant against the control.

    Parameters
    ----------
    data : MetricStats or mapping of variant name to statistics
        Per-variant :class:`SampleStats` (means, conversions), :class:`RatioStats` (ratio metrics,
        delta method) or :class:`CovariateStats` (CUPED with a pre-period covariate).
    control : str, optional
        The control variant (default: one named "control", else the first name in sort order).
    config : AnalysisConfig, optional
    expected_shares : mapping, optional
        Configured share of units per variant for the SRM check (default equal).
    values : mapping of variant name to array, optional
        Unit-level metric values, needed only by ``method="bootstrap"``.
    metric : str, optional
        The metric's name for the report.

    Returns
    -------
    ExperimentResult

    Warns
    -----
    SampleRatioMismatchWarning
        When the SRM p-value is below ``config.srm_threshold``.
    """
    config = config or AnalysisConfig()
    if isinstance(data, MetricStats):
        stats_, binary, metric = dict(data.stats), data.binary, metric or data.metric
    else:
        stats_ = dict(data)
        binary = all(isinstance(s, SampleStats) and s.is_binary for s in stats_.values())
    if len(stats_) < 2:
        raise InvalidParameterError(
            f"An experiment needs at least 2 variants. Got {sorted(stats_)!r} instead."
        )
    names = sorted(stats_)
    if control is None:
        control = "control" if "control" in stats_ else names[0]
    if control not in stats_:
        raise InvalidParameterError(
            f"The control {control!r} is not among the variants {names}; pass --control NAME."
        )
    if config.method == "bootstrap":
        if values is None or any(n not in values for n in names):
            raise InvalidParameterError(
                "method='bootstrap' needs the unit-level values of every variant (values=...)."
            )
        if not all(isinstance(s, SampleStats) for s in stats_.values()):
            raise InvalidParameterError(
                "The bootstrap here compares plain means; use the delta method for ratios and CUPED."
            )
    kind = _kind(stats_)
    srm = srm_test({n: stats_[n].n for n in names}, expected_shares, threshold=config.srm_threshold)
    estimates, theta, reduction, notes = _estimates(stats_, kind)
    ctrl_est, ctrl_stats = estimates[control], stats_[control]
    others = [n for n in names if n != control]

    def arrays(name: str) -> tuple[np.ndarray, np.ndarray] | None:
        return (np.asarray(values[control]), np.asarray(values[name])) if values is not None else None

    primary: dict[str, Inference] = {}
    if config.method != "bayesian":
        primary = {n: _primary(ctrl_est, estimates[n], config, config.alpha, arrays(n)) for n in others}
        if kind == "ratio" and any(isinstance(s, JointStats) and s.sum_x == 0 for s in stats_.values()):
            primary = {
                n: Inference(
                    0.0,
                    0.0,
                    0.0,
                    0.0,
                    1.0,
                    0.0,
                    float("nan"),
                    "welch",
                    config.alpha,
                    msg.ZERO_DENOMINATOR,
                    msg.message(msg.ZERO_DENOMINATOR),
                )
                for n in others
            }
    valid = [n for n in others if n in primary and primary[n].error_code is None]
    adjusted = dict(
        zip(valid, adjust_p_values([primary[n].p_value for n in valid], config.correction), strict=True)
    )

    rows = [_control_row(control, ctrl_stats, ctrl_est, binary, config.alpha)]
    for name in others:
        s, est = stats_[name], estimates[name]
        bayes = (
            beta_binomial(ctrl_stats, s, prior=config.prior, relative=config.relative, alpha=config.alpha)
            if binary and isinstance(s, SampleStats) and isinstance(ctrl_stats, SampleStats)
            else normal_model(ctrl_est, est, relative=config.relative, alpha=config.alpha)
        )
        absolute = difference_test(ctrl_est, est, relative=False, alpha=config.alpha)
        tests = (
            _binary_tests(ctrl_stats, s, config)
            if binary
            and config.method == "frequentist"
            and isinstance(s, SampleStats)
            and isinstance(ctrl_stats, SampleStats)
            else {}
        )
        mean_lo, mean_hi = _mean_interval(s, est, binary, config.alpha)
        common: dict[str, Any] = {
            "name": name,
            "n": s.n,
            "mean": est.mean,
            "mean_ci_low": mean_lo,
            "mean_ci_high": mean_hi,
            "chance_to_beat_control": bayes.chance_to_beat_control,
            "expected_loss": bayes.expected_loss,
            "absolute_lift": absolute.estimate,
            "absolute_ci_low": absolute.ci_low,
            "absolute_ci_high": absolute.ci_high,
            "tests": tests,
            "bayesian": bayes,
        }
        if config.method == "bayesian":
            rows.append(
                VariantResult(
                    **common,
                    lift=bayes.lift,
                    ci_low=bayes.ci_low,
                    ci_high=bayes.ci_high,
                    ci_low_unadjusted=bayes.ci_low,
                    ci_high_unadjusted=bayes.ci_high,
                    error_code=bayes.error_code,
                    error_message=bayes.error_message,
                )
            )
            continue
        raw = primary[name]
        if raw.error_code is not None:
            rows.append(
                VariantResult(
                    **common,
                    lift=raw.estimate,
                    ci_low=raw.ci_low,
                    ci_high=raw.ci_high,
                    p_value=raw.p_value,
                    p_value_adjusted=1.0,
                    ci_low_unadjusted=raw.ci_low,
                    ci_high_unadjusted=raw.ci_high,
                    error_code=raw.error_code,
                    error_message=raw.error_message,
                )
            )
            continue
        p_adj = float(adjusted[name])
        level = interval_alpha(raw.p_value, p_adj, config.alpha, len(valid))
        shown = raw if level == config.alpha else _primary(ctrl_est, est, config, level, arrays(name))
        rows.append(
            VariantResult(
                **common,
                lift=raw.estimate,
                ci_low=shown.ci_low,
                ci_high=shown.ci_high,
                p_value=raw.p_value,
                p_value_adjusted=p_adj,
                ci_low_unadjusted=raw.ci_low,
                ci_high_unadjusted=raw.ci_high,
            )
        )
    return ExperimentResult(
        metric=metric or "metric",
        method=config.method,
        control=control,
        alpha=config.alpha,
        relative=config.relative,
        correction=config.correction if config.method != "bayesian" else "none",
        binary=binary,
        kind=kind,
        srm=srm,
        variants=tuple(rows),
        cuped_theta=theta,
        variance_reduction=reduction,
        notes=tuple(notes),
    )


def _control_row(name: str, s: Stats, est: ArmEstimate, binary: bool, alpha: float) -> VariantResult:
    low, high = _mean_interval(s, est, binary, alpha)
    return VariantResult(name=name, n=s.n, mean=est.mean, mean_ci_low=low, mean_ci_high=high, is_control=True)
