"""Models by name, for the CLI and the evaluation: ``make_model("itemknn")``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from cartlift._random import RandomState
from cartlift.errors import InvalidParameterError
from cartlift.recommend._base import Recommender
from cartlift.recommend._content import ContentBased
from cartlift.recommend._factor import ALS, EASE
from cartlift.recommend._hybrid import Hybrid
from cartlift.recommend._knn import ImplicitItemKNN, ItemKNN, UserKNN
from cartlift.recommend._popularity import Popularity
from cartlift.recommend._ranker import Ranker
from cartlift.recommend._rules import AssociationRules
from cartlift.recommend._session import SessionKNN
from cartlift.recommend._stan import STAN, VSTAN

__all__ = ["MODELS", "make_model"]

MODELS: Final[dict[str, tuple[Callable[..., Recommender], dict[str, Any], str]]] = {
    "popularity": (Popularity, {}, "most popular items (distinct users)"),
    "popularity-category": (Popularity, {"mode": "category"}, "popular in the user's categories"),
    "trending": (Popularity, {"mode": "trending"}, "popularity decayed with a 7-day half-life"),
    "itemknn": (ItemKNN, {}, "item-kNN, cosine with shrinkage (own kernel)"),
    "implicit-itemknn": (ImplicitItemKNN, {}, "implicit's CosineRecommender (reference)"),
    "userknn": (UserKNN, {}, "user-kNN, cosine"),
    "als": (ALS, {}, "implicit ALS, fold-in for new users"),
    "ease": (EASE, {}, "EASE closed form (catalogues up to 10k items)"),
    "content": (ContentBased, {}, "TF-IDF of title, description, category, brand"),
    "sknn": (SessionKNN, {"variant": "sknn"}, "session-kNN, set cosine"),
    "vsknn": (SessionKNN, {"variant": "vsknn"}, "session-kNN, position decay + idf"),
    "stan": (STAN, {}, "session-kNN with sequence and time decays (Garg et al. 2019)"),
    "vstan": (VSTAN, {}, "STAN + V-SKNN's vote weights (Ludewig et al. 2021)"),
    "rules": (AssociationRules, {}, "frequently bought together (FP-growth rules)"),
    "hybrid": (Hybrid, {}, "RRF of item-kNN, V-SKNN, content, popularity"),
    "ranker": (Ranker, {}, "LightGBM LambdaRank over VSTAN, STAN, V-SKNN, item-kNN, ALS, hybrid ..."),
}
"""Name -> (class, default arguments, one-line description)."""


def make_model(name: str, *, random_state: RandomState = None, **params: Any) -> Recommender:
    """A new, unfitted model by name (see :data:`MODELS`), with optional parameter overrides.

    ``random_state`` is passed to models that take one.
    """
    if name not in MODELS:
        raise InvalidParameterError(f"Unknown model {name!r}; choose from: {', '.join(MODELS)}.")
    cls, defaults, _ = MODELS[name]
    args = {**defaults, **params}
    model = cls(**args)
    if "random_state" in model.get_params() and "random_state" not in params:
        model.set_params(random_state=random_state)
    return model
