"""The fast query path of the two-stage ranker and of its generators.

A single query must get the list it gets inside a batch; the session-kNN kernel and the
popularity ranking must score like the SciPy / dense path they replace; the candidate features'
row lookups must equal their SciPy definitions.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from cartlift.recommend import (
    ALS,
    STAN,
    VSTAN,
    Interactions,
    ItemKNN,
    Popularity,
    Query,
    Ranker,
    Recommendations,
    Recommender,
    SessionKNN,
)
from cartlift.recommend._base import take_rows
from cartlift.recommend._kernels import HAS_NUMBA
from cartlift.recommend._pair_kernels import generator_columns, row_sums_at
from cartlift.recommend._ranker_features import (
    ItemStats,
    _gather_rows,
    _lookup,
    _summed,
    candidates,
    feature_names,
    row_values,
    values_at,
)
from cartlift.recommend._topk import densify


def _walks(n_sessions: int, seed: int) -> pd.DataFrame:
    """Sessions over 60 items, mostly stepping to the next item, each its own user but every
    fifth user coming back (so some queries have a known user and an own past session)."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_sessions):
        item = int(rng.integers(60))
        for step in range(int(rng.integers(2, 9))):
            rows.append(
                (f"u{s % (n_sessions // 5) if s % 5 == 0 else s}", f"s{s}", f"i{item}", s * 600.0 + step)
            )
            item = (item + 1) % 60 if rng.random() < 0.7 else int(rng.integers(60))
    return pd.DataFrame(rows, columns=["user_id", "session_id", "item_id", "ts"])


@pytest.fixture(scope="module")
def walks() -> Interactions:
    return Interactions.from_frame(_walks(800, seed=3))


def _queries(data: Interactions, n: int, seed: int, *, exclude: bool, allowed: bool) -> Query:
    """Anonymous sessions (prefixes of random lengths), some rows a known user, with the row's
    own items excluded and a random business filter when asked."""
    rng = np.random.default_rng(seed)
    n_items = data.n_items
    seqs = [rng.integers(n_items, size=int(rng.integers(0, 7))) for _ in range(n)]
    rows = np.where(rng.random(n) < 0.3, rng.integers(data.n_users, size=n), -1).astype(np.int64)
    history = sp.csr_matrix(
        (
            np.ones(sum(len(s) for s in seqs)),
            (np.repeat(np.arange(n), [len(s) for s in seqs]), np.concatenate(seqs)),
        ),
        shape=(n, n_items),
    )
    history.sum_duplicates()
    history.data[:] = 1.0
    # a row without a session falls back on its user's history
    history = (history + take_rows(data.matrix.tocsr(), rows)).tocsr()
    history.data[:] = 1.0
    return Query(
        rows,
        history,
        [s.astype(np.int64) for s in seqs],
        exclude=history if exclude else None,
        allowed=rng.random(n_items) < 0.8 if allowed else None,
    )


SESSION_MODELS = {
    "sknn": lambda: SessionKNN(n_neighbors=10, sample_size=40, variant="sknn"),
    "vsknn": lambda: SessionKNN(n_neighbors=10, sample_size=40),
    "vsknn-no-idf": lambda: SessionKNN(n_neighbors=15, sample_size=60, idf=False),
    "stan": lambda: STAN(n_neighbors=10, sample_size=40),
    "vstan": lambda: VSTAN(n_neighbors=10, sample_size=40),
    "stan-no-remind": lambda: STAN(n_neighbors=10, sample_size=40, remind=False, lambda_snh=None),
    "vstan-defaults": lambda: VSTAN(),
}


@pytest.mark.skipif(not HAS_NUMBA, reason="the kernel needs Numba")
@pytest.mark.parametrize("name", list(SESSION_MODELS))
@pytest.mark.parametrize(("exclude", "allowed"), [(False, False), (True, True)])
def test_session_kernel_scores_like_the_scipy_path(
    walks: Interactions, name: str, exclude: bool, allowed: bool
) -> None:
    model = SESSION_MODELS[name]().fit(walks)
    query = _queries(walks, 80, seed=7, exclude=exclude, allowed=allowed)
    k = 12
    idx, vals = model._ranked(query, k)
    ref_idx, ref_vals = Recommender._ranked(model, query, k)  # the SciPy path
    dense = query.mask(densify(model._score(query)))
    assert (idx >= 0).sum() == (ref_idx >= 0).sum() > 0
    for r in range(len(query.rows)):
        got = idx[r] >= 0
        # each returned item carries its SciPy score, and the list's scores are the best ones
        # (equal scores may come in another order: sums are added in another order)
        np.testing.assert_allclose(vals[r, got], dense[r, idx[r, got]], rtol=1e-9)
        np.testing.assert_allclose(vals[r, got], ref_vals[r, ref_idx[r] >= 0], rtol=1e-9)
        assert np.isfinite(dense[r, idx[r, got]]).all()


