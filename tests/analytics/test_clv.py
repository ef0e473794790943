"""CLV: the published CDNOW parameters, predictions against numerical integration and simulation, loud failures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, special, stats

from cartlift.analytics import (
    BGNBD,
    GammaGamma,
    clv_from_summary,
    read_transactions,
    summary_from_store,
    summary_from_transactions,
)
from cartlift.errors import ConvergenceError, DataError, InvalidParameterError

from .conftest import make_store

CDNOW = "cdnow_lifetimes"
# Fader, Hardie & Lee (2005) / lifetimes docs on the 2,357-customer CDNOW summary
PUBLISHED_BGNBD = {"r": 0.2426, "alpha": 4.4135, "a": 0.7929, "b": 2.4258}
PUBLISHED_GG = {"p": 6.25, "q": 3.74, "v": 15.45}


def _sig3(x: float) -> str:
    return f"{x:.3g}"


@pytest.fixture(scope="module")
def cdnow_summary(shared_data: Path) -> pd.DataFrame:
    return pd.read_csv(shared_data / CDNOW / "cdnow_customers_summary.csv")


@pytest.fixture(scope="module")
def cdnow_money(shared_data: Path) -> pd.DataFrame:
    return pd.read_csv(shared_data / CDNOW / "cdnow_customers_summary_with_transactions.csv")


@pytest.fixture(scope="module")
def cdnow_bgnbd(cdnow_summary: pd.DataFrame) -> BGNBD:
    return BGNBD().fit(cdnow_summary["frequency"], cdnow_summary["recency"], cdnow_summary["T"])


def test_bgnbd_reproduces_the_published_cdnow_parameters(cdnow_bgnbd: BGNBD) -> None:
    got = cdnow_bgnbd.params_
    for name, value in PUBLISHED_BGNBD.items():
        assert _sig3(got[name]) == _sig3(value), name
        assert got[name] == pytest.approx(value, abs=5e-5), name  # the published 4 decimals, in fact
    # Fader, Hardie & Lee (2005) report LL = -9582.4 at the optimum
    assert cdnow_bgnbd.log_likelihood_ == pytest.approx(-9582.4, abs=0.05)


def test_gamma_gamma_reproduces_the_published_cdnow_parameters(cdnow_money: pd.DataFrame) -> None:
    gg = GammaGamma().fit(cdnow_money["x"], cdnow_money["zbar"])
    assert gg.n_customers_ == 946
    for name, value in PUBLISHED_GG.items():
        assert getattr(gg, f"{name}_") == pytest.approx(
            value, abs=0.5 * 10 ** (np.floor(np.log10(value)) - 2)
        ), name


def test_transactions_give_the_published_summary_and_parameters(
    shared_data: Path, cdnow_money: pd.DataFrame
) -> None:
    # CDNOW_sample.txt: master id, new id (1..2357), yyyymmdd, CDs, dollars; no header
    tx = read_transactions(
        shared_data / CDNOW / "CDNOW_sample.txt", customer="column1", date_col="column2", value="column4"
    )
    summary = summary_from_transactions(tx, observation_end="1997-09-30", time_unit="weeks")
    ref = cdnow_money.assign(ID=cdnow_money["ID"].map(lambda i: f"{i:04d}")).set_index("ID")
    summary = summary.loc[ref.index]
    assert (summary["frequency"].to_numpy() == ref["x"].to_numpy()).all()
    assert summary["recency"].to_numpy() == pytest.approx(
        ref["t_x"].to_numpy(), abs=0.005 + 1e-9
    )  # the file is rounded to 2 decimals
    assert summary["T"].to_numpy() == pytest.approx(
        ref["T"].to_numpy(), abs=0.005 + 1e-9
    )  # the file is rounded to 2 decimals
    assert summary["monetary_value"].to_numpy() == pytest.approx(
        ref["zbar"].to_numpy(), abs=0.005 + 1e-9
    )  # the file is rounded to 2 decimals
    result = clv_from_summary(summary, time_unit="weeks")
    for name, value in PUBLISHED_BGNBD.items():
        assert _sig3(result.bgnbd[name]) == _sig3(value)
    assert result.gamma_gamma is not None
    for name, value in PUBLISHED_GG.items():
        assert result.gamma_gamma[name] == pytest.approx(
            value, abs=0.5 * 10 ** (np.floor(np.log10(value)) - 2)
        )
    assert np.isfinite(result.customers["clv"]).all()


def _posterior_reference(model: BGNBD, x: int, t_x: float, T: float, t: float) -> tuple[float, float]:
    """E[Y(t) | x, t_x, T] and P(alive) by integrating the individual-level model over the priors.

    lambda is integrated in closed form (Gamma moments), p numerically: no hypergeometric function.
    """
    r, alpha, a, b = model.r_, model.alpha_, model.a_, model.b_

    def G(c: float) -> float:  # E_lambda[lambda^x exp(-lambda c)]
        return float(
            np.exp(
                r * np.log(alpha) + special.gammaln(r + x) - special.gammaln(r) - (r + x) * np.log(alpha + c)
            )
        )

    log_beta = special.betaln(a, b)

    def over_p(h: Any) -> float:
        # E_p[h(p)] for p ~ Beta(a, b); p = u^(1/a) removes the p^(a-1) spike at 0 that plain quad misjudges
        def integrand(u: float) -> float:
            p = u ** (1 / a)
            return float((1 - p) ** (b - 1) * np.exp(-log_beta) / a * h(p))

        return float(integrate.quad(integrand, 0, 1, limit=500, epsabs=0, epsrel=1e-12)[0])

    alive = over_p(lambda p: (1 - p) ** x * G(T))
    dead = over_p(lambda p: p * (1 - p) ** (x - 1) * G(t_x)) if x > 0 else 0.0
    # an alive customer buys (1/p)(1 - exp(-lambda p t)) times in the next t
    future = over_p(lambda p: (1 - p) ** x * (G(T) - G(T + p * t)) / p)
    return future / (alive + dead), alive / (alive + dead)


@pytest.mark.parametrize(
    ("x", "t_x", "T"), [(2, 30.43, 38.86), (0, 0.0, 38.86), (7, 35.0, 38.0), (1, 2.0, 32.0)]
)
def test_conditional_predictions_match_numerical_integration(
    cdnow_bgnbd: BGNBD, x: int, t_x: float, T: float
) -> None:
    expected, p_alive = _posterior_reference(cdnow_bgnbd, x, t_x, T, 39.0)
    assert cdnow_bgnbd.expected_purchases(39.0, x, t_x, T)[0] == pytest.approx(expected, rel=1e-5)
    assert cdnow_bgnbd.probability_alive(x, t_x, T)[0] == pytest.approx(p_alive, rel=1e-6)


def test_published_conditional_expectation(cdnow_bgnbd: BGNBD) -> None:
    # Fader, Hardie & Lee (2005), section 5: customer with x=2, t_x=30.43, T=38.86 -> 1.226 in the next 39 weeks
    assert cdnow_bgnbd.expected_purchases(39, 2, 30.43, 38.86)[0] == pytest.approx(1.226, abs=5e-4)


def test_unconditional_expectation_matches_simulation(cdnow_bgnbd: BGNBD) -> None:
    # simulate the BG/NBD story: purchases at rate lambda until dropping out after a Geometric(p)-th purchase
    rng = np.random.default_rng(7)
    n, t = 400_000, 39.0
    lam = rng.gamma(cdnow_bgnbd.r_, 1 / cdnow_bgnbd.alpha_, n)
    p = rng.beta(cdnow_bgnbd.a_, cdnow_bgnbd.b_, n)
    purchases = np.minimum(rng.poisson(lam * t), rng.geometric(p))
    se = purchases.std() / np.sqrt(n)
    assert abs(cdnow_bgnbd.expected_purchases_new(t) - purchases.mean()) < 4 * se


def _simulated_spend(p: float, q: float, v: float, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Repeat customers of the Gamma-Gamma story: nu ~ Gamma(q, rate v), mean of x spends ~ Gamma(p x, rate nu x)."""
    rng = np.random.default_rng(seed)
    nu = rng.gamma(q, 1 / v, n)
    x = rng.integers(1, 12, n)
    return x, rng.gamma(p * x, 1 / (nu * x))


