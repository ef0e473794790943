"""On a simulated store the truth is known: the model is measured against the simulator's own probabilities."""

from __future__ import annotations

from pathlib import Path

import pytest

from cartlift.predict import evaluate_store, store_truth
from cartlift.store import EventStore


def test_truth_is_found_and_matched_to_every_held_out_cart(sim_store: EventStore) -> None:
    truth = store_truth(sim_store)
    assert truth is not None and truth["p_purchase"].between(0, 1).all()
    result = evaluate_store(sim_store, n_jobs=1, baseline=False)
    assert result["truth"]["n"] == result["n_test"]
    # the true probabilities are the yardstick: no model of the observable features beats them by much
    assert result["truth"]["roc_auc_true"] > 0.8


def test_a_store_without_truth_has_none(rees_store: EventStore) -> None:
    assert store_truth(rees_store) is None
    assert "truth" not in evaluate_store(rees_store, n_jobs=1, baseline=False)


@pytest.mark.slow
def test_lightgbm_reaches_95_percent_of_the_true_auc_and_is_calibrated(tmp_path: Path) -> None:
    """The issue's bar, on a store large enough for ECE to be measured to +-0.01.

    100,000 customers over 30 days give ~41,600 carts; the last 20 % by time (~8,300 carts) are
    held out. With n held-out carts the ECE of perfectly calibrated probabilities is already
    about 1 / sqrt(n) (0.009 for the simulator's own), so smaller stores cannot show 0.02.
    """
    from cartlift.simulate import simulate

    with EventStore(tmp_path / "sim.duckdb") as store:
        simulate(n_users=100_000, n_days=30, random_state=0).write_to(store)
        result = evaluate_store(store, n_jobs=2, baseline=False)
    truth = result["truth"]
    print(
        f"held out {result['n_test']} carts: ROC-AUC {truth['roc_auc_model']:.4f} vs true "
        f"{truth['roc_auc_true']:.4f} (ratio {truth['auc_ratio']:.4f}); ECE {result['ece']:.4f}"
    )
    assert truth["n"] == result["n_test"] > 7000
    assert truth["auc_ratio"] >= 0.95
    assert result["ece"] <= 0.02


def test_report_sections(sim_store: EventStore, tmp_path: Path) -> None:
    from cartlift.report import prediction_sections as report_sections
    from cartlift.report import write_report

    (section,) = report_sections(sim_store)
    assert section.title == "Abandonment prediction" and len(section.figures) == 3
    assert "true probabilities" in section.tables[0].frame["model"].iloc[-1]
    assert write_report([section], tmp_path / "r.html").stat().st_size > 10_000
    with EventStore(tmp_path / "empty.duckdb") as empty_store:
        (empty,) = report_sections(empty_store)
    assert "No model could be evaluated" in empty.notes[0]