@pytest.mark.parametrize("mode", ["global", "trending"])
def test_popularity_ranking_equals_the_dense_selection(walks: Interactions, mode: str) -> None:
    model = Popularity(mode=mode).fit(walks)
    for exclude, allowed in [(False, False), (True, False), (True, True)]:
        query = _queries(walks, 30, seed=1, exclude=exclude, allowed=allowed)
        got = model._ranked(query, 20)
        ref = Recommender._ranked(model, query, 20)
        np.testing.assert_array_equal(got[0], ref[0])
        np.testing.assert_array_equal(got[1], ref[1])


def _generators() -> list[tuple[str, Recommender]]:
    return [
        ("vstan", VSTAN(n_neighbors=20, sample_size=100)),
        ("vsknn", SessionKNN(n_neighbors=20, sample_size=100)),
        ("itemknn", ItemKNN(n_neighbors=10, include_self=True)),
        ("als", ALS(factors=8, iterations=3, random_state=0)),
        ("popularity", Popularity()),
        ("trending", Popularity(mode="trending")),
    ]


@pytest.fixture(scope="module")
def ranker(interactions: Interactions) -> Ranker:
    return Ranker(
        models=_generators(), candidates=20, n_estimators=20, min_data_in_leaf=5, random_state=0
    ).fit(interactions)


def _assert_each_alone_as_in_batch(ask: Callable[[list[Any]], Recommendations], queries: list[Any]) -> None:
    batch = ask(queries)
    for i, one_query in enumerate(queries):
        one = ask([one_query])
        np.testing.assert_array_equal(one.indices[0], batch.indices[i])
        np.testing.assert_array_equal(one.scores[0], batch.scores[i])
    assert (batch.indices >= 0).all()


def test_a_single_user_gets_the_list_of_the_batch(ranker: Ranker) -> None:
    users = [*ranker.user_ids_[:25].tolist(), "nobody"]
    for exclude_seen in (True, False):
        _assert_each_alone_as_in_batch(partial(ranker.recommend, k=8, exclude_seen=exclude_seen), users)


def test_a_single_cart_gets_the_list_of_the_batch(ranker: Ranker) -> None:
    rng = np.random.default_rng(5)
    carts = [list(rng.choice(ranker.item_ids_, size=int(rng.integers(1, 6)))) for _ in range(25)]
    for exclude_given in (True, False):
        _assert_each_alone_as_in_batch(
            partial(ranker.recommend_for_items, k=8, exclude_given=exclude_given), carts
        )


def test_the_ranked_list_is_the_order_of_the_sparse_scores(
    ranker: Ranker, interactions: Interactions
) -> None:
    """`Ranker._ranked` orders its candidates directly; it must agree with its own `_score`."""
    query = ranker._user_queries(ranker._user_rows(ranker.user_ids_[:30]))
    query = Query(query.rows, query.history, query.sequences, exclude=query.history)
    idx, vals = ranker._ranked(query, 10)
    ref_idx, ref_vals = Recommender._ranked(ranker, query, 10)
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_allclose(vals, ref_vals, rtol=1e-12)


