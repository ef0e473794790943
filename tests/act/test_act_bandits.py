"""Bandits: posteriors by hand, partial_fit == fit, seeded randomness, random ties, propensities, learning."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, stats

from cartlift.act import BetaBernoulliTS, EpsilonGreedy, LinearTS, LinUCB, LogisticTS
from cartlift.errors import DataError, InvalidParameterError, NotFittedError


def test_beta_posterior_counts_by_hand_and_partial_fit_equals_fit() -> None:
    actions = np.array([0, 1, 1, 2, 1, 0])
    rewards = np.array([1.0, 0.0, 1.0, 1.0, 1.0, 0.0])
    whole = BetaBernoulliTS(3, alpha=1.0, beta=2.0, random_state=0).fit(None, actions, rewards)
    np.testing.assert_array_equal(whole.alpha_, [2.0, 3.0, 2.0])
    np.testing.assert_array_equal(whole.beta_, [3.0, 3.0, 2.0])
    parts = BetaBernoulliTS(3, alpha=1.0, beta=2.0, random_state=0)
    for lo, hi in ((0, 2), (2, 5), (5, 6)):
        parts.partial_fit(None, actions[lo:hi], rewards[lo:hi])
    np.testing.assert_array_equal(parts.alpha_, whole.alpha_)
    np.testing.assert_array_equal(parts.beta_, whole.beta_)
    assert parts.n_seen_ == 6


def test_ridge_bandits_partial_fit_equals_fit() -> None:
    rng = np.random.default_rng(0)
    X, a, r = rng.normal(size=(60, 3)), rng.integers(0, 2, 60), rng.random(60)
    for cls in (LinUCB, LinearTS):
        whole = cls(2, random_state=0).fit(X, a, r)
        parts = cls(2, random_state=0).partial_fit(X[:25], a[:25], r[:25]).partial_fit(X[25:], a[25:], r[25:])
        np.testing.assert_allclose(parts.coef_, whole.coef_, atol=1e-10)


def test_linucb_value_by_hand() -> None:
    # one feature, no intercept: A = l2 + sum x^2, b = sum r x, value = x b / A + alpha |x| / sqrt(A)
    bandit = LinUCB(2, alpha=0.5, l2=1.0, fit_intercept=False, random_state=0)
    bandit.fit(np.array([[1.0], [2.0], [1.0]]), np.array([0, 0, 1]), np.array([1.0, 0.5, 0.2]))
    v = bandit.values(np.array([[2.0]]))[0, :, 0]
    a0, b0 = 1 + 1 + 4, 1.0 + 1.0
    a1, b1 = 1 + 1, 0.2
    assert v[0] == pytest.approx(2 * b0 / a0 + 0.5 * 2 / np.sqrt(a0))
    assert v[1] == pytest.approx(2 * b1 / a1 + 0.5 * 2 / np.sqrt(a1))
    # with a negative gain the bonus still raises the value (optimism)
    g = bandit.values(np.array([[2.0]]), gain=np.array([[-1.0, -1.0]]))[0, 0, 0]
    assert g == pytest.approx(-2 * b0 / a0 + 0.5 * 2 / np.sqrt(a0))


def test_linear_ts_draws_follow_the_ridge_posterior() -> None:
    rng = np.random.default_rng(1)
    X, a, r = rng.normal(size=(200, 2)), rng.integers(0, 2, 200), rng.random(200)
    bandit = LinearTS(2, v=0.7, random_state=0).fit(X, a, r)
    x = np.array([[0.3, -1.2]])
    draws = bandit.values(x, n_draws=40_000)[0]
    xi = np.r_[1.0, x[0]]
    for k in range(2):
        sd = 0.7 * np.sqrt(xi @ bandit.A_inv_[k] @ xi)
        assert draws[k].mean() == pytest.approx(xi @ bandit.coef_[k], abs=4 * sd / 200)
        assert draws[k].std() == pytest.approx(sd, rel=0.03)


def test_same_seed_same_choices() -> None:
    rng = np.random.default_rng(2)
    X, a, r = rng.normal(size=(100, 2)), rng.integers(0, 3, 100), (rng.random(100) < 0.3).astype(float)
    for make in (
        lambda: BetaBernoulliTS(3, random_state=7).fit(None, a, r),
        lambda: LinearTS(3, random_state=7).fit(X, a, r),
        lambda: LogisticTS(3, random_state=7).fit(X, a, r),
        lambda: EpsilonGreedy(3, epsilon=0.3, random_state=7).fit(None, a, r),
    ):
        first, second = make(), make()
        ctx = None if first.contextual is False else X
        np.testing.assert_array_equal(first.choose(ctx, n=100)[0], second.choose(ctx, n=100)[0])


def test_ties_are_broken_at_random_and_propensities_are_exact() -> None:
    bandit = EpsilonGreedy(4, epsilon=0.2, random_state=0).partial_fit(
        None, np.array([0, 1, 2, 3]), np.array([1.0, 1.0, 1.0, 0.0])
    )
    eligible = np.tile([True, True, True, True], (30_000, 1))
    actions, prop = bandit.choose(None, eligible, n=30_000)
    share = np.bincount(actions, minlength=4) / actions.size
    # greedy: three tied arms share 0.8; exploration spreads 0.2 over all four
    np.testing.assert_allclose(share, [0.8 / 3 + 0.05] * 3 + [0.05], atol=0.01)
    np.testing.assert_allclose(prop[actions < 3], 0.8 / 3 + 0.05)
    np.testing.assert_allclose(prop[actions == 3], 0.05)
    only = np.tile([False, False, False, True], (100, 1))
    a, p = bandit.choose(None, only, n=100)
    assert (a == 3).all() and np.allclose(p, 1.0)


def test_thompson_propensity_matches_the_probability_of_winning() -> None:
    bandit = BetaBernoulliTS(2, random_state=0).partial_fit(
        None, np.array([0] * 10 + [1] * 10), np.r_[np.ones(4), np.zeros(6), np.ones(6), np.zeros(4)]
    )
    # P(theta_1 > theta_0) for Beta(5, 7) and Beta(7, 5)
    p1 = integrate.quad(lambda t: stats.beta(7, 5).pdf(t) * stats.beta(5, 7).cdf(t), 0, 1)[0]
    actions, prop = bandit.choose(None, n=4000, n_draws=400)
    assert np.mean(actions == 1) == pytest.approx(p1, abs=0.03)
    assert prop[actions == 1].mean() == pytest.approx(p1, abs=0.01)
    assert prop[actions == 0].mean() == pytest.approx(1 - p1, abs=0.01)


def test_thompson_regret_grows_sublinearly() -> None:
    rates = np.array([0.05, 0.10, 0.14, 0.15])
    rng = np.random.default_rng(3)
    bandit = BetaBernoulliTS(4, random_state=4).partial_fit(None, np.zeros(0, dtype=int), [])
    regret = []
    for _ in range(100):  # 100 batches of 100 decisions, learning after each batch
        a, _ = bandit.choose(None, n=100, n_draws=1)
        bandit.partial_fit(None, a, (rng.random(100) < rates[a]).astype(float))
        regret.append(np.sum(rates.max() - rates[a]))
    cum = np.cumsum(regret)
    assert cum[-1] < 0.5 * 100 * 100 * (rates.max() - rates.mean())  # far below uniform play
    assert np.mean(regret[-25:]) < 0.5 * np.mean(regret[:25])


@pytest.mark.parametrize("cls", [LinUCB, LinearTS, LogisticTS])
def test_contextual_bandits_learn_which_action_suits_which_context(cls: type) -> None:
    rng = np.random.default_rng(5)
    bandit = cls(2, random_state=6)
    bandit.partial_fit(np.zeros((0, 1)), np.zeros(0, dtype=int), [])
    for _ in range(40):
        x = rng.uniform(-1, 1, (100, 1))
        p = np.column_stack([0.5 + 0.4 * x[:, 0], 0.5 - 0.4 * x[:, 0]])  # action 0 when x > 0
        a, _ = bandit.choose(x)
        bandit.partial_fit(x, a, (rng.random(100) < p[np.arange(100), a]).astype(float))
    x = rng.uniform(-1, 1, (1000, 1))
    a, _ = bandit.choose(x)
    assert np.mean(a == (x[:, 0] < 0)) > 0.85


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (
            lambda b: b.partial_fit(None, np.array([3]), [1.0]),
            DataError,
            r"actions must be integers in \[0, 3\)",
        ),
        (lambda b: b.partial_fit(None, np.array([0, 1]), [1.0]), DataError, "same length"),
        (lambda b: b.partial_fit(None, np.array([0]), [2.0]), DataError, r"rewards in \[0, 1\]"),
        (lambda b: b.partial_fit(None, np.array([0]), [np.nan]), DataError, "rewards must be finite"),
        (
            lambda b: b.fit(None, np.array([0]), [1.0]).choose(None, np.zeros((1, 3), bool), n=1),
            DataError,
            "at least one allowed",
        ),
        (
            lambda b: b.fit(None, np.array([0]), [1.0]).values(None, gain=np.ones((2, 3)), n=1),
            DataError,
            "gain and cost",
        ),
        (lambda b: b.values(None, n=1), NotFittedError, "no state yet"),
    ],
)
def test_invalid_use_of_a_bandit(call: object, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        call(BetaBernoulliTS(3, random_state=0))  # type: ignore[operator]


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: LinUCB(2).fit(np.array([[np.nan]]), np.array([0]), [1.0]), "X must be finite"),
        (
            lambda: LinUCB(2).fit(np.ones((2, 1)), np.array([0, 1]), [1.0, 0.0]).choose(np.ones((1, 2))),
            "X has 3 columns",
        ),
        (lambda: LogisticTS(2).fit(np.ones((1, 1)), np.array([0]), [0.5]), "binary rewards"),
        (lambda: BetaBernoulliTS(2, alpha=0.0).fit(None, np.array([0]), [1.0]), "alpha and beta must be > 0"),
    ],
)
def test_invalid_contexts_and_priors(make: object, match: str) -> None:
    with pytest.raises(DataError, match=match):
        make()  # type: ignore[operator]


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: EpsilonGreedy(2, epsilon=1.5), "'epsilon' parameter of EpsilonGreedy"),
        (lambda: LinUCB(0), "'n_actions' parameter of LinUCB"),
        (lambda: LinearTS(2, v=0.0), "'v' parameter of LinearTS"),
        (lambda: LogisticTS(2, l2=-1.0), "'l2' parameter of LogisticTS"),
    ],
)
def test_invalid_parameters(make: object, match: str) -> None:
    with pytest.raises(InvalidParameterError, match=match):
        make().partial_fit(np.ones((1, 1)), np.array([0]), [1.0])  # type: ignore[operator]


def test_a_bandit_decides_one_record_under_the_rules() -> None:
    from datetime import datetime

    from cartlift.act import ActionCatalog, Ledger, Rules, decide_record

    catalog = ActionCatalog()
    bandit = BetaBernoulliTS(len(catalog), random_state=0).partial_fit(None, np.zeros(0, dtype=np.int64), [])
    record = {"cart_id": "c1", "user_id": "u1", "ts": datetime(2026, 3, 2, 23, 0), "cart_value": 80.0,
              "margin": 30.0, "email_consent": False, "sms_consent": True}  # fmt: skip
    ledger = Ledger(rules=Rules())
    gain = 30.0 - catalog.discounts(np.array([80.0]))
    cost = catalog.costs(np.array([False]), np.array([True]))
    out = decide_record(record, bandit.values(None, gain, cost, n=1, n_draws=200)[0], catalog=catalog,
                        ledger=ledger, rng=np.random.default_rng(0), label="Thompson draw")  # fmt: skip
    # 23:00: SMS is in quiet hours and there is no e-mail consent, so only "nothing" is allowed
    assert out["action"] == "nothing" and out["propensity"] == 1.0
    assert "quiet hours for sms" in out["reason"] and "no email consent" in out["reason"]
    noon = decide_record({**record, "cart_id": "c2", "ts": datetime(2026, 3, 3, 12, 0)},
                         bandit.values(None, gain, cost, n=1, n_draws=200)[0], catalog=catalog, ledger=ledger,
                         rng=np.random.default_rng(1))  # fmt: skip
    assert noon["channel"] in ("sms", "none") and 0 < noon["propensity"] <= 1
