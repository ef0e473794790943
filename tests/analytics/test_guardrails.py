"""Guardrails on customer analytics and the abandonment model: what the data can support."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from cartlift.analytics import clv_from_summary, rfm, summary_from_store
from cartlift.cli import app
from cartlift.guardrails import degenerate_bgnbd
from cartlift.predict import train_store
from cartlift.serve import ModelRegistry, train_all
from cartlift.store import EventStore

START = datetime(2025, 3, 1, 9, 0)


def purchases(span: timedelta, customers: int = 60, seed: int = 0) -> list[dict[str, object]]:
    """Orders of ``customers`` known buyers spread over ``span``, plus anonymous one-order buyers."""
    rng = np.random.default_rng(seed)
    rows: list[dict[str, object]] = []
    for c in range(customers):
        for o in range(int(rng.integers(1, 5))):
            ts = START + span * float(rng.random())
            rows.append(_order(f"c{c}", f"o{c}-{o}", ts, float(rng.uniform(10, 90))))
    for i in range(customers // 3):  # what the UCI importer makes of an order without a customer
        rows.append(_order(f"anonymous:INV{i}", f"INV{i}", START + span * float(rng.random()), 20.0))
    return rows


def _order(user: str, order: str, ts: datetime, price: float) -> dict[str, object]:
    return {
        "event_id": f"{order}",
        "ts": ts.isoformat(),
        "user_id": user,
        "session_id": order,
        "event_type": "purchase",
        "product_id": "p1",
        "quantity": 1,
        "price": round(price, 2),
        "order_id": order,
    }


@pytest.fixture
def short_store(tmp_path: Path) -> Path:
    """2 h 50 min of history, as in the store the issue was found on."""
    db = tmp_path / "short.duckdb"
    with EventStore(db) as store:
        store.ingest_records(purchases(timedelta(hours=2, minutes=50)))
    return db


@pytest.fixture
def long_store(tmp_path: Path) -> Path:
    db = tmp_path / "long.duckdb"
    with EventStore(db) as store:
        store.ingest_records(purchases(timedelta(days=400), customers=300))
    return db


def test_anonymous_buyers_are_not_customers_unless_asked(long_store: Path) -> None:
    with EventStore(long_store, read_only=True) as store:
        known = rfm(store).customers["customer"]
        everyone = rfm(store, include_anonymous=True).customers["customer"]
        summary = summary_from_store(store)
        summary_all = summary_from_store(store, include_anonymous=True)
    assert not known.str.startswith("anonymous:").any() and len(known) == 300
    assert everyone.str.startswith("anonymous:").sum() == 100
    assert len(summary) == 300 and len(summary_all) == 400


def test_rfm_on_a_short_history_warns(short_store: Path, long_store: Path) -> None:
    with EventStore(short_store, read_only=True) as store:
        short = rfm(store)
    assert [w.code for w in short.warnings] == ["short_history"]
    assert "2 h 4" in short.warnings[0].message or "2 h 5" in short.warnings[0].message
    with EventStore(long_store, read_only=True) as store:
        assert rfm(store).warnings == ()


def test_a_degenerate_bgnbd_fit_is_flagged_and_a_proper_one_is_not(shared_data: Path) -> None:
    # the fit the issue saw on a short store: a about 1e-7, everyone surely alive
    flagged = degenerate_bgnbd({"a": 1.2e-7, "b": 0.8}, np.full(50, 0.9999))
    assert flagged is not None and flagged.code == "degenerate_fit" and "a = 1.2e-07" in flagged.message
    assert degenerate_bgnbd({"a": 0.79, "b": 2.43}, np.array([0.2, 0.9])) is None
    # the CDNOW cohort (39 weeks, the published BG/NBD example: a 0.79, b 2.43) is a proper fit
    cdnow = pd.read_csv(shared_data / "cdnow_lifetimes" / "cdnow_customers_summary.csv")
    assert clv_from_summary(cdnow, time_unit="weeks").warnings == ()
    # the same numbers read as days are 39 days of history: too short for CLV, and said so
    short = clv_from_summary(cdnow, time_unit="days")
    assert [w.code for w in short.warnings] == ["short_history"]
    assert short.to_dict()["warnings"][0]["code"] == "short_history"


def test_the_cli_prints_the_warnings_and_keeps_them_in_json(short_store: Path, shared_data: Path) -> None:
    r = CliRunner().invoke(app, ["segments", "--db", str(short_store), "--json"])
    assert r.exit_code == 0, r.output
    assert "warning (short_history)" in r.stderr
    assert json.loads(r.stdout)["rfm"]["warnings"][0]["code"] == "short_history"
    summary = shared_data / "cdnow_lifetimes" / "cdnow_customers_summary.csv"
    r = CliRunner().invoke(app, ["clv", "--summary", str(summary), "--time-unit", "days", "--json"])
    assert r.exit_code == 0, r.output
    assert "warning (short_history)" in r.stderr and json.loads(r.stdout)["warnings"]


def test_a_constant_abandonment_model_is_refused(tmp_path: Path) -> None:
    """Carts that differ only in their outcome: nothing to learn, so no model is saved."""
    rows = []
    for s in range(120):
        t = START + timedelta(days=s)
        for k, kind in enumerate(["view", "cart_add"] + (["checkout", "purchase"] if s % 2 else [])):
            rows.append(
                {
                    "event_id": f"s{s}-{k}",
                    "ts": (t + timedelta(seconds=k)).isoformat(),
                    "user_id": f"u{s}",
                    "session_id": f"s{s}",
                    "event_type": kind,
                    "product_id": None if kind == "checkout" else "p1",
                    "quantity": 1,
                    "price": None if kind == "checkout" else 10.0,
                }
            )
    with EventStore(tmp_path / "flat.duckdb") as store:
        store.ingest_records(rows)
        info = train_store(store, tmp_path / "model", model="lightgbm")
        assert [w["code"] for w in info["warnings"]] == ["constant_model"]
        published = train_all(
            store, ModelRegistry(tmp_path / "registry"), recommender="itemknn", abandonment_model="lightgbm"
        )
    assert "same score" in published["abandonment"]["error"]
    assert ModelRegistry(tmp_path / "registry").latest("abandonment") is None


def test_the_report_shows_the_warnings_above_the_numbers(short_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    r = CliRunner().invoke(app, ["report", "--db", str(short_store), "--out", str(out)])
    assert r.exit_code == 0, r.output
    html = out.read_text()
    rfm_part = html[html.index('id="rfm-segments"') :]
    assert rfm_part.index("Warning:") < rfm_part.index("<table")
    assert "of history; RFM" in rfm_part


def test_the_dashboard_names_models_not_served_and_too_little_training() -> None:
    from cartlift.serve._ops import model_guardrails

    versions = {"abandonment": {"version": "v0001", "quality": {"rows": 118, "positive_rate": 0.48}}}
    errors = {"recommender": "v0002: trained on the store '/a.duckdb', not on this one"}
    codes = {w.code: w.message for w in model_guardrails(versions, errors)}
    assert "trained on the store" in codes["model_not_served"]
    assert "Only 118 carts" in codes["too_few"]
    assert model_guardrails({"abandonment": {"quality": {"rows": 5000}}}, {}) == []
