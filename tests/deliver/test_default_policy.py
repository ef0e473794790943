"""A policy from day one: the randomised default decides with exact propensities, then hands over."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from cartlift.act import (
    CONTEXT_FEATURES,
    DEFAULT_WEIGHTS,
    ActionCatalog,
    DefaultPolicy,
    Ledger,
    Rules,
    cart_contexts,
    decide_cart,
    handover_status,
    log_decisions,
)
from cartlift.store import EventStore

CLI = Path(sys.executable).with_name("cartlift")


def contexts(n: int, *, sms: bool = True) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "cart_id": [f"c{i}" for i in range(n)],
            "user_id": [f"u{i}" for i in range(n)],
            "ts": pd.date_range("2026-01-05 12:00", periods=n, freq="min"),
            "cart_value": 50.0,
            "margin": 20.0,
            "email_consent": True,
            "sms_consent": sms,
        }
    )


def test_actions_are_drawn_with_the_weights_and_the_logged_propensity_is_exact() -> None:
    n = 20_000
    rules = Rules(quiet_hours=None)
    got = DefaultPolicy(rules=rules, random_state=0).decide(contexts(n), Ledger(rules=rules))
    names = ActionCatalog().names
    w = np.array([DEFAULT_WEIGHTS[a] for a in names])
    expected = w / w.sum()
    counts = got["action"].value_counts().reindex(names, fill_value=0).to_numpy()
    assert stats.chisquare(counts, expected * n).pvalue > 0.001
    assert np.allclose(got["propensity"], got["action"].map(dict(zip(names, expected, strict=True))))
    assert (got["policy"] == "default").all()


def test_without_sms_consent_the_propensities_renormalise_over_the_allowed_actions() -> None:
    rules = Rules(quiet_hours=None)
    got = DefaultPolicy(rules=rules, random_state=1).decide(contexts(5_000, sms=False), Ledger(rules=rules))
    assert "reminder_sms_1h" not in set(got["action"])
    allowed = {a: w for a, w in DEFAULT_WEIGHTS.items() if a != "reminder_sms_1h"}
    total = sum(allowed.values())
    assert np.allclose(got["propensity"], got["action"].map({a: w / total for a, w in allowed.items()}))


def simulate(path: Path, users: int, days: int) -> Path:
    subprocess.run([CLI, "simulate", "--users", str(users), "--days", str(days), "--db", str(path), "--json"],
                   check=True, capture_output=True)  # fmt: skip
    return path


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return simulate(tmp_path_factory.mktemp("sim") / "s.duckdb", 800, 7)


def test_a_fresh_store_decides_with_the_default_and_says_so(simulated: Path, tmp_path: Path) -> None:
    db = tmp_path / "fresh.duckdb"
    db.write_bytes(simulated.read_bytes())
    with EventStore(db) as store:
        cart = str(cart_contexts(store).iloc[-1]["cart_id"])
    run = subprocess.run(
        [CLI, "act", "decide", "--cart", cart, "--db", str(db), "--json"], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    doc = json.loads(run.stdout)
    assert doc["policy"] == "default" and doc["logged"] and 0 < doc["propensity"] <= 1
    assert set(doc["options"]) == set(ActionCatalog().names)
    status = json.loads(subprocess.run([CLI, "act", "status", "--db", str(db), "--json"], capture_output=True,
                                       text=True, check=True).stdout)  # fmt: skip
    assert status["policy"] == "default" and not status["ready"]


@pytest.mark.slow
def test_the_profit_policy_takes_over_once_enough_outcomes_matured(tmp_path: Path) -> None:
    db = simulate(tmp_path / "grown.duckdb", 8000, 28)
    with EventStore(db) as store:
        ctx = cart_contexts(store)
        ctx = ctx[pd.to_datetime(ctx["ts"]) < pd.to_datetime(ctx["ts"]).max() - pd.Timedelta(days=8)]
        rules = Rules(quiet_hours=None, max_messages_per_week=None)
        logged = DefaultPolicy(rules=rules, random_state=0).decide(ctx, Ledger(rules=rules))
        log_decisions(store, logged, context=ctx[[c for c in CONTEXT_FEATURES if c in ctx.columns]])
        status = handover_status(store)
        assert status["matured_decisions"] >= 1000 and status["ready"], status
        latest = str(cart_contexts(store).iloc[-1]["cart_id"])
        decision = decide_cart(store, latest, log=False)
    assert decision["policy"] == "profit"
    assert all(o["p_buy"] is not None for o in decision["options"].values())
