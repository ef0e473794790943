"""`act uplift` on a randomised e-mail test with post-treatment columns: they are named and dropped."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from cartlift.act import uplift_from_table
from cartlift.cli import app


def email_test(n: int = 9000, seed: int = 7) -> pd.DataFrame:
    """Three randomised arms; ``visit`` and ``spend`` are recorded after the e-mail.

    Known truth: e-mail A lifts conversion by 12 points for recent customers (recency < 5) and
    not at all for the others; e-mail B by 6 points in the north. ``visit`` rises with the
    e-mail and with buying; ``spend`` is positive exactly when the customer converted.
    """
    rng = np.random.default_rng(seed)
    arm = rng.choice(["control", "email_a", "email_b"], n)
    recency = rng.exponential(6.0, n)
    region = rng.choice(["north", "south", "east"], n)
    history = rng.gamma(2.0, 50.0, n)
    base = 0.04 + 0.03 * (recency < 5)
    lift = np.where(arm == "email_a", 0.12 * (recency < 5), 0.0) + np.where(
        arm == "email_b", 0.06 * (region == "north"), 0.0
    )
    conversion = (rng.random(n) < base + lift).astype(int)
    visit = (rng.random(n) < 0.15 + 0.35 * (arm != "control") + 0.4 * conversion).astype(int)
    spend = np.round(conversion * rng.lognormal(4.0, 0.5, n), 2)
    return pd.DataFrame(
        {
            "arm": arm,
            "recency": recency,
            "region": region,
            "history": history,
            "visit": visit,
            "spend": spend,
            "conversion": conversion,
        }
    )


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("uplift") / "email.csv"
    email_test().to_csv(path, index=False)
    return path


def test_post_treatment_and_label_columns_are_named_and_dropped(table: Path) -> None:
    result = uplift_from_table(
        table, treatment="arm", control="control", outcome="conversion", learner="t_learner", n_estimators=60
    )
    codes = {w["code"]: set(w["columns"]) for w in result["warnings"]}
    assert "visit" in codes["post_treatment"] and "spend" in codes["label_leak"]
    assert set(result["dropped"]) == {"visit", "spend"}
    assert set(result["features"]) == {"recency", "region", "history"}
    # the pre-treatment features are balanced by the randomisation: none is flagged
    assert not ({"recency", "region", "history"} & {c for cols in codes.values() for c in cols})
    # now the model sees the effect: e-mail A's targeting beats random
    assert result["treatments"]["email_a"]["qini"] > 0.1


def test_drop_a_column_and_the_cli_prints_the_warnings(table: Path) -> None:
    r = CliRunner().invoke(
        app,
        [
            "act",
            "uplift",
            "--table",
            str(table),
            "--treatment",
            "arm",
            "--control",
            "control",
            "--outcome",
            "conversion",
            "--drop",
            "history",
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    result = json.loads(r.stdout)
    assert "history" in result["dropped"] and "history" not in result["features"]
    assert "warning (post_treatment)" in r.stderr and "visit" in r.stderr
    assert "warning (label_leak)" in r.stderr and "spend" in r.stderr


def test_dropping_an_unknown_column_is_one_clear_error(table: Path) -> None:
    r = CliRunner().invoke(
        app,
        [
            "act",
            "uplift",
            "--table",
            str(table),
            "--treatment",
            "arm",
            "--control",
            "control",
            "--outcome",
            "conversion",
            "--drop",
            "nope",
        ],
    )
    assert r.exit_code == 2 and "Cannot drop nope" in r.stderr
