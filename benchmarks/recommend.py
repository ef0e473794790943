"""Item-kNN speed against implicit's CosineRecommender, on one synthetic matrix, in one run.

Run: ``.venv/bin/python benchmarks/recommend.py [--users 100000 --items 20000 --nnz 2000000]``

The matrix has Zipf-like item popularity and log-normal user activity (binary weights).
Measured, as medians of interleaved repeats (the machine is shared: ratios travel, absolute
times do not):

- fit: our kernel (``knn_all_pairs``, K=100) and the whole ``ItemKNN.fit`` vs implicit's
  ``CosineRecommender(K=100).fit`` (Numba compiles once per machine; that first call is reported
  separately and excluded);
- batch recommend throughput (users per second, k=10, seen items excluded);
- single-user latency p50 / p99 over 1,000 random users.

Goals (issue 4): fit <= 1.5x implicit; single-user p99 <= 5 ms.

``--ranker`` then runs the two-stage ranker's benchmark on the RSC15 sample (`recommend_ranker.py`:
fit time, batch throughput and single-query p99 with ~500 candidates, next to implicit's item-kNN
on the same sessions; issue 19's goal p99 <= 5 ms); ``--ranker-model PATH`` gives it a saved ranker.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # implicit warns (and slows) with a threaded BLAS

import numpy as np
import scipy.sparse as sp

from cartlift.recommend import Interactions, ItemKNN, knn_all_pairs


def synthetic(n_users: int, n_items: int, nnz: int, seed: int = 0) -> sp.csr_matrix:
    """Binary users x items matrix with about ``nnz`` entries, popularity ~ 1 / rank^0.8."""
    rng = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.8
    popularity /= popularity.sum()
    activity = rng.lognormal(0.0, 1.0, n_users)
    per_user = np.maximum(1, np.round(activity / activity.sum() * nnz * 1.08)).astype(np.int64)
    rows = np.repeat(np.arange(n_users), per_user)
    cols = rng.permutation(n_items)[rng.choice(n_items, size=rows.size, p=popularity)]
    X = sp.csr_matrix((np.ones(rows.size, np.float32), (rows, cols)), shape=(n_users, n_items))
    X.sum_duplicates()
    X.data[:] = 1.0
    return X


def median_time(fn, repeats: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--nnz", type=int, default=2_000_000)
    parser.add_argument("--neighbors", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--ranker", action="store_true", help="Also run recommend_ranker.py (RSC15, minutes)."
    )
    parser.add_argument("--ranker-model", help="A ranker saved by recommend_ranker.py --save.")
    args = parser.parse_args()

    from implicit.nearest_neighbours import CosineRecommender

    X = synthetic(args.users, args.items, args.nnz)
    print(f"matrix: {X.shape[0]:,} users x {X.shape[1]:,} items, {X.nnz:,} interactions")
    K = args.neighbors

    start = time.perf_counter()
    knn_all_pairs(X[:2000], K)  # compiles the Numba kernel (or loads its cache)
    print(f"first call (Numba compile or cache load): {time.perf_counter() - start:.2f} s")

    data = Interactions.from_matrix(X)
    _ = data.matrix, data.sequences, data.last_session  # the Interactions are built once, outside fit

    def fit_implicit() -> None:
        CosineRecommender(K=K).fit(X, show_progress=False)

    def fit_kernel() -> None:
        knn_all_pairs(X, K)

    def fit_ours() -> None:
        ItemKNN(n_neighbors=K).fit(data)

    # interleave the three so machine noise hits them alike
    t_imp, t_kernel, t_fit = [], [], []
    for _ in range(args.repeats):
        t_imp.append(median_time(fit_implicit, 1))
        t_kernel.append(median_time(fit_kernel, 1))
        t_fit.append(median_time(fit_ours, 1))
    imp, kernel, fit = float(np.median(t_imp)), float(np.median(t_kernel)), float(np.median(t_fit))

    ours = ItemKNN(n_neighbors=K).fit(data)
    ref = CosineRecommender(K=K)
    ref.fit(X, show_progress=False)

    rng = np.random.default_rng(1)
    batch = rng.choice(X.shape[0], size=10_000, replace=False)
    batch_ids = data.user_ids[batch]
    t_batch_ours = median_time(lambda: ours.recommend(batch_ids, k=10), args.repeats)
    t_batch_imp = median_time(lambda: ref.recommend(batch, X[batch], N=10), args.repeats)

    singles = rng.choice(X.shape[0], size=1_000, replace=False)
    # wall-clock latency is what a caller waits; the thread's CPU time is the code's own cost,
    # without the waits of a shared machine (both are printed)
    lat_ours, lat_imp, cpu_ours, cpu_imp = [], [], [], []
    for u in singles:
        uid = [data.user_ids[u]]
        start, cpu = time.perf_counter(), time.thread_time()
        ours.recommend(uid, k=10)
        lat_ours.append(time.perf_counter() - start)
        cpu_ours.append(time.thread_time() - cpu)
        start, cpu = time.perf_counter(), time.thread_time()
        ref.recommend(int(u), X[int(u)], N=10)
        lat_imp.append(time.perf_counter() - start)
        cpu_imp.append(time.thread_time() - cpu)
    p50_o, p99_o = np.percentile(lat_ours, [50, 99]) * 1e3
    p50_i, p99_i = np.percentile(lat_imp, [50, 99]) * 1e3
    c50_o, c99_o = np.percentile(cpu_ours, [50, 99]) * 1e3
    c50_i, c99_i = np.percentile(cpu_imp, [50, 99]) * 1e3
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")

    print(f"\nfit, K={K} (median of {args.repeats})")
    print(f"  implicit CosineRecommender        {imp:8.2f} s")
    print(f"  ours, knn_all_pairs kernel        {kernel:8.2f} s   ratio {kernel / imp:.2f}x implicit")
    print(f"  ours, ItemKNN.fit (whole)         {fit:8.2f} s   ratio {fit / imp:.2f}x implicit")
    print("\nbatch recommend, 10,000 users, k=10")
    print(f"  implicit                          {10_000 / t_batch_imp:10,.0f} users/s")
    print(
        f"  ours                              {10_000 / t_batch_ours:10,.0f} users/s   ratio {t_batch_imp / t_batch_ours:.2f}x implicit's throughput"
    )
    print(f"\nsingle-user recommend, 1,000 users, k=10 (load average {load:.1f} on {os.cpu_count()} cores)")
    print(
        f"  implicit   wall p50 {p50_i:6.3f} ms  p99 {p99_i:6.3f} ms   CPU p50 {c50_i:6.3f} ms  p99 {c99_i:6.3f} ms"
    )
    print(
        f"  ours       wall p50 {p50_o:6.3f} ms  p99 {p99_o:6.3f} ms   CPU p50 {c50_o:6.3f} ms  p99 {c99_o:6.3f} ms"
    )
    print("\ngoals")
    print(f"  fit <= 1.5x implicit              {'met' if fit / imp <= 1.5 else 'MISSED'} ({fit / imp:.2f}x)")
    print(f"  single-user p99 <= 5 ms (wall)    {'met' if p99_o <= 5 else 'MISSED'} ({p99_o:.2f} ms)")

    if args.ranker:
        import recommend_ranker  # beside this script, on sys.path when run as a script

        print("\nthe two-stage ranker (recommend_ranker.py)")
        recommend_ranker.main(["--model", args.ranker_model] if args.ranker_model else [])


if __name__ == "__main__":
    main()
