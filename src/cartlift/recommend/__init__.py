"""Recommendations: one base class, the algorithms, business filters and offline evaluation.

>>> from cartlift.recommend import Interactions, ItemKNN
>>> model = ItemKNN().fit(Interactions.from_store(store))        # doctest: +SKIP
>>> recs = model.recommend(["u1", "u2"], k=10)                   # doctest: +SKIP
>>> recs.ids, recs.scores                                        # doctest: +SKIP
"""

from cartlift.recommend._base import Recommender
from cartlift.recommend._content import ContentBased
from cartlift.recommend._evaluate import (
    DEFAULT_METRICS,
    Leaderboard,
    PairedTest,
    bootstrap_ci,
    evaluate,
    paired_test,
)
from cartlift.recommend._factor import ALS, EASE
from cartlift.recommend._filters import AllOf, ExcludeItems, InCategory, InStock, ItemFilter
from cartlift.recommend._hybrid import Hybrid
from cartlift.recommend._interactions import DEFAULT_EVENT_WEIGHTS, Interactions
from cartlift.recommend._io import read_baskets, read_yoochoose
from cartlift.recommend._kernels import HAS_NUMBA, knn_all_pairs
from cartlift.recommend._knn import ImplicitItemKNN, ItemKNN, UserKNN
from cartlift.recommend._metrics import (
    average_precision_at_k,
    catalog_coverage,
    hit_rate_at_k,
    hits,
    ndcg_at_k,
    novelty,
    precision_at_k,
    recall_at_k,
    reciprocal_rank_at_k,
)
from cartlift.recommend._popularity import Popularity
from cartlift.recommend._query import Query, Recommendations
from cartlift.recommend._ranker import Ranker
from cartlift.recommend._registry import MODELS, make_model
from cartlift.recommend._rules import (
    AssociationRules,
    FrequentItemsets,
    association_rules,
    basket_matrix,
    frequent_itemsets,
)
from cartlift.recommend._served import ServedRecommender, served_recommender
from cartlift.recommend._session import SessionKNN
from cartlift.recommend._split import EvalTask, leave_last_out, next_item, temporal_split
from cartlift.recommend._stan import STAN, VSTAN
from cartlift.recommend._workflows import load_or_train

__all__ = [
    "ALS",
    "DEFAULT_EVENT_WEIGHTS",
    "DEFAULT_METRICS",
    "EASE",
    "HAS_NUMBA",
    "MODELS",
    "STAN",
    "VSTAN",
    "AllOf",
    "AssociationRules",
    "ContentBased",
    "EvalTask",
    "ExcludeItems",
    "FrequentItemsets",
    "Hybrid",
    "ImplicitItemKNN",
    "InCategory",
    "InStock",
    "Interactions",
    "ItemFilter",
    "ItemKNN",
    "Leaderboard",
    "PairedTest",
    "Popularity",
    "Query",
    "Ranker",
    "Recommendations",
    "Recommender",
    "ServedRecommender",
    "SessionKNN",
    "UserKNN",
    "association_rules",
    "average_precision_at_k",
    "basket_matrix",
    "bootstrap_ci",
    "catalog_coverage",
    "evaluate",
    "frequent_itemsets",
    "hit_rate_at_k",
    "hits",
    "knn_all_pairs",
    "leave_last_out",
    "load_or_train",
    "make_model",
    "ndcg_at_k",
    "next_item",
    "novelty",
    "paired_test",
    "precision_at_k",
    "read_baskets",
    "read_yoochoose",
    "recall_at_k",
    "reciprocal_rank_at_k",
    "served_recommender",
    "temporal_split",
]
