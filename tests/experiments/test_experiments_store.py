"""Experiments in a real DuckDB store: definitions, re-weighting refusal, exposures, SQL statistics."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from cartlift.errors import DataError, InvalidParameterError, StoreError
from cartlift.experiments import (
    AnalysisConfig,
    CovariateStats,
    Experiment,
    SampleRatioMismatchWarning,
    SampleStats,
    analyze,
    analyze_funnel,
    analyze_store,
    assign_units,
    expose_event_users,
    funnel_from_store,
    list_experiments,
    load_experiment,
    log_exposures,
    save_experiment,
    stats_from_store,
)
from cartlift.store import EventStore

DAY0 = datetime(2026, 3, 1)


def _events(users: int = 600, seed: int = 0) -> pd.DataFrame:
    """Pre-period events on day 1, post-period sessions on day 10 (exposures are logged on day 5)."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(users):
        for day, tag in ((1, "pre"), (10, "post")):
            for s in range(rng.integers(1, 3)):
                session = f"{tag}-{u}-{s}"
                ts = DAY0 + timedelta(days=day, minutes=int(rng.integers(0, 600)))
                steps = ["view"]
                if rng.random() < 0.5:
                    steps.append("cart_add")
                    if rng.random() < 0.6:
                        steps.append("checkout")
                        if rng.random() < 0.7:
                            steps.append("purchase")
                for k, step in enumerate(steps):
                    rows.append(
                        {
                            "event_id": f"{session}-{k}",
                            "ts": (ts + timedelta(seconds=k)).isoformat(),
                            "user_id": f"u{u}",
                            "session_id": session,
                            "event_type": step,
                            "product_id": "p1",
                            "quantity": "1",
                            "price": f"{float(rng.integers(5, 50)):.2f}",
                            "order_id": f"o-{session}" if step == "purchase" else None,
                            "device": "ios" if u % 3 == 0 else "web",
                        }
                    )
    return pd.DataFrame(rows)


@pytest.fixture
def filled(store: EventStore) -> tuple[EventStore, pd.DataFrame]:
    frame = _events()
    result = store.ingest_records(frame.to_dict("records"))
    assert result.quarantined == 0
    return store, frame


def test_save_load_and_refuse_reweighting(store: EventStore) -> None:
    exp = Experiment("banner", variants=("control", "big"), salt="b1")
    assert save_experiment(store, exp) == 1
    assert load_experiment(store, "banner") == exp
    assert (
        save_experiment(store, Experiment("banner", variants=("control", "big"), salt="b1", coverage=0.5))
        == 1
    )
    with pytest.raises(InvalidParameterError, match=r"changing weights.*biases the results.*new salt"):
        save_experiment(
            store, Experiment("banner", variants=("control", "big"), weights=(0.2, 0.8), salt="b1")
        )
    assert (
        save_experiment(
            store, Experiment("banner", variants=("control", "big"), weights=(0.2, 0.8), salt="b2")
        )
        == 2
    )
    with pytest.raises(InvalidParameterError, match="already used by an earlier phase"):
        save_experiment(store, Experiment("banner", variants=("control", "big"), salt="b1"))
    listed = list_experiments(store)
    assert listed.loc[0, "phase"] == 2 and listed.loc[0, "salt"] == "b2"
    with pytest.raises(DataError, match="No experiment named 'nope'"):
        load_experiment(store, "nope")


def test_read_only_store_refuses_changes(tmp_path: object, store: EventStore) -> None:
    path = store.path
    store.close()
    with EventStore(path, read_only=True) as ro, pytest.raises(StoreError, match="read-only"):
        save_experiment(ro, Experiment("x"))


def test_exposures_are_idempotent_and_keep_first_exposure(filled: tuple[EventStore, pd.DataFrame]) -> None:
    store, _ = filled
    save_experiment(store, Experiment("exp", salt="s", holdout=0.1))
    ids = [f"u{i}" for i in range(600)]
    first = log_exposures(store, "exp", ids, at=DAY0 + timedelta(days=5))
    again = log_exposures(store, "exp", ids, at=DAY0 + timedelta(days=6))
    assert first["assigned"] + first["holdout"] == 600 and first["new"] == 600
    assert again["new"] == 0
    times = store.query("SELECT min(first_exposed_at) AS lo, max(last_exposed_at) AS hi FROM exposures")
    assert times.loc[0, "lo"] == pd.Timestamp(DAY0 + timedelta(days=5))
    assert times.loc[0, "hi"] == pd.Timestamp(DAY0 + timedelta(days=6))
    stored = store.query("SELECT unit_id, variant FROM exposures WHERE status = 'assigned' ORDER BY unit_id")
    expected = assign_units(load_experiment(store, "exp"), stored["unit_id"])
    assert stored["variant"].tolist() == expected["variant"].tolist()