def test_gamma_gamma_recovers_simulated_parameters() -> None:
    x, m = _simulated_spend(6.25, 3.74, 15.45, 20_000, seed=3)
    gg = GammaGamma().fit(x, m)
    # 20k customers: a few per cent of sampling error on these weakly separated parameters
    assert gg.p_ == pytest.approx(6.25, rel=0.05)
    assert gg.q_ == pytest.approx(3.74, rel=0.1)
    assert gg.v_ == pytest.approx(15.45, rel=0.15)


def test_gamma_gamma_expected_spend_is_the_posterior_mean() -> None:
    gg = GammaGamma().fit(*_simulated_spend(6.25, 3.74, 15.45, 2000, seed=4))
    p, q, v = gg.p_, gg.q_, gg.v_
    x, zbar = 3, 18.0
    # nu | data ~ Gamma(p x + q, rate v + x zbar); E[Z | nu] = p / nu
    post = stats.gamma(p * x + q, scale=1 / (v + x * zbar))
    expected = integrate.quad(lambda nu: p / nu * post.pdf(nu), 0, np.inf)[0]
    assert gg.expected_spend(x, zbar)[0] == pytest.approx(expected, rel=1e-6)
    assert gg.expected_spend(0, 0)[0] == pytest.approx(p * v / (q - 1))


