"""Hybrid: blend the candidates of several recommenders, falling back for cold users and items."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from cartlift._params import Constraint, Interval, Options
from cartlift.errors import DataError
from cartlift.recommend._base import Recommender
from cartlift.recommend._content import ContentBased
from cartlift.recommend._interactions import Interactions
from cartlift.recommend._knn import ItemKNN
from cartlift.recommend._popularity import Popularity
from cartlift.recommend._query import Query
from cartlift.recommend._ranker_features import values_at
from cartlift.recommend._session import SessionKNN
from cartlift.recommend._topk import densify, top_k

__all__ = ["Hybrid"]


def _default_models() -> list[tuple[str, Recommender]]:
    return [
        ("itemknn", ItemKNN()),
        ("vsknn", SessionKNN()),
        ("content", ContentBased()),
        ("popularity", Popularity()),
    ]


class Hybrid(Recommender):
    """Several recommenders blended by reciprocal rank fusion or a weighted score sum.

    Each model proposes its ``candidates`` best items. With ``method="rrf"`` an item scores
    ``sum_m w_m / (rrf_k + rank_m)`` (Cormack et al., 2009), so models need not share a scale;
    with ``method="weighted"`` each model's candidate scores are min-max scaled per row and summed
    with the weights. A model with nothing to say (a cold user for item-kNN, no catalog for
    content) simply adds nothing, so the others fill the list: put a popularity model last as the
    safety net. Content-based models recommend products nobody has touched yet (cold items).
    Models that cannot be fitted on the data (e.g. content without a catalog) are skipped and
    listed in ``skipped_``.

    Parameters
    ----------
    models : sequence of (name, Recommender), optional
        Unfitted models (fitted in place); default item-kNN, V-SKNN, content and popularity.
    weights : sequence of float, optional
        One per model (default all 1).
    method : {"rrf", "weighted"}
        Fusion rule.
    rrf_k : float
        RRF's rank offset (60 in the original paper).
    candidates : int
        Items taken from each model per row.

    Attributes
    ----------
    active_ : list of str
        Names of the models that were fitted.
    skipped_ : dict of str to str
        Models left out, with the reason.
    """

    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {
        "method": [Options(("rrf", "weighted"))],
        "rrf_k": [Interval(float, 0, None)],
        "candidates": [Interval(int, 1, None)],
    }

    def __init__(
        self,
        models: Sequence[tuple[str, Recommender]] | None = None,
        weights: Sequence[float] | None = None,
        method: str = "rrf",
        rrf_k: float = 60.0,
        candidates: int = 200,
    ) -> None:
        self.models = models
        self.weights = weights
        self.method = method
        self.rrf_k = rrf_k
        self.candidates = candidates

    def _members(self) -> list[tuple[str, Recommender]]:
        if "_members_cache" not in self.__dict__:
            self.__dict__["_members_cache"] = (
                list(self.models) if self.models is not None else _default_models()
            )
        members: list[tuple[str, Recommender]] = self.__dict__["_members_cache"]
        return members

    def _fit(self, interactions: Interactions) -> None:
        self.__dict__.pop("_twins_cache", None)
        members = self._members()
        if self.weights is not None and len(self.weights) != len(members):
            raise DataError(
                f"{len(self.weights)} weights for {len(members)} models: give one weight per model."
            )
        self.active_: list[str] = []
        self.skipped_: dict[str, str] = {}
        for name, model in members:
            try:
                model.fit(interactions)
            except DataError as e:
                self.skipped_[name] = str(e)
                continue
            self.active_.append(name)
        if not self.active_:
            raise DataError(f"No model of the hybrid could be fitted: {self.skipped_}")

    def _active(self) -> list[tuple[float, Recommender]]:
        weights = list(self.weights) if self.weights is not None else [1.0] * len(self._members())
        return [(w, m) for w, (name, m) in zip(weights, self._members(), strict=True) if name in self.active_]

    def _partial_fit(
        self, interactions: Interactions, item_map: np.ndarray, added: sp.csr_matrix, users: np.ndarray
    ) -> None:
        self.__dict__.pop("_twins_cache", None)
        with warnings.catch_warnings():
            # the hybrid itself already warned once about unknown items
            warnings.simplefilter("ignore")
            for _, model in self._active():
                model.partial_fit(interactions)

    def _contributions(
        self, weight: float, idx: np.ndarray, vals: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One model's (row, column, fused score share) for its ranked candidates."""
        ok = idx >= 0
        rows = np.broadcast_to(np.arange(idx.shape[0])[:, None], idx.shape)[ok]
        cols = idx[ok]
        if self.method == "rrf":
            ranks = np.broadcast_to(np.arange(1, idx.shape[1] + 1), idx.shape)[ok]
            return rows, cols, weight / (self.rrf_k + ranks)
        masked = np.where(ok, vals, np.nan)
        lo = np.nanmin(masked, axis=1, initial=np.inf, keepdims=True)
        hi = np.nanmax(masked, axis=1, initial=-np.inf, keepdims=True)
        span = np.where(hi > lo, hi - lo, 1.0)
        return rows, cols, (weight * np.where(hi > lo, (vals - lo) / span, 1.0))[ok]

    def _fuse(self, ranked: list[tuple[float, np.ndarray, np.ndarray]], n: int) -> np.ndarray:
        """Fused dense scores from each model's ranked candidates (weight, columns, scores)."""
        fused = np.zeros((n, len(self.item_ids_)))
        touched = np.zeros((n, len(self.item_ids_)), bool)
        for weight, idx, vals in ranked:
            rows, cols, contrib = self._contributions(weight, idx, vals)
            np.add.at(fused, (rows, cols), contrib)
            touched[rows, cols] = True
        fused[~touched] = -np.inf
        return fused

    def _score(self, query: Query) -> np.ndarray:
        # each model's candidates are taken after exclusions and filters, so none is wasted
        return self._fuse(self._member_lists(query, {}), len(query.rows))

    def _ranked(self, query: Query, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self._ranked_with(query, k, {})

    def _ranked_with(
        self, query: Query, k: int, known: dict[int, tuple[Recommender, np.ndarray, np.ndarray]]
    ) -> tuple[np.ndarray, np.ndarray]:
        """`_ranked`, fused over the candidates only (the dense fusion's list, tested), and with
        the lists of ``known`` models (``id(model): (model, idx, vals)``, this query's, ranked at
        least ``candidates`` deep) standing in for members that score exactly like them: the
        ranker asks V-SKNN and popularity itself before it asks the hybrid."""
        n, n_items = len(query.rows), len(self.item_ids_)
        keys_list, contrib_list = [], []
        for weight, idx, vals in self._member_lists(query, known):
            rows, cols, contrib = self._contributions(weight, idx, vals)
            keys_list.append(rows * n_items + cols)
            contrib_list.append(contrib)
        idx_out = np.full((n, k), -1, np.int64)
        vals_out = np.full((n, k), np.nan)
        keys = np.unique(np.concatenate(keys_list)) if keys_list else np.zeros(0, np.int64)
        # summed member by member from 0, in the members' order, as `_fuse` adds them
        fused = np.zeros(len(keys))
        for member_keys, contrib in zip(keys_list, contrib_list, strict=True):
            fused[np.searchsorted(keys, member_keys)] += contrib  # a member names an item once a row
        rows, cols = keys // n_items, keys % n_items
        keep = np.isfinite(fused) | (fused == np.inf)
        if query.exclude is not None and query.exclude.nnz:
            keep &= values_at(query.exclude, rows, cols) == 0
        if query.allowed is not None:
            keep &= np.broadcast_to(np.atleast_2d(query.allowed), (n, n_items))[rows, cols]
        rows, cols, fused = rows[keep], cols[keep], fused[keep]
        order = np.lexsort((cols, -fused, rows))  # best first, ties by lower column (`top_k`)
        rows, cols, fused = rows[order], cols[order], fused[order]
        rank = np.arange(len(rows)) - np.searchsorted(rows, rows, side="left")
        top = rank < k
        idx_out[rows[top], rank[top]] = cols[top]
        vals_out[rows[top], rank[top]] = fused[top]
        return idx_out, vals_out

    def _member_lists(
        self, query: Query, known: dict[int, tuple[Recommender, np.ndarray, np.ndarray]]
    ) -> list[tuple[float, np.ndarray, np.ndarray]]:
        """Each active member's (weight, top ``candidates`` columns, scores) for the query."""
        out = []
        for weight, model in self._active():
            twin = next((got for got in known.values() if self._scores_like(model, got[0])), None)
            if twin is not None and twin[1].shape[1] >= self.candidates:
                # a longer list of the same total order (score, then lower column) begins with
                # the shorter one
                out.append((weight, twin[1][:, : self.candidates], twin[2][:, : self.candidates]))
            else:
                out.append((weight, *model._ranked(query, self.candidates)))
        return out

    def _scores_like(self, member: Recommender, other: Recommender) -> bool:
        """Whether ``other`` is ``member``'s twin: the same class and parameters, fitted to the
        same state (compared once, until the hybrid is fitted again)."""
        if member is other:
            return True
        cache: dict[tuple[int, int], tuple[Recommender, bool]] = self.__dict__.setdefault("_twins_cache", {})
        key = (id(member), id(other))
        if key not in cache:
            cache[key] = (other, _same_state(member, other))
        return cache[key][1]

    def _similar(self, items: np.ndarray) -> np.ndarray:
        ranked = []
        for w, m in self._active():
            scores = densify(m._similar(items))
            scores[np.arange(len(items)), items] = -np.inf
            ranked.append((w, *top_k(scores, self.candidates)))
        return self._fuse(ranked, len(items))

    # -- persistence: the members are saved inside the same file, each under its own prefix ------
    def _json_params(self) -> dict[str, Any]:
        params = self.get_params()
        params.pop("models")
        return params

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        scalars, arrays = super()._get_state()
        members = []
        for i, (name, model) in enumerate(self._members()):
            entry: dict[str, Any] = {
                "name": name,
                "class": type(model).__name__,
                "params": model._json_params(),
            }
            if name in self.active_:
                sub_scalars, sub_arrays = model._get_state()
                entry["state"] = sub_scalars
                arrays.update({f"m{i}:{k}": v for k, v in sub_arrays.items()})
            members.append(entry)
        scalars["members"] = members
        return scalars, arrays

    @classmethod
    def _from_saved(cls, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> Recommender:
        state = dict(meta["state"])
        members = []
        for i, entry in enumerate(state.pop("members")):
            sub_cls = Recommender._registry[entry["class"]]
            prefix = f"m{i}:"
            if "state" in entry:
                sub = sub_cls._from_saved(
                    {"params": entry["params"], "state": entry["state"]},
                    {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)},
                )
            else:
                sub = sub_cls(**entry["params"])
            members.append((entry["name"], sub))
        model = cls(models=members, **meta["params"])
        model._set_state(state, {k: v for k, v in arrays.items() if ":" not in k})
        return model


def _same_state(a: Recommender, b: Recommender) -> bool:
    """Same class, parameters and fitted state (every saved scalar and array equal)."""
    if type(a) is not type(b) or a._json_params() != b._json_params():
        return False
    try:
        a_scalars, a_arrays = a._get_state()
        b_scalars, b_arrays = b._get_state()
    except AttributeError:  # not fitted
        return False
    return (
        a_scalars == b_scalars
        and a_arrays.keys() == b_arrays.keys()
        and all(
            a_arrays[k].dtype == b_arrays[k].dtype
            and np.array_equal(a_arrays[k], b_arrays[k], equal_nan=a_arrays[k].dtype.kind in "fc")
            for k in a_arrays
        )
    )