def test_pair_features_equal_their_scipy_definitions(interactions: Interactions) -> None:
    gens = [(n, m.fit(interactions)) for n, m in _generators()[2:]]
    stats = ItemStats.of(interactions)
    query = _queries(interactions, 40, seed=11, exclude=False, allowed=False)
    cand = candidates(query, gens, stats, 10)
    col = {name: cand.features[:, j] for j, name in enumerate(feature_names([n for n, _ in gens]))}
    n, n_items = len(query.rows), interactions.n_items
    last = np.array([s[-1] if len(s) else -1 for s in query.sequences], np.int64)
    rows, items = cand.rows, cand.items
    follows = values_at(take_rows(stats.transitions, last), rows, items)
    np.testing.assert_allclose(col["follows_last"], follows, rtol=1e-6)
    holding = take_rows(stats.sessions_t, last)
    together = values_at((holding @ stats.sessions).tocsr(), rows, items)
    n_last = np.maximum(np.diff(holding.indptr), 1)[rows]
    np.testing.assert_allclose(col["cooccurs_last"], together / n_last, rtol=1e-6)
    weights = sp.lil_matrix((n, n_items))
    for r, seq in enumerate(query.sequences):
        for back, item in enumerate(np.asarray(seq)[::-1][:10]):
            weights[r, item] += 0.5**back
    session = values_at((weights.tocsr() @ stats.transitions).tocsr(), rows, items)
    np.testing.assert_allclose(col["follows_session"], session, rtol=1e-6)
    share = np.full(len(rows), np.nan)
    for p, (r, item) in enumerate(zip(rows, items, strict=True)):
        seq_items = np.unique(query.sequences[r])
        if stats.category[item] >= 0:
            share[p] = np.mean(stats.category[seq_items] == stats.category[item]) if len(seq_items) else 0.0
    np.testing.assert_allclose(col["category_share"], share, rtol=1e-6)
    assert np.count_nonzero(col["follows_session"]) and np.count_nonzero(col["cooccurs_last"])


def _follows_session_numpy(
    seqs: list[np.ndarray], transitions: sp.csr_matrix, rows: np.ndarray, items: np.ndarray
) -> np.ndarray:
    """The NumPy route the ranker's features were defined (and models trained) with."""
    n_items = transitions.shape[0]
    r_list, i_list, w_list = [], [], []
    for r, seq in enumerate(seqs):
        seq = np.asarray(seq, np.int64)[-10:]
        r_list.append(np.full(len(seq), r))
        i_list.append(seq)
        w_list.append(0.5 ** np.arange(len(seq) - 1, -1, -1, dtype=np.float64))
    owner, col, val = _gather_rows(transitions, np.concatenate(i_list))
    keys, sums = _summed(np.concatenate(r_list)[owner] * n_items + col, np.concatenate(w_list)[owner] * val)
    return _lookup(keys, sums, rows * n_items + items, 0.0)


def _bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, np.float64).view(np.uint64)


@pytest.mark.parametrize("seed", [0, 1])
def test_row_sum_kernel_is_bitwise_the_numpy_route(seed: int) -> None:
    """follows_session / follows_last / cooccurs_last: the compiled sums equal NumPy's
    sort-and-reduceat sums bit for bit, with sessions that click the same items again (so a key
    sums up to ten values: NumPy's sequential and eight-accumulator regimes)."""
    rng = np.random.default_rng(seed)
    n_items, n = 40, 60
    dense = rng.random((n_items, n_items)) * (rng.random((n_items, n_items)) < 0.4)
    transitions = sp.csr_matrix(dense / np.maximum(dense.sum(axis=1, keepdims=True), 1e-9))
    # sessions of 0-25 clicks over few items: the last ten repeat items; some -1 (unknown) clicks
    seqs = [rng.integers(-1, 6 if r % 2 else n_items, size=int(rng.integers(0, 26))) for r in range(n)]
    keys = np.unique(np.concatenate([r * n_items + rng.choice(n_items, 15, replace=False) for r in range(n)]))
    rows, items = keys // n_items, keys % n_items
    cand_ptr = np.searchsorted(rows, np.arange(n + 1))
    seq_ptr = np.concatenate([[0], np.cumsum([len(s) for s in seqs])])
    flat = np.concatenate(seqs).astype(np.int64)
    got = row_sums_at(transitions, seq_ptr, flat, cand_ptr, items, window=10)
    want = _follows_session_numpy(seqs, transitions, rows, items)
    np.testing.assert_array_equal(_bits(got), _bits(want))
    assert np.count_nonzero(want)
    last = np.array([s[-1] if len(s) else -1 for s in seqs], np.int64)
    got_last = row_sums_at(transitions, np.arange(n + 1), last, cand_ptr, items)
    np.testing.assert_array_equal(_bits(got_last), _bits(row_values(transitions, last, rows, items)))