def test_clv_sums_discounted_purchases(cdnow_money: pd.DataFrame) -> None:
    summary = cdnow_money.rename(columns={"x": "frequency", "t_x": "recency", "zbar": "monetary_value"})
    plain = clv_from_summary(summary, horizon=39, steps=3)
    c = plain.customers
    assert c["clv"].to_numpy() == pytest.approx((c["expected_purchases"] * c["expected_spend"]).to_numpy())
    discounted = clv_from_summary(summary, horizon=39, steps=3, discount_rate=0.01, margin=0.5).customers
    assert (discounted["clv"] < 0.5 * c["clv"] + 1e-12).all()
    doc = plain.to_dict(top=3)
    assert set(doc["bgnbd"]) >= {"r", "alpha", "a", "b"} and set(doc["gamma_gamma"]) >= {"p", "q", "v"}
    assert len(doc["top_customers"]) == 3


def test_clv_from_the_store() -> None:
    rows = []
    days = {"a": [0, 10, 20, 40], "b": [0, 30], "c": [5], "d": [1, 2, 50], "e": [3], "f": [0, 44, 45]}
    for user, ds in days.items():
        for i, d in enumerate(ds):
            rows.append(
                {
                    "ts": pd.Timestamp("2025-01-01") + pd.Timedelta(days=d),
                    "user_id": user,
                    "session_id": f"{user}{i}",
                    "event_type": "purchase",
                    "price": 10.0 + i,
                    "quantity": 2,
                }
            )
    with make_store(rows) as store:
        summary = summary_from_store(store, time_unit="days")
    assert summary.loc["a"].tolist() == [3, 40, 50, pytest.approx((22 + 24 + 26) / 3)]
    assert summary.loc["c"].tolist() == [0, 0, 45, 0]


