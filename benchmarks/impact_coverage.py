"""How often the holdout's 95 % interval covers the simulator's true incremental profit.

Each seed simulates a store, holds out 10 % of its abandoned carts by the holdout's hash, applies a
fixed rule to the rest (an e-mail reminder with consent, else a 10 % coupon by SMS, else nothing)
and draws every cart's outcome from its true probabilities (the slow test's `_program_frame` in
``tests/act/test_act_impact.py``, loaded from there so both run the same programme). The truth is
the sum over treated carts of their true expected profit with the action minus without it.

For each store (the test's 6,000 customers and 14 days without and with drop-out, and the demo's
5,000 customers, 30 days, drop-out 60 days) it prints, in one run on the same seeds, how often
cartlift's interval (`cartlift.experiments.rare_event_difference` through ``impact_from_frame``)
and the reference, Welch's interval (the same frame without the carts' margins), cover the truth,
with the misses on each side, the median width and the held-out carts per seed.

Usage: ``python benchmarks/impact_coverage.py [--seeds 200] [--start 0]``.
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from pathlib import Path
from typing import Any

import numpy as np

from cartlift.act import impact_from_frame

_TEST = Path(__file__).resolve().parents[1] / "tests" / "act" / "test_act_impact.py"
STORES: dict[str, dict[str, float]] = {
    "6,000 customers, 14 days, no drop-out": {},
    "6,000 customers, 14 days, drop-out 60 days": {"mean_lifetime_days": 60.0},
    "demo: 5,000 customers, 30 days, drop-out 60 days": {
        "n_users": 5000,
        "n_days": 30,
        "mean_lifetime_days": 60.0,
    },
}


def _program_frame() -> Any:
    spec = importlib.util.spec_from_file_location("_impact_test", _TEST)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module._program_frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--start", type=int, default=0)
    args = parser.parse_args()
    program = _program_frame()
    seeds = range(args.start, args.start + args.seeds)
    for name, store in STORES.items():
        began = time.perf_counter()
        hits: dict[str, list[tuple[bool, bool, float]]] = {"cartlift": [], "Welch": []}
        held = []
        for seed in seeds:
            frame, truth = program(seed, **store)
            held.append(int(frame["held_out"].sum()))
            for method, data in (
                ("cartlift", frame),
                ("Welch", frame.drop(columns=["margin", "cart_value"])),
            ):
                p = impact_from_frame(data, holdout_share=0.1)["incremental_profit"]
                hits[method].append((truth < p["ci_low"], truth > p["ci_high"], p["ci_high"] - p["ci_low"]))
        print(
            f"{name}: {len(seeds)} seeds from {args.start}, {np.mean(held):.0f} held-out carts per seed",
            flush=True,
        )
        for method, rows in hits.items():
            low = sum(r[0] for r in rows)
            high = sum(r[1] for r in rows)
            head = rows[:50]
            first = sum(not (r[0] or r[1]) for r in head)
            print(
                f"  {method:8s} covered {len(rows) - low - high}/{len(rows)} "
                f"(first {len(head)}: {first}/{len(head)}), truth below the interval {low}, above {high}, "
                f"median width {np.median([r[2] for r in rows]):,.0f} USD"
            )
        print(f"  ({time.perf_counter() - began:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