def test_row_sum_kernel_sums_duplicate_entries_like_reduceat() -> None:
    """A CSR row holding one column hundreds of times (not canonical): the long pairwise
    regime (halves above 128 values) gives NumPy's bits too."""
    rng = np.random.default_rng(5)
    for count in (1, 2, 8, 9, 17, 128, 129, 130, 300, 1001):
        data = rng.random(count) * 10.0 ** rng.integers(-8, 8, size=count)
        m = sp.csr_matrix((data, np.full(count, 3), [0, 0, count]), shape=(2, 5))
        got = row_sums_at(m, np.array([0, 1]), np.array([1]), np.array([0, 2]), np.array([3, 4]))
        want = row_values(m, np.array([1]), np.zeros(2, np.int64), np.array([3, 4]))
        np.testing.assert_array_equal(_bits(got), _bits(want))
        assert got[0] == np.add.reduceat(data, [0])[0]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_generator_columns_place_each_proposal(dtype: type) -> None:
    """Score, rank and relative score of each proposal at its candidate, the defaults elsewhere;
    a best score of 0 gives inf/NaN as NumPy's division, a row without proposals NaN."""
    n_items = 7
    idx = np.array([[3, 1, 5, -1], [-1, -1, -1, -1], [2, 6, -1, -1]], np.int64)
    vals = np.array([[0.0, -0.5, -1.0, np.nan], [np.nan] * 4, [2.0, 0.1, np.nan, np.nan]], dtype)
    keys = np.array([0 * n_items + 1, 0 * n_items + 3, 0 * n_items + 4, 1 * n_items + 2, 2 * n_items + 6])
    rows = keys // n_items
    got = generator_columns(keys, rows, idx, vals, n_items, per_generator=4)
    with np.errstate(divide="ignore", invalid="ignore"):
        score = np.array([-0.5, 0.0, np.nan, np.nan, np.float64(dtype(0.1))])
        want = np.stack([score, [2.0, 1.0, 5.0, 5.0, 2.0], score / np.array([0.0, 0.0, 0.0, np.nan, 2.0])])
    np.testing.assert_array_equal(_bits(got), _bits(want))


