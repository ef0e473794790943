"""The ranker against every single model on a seeded simulated store, scored against the
customers' true tastes (the simulator knows them): issue 19's quality goal, as the demo measures it.

Slow (the ranker fits its nine generators twice and LightGBM on ~1.7M candidate rows: minutes),
so it runs with ``make test-slow``.
"""

from __future__ import annotations

import pandas as pd
import pytest

from cartlift.recommend import temporal_split
from cartlift.recommend._registry import make_model
from cartlift.recommend._workflows import taste_ndcg
from cartlift.simulate import simulate

pytestmark = pytest.mark.slow

SINGLE_MODELS = ("als", "itemknn", "vsknn", "stan", "vstan", "popularity", "content")


def test_ranker_is_ahead_of_every_single_model_on_true_tastes() -> None:
    sim = simulate(n_users=5000, random_state=0)
    events = sim.events.to_pandas()
    events = events[events["product_id"].notna()].rename(columns={"product_id": "item_id"})
    events = events[["user_id", "item_id", "session_id", "ts", "event_type"]].sort_values("ts", kind="stable")
    catalog = sim.products.to_pandas()[["product_id", "title", "description", "category", "brand"]]
    truth: pd.DataFrame = sim.taste_ranking().select(["user_id", "product_id", "rank"]).to_pandas()
    # the demo's split: every model fitted on the first 80 % of the events
    task = temporal_split(events, test_fraction=0.2, catalog=catalog.set_index("product_id"))
    scores = {}
    for name in ("ranker", *SINGLE_MODELS):
        model = make_model(name, random_state=0).fit(task.train)
        scores[name] = taste_ndcg(model, truth, k=10)["NDCG@10"]
    best = max(SINGLE_MODELS, key=scores.__getitem__)
    assert scores["ranker"] > scores[best], scores
