"""Predict which carts will be abandoned, in batch and live.

- Cart features, defined once (`FEATURES`), computed in batch from the store (`cart_features`)
  and incrementally one event at a time (`SessionState`), with identical values.
- Models with the scikit-learn API that take any table: `LightGBMModel`, `LogisticModel`
  (baseline), `BlendModel` (both, averaged in log-odds), `OnlineLogisticModel` (learns from
  each finished session), with isotonic or Platt calibration and class weights; the other
  families for comparison (`TreeModel`, `ForestModel`, `SVMModel`, `MLPModel`);
  `select_model` chooses the default by cross-validation on the training rows;
  `DriftMonitor` says when to retrain.
- A `leaderboard` of model families on one split: bootstrap intervals, a paired test of the
  best two, fit and predict times, optional seeded tuning.
- Evaluation (`binary_metrics`, `calibration_table`, `lift_table`, SHAP importances) and live
  scoring (`LiveScorer`).
"""

from cartlift.predict._batch import LABEL, cart_features
from cartlift.predict._blend import BlendModel
from cartlift.predict._calibration import IsotonicCalibrator, SigmoidCalibrator
from cartlift.predict._context import FeatureContext
from cartlift.predict._encode import LinearDesign, TableEncoder
from cartlift.predict._evaluate import (
    FAMILIES,
    MODELS,
    SAVED_KINDS,
    evaluate_model,
    load_model,
    make_model,
    split_rows,
)
from cartlift.predict._families import ForestModel, MLPModel, SVMModel, TreeModel
from cartlift.predict._leaderboard import SEARCH_SPACES, leaderboard, parse_models
from cartlift.predict._live import SessionState
from cartlift.predict._metrics import (
    binary_metrics,
    brier_score,
    calibration_table,
    expected_calibration_error,
    lift_table,
    log_loss,
    pr_auc,
    roc_auc,
)
from cartlift.predict._models import LightGBMModel, LogisticModel
from cartlift.predict._online import (
    DriftMonitor,
    DriftReport,
    OnlineLogisticModel,
    population_stability_index,
)
from cartlift.predict._pipeline import (
    evaluate_store,
    evaluate_table,
    read_cart_features,
    read_table,
    run_demo,
    score_session,
    store_truth,
    train_features,
    train_store,
    train_table,
)
from cartlift.predict._scoring import LiveScorer
from cartlift.predict._select import BLENDS, CANDIDATES, fit_named, select_model
from cartlift.predict._spec import (
    CATEGORICAL_FEATURES,
    FEATURE_NAMES,
    FEATURES,
    KEY_COLUMNS,
    MOMENTS,
    Feature,
)

__all__ = [
    "BLENDS",
    "CANDIDATES",
    "CATEGORICAL_FEATURES",
    "FAMILIES",
    "FEATURES",
    "FEATURE_NAMES",
    "KEY_COLUMNS",
    "LABEL",
    "MODELS",
    "MOMENTS",
    "SAVED_KINDS",
    "SEARCH_SPACES",
    "BlendModel",
    "DriftMonitor",
    "DriftReport",
    "Feature",
    "FeatureContext",
    "ForestModel",
    "IsotonicCalibrator",
    "LightGBMModel",
    "LinearDesign",
    "LiveScorer",
    "LogisticModel",
    "MLPModel",
    "OnlineLogisticModel",
    "SVMModel",
    "SessionState",
    "SigmoidCalibrator",
    "TableEncoder",
    "TreeModel",
    "binary_metrics",
    "brier_score",
    "calibration_table",
    "cart_features",
    "evaluate_model",
    "evaluate_store",
    "evaluate_table",
    "expected_calibration_error",
    "fit_named",
    "leaderboard",
    "lift_table",
    "load_model",
    "log_loss",
    "make_model",
    "parse_models",
    "population_stability_index",
    "pr_auc",
    "read_cart_features",
    "read_table",
    "roc_auc",
    "run_demo",
    "score_session",
    "select_model",
    "split_rows",
    "store_truth",
    "train_features",
    "train_store",
    "train_table",
]
