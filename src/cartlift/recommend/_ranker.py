"""A two-stage recommender: several generators propose candidates, a LightGBM LambdaRank model orders them.

Rank fusion with fixed weights cannot know which source to trust for which query; a learned
ranker can (the design of Metarank and of Gorse's ranking stage). Training never looks ahead:

1. the sessions that start in the last ``holdout`` share of the time are set aside;
2. fresh copies of the generators are fitted on the events before that time;
3. every prefix of a set-aside session is a training query whose label is its next click, with
   the candidates and features (:mod:`cartlift.recommend._ranker_features`) of those copies;
4. LightGBM learns to rank (``lambdarank``, NDCG truncated at ``truncation``);
5. the generators are fitted again on all the events, for serving.

``objective="margin"`` ranks by expected margin instead of the click: the ranker's scores of a
query's candidates become probabilities by a softmax, each multiplied by the item's margin
(``price - cost`` from the catalog).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, ClassVar

import lightgbm as lgb
import numpy as np
import pandas as pd
import scipy.sparse as sp

from cartlift._params import Constraint, Interval, Options
from cartlift._random import RandomState, check_random_state
from cartlift.errors import DataError
from cartlift.recommend._base import Recommender, take_rows
from cartlift.recommend._content import ContentBased
from cartlift.recommend._factor import ALS
from cartlift.recommend._forest import Forest
from cartlift.recommend._hybrid import Hybrid
from cartlift.recommend._interactions import Interactions
from cartlift.recommend._kernels import HAS_NUMBA
from cartlift.recommend._knn import ItemKNN
from cartlift.recommend._popularity import Popularity
from cartlift.recommend._query import Query
from cartlift.recommend._ranker_features import (
    STAT_FIELDS,
    Candidates,
    ItemStats,
    candidates,
    feature_names,
    values_at,
)
from cartlift.recommend._session import SessionKNN
from cartlift.recommend._stan import STAN, VSTAN

__all__ = ["Ranker"]

_LGB_PARAMS: dict[str, Any] = {
    "objective": "lambdarank",
    "metric": "ndcg",
    "learning_rate": 0.05,
    "feature_fraction": 0.9,
    "deterministic": True,
    "force_col_wise": True,
    "num_threads": 1,  # OpenMP threads spin on a busy machine: one thread was 100x faster here
    "verbosity": -1,
}


def relevance_grade(value: np.ndarray) -> np.ndarray:
    """LambdaRank's label of a candidate from its weighted events in the label window.

    0 untouched, 1 touched, 2 engaged with (weights summing to 3 or more: a cart add or
    purchase at the default weights, or three views). A returning user's carts follow their
    taste more closely than their views do; the simulated store's true taste is exactly the
    rate of cart adds per page view. A session's next click has weight 1, grade 1.
    """
    return (value > 0).astype(np.float64) + (value >= 3.0)


def default_generators() -> list[tuple[str, Recommender]]:
    """VSTAN, STAN, V-SKNN, item-kNN (self included: repeats are frequent), ALS, popularity,
    trending, the hybrid (its fused rank is a feature: a strong one for returning users) and
    content (products nobody touched yet; skipped without a catalog)."""
    return [
        ("vstan", VSTAN()),
        ("stan", STAN()),
        ("vsknn", SessionKNN()),
        ("itemknn", ItemKNN(include_self=True)),
        ("als", ALS(random_state=0)),
        ("popularity", Popularity()),
        ("trending", Popularity(mode="trending")),
        ("hybrid", Hybrid()),
        ("content", ContentBased()),
    ]


def _clone(model: Recommender) -> Recommender:
    return type(model)(**model.get_params())


class Ranker(Hybrid):
    """Candidates from several generators re-ranked by a LightGBM LambdaRank model.

    Parameters
    ----------
    models : sequence of (name, Recommender), optional
        Candidate generators, unfitted; default :func:`default_generators`. The session's own
        items and the items that followed its last click are always candidates too.
    candidates : int
        Items taken from each generator per query.
    holdout : float
        Share of the time span (the latest) whose sessions train the ranker.
    max_queries : int
        Most training queries (a random sample of the session prefixes beyond it).
    n_estimators : int
        Boosting rounds.
    num_leaves, min_data_in_leaf : int
        Size of each tree. Small trees with many rows per leaf: a store's returning users give
        only a few thousand training queries, and larger trees learned their noise (NDCG@10 on
        the simulated store 0.050 with 31 leaves of 50 rows and 200 rounds, 0.054 with these).
    truncation : int
        LambdaRank's truncation level (the list length that matters).
    objective : {"click", "margin"}
        Rank by the click the ranker predicts, or by expected margin.
    blend : float
        For returning users (a home page, an e-mail), weight of ALS's rank beside the learned
        order in a reciprocal-rank fusion (``1 / (60 + rank)``; 0: the learned order alone).
        The learned order predicts the next days' touches, popular items included; ALS's
        factors smooth a user's whole history. Equal weights (1.0) lifted NDCG@10 against the
        simulated store's true tastes from 0.223 to 0.241 (with graded labels, seed 0) and left its own validation
        (held-out users' later touches) unchanged (0.1317 against 0.1321). Sessions and carts
        are ranked by the learned order alone.
    random_state : int, Generator or None

    Attributes
    ----------
    booster_ : str
        The LightGBM model, as text.
    features_ : list of str
    training_ : dict
        Training queries, candidate rows, and the share of queries whose next click was among
        the candidates (the ceiling of any re-ranking).
    """

    weights = None  # the hybrid's fusion weights: the ranker learns its own
    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {
        "candidates": [Interval(int, 1, None)],
        "holdout": [Interval(float, 0, 1, closed="neither")],
        "max_queries": [Interval(int, 10, None)],
        "n_estimators": [Interval(int, 1, None)],
        "num_leaves": [Interval(int, 2, None)],
        "min_data_in_leaf": [Interval(int, 1, None)],
        "truncation": [Interval(int, 1, None)],
        "objective": [Options(("click", "margin"))],
        "blend": [Interval(float, 0, None)],
    }

    def __init__(
        self,
        models: Sequence[tuple[str, Recommender]] | None = None,
        candidates: int = 50,
        holdout: float = 0.2,
        max_queries: int = 10_000,
        n_estimators: int = 100,
        num_leaves: int = 15,
        min_data_in_leaf: int = 200,
        truncation: int = 20,
        objective: str = "click",
        blend: float = 1.0,
        random_state: RandomState = None,
    ) -> None:
        self.models = models
        self.candidates = candidates
        self.holdout = holdout
        self.max_queries = max_queries
        self.n_estimators = n_estimators
        self.num_leaves = num_leaves
        self.min_data_in_leaf = min_data_in_leaf
        self.truncation = truncation
        self.objective = objective
        self.blend = blend
        self.random_state = random_state

    def _members(self) -> list[tuple[str, Recommender]]:
        if "_members_cache" not in self.__dict__:
            self.__dict__["_members_cache"] = (
                list(self.models) if self.models is not None else default_generators()
            )
        members: list[tuple[str, Recommender]] = self.__dict__["_members_cache"]
        return members

    def _active(self) -> list[tuple[float, Recommender]]:
        return [(1.0, m) for name, m in self._members() if name in self.active_]

    def _generators(self) -> list[tuple[str, Recommender]]:
        return [(name, m) for name, m in self._members() if name in self.active_]

    # -- training ------------------------------------------------------------------------------
    def _fit(self, interactions: Interactions) -> None:
        if self.objective == "margin" and (
            interactions.catalog is None or "cost" not in interactions.catalog.columns
        ):
            raise DataError("Ranker(objective='margin') needs a catalog with price and cost per product.")
        rng = check_random_state(self.random_state)
        frame = self.training_frame(interactions, rng=rng)
        train_set = lgb.Dataset(
            frame["features"], label=frame["labels"], group=frame["groups"], feature_name=self.features_
        )
        params = {
            **_LGB_PARAMS,
            "num_leaves": self.num_leaves,
            "min_data_in_leaf": self.min_data_in_leaf,
            "lambdarank_truncation_level": self.truncation,
            "eval_at": [self.truncation],
            "seed": int(rng.integers(2**31 - 1)),
        }
        self.__dict__["_booster_cache"] = lgb.train(params, train_set, num_boost_round=self.n_estimators)
        self.booster_ = self.__dict__["_booster_cache"].model_to_string()
        self.__dict__.pop("_forest_cache", None)  # a refit's trees are new
        # serving: the generators and the item statistics learn from everything
        super()._fit(interactions)
        stats = ItemStats.of(interactions)
        for name in STAT_FIELDS:
            setattr(self, f"stat_{name}_", getattr(stats, name))
        self.__dict__["_stats"] = stats

    def training_frame(
        self, interactions: Interactions, *, rng: np.random.Generator, cut: float | None = None
    ) -> dict[str, Any]:
        """The ranker's training data: features of the candidates of the held-out session prefixes.

        Parameters
        ----------
        interactions : Interactions
        rng : Generator
            Draws the query sample when there are more than ``max_queries``.
        cut : float, optional
            The training cut (epoch seconds); default the start of the last ``holdout`` of the span.

        Returns
        -------
        dict
            ``features`` (n_rows, n_features) float32, ``labels`` (n_rows,), ``groups`` (rows per
            query), ``query_keys`` (session id and prefix length of each query, one per group).
        """
        early, late = self._split(interactions, cut)
        generators = []
        skipped: dict[str, str] = {}
        for name, model in self._members():
            fresh = _clone(model)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    fresh.fit(early)
            except DataError as e:
                skipped[name] = str(e)
                continue
            generators.append((name, fresh))
        if not generators:
            raise DataError(f"No candidate generator of the ranker could be fitted: {skipped}")
        self.features_ = feature_names([n for n, _ in generators])
        stats = ItemStats.of(early)
        query, relevant, keys, returning = self._queries(early, late, generators[0][1], rng)
        exclude = query.exclude if query.exclude is not None else sp.csr_matrix(query.history.shape)
        features, labels, groups, kept, values = [], [], [], [], []
        step = 1024
        hit = 0
        for start in range(0, len(keys), step):
            part = slice(start, start + step)
            sub = Query(query.rows[part], query.history[part], query.sequences[part], exclude=exclude[part])
            cand = candidates(sub, generators, stats, self.candidates, returning=returning[part])
            value = values_at(relevant[part], cand.rows, cand.items)
            label = relevance_grade(value)
            size = np.bincount(cand.rows, minlength=len(sub.rows))
            positive = np.bincount(cand.rows, weights=label, minlength=len(sub.rows)) > 0
            hit += int(positive.sum())
            keep = positive[cand.rows]  # a query whose target is no candidate teaches nothing
            features.append(cand.features[keep])
            labels.append(label[keep])
            values.append(value[keep])
            groups.append(size[positive])
            kept.append(keys[part][positive])
        if not sum(int(g.sum()) for g in groups):
            raise DataError(
                "No held-out next click was among the candidates: too little data to train a ranker."
            )
        self.training_ = {
            "queries": len(keys),
            "rows": int(sum(len(x) for x in labels)),
            "candidate_recall": round(hit / max(len(keys), 1), 4),
            "generators": [n for n, _ in generators],
            "skipped": skipped,
        }
        return {
            "features": np.concatenate(features),
            "labels": np.concatenate(labels),
            "relevance": np.concatenate(values),
            "groups": np.concatenate(groups),
            "query_keys": np.concatenate(kept),
        }

    def _split(self, data: Interactions, cut: float | None) -> tuple[Interactions, pd.DataFrame]:
        """Events before the cut (to fit the generators) and the ordered clicks of the later sessions."""
        frame = data.to_frame()
        first = frame.groupby("session_id")["ts"].transform("min")
        lo, hi = float(frame["ts"].min()), float(frame["ts"].max())
        if cut is None:
            cut = hi - self.holdout * (hi - lo)
        early = frame[frame["ts"] < cut]
        late = frame[first >= cut]
        if early.empty or late.empty:
            raise DataError(
                "The ranker needs events on both sides of its training cut: "
                f"the data spans {hi - lo:.0f} s and holdout is {self.holdout}."
            )
        early_data = Interactions.from_frame(early, item_ids=data.item_ids, catalog=data.catalog)
        return early_data, late

    def _prefix_queries(
        self, early: Interactions, late: pd.DataFrame, fitted: Recommender, rng: np.random.Generator
    ) -> tuple[Query, np.ndarray, np.ndarray]:
        """Every prefix of the late sessions as a query (its user's earlier history included)."""
        item_col = pd.Index(early.item_ids).get_indexer(late["item_id"])
        late = late.assign(col=item_col).sort_values(["session_id", "ts"], kind="stable")
        sessions = late.groupby("session_id", sort=False)
        pairs: list[tuple[str, str, np.ndarray, int]] = []
        for session, group in sessions:
            seq = group["col"].to_numpy(np.int64)
            user = str(group["user_id"].iloc[0])
            for t in range(1, len(seq)):
                pairs.append((user, str(session), seq[:t], int(seq[t])))
        if not pairs:
            raise DataError("No held-out session has two clicks: the ranker has nothing to learn from.")
        if len(pairs) > self.max_queries:
            chosen = np.sort(rng.choice(len(pairs), self.max_queries, replace=False))
            pairs = [pairs[i] for i in chosen]
        rows = fitted._user_rows(np.asarray([p[0] for p in pairs], dtype=object))
        seqs = [p[2] for p in pairs]
        lengths = np.array([len(s) for s in seqs])
        prefix = sp.csr_matrix(
            (np.ones(int(lengths.sum())), (np.repeat(np.arange(len(seqs)), lengths), np.concatenate(seqs))),
            shape=(len(seqs), early.n_items),
        )
        prefix.sum_duplicates()
        prefix.data[:] = 1.0
        history = (take_rows(fitted.user_items_, rows) + prefix).tocsr()
        targets = np.array([p[3] for p in pairs], np.int64)
        relevant = sp.csr_matrix(
            (np.ones(len(pairs)), (np.arange(len(pairs)), targets)), shape=(len(pairs), early.n_items)
        )
        query = Query(rows.astype(np.int64), history, seqs, exclude=sp.csr_matrix(history.shape))
        keys = np.array([(p[1], len(p[2])) for p in pairs], dtype=object)
        return query, relevant, keys

    def _queries(
        self, early: Interactions, late: pd.DataFrame, fitted: Recommender, rng: np.random.Generator
    ) -> tuple[Query, sp.csr_matrix, np.ndarray, np.ndarray]:
        """Session prefixes (what comes next) and, for users known before the cut, their state at
        the cut (what they touch after it): the two questions the ranker serves, told apart by the
        ``returning`` feature (the last array: True for the users' states)."""
        prefix, relevant, keys = self._prefix_queries(early, late, fitted, rng)
        users = self._state_queries(early, late, fitted)
        if users is None:
            return prefix, relevant, keys, np.zeros(len(keys), bool)
        query, user_relevant, user_keys = users
        assert prefix.exclude is not None and query.exclude is not None
        merged = Query(
            np.concatenate([prefix.rows, query.rows]),
            sp.vstack([prefix.history, query.history]).tocsr(),
            [*prefix.sequences, *query.sequences],
            exclude=sp.vstack([prefix.exclude, query.exclude]).tocsr(),
        )
        returning = np.repeat([False, True], [len(keys), len(user_keys)])
        return (
            merged,
            sp.vstack([relevant, user_relevant]).tocsr(),
            np.concatenate([keys, user_keys]),
            returning,
        )

    def _state_queries(
        self, early: Interactions, late: pd.DataFrame, fitted: Recommender
    ) -> tuple[Query, sp.csr_matrix, np.ndarray] | None:
        rows = fitted._user_rows(late["user_id"].astype(str).to_numpy(dtype=object))
        cols = pd.Index(early.item_ids).get_indexer(late["item_id"])
        ok = (rows >= 0) & (cols >= 0)
        if not ok.any():
            return None
        # everything each user touched after the cut, items seen before included: the question
        # is asked with and without seen items (`recommend(..., exclude_seen=...)`), and repeats
        # are part of what a returning user does
        weight = late["weight"].to_numpy(np.float64)[ok]
        later = sp.csr_matrix((weight, (rows[ok], cols[ok])), shape=fitted.user_items_.shape)
        later.sum_duplicates()
        users = np.flatnonzero(np.diff(later.indptr) > 0)[: self.max_queries]
        if not len(users):
            return None
        history = take_rows(fitted.user_items_, users)
        seqs = [fitted.seq_items_[fitted.seq_indptr_[u] : fitted.seq_indptr_[u + 1]] for u in users]
        query = Query(users.astype(np.int64), history, seqs, exclude=sp.csr_matrix(history.shape))
        keys = np.array([(f"user:{fitted.user_ids_[u]}", 0) for u in users], dtype=object)
        return query, take_rows(later, users), keys

    # -- serving -------------------------------------------------------------------------------
    def _booster(self) -> lgb.Booster:
        booster = self.__dict__.get("_booster_cache")
        if booster is None:
            booster = lgb.Booster(model_str=self.booster_)
            self.__dict__["_booster_cache"] = booster
        return booster

    def _predict(self, features: np.ndarray) -> np.ndarray:
        """The booster's raw scores of the candidate rows: by the compiled kernel of
        :mod:`cartlift.recommend._forest` (the same numbers, ~6x faster on one query's ~500 rows)
        when it reads this model, else by LightGBM."""
        if "_forest_cache" not in self.__dict__:
            self.__dict__["_forest_cache"] = Forest.parse(self.booster_) if HAS_NUMBA else None
        forest: Forest | None = self.__dict__["_forest_cache"]
        if forest is not None:
            return forest.predict(features)
        return np.asarray(self._booster().predict(features, num_threads=1), np.float64)

    def _item_stats(self) -> ItemStats:
        if "_stats" not in self.__dict__:
            fields = {name: getattr(self, f"stat_{name}_") for name in STAT_FIELDS}
            self.__dict__["_stats"] = ItemStats(sessions_t=fields["sessions"].T.tocsr(), **fields)
        stats: ItemStats = self.__dict__["_stats"]
        return stats

    def _score(self, query: Query) -> sp.csr_matrix:
        cand = candidates(query, self._generators(), self._item_stats(), self.candidates)
        return self._to_scores(cand, len(query.rows))

    def _ranked(self, query: Query, k: int) -> tuple[np.ndarray, np.ndarray]:
        # the candidates already left out excluded and filtered items: order them directly,
        # without the sparse score matrix (its constructors cost more than the sort of a row)
        cand = candidates(query, self._generators(), self._item_stats(), self.candidates)
        n = len(query.rows)
        idx = np.full((n, k), -1, np.int64)
        vals = np.full((n, k), np.nan)
        if not len(cand.rows):
            return idx, vals
        prob = self._probabilities(cand, n)
        order = np.lexsort((cand.items, -prob, cand.rows))  # best first, ties by lower column
        rows = cand.rows[order]
        rank = np.arange(len(order)) - np.searchsorted(rows, rows, side="left")
        top = rank < k
        idx[rows[top], rank[top]] = cand.items[order][top]
        vals[rows[top], rank[top]] = prob[order][top]
        return idx, vals

    def _to_scores(self, cand: Candidates, n: int) -> sp.csr_matrix:
        shape = (n, len(self.item_ids_))
        if not len(cand.rows):
            return sp.csr_matrix(shape)
        return sp.csr_matrix((self._probabilities(cand, n), (cand.rows, cand.items)), shape=shape)

    def _probabilities(self, cand: Candidates, n: int) -> np.ndarray:
        """The score of each candidate pair: the ranker's, as a softmax per row (for returning
        users the fused order's shares, `_fused`), times the margin for ``objective="margin"``;
        always positive."""
        raw = self._predict(cand.features)
        fused = self._fused(cand, raw, n)
        # per-row softmax: positive scores (so none is mistaken for "no evidence") and, for the
        # margin objective, probabilities to weigh
        row_max = np.full(n, -np.inf)
        np.maximum.at(row_max, cand.rows, raw)
        expo = np.exp(raw - row_max[cand.rows])
        prob = expo / np.bincount(cand.rows, weights=expo, minlength=n)[cand.rows]
        if fused is not None:
            prob = np.where(fused > 0, fused, prob)
        if self.objective == "margin":
            margin = self._item_stats().margin[cand.items]
            prob = prob * np.maximum(np.nan_to_num(margin, nan=0.0), 0.0) + 1e-12 * prob
        return prob + 1e-300

    def _fused(self, cand: Candidates, raw: np.ndarray, n: int) -> np.ndarray | None:
        """Reciprocal-rank fusion of the learned order and ALS's for returning users' rows, as
        shares of each row's total (0 on other rows); None when there is nothing to blend."""
        names = self.features_
        if not self.blend or "als_rank" not in names:
            return None
        back = cand.features[:, names.index("returning")] > 0
        if not back.any():
            return None
        order = np.lexsort((-raw, cand.rows))
        start = np.searchsorted(cand.rows[order], np.arange(n))
        rank = np.empty(len(raw))
        rank[order] = np.arange(len(raw)) - start[cand.rows[order]] + 1.0
        als_rank = cand.features[:, names.index("als_rank")].astype(np.float64)
        fused = np.where(back, 1.0 / (60.0 + rank) + self.blend / (60.0 + als_rank), 0.0)
        total = np.bincount(cand.rows, weights=fused, minlength=n)
        return fused / np.maximum(total[cand.rows], 1e-300)

    def _similar(self, items: np.ndarray) -> sp.csr_matrix:
        history = sp.csr_matrix(
            (np.ones(len(items)), (np.arange(len(items)), items)), shape=(len(items), len(self.item_ids_))
        )
        query = Query(np.full(len(items), -1, np.int64), history, [np.array([i]) for i in items])
        return self._score(query)