@pytest.mark.parametrize(
    ("frequency", "recency", "T", "error", "match"),
    [
        ([0, 0, 0], [0, 0, 0], [10, 10, 10], ConvergenceError, "no customer bought twice"),
        ([1, 2, np.nan], [1, 2, 3], [5, 5, 5], DataError, "missing or infinite"),
        ([1, 2, 3], [1, 9, 3], [5, 5, 5], DataError, "recency outside"),
        ([1.5, 2, 3], [1, 2, 3], [5, 5, 5], DataError, "not a whole number"),
        ([0, 2, 3], [1, 2, 3], [5, 5, 5], DataError, "recency > 0 but frequency 0"),
        ([], [], [], DataError, "empty"),
    ],
)
def test_bad_or_unidentifiable_data_fails_loudly(
    frequency: list[float], recency: list[float], T: list[float], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        BGNBD().fit(frequency, recency, T)


def test_no_drop_out_in_the_data_is_a_convergence_error_not_nan() -> None:
    rng = np.random.default_rng(0)
    x = rng.poisson(10, 500)
    T = np.full(500, 50.0)
    t_x = np.where(x > 0, T - rng.uniform(0, 0.1, 500), 0.0)
    with pytest.raises(ConvergenceError, match="ran off"):
        BGNBD().fit(x, t_x, T)


def test_gamma_gamma_failures() -> None:
    with pytest.raises(ConvergenceError, match="every repeat customer spends the same"):
        GammaGamma().fit([1, 2, 3, 4], [10.0, 10.0, 10.0, 10.0])
    with pytest.raises(DataError, match="mean spend <= 0"):
        GammaGamma().fit([1, 2], [10.0, -1.0])
    with pytest.raises(InvalidParameterError, match="'tol' parameter of GammaGamma"):
        GammaGamma(tol=0).fit([1, 2], [1.0, 2.0])


def test_summary_columns_must_exist(cdnow_summary: pd.DataFrame) -> None:
    with pytest.raises(DataError, match="no 'x' column"):
        clv_from_summary(cdnow_summary, frequency="x")
    with pytest.raises(InvalidParameterError, match="'horizon' parameter of CLV"):
        clv_from_summary(cdnow_summary, horizon=-1)


def _bgnbd_story(
    n: int, seed: int, p: float, r: float = 0.5, alpha: float = 5.0, T: float = 40.0
) -> tuple[np.ndarray, ...]:
    """Customers who buy at Gamma(r, alpha) rates and drop out with the *same* probability p after each purchase."""
    rng = np.random.default_rng(seed)
    xs, txs = [], []
    for rate in rng.gamma(r, 1 / alpha, n):
        t = tx = 0.0
        x = 0
        while True:
            t += rng.exponential(1 / rate)
            if t > T:
                break
            x, tx = x + 1, t
            if rng.random() < p:
                break
        xs.append(x)
        txs.append(tx)
    return np.array(xs), np.array(txs), np.full(n, T)


def test_homogeneous_drop_out_is_fitted_as_the_limit_and_recovers_the_truth() -> None:
    # with every customer sharing one drop-out probability, the Beta(a, b) collapses: a, b -> infinity
    # along a ridge of constant a / (a + b). This seed lands on that ridge, so the fit is its limit,
    # one p for all, and it recovers the simulated truth (r = 0.5, alpha = 5, p = 0.3)
    x, t_x, T = _bgnbd_story(3000, seed=2, p=0.3)
    m = BGNBD().fit(x, t_x, T)
    assert m.common_dropout_ and m.params_["a"] is None and m.params_["b"] is None
    assert m.p_ == pytest.approx(0.3, abs=0.05)
    assert (m.r_, m.alpha_) == pytest.approx((0.5, 5.0), rel=0.2)
    # the limit is BG/NBD's own likelihood and predictions at a = pK, b = (1 - p)K for a large K
    from cartlift.analytics._clv_models import bgnbd_common_dropout_log_likelihood, bgnbd_log_likelihood

    k = 1e7
    near = np.array([m.r_, m.alpha_, m.p_ * k, (1 - m.p_) * k])
    limit = bgnbd_common_dropout_log_likelihood(np.array([m.r_, m.alpha_, m.p_]), x, t_x, T)
    assert limit == pytest.approx(bgnbd_log_likelihood(near, x, t_x, T), rel=1e-5)
    big = BGNBD()
    big.r_, big.alpha_, big.a_, big.b_ = (
        float(v) for v in np.array([m.r_, m.alpha_, m.p_ * 1e4, (1 - m.p_) * 1e4])
    )
    big.common_dropout_, big.p_ = False, m.p_
    some = slice(0, 200)
    assert m.expected_purchases(30.0, x[some], t_x[some], T[some]) == pytest.approx(
        big.expected_purchases(30.0, x[some], t_x[some], T[some]), rel=1e-2
    )
    assert m.expected_purchases_new(30.0) == pytest.approx(big.expected_purchases_new(30.0), rel=1e-2)
    assert m.probability_alive(x, t_x, T) == pytest.approx(big.probability_alive(x, t_x, T), rel=1e-2)
    doc = clv_from_summary(pd.DataFrame({"frequency": x, "recency": t_x, "T": T}), time_unit="days")
    assert any("one drop-out probability" in n for n in doc.notes)
