"""The model leaderboard and the default model: every family on one split, chosen without the test rows."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from cartlift.cli import app
from cartlift.predict import (
    FAMILIES,
    BlendModel,
    leaderboard,
    load_model,
    make_model,
    parse_models,
    select_model,
    split_rows,
)
from cartlift.simulate._shoppers import shopper_sessions

runner = CliRunner()


def _xy(n: int, seed: int, **kw: float) -> tuple[pd.DataFrame, np.ndarray]:
    frame = shopper_sessions(n, random_state=seed, **kw)
    return frame.drop(columns="Revenue"), frame["Revenue"].to_numpy(dtype=float)


def _plain_lightgbm(X: pd.DataFrame, y: np.ndarray, train: np.ndarray, test: np.ndarray) -> float:
    """The bar of the issue: LGBMClassifier, 300 trees, learning rate 0.03, 15 leaves, text as categoricals."""
    X = X.copy()
    for col in ("Month", "VisitorType"):
        X[col] = X[col].astype("category")
    model = lgb.LGBMClassifier(n_estimators=300, learning_rate=0.03, num_leaves=15, verbose=-1)
    model.fit(X.iloc[train], y[train])
    return float(roc_auc_score(y[test], model.predict_proba(X.iloc[test])[:, 1]))


@pytest.fixture(scope="module")
def shoppers() -> tuple[pd.DataFrame, np.ndarray]:
    return _xy(3000, 11)


@pytest.mark.parametrize("name", FAMILIES)
def test_every_family_ranks_sessions_well_above_chance(
    shoppers: tuple[pd.DataFrame, np.ndarray], name: str
) -> None:
    X, y = shoppers
    train, test = split_rows(len(X), seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = make_model(name, random_state=0).fit(X.iloc[train], y[train]).predict_proba(X.iloc[test])
    assert p.shape == (test.size, 2)
    assert np.allclose(p.sum(axis=1), 1.0) and ((p >= 0) & (p <= 1)).all()
    assert roc_auc_score(y[test], p[:, 1]) > 0.8


def test_leaderboard_matches_sklearn_and_its_intervals_hold_the_estimates(
    shoppers: tuple[pd.DataFrame, np.ndarray],
) -> None:
    X, y = shoppers
    train, test = split_rows(len(X), seed=0)
    board = leaderboard(X, y, train, test, models=["logistic", "tree", "lightgbm"], n_boot=300)
    rows = board["rows"]
    assert [r["roc_auc"] for r in rows] == sorted((r["roc_auc"] for r in rows), reverse=True)
    for row in rows:
        refit = make_model(row["model"], random_state=0).fit(X.iloc[train], y[train])
        assert row["roc_auc"] == pytest.approx(
            roc_auc_score(y[test], refit.predict_proba(X.iloc[test])[:, 1])
        )
        for key, (lo, hi) in row["intervals"].items():
            assert lo <= row[key] <= hi, key
        assert row["fit_seconds"] > 0 and row["predict_seconds"] > 0
    paired = board["paired_test"]
    assert (paired["best"], paired["second"]) == (rows[0]["model"], rows[1]["model"])
    assert paired["roc_auc_difference"] == pytest.approx(rows[0]["roc_auc"] - rows[1]["roc_auc"])
    assert 0 < paired["p_value"] <= 1
    # a tree against a logistic model on 600 rows: the interval must not exclude what it estimates
    assert paired["interval"][0] <= paired["roc_auc_difference"] <= paired["interval"][1]


def test_paired_test_finds_a_real_difference_and_not_a_null_one() -> None:
    X, y = _xy(4000, 5)
    X_noise = pd.DataFrame(np.random.default_rng(0).normal(size=(len(X), 3)), columns=["a", "b", "c"])
    train, test = split_rows(len(X), seed=0)
    strong = leaderboard(X, y, train, test, models=["lightgbm", "tree"], n_boot=400)["paired_test"]
    assert strong["interval"][0] > 0 and strong["p_value"] < 0.05
    # features of pure noise: both models are at chance and their difference is not significant
    null = leaderboard(X_noise, y, train, test, models=["logistic", "tree"], n_boot=400)["paired_test"]
    assert null["interval"][0] < 0 < null["interval"][1] and null["p_value"] > 0.05


def test_the_choice_never_sees_the_test_rows(shoppers: tuple[pd.DataFrame, np.ndarray]) -> None:
    X, y = shoppers
    train, _ = split_rows(len(X), seed=0)
    first, sel = select_model(X.iloc[train], y[train], folds=3, seed=0)
    # the same training rows with the test part removed entirely: the same choice, the same model
    again, sel2 = select_model(X.iloc[train].reset_index(drop=True), y[train], folds=3, seed=0)
    assert sel["chosen"] == sel2["chosen"]
    assert np.allclose(first.predict_proba(X)[:, 1], again.predict_proba(X)[:, 1])
    best = max(sel["candidates"], key=lambda c: c["cv_roc_auc"])
    assert sel["chosen"] == best["name"]
    assert first.calibrator_ is not None and first.n_calibration_ == train.size


@pytest.mark.slow
@pytest.mark.parametrize(("seed", "separation", "noise"), [(21, 1.0, 1.0), (22, 0.7, 1.3), (23, 1.3, 0.8)])
def test_default_model_is_at_least_a_plain_lightgbm(seed: int, separation: float, noise: float) -> None:
    """Full-size public-shaped tables (12,330 sessions) the defaults were never tuned on."""
    X, y = _xy(12_330, seed, separation=separation, noise=noise)
    train, test = split_rows(len(X), seed=0)
    model, _ = select_model(X.iloc[train], y[train], seed=0)
    auc = roc_auc_score(y[test], model.predict_proba(X.iloc[test])[:, 1])
    assert auc >= _plain_lightgbm(X, y, train, test)


def test_blend_saves_and_explains_itself(shoppers: tuple[pd.DataFrame, np.ndarray], tmp_path: Path) -> None:
    X, y = shoppers
    model = BlendModel(random_state=0, lightgbm_weight=0.6).fit(X, y)
    contrib = model.contributions(X.head(50))
    assert np.allclose(contrib.sum(axis=1), model.decision_function(X.head(50)))
    loaded, meta = load_model(model.save(tmp_path / "m", {"note": "x"}))
    assert meta == {"note": "x"}
    assert np.allclose(loaded.predict_proba(X)[:, 1], model.predict_proba(X)[:, 1])


@pytest.mark.parametrize(
    ("text", "message"),
    [("lightgbm,bogus", "bogus"), ("", "none given"), (" , ", "none given")],
)
def test_unknown_models_are_refused(text: str, message: str) -> None:
    with pytest.raises(Exception, match=message):
        parse_models(text)


def _table(tmp_path: Path, n: int = 1500) -> Path:
    path = tmp_path / "sessions.csv"
    shopper_sessions(n, random_state=4).to_csv(path, index=False)
    return path


def test_cli_leaderboard_json_extends_the_evaluation(tmp_path: Path) -> None:
    path = _table(tmp_path)
    result = runner.invoke(
        app,
        [
            "abandonment",
            "evaluate",
            "--table",
            str(path),
            "--label",
            "Revenue",
            "--models",
            "logistic,tree,mlp",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    for key in ("roc_auc", "pr_auc", "log_loss", "brier", "ece"):
        assert isinstance(data[key], float)
    assert data["model"] == "auto" and data["selection"]["chosen"]
    assert {r["model"] for r in data["leaderboard"]["rows"]} == {"logistic", "tree", "mlp"}
    assert data["leaderboard"]["paired_test"]["method"].startswith("paired bootstrap")


def test_cli_tune_states_its_budget(tmp_path: Path) -> None:
    path = _table(tmp_path, 1500)
    result = runner.invoke(
        app,
        [
            "abandonment",
            "evaluate",
            "--table",
            str(path),
            "--label",
            "Revenue",
            "--model",
            "logistic",
            "--models",
            "tree",
            "--tune",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.stderr
    tuning = json.loads(result.stdout)["leaderboard"]["rows"][0]["tuning"]
    assert tuning["candidates"] == 12 and tuning["fits"] >= 12 * 3
    assert tuning["method"].endswith("on the training rows") and 0.5 < tuning["cv_roc_auc"] <= 1
    assert set(tuning["best_params"]) == {"max_depth", "min_samples_leaf"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tune"], "--models"),
        (["--models", "lightgbm,xgboost"], "xgboost"),
    ],
)
def test_cli_leaderboard_misuse_exits_2(tmp_path: Path, args: list[str], message: str) -> None:
    path = _table(tmp_path, 300)
    result = runner.invoke(
        app, ["abandonment", "evaluate", "--table", str(path), "--label", "Revenue", *args]
    )
    assert result.exit_code == 2
    assert message in " ".join(result.stderr.split())


def test_comparison_families_are_not_saved(tmp_path: Path) -> None:
    path = _table(tmp_path, 300)
    result = runner.invoke(
        app,
        [
            "abandonment",
            "train",
            "--table",
            str(path),
            "--label",
            "Revenue",
            "--model",
            "svm",
            "--model-dir",
            str(tmp_path / "m"),
        ],
    )
    assert result.exit_code == 2
    assert "not saved" in " ".join(result.stderr.split())
    assert not (tmp_path / "m").exists()