def _lgb_model(rng: np.random.Generator, num_leaves: int, **params: Any) -> tuple[str, np.ndarray]:
    """A LambdaRank model on features with NaN in some columns only (so its splits have both
    missing types, "NaN" and "none"), and fresh rows with NaN, infinities, zeros, -0.0 and
    denormals everywhere to score, and the training rows."""
    import lightgbm as lgb

    n, m = 6000, 12
    x = rng.normal(size=(n, m)).astype(np.float32)
    x[:, 3] = np.round(x[:, 3])  # many exact zeros
    x[rng.random((n, m)) < 0.15] = np.nan
    x[:, :4][np.isnan(x[:, :4])] = 0.0  # these columns never see NaN in training
    label = (
        np.nan_to_num(x[:, 0]) + np.nan_to_num(x[:, 5]) * (x[:, 3] > 0) + rng.normal(size=n) > 0.5
    ).astype(float)
    train = lgb.Dataset(x, label=label, group=np.full(n // 50, 50))
    booster = lgb.train(
        {
            "objective": "lambdarank",
            "num_leaves": num_leaves,
            "min_data_in_leaf": 5,
            "verbosity": -1,
            "num_threads": 1,
            "deterministic": True,
            **params,
        },
        train,
        num_boost_round=30,
    )
    fresh = rng.normal(size=(3000, m)).astype(np.float32) * rng.choice([1e-3, 1.0, 1e3], size=(3000, m))
    # LightGBM reads |x| <= 1e-35f as 0: that bound and the float32 just above it
    edge = np.float32(1e-35)
    specials = [
        np.nan,
        0.0,
        -0.0,
        1e-36,
        -1e-40,
        np.inf,
        -np.inf,
        edge,
        -edge,
        np.nextafter(edge, np.float32(1)),
    ]
    for value in specials:
        fresh[rng.random(fresh.shape) < 0.03] = value
    return booster.model_to_string(), np.vstack([fresh, x[:2000]]).astype(np.float32)


@pytest.mark.skipif(not HAS_NUMBA, reason="the kernel needs Numba")
@pytest.mark.parametrize("num_leaves", [2, 15, 64])
def test_forest_kernel_scores_bitwise_like_lightgbm(num_leaves: int) -> None:
    import lightgbm as lgb

    from cartlift.recommend._forest import Forest

    rng = np.random.default_rng(num_leaves)
    model, x = _lgb_model(rng, num_leaves)
    forest = Forest.parse(model)
    assert forest is not None
    booster = lgb.Booster(model_str=model)
    np.testing.assert_array_equal(forest.predict(x), booster.predict(x, num_threads=1))
    # every threshold, and the float32 values either side of it, in the column it splits
    dump = booster.dump_model()["tree_info"]
    probes = []
    stack = [t["tree_structure"] for t in dump]
    while stack:
        node = stack.pop()
        if "split_feature" in node:
            stack += [node["left_child"], node["right_child"]]
            t = np.float32(min(node["threshold"], 3e38))
            for v in (t, np.nextafter(t, np.float32(np.inf)), np.nextafter(t, np.float32(-np.inf))):
                row = x[len(probes) % len(x)].copy()
                row[node["split_feature"]] = v
                probes.append(row)
    probes_x = np.array(probes, np.float32)
    np.testing.assert_array_equal(forest.predict(probes_x), booster.predict(probes_x, num_threads=1))


def test_forest_refuses_what_it_would_not_score_exactly() -> None:
    from cartlift.recommend._forest import Forest

    rng = np.random.default_rng(0)
    assert Forest.parse(_lgb_model(rng, 65)[0]) is None  # a bit per leaf in 64 bits
    assert Forest.parse(_lgb_model(rng, 7, zero_as_missing=True)[0]) is None
    assert Forest.parse("tree\nversion=v4\n") is None


def test_ranker_lists_are_those_of_the_booster(ranker: Ranker) -> None:
    """The compiled trees change the speed of a query, never its list: the same lists and
    scores as with LightGBM's own predict."""
    users = [*ranker.user_ids_[:40].tolist(), "nobody"]
    rng = np.random.default_rng(8)
    carts = [list(rng.choice(ranker.item_ids_, size=int(rng.integers(1, 6)))) for _ in range(40)]

    def lists() -> list[Recommendations]:
        return [
            ranker.recommend(users, k=10),
            ranker.recommend(users, k=10, exclude_seen=False),
            ranker.recommend_for_items(carts, k=10, exclude_given=False),
            ranker.recommend_for_items(carts[0], k=10),
        ]

    fast = lists()
    assert (ranker.__dict__["_forest_cache"] is not None) == HAS_NUMBA
    try:
        ranker.__dict__["_forest_cache"] = None  # LightGBM's predict
        slow = lists()
    finally:
        ranker.__dict__.pop("_forest_cache")
    for a, b in zip(fast, slow, strict=True):
        np.testing.assert_array_equal(a.indices, b.indices)
        np.testing.assert_array_equal(a.scores, b.scores)


def test_context_matrix_is_the_canonical_coo_matrix() -> None:
    from cartlift.recommend._base import _context_matrix

    rng = np.random.default_rng(3)
    seqs = [rng.integers(30, size=int(rng.integers(0, 8))).astype(np.int32) for _ in range(50)]
    got = _context_matrix(seqs, 30)
    lengths = [len(s) for s in seqs]
    ref = sp.csr_matrix(
        (np.ones(sum(lengths), np.float32), (np.repeat(np.arange(50), lengths), np.concatenate(seqs))),
        shape=(50, 30),
    )
    ref.sum_duplicates()
    ref.data[:] = 1.0
    for name in ("indptr", "indices", "data"):
        np.testing.assert_array_equal(getattr(got, name), getattr(ref, name))
        assert getattr(got, name).dtype == getattr(ref, name).dtype


@pytest.mark.skipif(not HAS_NUMBA, reason="the heap needs Numba")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_dense_topk_heap_selects_like_the_partition(dtype: type) -> None:
    from cartlift.recommend._topk import _top_k_numpy, top_k

    rng = np.random.default_rng(4)
    # few distinct values (many ties, also at the k-th place), NaN, -inf, one +inf per row
    scores = rng.integers(0, 12, size=(60, 300)).astype(dtype)
    scores[rng.random(scores.shape) < 0.1] = -np.inf
    scores[rng.random(scores.shape) < 0.05] = np.nan
    scores[np.arange(60), rng.integers(300, size=60)] = np.inf
    scores[5] = -np.inf  # nothing to return
    scores[6, 10:] = -np.inf  # fewer than k
    for k in (1, 7, 25, 299, 300, 400):
        got, ref = top_k(scores, k), _top_k_numpy(scores, k)
        np.testing.assert_array_equal(got[0], ref[0])
        np.testing.assert_array_equal(got[1], ref[1])
