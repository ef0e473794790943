"""The two-stage ranker's speed against implicit's item-kNN, on the RSC15 100k sample, in one run.

Run: ``.venv/bin/python benchmarks/recommend_ranker.py [--data ../shared/data/yoochoose_rsc15_100k]``

Both are fitted on ``train_full`` (sessions as rows) and asked for the next click of every test
session prefix (k=20):

- fit: ``Ranker`` (its generators fitted twice, LightGBM trained in between) against implicit's
  ``CosineRecommender(K=100).fit`` on the session x item matrix;
- batch throughput (queries per second), all test prefixes;
- single-query latency p50 / p99 over 300 random prefixes, with ``candidates`` per generator set so
  the union holds about 500 items (reported), against implicit's ``recommend`` of one row. Wall
  time is what a caller waits; the thread's CPU time is the code's own cost without the waits of
  a shared machine (both are printed, as in ``recommend.py``).

The ranker is fitted with its default ``candidates`` (as ``recommend evaluate`` fits it); only
serving uses ``--candidates`` per generator. Goal (issue 19): single-query p99 <= 5 ms with 500
candidates. The machine is shared: ratios travel, absolute times do not.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # implicit warns (and slows) with a threaded BLAS

import numpy as np
import scipy.sparse as sp

from cartlift.recommend import Query, Ranker, next_item, read_yoochoose
from cartlift.recommend._ranker_features import candidates


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark; ``argv`` as on the command line (`recommend.py --ranker` passes its own)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/yoochoose_rsc15_100k")
    parser.add_argument("--candidates", type=int, default=260, help="items per generator when serving")
    parser.add_argument("--singles", type=int, default=300)
    parser.add_argument("--model", help="a ranker saved by an earlier run (its fit is then not timed)")
    parser.add_argument("--save", help="save the fitted ranker here (for --model)")
    args = parser.parse_args(argv)

    from implicit.nearest_neighbours import CosineRecommender

    train = read_yoochoose(f"{args.data}/yoochoose-clicks-100k_train_full.txt")
    test = read_yoochoose(f"{args.data}/yoochoose-clicks-100k_test.txt")
    task = next_item(train, test)
    data = task.train
    X = data.matrix.tocsr()
    print(f"train: {X.shape[0]:,} sessions x {X.shape[1]:,} items; {len(task):,} test prefixes")

    start = time.perf_counter()
    ref = CosineRecommender(K=100)
    ref.fit(X, show_progress=False)
    t_fit_ref = time.perf_counter() - start
    start = time.perf_counter()
    if args.model:
        ranker = Ranker.load(args.model)
    else:
        ranker = Ranker(random_state=0).fit(data)
        if args.save:
            ranker.save(args.save)
    t_fit = time.perf_counter() - start
    ranker.set_params(candidates=args.candidates)

    # the contexts as implicit's rows (one row per prefix, ones on its items)
    index = {item: i for i, item in enumerate(data.item_ids.tolist())}
    cols = [np.array([index[i] for i in c if i in index], np.int64) for c in task.contexts]
    lengths = np.array([len(c) for c in cols])
    Q = sp.csr_matrix(
        (
            np.ones(int(lengths.sum()), np.float32),
            (np.repeat(np.arange(len(cols)), lengths), np.concatenate(cols)),
        ),
        shape=(len(cols), X.shape[1]),
    )
    Q.sum_duplicates()
    Q.data[:] = 1.0

    start = time.perf_counter()
    ref.recommend(np.arange(Q.shape[0]), Q, N=20, filter_already_liked_items=False)
    t_batch_ref = time.perf_counter() - start
    start = time.perf_counter()
    ranker.recommend_for_items(task.contexts, 20)
    t_batch = time.perf_counter() - start

    rng = np.random.default_rng(1)
    picks = rng.choice(len(task.contexts), size=min(args.singles, len(task.contexts)), replace=False)
    lat, lat_ref, cpu, cpu_ref, sizes = [], [], [], [], []
    for p in picks:
        ctx = task.contexts[int(p)]
        start, clock = time.perf_counter(), time.thread_time()
        ranker.recommend_for_items([ctx], 20, exclude_given=False)
        lat.append(time.perf_counter() - start)
        cpu.append(time.thread_time() - clock)
        start, clock = time.perf_counter(), time.thread_time()
        ref.recommend(0, Q[int(p)], N=20, filter_already_liked_items=False)
        lat_ref.append(time.perf_counter() - start)
        cpu_ref.append(time.thread_time() - clock)
    # how many candidates the ranker scored per query (on a sample)
    for p in picks[:50]:
        seq = cols[int(p)]
        history = sp.csr_matrix(
            (np.ones(len(seq)), (np.zeros(len(seq), np.int64), seq)), shape=(1, X.shape[1])
        )
        cand = candidates(
            Query(np.array([-1]), history, [seq]), ranker._generators(), ranker._item_stats(), args.candidates
        )
        sizes.append(len(cand.rows))
    p50, p99 = np.percentile(lat, [50, 99]) * 1e3
    r50, r99 = np.percentile(lat_ref, [50, 99]) * 1e3
    c50, c99 = np.percentile(cpu, [50, 99]) * 1e3
    rc50, rc99 = np.percentile(cpu_ref, [50, 99]) * 1e3
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")

    print(f"\nfit (load average {load:.1f} on {os.cpu_count()} cores)")
    print(f"  implicit CosineRecommender(K=100)  {t_fit_ref:8.2f} s")
    if args.model:
        print(f"  ranker loaded from {args.model} in {t_fit:.2f} s (fit not timed)")
    else:
        print(
            f"  ranker (generators twice + LightGBM) {t_fit:6.2f} s   ratio {t_fit / t_fit_ref:.0f}x implicit"
        )
    print(f"  ranker training: {getattr(ranker, 'training_', None)}")
    print(f"\nbatch, {len(task):,} prefixes, k=20")
    print(f"  implicit   {len(task) / t_batch_ref:10,.0f} queries/s")
    print(
        f"  ranker     {len(task) / t_batch:10,.0f} queries/s   ratio {t_batch / t_batch_ref:.0f}x implicit's time"
    )
    print(
        f"\nsingle query, {len(picks)} prefixes, k=20, {args.candidates} per generator: "
        f"median {np.median(sizes):.0f} candidates scored (load average {os.getloadavg()[0]:.1f})"
    )
    print(
        f"  implicit   wall p50 {r50:7.3f} ms  p99 {r99:7.3f} ms   CPU p50 {rc50:7.3f} ms  p99 {rc99:7.3f} ms"
    )
    print(
        f"  ranker     wall p50 {p50:7.3f} ms  p99 {p99:7.3f} ms   CPU p50 {c50:7.3f} ms  p99 {c99:7.3f} ms"
    )
    print("\ngoal: single-query p99 <= 5 ms")
    print(f"  wall   {'met' if p99 <= 5 else 'MISSED'} ({p99:.1f} ms)")
    print(f"  CPU    {'met' if c99 <= 5 else 'MISSED'} ({c99:.1f} ms)")


if __name__ == "__main__":
    main()
