"""Analysing a 10M-unit A/B/n test: cartlift (SQL sufficient statistics in DuckDB + the maths) vs pandas + scipy.

Writes one Parquet file of N units (default 10M; arms control / b / c; a 0/1 conversion, revenue
and pre-period revenue), then, in one run, on the same file:

* cartlift: ``analyze_file`` for the conversion (Welch + z-test + chi-square + Beta-Binomial +
  Holm) and for revenue with CUPED on the pre-period revenue: DuckDB aggregates n, sums, sums of
  squares and cross terms per arm, the maths runs on those few numbers;
* reference: ``pandas.read_parquet`` then the same tests on the unit arrays with scipy /
  statsmodels (Welch ``ttest_ind``, ``proportions_ztest``, ``chi2_contingency``, CUPED by
  adjusting every unit and running ``ttest_ind``).

Prints both times, the speed ratio, and the largest relative difference between the p-values
(they must agree to 1e-8). Usage: ``python benchmarks/experiments.py [--units N] [--keep]``.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportions_ztest

from cartlift.experiments import AnalysisConfig, analyze_file

ARMS = ("control", "b", "c")
RATES = (0.100, 0.102, 0.100)


def generate(path: Path, n: int, seed: int = 0, chunk: int = 2_000_000) -> None:
    """Write ``n`` units in chunks (bounded memory)."""
    rng = np.random.default_rng(seed)
    schema = pa.schema(
        [
            ("variant", pa.dictionary(pa.int8(), pa.string())),
            ("converted", pa.int8()),
            ("revenue", pa.float64()),
            ("pre_revenue", pa.float64()),
        ]
    )
    with pq.ParquetWriter(str(path), schema) as writer:
        for start in range(0, n, chunk):
            m = min(chunk, n - start)
            arm = rng.integers(0, len(ARMS), m)
            converted = rng.random(m) < np.asarray(RATES)[arm]
            pre = rng.gamma(0.5, 40.0, m)
            revenue = np.where(converted, 0.6 * pre + rng.gamma(2.0, 25.0, m) * (1 + 0.01 * (arm == 1)), 0.0)
            table = pa.table(
                {
                    "variant": pa.DictionaryArray.from_arrays(pa.array(arm, pa.int8()), pa.array(ARMS)),
                    "converted": converted.astype(np.int8),
                    "revenue": revenue,
                    "pre_revenue": pre,
                },
                schema=schema,
            )
            writer.write_table(table)


def with_cartlift(path: Path) -> dict[str, float]:
    conversion = analyze_file(path, variant="variant", metric="converted", control="control")
    revenue = analyze_file(
        path,
        variant="variant",
        metric="revenue",
        control="control",
        covariate="pre_revenue",
        config=AnalysisConfig(relative=False, correction="none"),
    )
    out = {}
    for v in conversion.variants[1:]:
        out[f"conversion {v.name} welch"] = v.tests["welch"].p_value
        out[f"conversion {v.name} z"] = v.tests["z_test"].p_value
        out[f"conversion {v.name} chi2"] = v.tests["chi_square"].p_value
        out[f"conversion {v.name} holm"] = v.p_value_adjusted
    for v in revenue.variants[1:]:
        out[f"revenue cuped {v.name}"] = v.p_value
    return out


def with_pandas(path: Path) -> dict[str, float]:
    df = pd.read_parquet(path)
    groups = {k: g for k, g in df.groupby("variant", observed=True)}
    control = groups["control"]
    out: dict[str, float] = {}
    relative_p = []
    for name in ARMS[1:]:
        arm = groups[name]
        a, b = control["converted"].to_numpy(float), arm["converted"].to_numpy(float)
        out[f"conversion {name} welch"] = stats.ttest_ind(b, a, equal_var=False).pvalue
        out[f"conversion {name} z"] = proportions_ztest([b.sum(), a.sum()], [b.size, a.size])[1]
        table = [[a.sum(), a.size - a.sum()], [b.sum(), b.size - b.sum()]]
        out[f"conversion {name} chi2"] = stats.chi2_contingency(table, correction=False).pvalue
        # the headline test: relative lift by the delta method with Welch degrees of freedom
        ma, mb, va, vb = a.mean(), b.mean(), a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
        se = np.sqrt(vb / ma**2 + mb**2 * va / ma**4)
        dof = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
        relative_p.append(2 * stats.t.sf(abs((mb / ma - 1) / se), dof))
    for name, p in zip(ARMS[1:], multipletests(relative_p, method="holm")[1], strict=True):
        out[f"conversion {name} holm"] = p
    x_all, y_all = df["pre_revenue"].to_numpy(), df["revenue"].to_numpy()
    theta = np.cov(x_all, y_all, ddof=1)[0, 1] / x_all.var(ddof=1)
    mean_x = x_all.mean()
    adj_control = control["revenue"].to_numpy() - theta * (control["pre_revenue"].to_numpy() - mean_x)
    for name in ARMS[1:]:
        arm = groups[name]
        adj = arm["revenue"].to_numpy() - theta * (arm["pre_revenue"].to_numpy() - mean_x)
        out[f"revenue cuped {name}"] = stats.ttest_ind(adj, adj_control, equal_var=False).pvalue
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=10_000_000)
    parser.add_argument("--keep", action="store_true", help="keep the generated Parquet file")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="cartlift-bench-exp-"))
    path = tmp / "units.parquet"
    try:
        t0 = time.perf_counter()
        generate(path, args.units)
        print(
            f"generated {args.units:,} units ({path.stat().st_size / 1e6:,.0f} MB Parquet) in {time.perf_counter() - t0:.1f} s"
        )
        with_cartlift(path)  # warm the file cache and imports for both sides alike
        t0 = time.perf_counter()
        ours = with_cartlift(path)
        t_ours = time.perf_counter() - t0
        t0 = time.perf_counter()
        ref = with_pandas(path)
        t_ref = time.perf_counter() - t0
        worst = max(abs(ours[k] - ref[k]) / max(abs(ref[k]), 1e-300) for k in ref)
        print(f"cartlift (DuckDB sufficient statistics + maths): {t_ours:8.2f} s")
        print(f"pandas + scipy on unit arrays:                   {t_ref:8.2f} s")
        print(f"speed ratio (pandas + scipy / cartlift):         {t_ref / t_ours:8.1f}x")
        print(f"largest relative difference of {len(ref)} p-values:     {worst:.1e}")
        for key in sorted(ref):
            print(f"  {key:<26} cartlift {ours[key]:.6g}  reference {ref[key]:.6g}")
    finally:
        if args.keep:
            print(f"kept {path}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