def _reference(frame: pd.DataFrame, exposed: pd.DataFrame) -> pd.DataFrame:
    """Per exposed user, computed in pandas from the raw events (independent of the SQL)."""
    ev = frame.assign(
        ts=pd.to_datetime(frame["ts"]), value=frame["price"].astype(float) * frame["quantity"].astype(int)
    )
    ev = ev.merge(exposed, left_on="user_id", right_on="unit_id")
    post, pre = ev[ev["ts"] >= ev["t0"]], ev[ev["ts"] < ev["t0"]]

    def per_user(part: pd.DataFrame) -> pd.DataFrame:
        buys = part[part["event_type"] == "purchase"]
        return pd.DataFrame(
            {
                "purchased": buys.groupby("unit_id").size().gt(0),
                "revenue": buys.groupby("unit_id")["value"].sum(),
                "sessions": part.groupby("unit_id")["session_id"].nunique(),
                "carted": part[part["event_type"] == "cart_add"].groupby("unit_id").size().gt(0),
            }
        )

    out = exposed.set_index("unit_id")[["variant"]]
    out = out.join(per_user(post)).join(per_user(pre).add_prefix("pre_"))
    return out.fillna({c: 0 for c in out.columns if c != "variant"}).astype(
        {"purchased": float, "pre_revenue": float}
    )


def test_store_statistics_equal_pandas_reference(filled: tuple[EventStore, pd.DataFrame]) -> None:
    store, frame = filled
    save_experiment(store, Experiment("exp", variants=("control", "b", "c"), salt="s"))
    log_exposures(store, "exp", [f"u{i}" for i in range(0, 600, 2)], at=DAY0 + timedelta(days=5))
    exposed = store.query("SELECT unit_id, variant, first_exposed_at AS t0 FROM exposures")
    ref = _reference(frame, exposed)
    for metric in ("purchased", "revenue", "carted"):
        got = stats_from_store(store, "exp", metric)
        for name, group in ref.groupby("variant"):
            want, have = SampleStats.from_values(group[metric].astype(float)), got.stats[name]
            assert isinstance(have, SampleStats)
            assert (have.n, have.sum, have.sum_squares) == (
                want.n,
                pytest.approx(want.sum),
                pytest.approx(want.sum_squares),
            )
        assert got.binary == (metric != "revenue")
    ratio = stats_from_store(store, "exp", "revenue_per_session")
    for name, group in ref.groupby("variant"):
        assert ratio.stats[name].sum_x == pytest.approx(group["sessions"].sum())  # type: ignore[union-attr]
    cuped = analyze_store(store, "exp", "revenue", covariate="pre")
    by_hand = analyze(
        {
            name: CovariateStats.from_values(g["revenue"], g["pre_revenue"])
            for name, g in ref.groupby("variant")
        }
    )
    assert cuped.kind == "cuped"
    assert [v.p_value for v in cuped.variants[1:]] == pytest.approx(
        [v.p_value for v in by_hand.variants[1:]], rel=1e-9
    )


def test_funnel_steps_use_every_exposed_unit(filled: tuple[EventStore, pd.DataFrame]) -> None:
    store, _ = filled
    save_experiment(store, Experiment("f", salt="s"))
    log_exposures(store, "f", [f"u{i}" for i in range(600)], at=DAY0 + timedelta(days=5))
    steps = funnel_from_store(store, "f")
    assert list(steps) == ["view", "cart_add", "checkout", "purchase"]
    exposed = {name: s.n for name, s in steps["view"].stats.items()}
    for data in steps.values():
        assert {name: s.n for name, s in data.stats.items()} == exposed  # same denominator at every step
    rates = [sum(s.sum for s in d.stats.values()) for d in steps.values()]
    assert rates == sorted(rates, reverse=True)
    assert set(analyze_funnel(store, "f")) == set(steps)


def test_expose_event_users_and_analyse_an_aa_test(filled: tuple[EventStore, pd.DataFrame]) -> None:
    store, _ = filled
    save_experiment(store, Experiment("aa", salt="aa-1", targeting={"device": "web"}))
    counts = expose_event_users(store, "aa")
    assert counts["not_targeted"] == 200 and counts["assigned"] == 400
    result = analyze_store(store, "aa", "purchased", config=AnalysisConfig(method="bayesian"))
    assert sum(v.n for v in result.variants) == 400
    assert 0 < result.variants[1].chance_to_beat_control < 1  # type: ignore[operator]


@pytest.mark.parametrize(
    ("metric", "covariate", "match"),
    [
        ("nope", None, "Unknown store metric"),
        ("revenue_per_session", "pre", "CUPED is not available"),
        ("revenue", "x", "covariate must be"),
    ],
)
def test_store_metric_misuse_raises(
    filled: tuple[EventStore, pd.DataFrame], metric: str, covariate: str | None, match: str
) -> None:
    store, _ = filled
    save_experiment(store, Experiment("m", salt="s"))
    with pytest.raises(InvalidParameterError, match=match):
        stats_from_store(store, "m", metric, covariate=covariate)


def test_a_variant_nobody_saw_is_a_sample_ratio_mismatch(filled: tuple[EventStore, pd.DataFrame]) -> None:
    store, _ = filled
    save_experiment(store, Experiment("gap", variants=("control", "b", "c"), salt="g"))
    ids = [f"u{i}" for i in range(600)]
    seen = assign_units(load_experiment(store, "gap"), ids)
    log_exposures(store, "gap", seen.loc[seen["variant"] != "c", "unit_id"], at=DAY0 + timedelta(days=5))
    with pytest.warns(SampleRatioMismatchWarning):
        result = analyze_store(store, "gap", "purchased")
    assert result.srm.mismatch and result.variant("c").n == 0
    assert result.variant("c").error_code == "too_few_units"
