"""A/B and multivariate tests: assignment, exposure logging and the statistics to read them.

Assignment is a pure hash of (salt, unit id) (GrowthBook's FNV-1a scheme), so every process agrees;
analyses start from per-variant sufficient statistics computed in SQL and are pure functions:
SRM check, Welch / z / chi-square / Fisher tests, Wilson and Newcombe intervals, relative lift by the
delta method, ratio metrics, CUPED, bootstrap, Bayesian Beta-Binomial and normal models, always-valid
sequential tests, group-sequential alpha spending, a gamma/MOVER interval for rare large purchases, Holm and Benjamini-Hochberg corrections, power.
"""

from cartlift.experiments._analysis import analyze
from cartlift.experiments._bayesian import BayesianResult, beta_binomial, normal_model
from cartlift.experiments._bootstrap import bootstrap_test
from cartlift.experiments._design import Assignment, Experiment, assign, assign_units
from cartlift.experiments._frequentist import (
    Inference,
    chi_square_test,
    difference_test,
    fisher_exact_test,
    newcombe_interval,
    two_proportion_ztest,
    wilson_interval,
)
from cartlift.experiments._hashing import bucket_ranges, choose_variant, fnv1a32, hash_unit, hash_units
from cartlift.experiments._messages import MESSAGES, SampleRatioMismatchWarning
from cartlift.experiments._multiple import CORRECTIONS, adjust_p_values, interval_alpha
from cartlift.experiments._power import (
    PowerPlan,
    detectable,
    expected_duration,
    minimum_detectable_effect,
    plan,
    power,
    sample_size,
)
from cartlift.experiments._rare_events import rare_event_difference, weighted_poisson_interval
from cartlift.experiments._registry import (
    EXPERIMENT_TABLES,
    expose_event_users,
    list_experiments,
    load_experiment,
    log_exposures,
    save_experiment,
)
from cartlift.experiments._results import METHODS, AnalysisConfig, ExperimentResult, VariantResult
from cartlift.experiments._sequential import (
    SpendingBoundaries,
    confidence_sequence,
    group_sequential_test,
    spending_boundaries,
)
from cartlift.experiments._sql import (
    FUNNEL_STEPS,
    STORE_METRICS,
    MetricStats,
    funnel_from_store,
    stats_from_file,
    stats_from_store,
    sufficient_stats,
)
from cartlift.experiments._srm import SrmResult, srm_test
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
from cartlift.experiments._summary import format_value, verdicts
from cartlift.experiments._workflows import analyze_file, analyze_funnel, analyze_store, expose_file

__all__ = [
    "CORRECTIONS",
    "EXPERIMENT_TABLES",
    "FUNNEL_STEPS",
    "MESSAGES",
    "METHODS",
    "STORE_METRICS",
    "AnalysisConfig",
    "ArmEstimate",
    "Assignment",
    "BayesianResult",
    "CovariateStats",
    "Experiment",
    "ExperimentResult",
    "Inference",
    "JointStats",
    "MetricStats",
    "PowerPlan",
    "RatioStats",
    "SampleRatioMismatchWarning",
    "SampleStats",
    "SpendingBoundaries",
    "SrmResult",
    "VariantResult",
    "adjust_p_values",
    "analyze",
    "analyze_file",
    "analyze_funnel",
    "analyze_store",
    "assign",
    "assign_units",
    "beta_binomial",
    "bootstrap_test",
    "bucket_ranges",
    "chi_square_test",
    "choose_variant",
    "confidence_sequence",
    "cuped_estimate",
    "cuped_theta",
    "detectable",
    "difference_test",
    "expected_duration",
    "expose_event_users",
    "expose_file",
    "fisher_exact_test",
    "fnv1a32",
    "format_value",
    "funnel_from_store",
    "group_sequential_test",
    "hash_unit",
    "hash_units",
    "interval_alpha",
    "list_experiments",
    "load_experiment",
    "log_exposures",
    "mean_estimate",
    "minimum_detectable_effect",
    "newcombe_interval",
    "normal_model",
    "plan",
    "power",
    "rare_event_difference",
    "ratio_estimate",
    "sample_size",
    "save_experiment",
    "spending_boundaries",
    "srm_test",
    "stats_from_file",
    "stats_from_store",
    "sufficient_stats",
    "two_proportion_ztest",
    "verdicts",
    "weighted_poisson_interval",
    "wilson_interval",
]
