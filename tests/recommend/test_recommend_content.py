"""Content-based TF-IDF through the mixin; it reads the catalogue and serves untouched products."""

from __future__ import annotations

import pandas as pd
import pytest
from _recommend_mixin import RecommenderTestMixin

from cartlift.errors import DataError
from cartlift.recommend import ContentBased, Interactions


class TestContentBased(RecommenderTestMixin):
    def make_model(self) -> ContentBased:
        return ContentBased()


def test_similar_items_share_category_and_brand(interactions: Interactions) -> None:
    model = ContentBased().fit(interactions)
    # p0: acme shoe; the other acme shoes are p12 and p24 (index = 0 mod 12)
    assert set(model.similar_items("p0", k=2).to_lists()[0]) == {"p12", "p24"}


def test_untouched_products_can_be_recommended(interactions: Interactions) -> None:
    model = ContentBased().fit(interactions)
    recs = model.recommend_for_items(["p12"], k=2).to_lists()[0]
    # p24 has no interactions; with p0 it is one of the two other acme shoes
    assert set(recs) == {"p0", "p24"}
    assert model.user_items_[:, 24].nnz == 0


def test_needs_a_catalog(events: pd.DataFrame) -> None:
    with pytest.raises(DataError, match="product attributes"):
        ContentBased().fit(Interactions.from_frame(events))
