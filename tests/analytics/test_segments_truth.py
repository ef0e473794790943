"""Segments against the simulator's truth: the adjusted Rand index of each method against the true
response type and price-sensitivity group, with bootstrap intervals.

Run as a script for the README's table (``python tests/analytics/test_segments_truth.py [SEED]``);
the slow test checks the claims the README makes from it.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score

from cartlift.analytics import METHODS, CustomerClusters, customer_features
from cartlift.analytics._cluster_methods import fit_method
from cartlift.simulate import simulate
from cartlift.store import EventStore

TRUTHS = ("response_type", "price_group")
N_BOOT = 30


@dataclass(frozen=True)
class Row:
    method: str
    setting: str
    truth: str
    ari: float
    lo: float
    hi: float


def truth_table(
    seed: int = 42, n_users: int = 5000, n_boot: int = N_BOOT
) -> tuple[list[Row], dict[str, tuple[float, float, float]]]:
    """ARI of each method (and of chance) against each truth, and the paired difference of the best two."""
    sim = simulate(n_users=n_users, n_days=30, random_state=seed)
    with TemporaryDirectory() as tmp, EventStore(Path(tmp) / "s.duckdb") as store:
        sim.write_to(store)
        features = customer_features(store)
    users = sim.truth["truth_users"].to_pandas().set_index("user_id").reindex(features.index.astype(str))
    # price-sensitivity groups: terciles of the true sensitivity (low, middle, high)
    truth = {
        "response_type": pd.factorize(users["response_type"])[0],
        "price_group": pd.qcut(users["price_sensitivity"], 3, labels=False).to_numpy(),
    }
    rng = np.random.default_rng(seed)
    fits = {m: CustomerClusters(method=m, n_boot=0, random_state=0).fit(features) for m in METHODS}
    X = fits["kmeans"].transform(features)
    boot = [rng.integers(0, len(X), len(X)) for _ in range(n_boot)]
    aris: dict[tuple[str, str], list[float]] = {}
    rows = []
    for m, model in fits.items():
        refits = [fit_method(m, X[b], model.params_, int(rng.integers(2**31 - 1))).labels for b in boot]
        for t, y in truth.items():
            aris[m, t] = [adjusted_rand_score(y[b], lab) for b, lab in zip(boot, refits, strict=True)]
            rows.append(
                Row(m, model.setting_, t, adjusted_rand_score(y, model.labels_), *_interval(aris[m, t]))
            )
    for t, y in truth.items():  # chance: the k-means segment sizes, shuffled
        chance = [adjusted_rand_score(y[b], rng.permutation(fits["kmeans"].labels_[b])) for b in boot]
        rows.append(Row("chance", "", t, float(np.mean(chance)), *_interval(chance)))
    diffs = {}
    for t in TRUTHS:
        best, second = sorted(METHODS, key=lambda m: -float(np.mean(aris[m, t])))[:2]
        d = np.array(aris[best, t]) - np.array(aris[second, t])
        diffs[f"{t}: {best} - {second}"] = (float(d.mean()), *_interval(list(d)))
    return rows, diffs


def _interval(values: list[float]) -> tuple[float, float]:
    lo, hi = np.percentile(values, [2.5, 97.5])
    return float(lo), float(hi)


@pytest.mark.slow
def test_no_segmentation_recovers_the_hidden_traits_beyond_its_interval() -> None:
    rows, diffs = truth_table(n_boot=20)
    by = {(r.method, r.truth): r for r in rows}
    for r in rows:
        assert r.lo <= r.hi
    # chance sits at 0, as the ARI is built to
    for t in TRUTHS:
        assert by["chance", t].lo < 0 < by["chance", t].hi
    # what the README says: behaviour segments carry next to nothing about either hidden trait
    assert all(abs(r.ari) < 0.05 for r in rows)
    # and the best two methods' paired difference is reported with its interval
    assert len(diffs) == len(TRUTHS)


if __name__ == "__main__":
    seed = int(sys.argv[1]) if len(sys.argv) > 1 else 42
    rows, diffs = truth_table(seed)
    print("| method | setting | truth | ARI | 95 % bootstrap interval |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r.method} | {r.setting} | {r.truth} | {r.ari:+.4f} | [{r.lo:+.4f}, {r.hi:+.4f}] |")
    for name, (mean, lo, hi) in diffs.items():
        print(f"paired difference {name}: {mean:+.4f} [{lo:+.4f}, {hi:+.4f}]")
