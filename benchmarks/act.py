"""Next-best-action speed: decisions per second and single-decision latency of the policy and the bandit.

One run on a simulated store (exploration, then the trained profit policy):

* profit policy, batch: ``ProfitPolicy.decide`` over every test cart (model, rules, reasons);
* profit policy, live: ``ProfitPolicy.decide_one`` on one plain record at a time (p50/p99);
* bandit, batch and live: Beta-Bernoulli Thompson sampling with 50 posterior draws per cart for
  the propensity, through the same rules (``decide_in_order``, ``decide_record``), and
  ``LinearTS.choose`` per row.

Goal: p99 of a single decision <= 2 ms. Latencies are printed as wall-clock time and as the
process's own CPU time, next to the same figures for a trivial 0.1 ms loop: on a shared,
saturated machine the wall-clock tail is the scheduler's (a process waiting for a core), which the
CPU time and the reference loop make visible. With ``--quality`` it also prints the simulated-store
comparison (share of the oracle's profit) and the Open Bandit reproduction (30 runs), which take
minutes. Usage: ``python benchmarks/act.py [--users N] [--quality]``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from cartlift.act import (
    BetaBernoulliTS,
    Ledger,
    LinearTS,
    decide_in_order,
    decide_record,
    public_result,
    reproduce_obd_benchmark,
    run_simulation,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "open_bandit_obd_sample"


def _percentiles(seconds: list[float]) -> tuple[float, float]:
    p50, p99 = np.percentile(np.asarray(seconds) * 1000.0, [50, 99])
    return float(p50), float(p99)


def _timed(fn: Callable[[], object]) -> tuple[float, float]:
    """Wall-clock and CPU seconds of one call (CPU time leaves out time the OS ran other processes)."""
    w, c = time.perf_counter(), time.thread_time()
    fn()
    return time.perf_counter() - w, time.thread_time() - c


def _latency(calls: list[Callable[[], object]]) -> str:
    wall, cpu = zip(*(_timed(f) for f in calls), strict=True)
    w50, w99 = _percentiles(list(wall))
    c50, c99 = _percentiles(list(cpu))
    return (
        f"{len(wall) / sum(wall):,.0f}/s, p50 {w50:.3f} ms, p99 {w99:.3f} ms wall "
        f"(CPU p50 {c50:.3f} ms, p99 {c99:.3f} ms)"
    )


def _machine_noise() -> str:
    """The same percentiles for a 0.15 ms pure-Python loop: what the machine adds to any tail."""

    def spin() -> int:
        total = 0
        for i in range(3000):
            total += i
        return total

    return _latency([spin] * 5000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--quality", action="store_true", help="also the quality figures (minutes)")
    args = parser.parse_args()

    result = run_simulation(n_users=args.users, train_days=14, days=7, policies=["oracle"], random_state=0)
    policy = result["_policy"]
    test, _ = result["_test"]
    catalog, rules = policy.catalog_, policy.rules_
    n = len(test)
    print(f"{n:,} test carts, {result['training']['decisions']:,} logged decisions to learn from")

    t0 = time.perf_counter()
    policy.decide(test, Ledger(rules=rules))
    batch = time.perf_counter() - t0
    records = test.to_dict("records")
    for rec in records[:50]:  # warm caches (encoder lookups, LightGBM) before timing
        policy.decide_one(rec, Ledger(rules=rules))
    ledger = Ledger(rules=rules)
    calls = [lambda rec=rec: policy.decide_one(rec, ledger) for rec in records]
    print(f"profit policy: batch {n / batch:,.0f} decisions/s; live {_latency(calls)} (goal p99 <= 2 ms)")

    value = test["cart_value"].to_numpy(dtype=float)
    gain = test["margin"].to_numpy(dtype=float)[:, None] - catalog.discounts(value)
    cost = catalog.costs(test["email_consent"].to_numpy(dtype=bool), test["sms_consent"].to_numpy(dtype=bool))
    bandit = BetaBernoulliTS(len(catalog), random_state=0).partial_fit(None, np.zeros(0, dtype=np.int64), [])
    t0 = time.perf_counter()
    values = bandit.values(None, gain, cost, n=n, n_draws=50)
    decide_in_order(test, values, catalog=catalog, ledger=Ledger(rules=rules), policy="thompson",
                    rng=np.random.default_rng(0), label="Thompson draw")  # fmt: skip
    batch = time.perf_counter() - t0
    ledger = Ledger(rules=rules)
    rng = np.random.default_rng(1)

    def one(i: int) -> object:
        v = bandit.values(None, gain[i : i + 1], cost[i : i + 1], n=1, n_draws=50)[0]
        return decide_record(records[i], v, catalog=catalog, ledger=ledger, rng=rng, label="Thompson draw")

    calls = [lambda i=i: one(i) for i in range(n)]
    print(f"Thompson bandit with rules: batch {n / batch:,.0f} decisions/s; live {_latency(calls)}")

    X = np.random.default_rng(2).normal(size=(5000, 12))
    lin = LinearTS(len(catalog), random_state=0).fit(
        X[:2000], np.arange(2000) % len(catalog), np.random.default_rng(3).random(2000)
    )
    t0 = time.perf_counter()
    lin.choose(X, n_draws=50)
    batch = time.perf_counter() - t0
    calls = [lambda i=i: lin.choose(X[i : i + 1], n_draws=50) for i in range(2000)]
    print(
        f"LinearTS (12 features, 9 actions, 50 draws): batch {5000 / batch:,.0f} choices/s; live {_latency(calls)}"
    )
    print(f"machine noise (a 0.15 ms pure-Python loop): {_machine_noise()}")

    if args.quality:
        full = public_result(run_simulation(random_state=0))
        print(json.dumps({k: round(v["share_of_oracle"], 4) for k, v in full["policies"].items()}))
        if DATA.is_dir():
            obd = reproduce_obd_benchmark(DATA, n_runs=30, n_sim=1_000_000)
            for name, err in obd["relative_error"].items():
                print(f"OBD {name}: relative error {err:.3f} vs published {obd['published'][name]:.3f} "
                      f"({obd['ratio_to_published'][name]:.2f}x)")  # fmt: skip


if __name__ == "__main__":
    main()
