"""Content-based recommendations: TF-IDF of the products' title, description, category and brand."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd
import scipy.sparse as sp

from cartlift._params import Constraint, Interval
from cartlift.errors import DataError
from cartlift.recommend._base import Recommender
from cartlift.recommend._interactions import Interactions
from cartlift.recommend._knn import _evidence
from cartlift.recommend._query import Query

__all__ = ["ContentBased"]

FIELDS = ("title", "description", "category", "brand")


class ContentBased(Recommender):
    """Items whose text resembles what the user interacted with (works for brand-new products).

    Each product becomes an L2-normalised TF-IDF vector of its title, description, category and
    brand (category and brand also as whole tokens, so "running shoes" the category is one
    feature). A user's profile is the weighted sum of the vectors of their items; items are
    scored by cosine to the profile.

    Parameters
    ----------
    max_features : int
        Vocabulary size (most frequent terms).
    min_df : int
        Ignore terms in fewer products.

    Attributes
    ----------
    item_features_ : csr_matrix of float32, shape (n_items, n_features)
        TF-IDF rows (zero for products without text).
    """

    needs_catalog = True
    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {
        "max_features": [Interval(int, 1, None)],
        "min_df": [Interval(int, 1, None)],
    }

    def __init__(self, max_features: int = 50_000, min_df: int = 1) -> None:
        self.max_features = max_features
        self.min_df = min_df

    def _fit(self, interactions: Interactions) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer

        catalog = interactions.catalog
        if catalog is None or not any(f in catalog.columns for f in FIELDS):
            raise DataError(
                "ContentBased needs product attributes (title, description, category, brand): "
                "load a catalog into the store's products table first."
            )
        text = _documents(catalog)
        if not text.str.strip().any():
            raise DataError("Every product's title, description, category and brand is empty.")
        vectorizer = TfidfVectorizer(
            max_features=self.max_features,
            min_df=self.min_df,
            sublinear_tf=True,
            dtype=np.float32,
            token_pattern=r"(?u)\b\w+\b",
        )
        self.item_features_ = sp.csr_matrix(vectorizer.fit_transform(text.to_numpy()), dtype=np.float32)

    def _score(self, query: Query) -> sp.csr_matrix:
        profile = (query.history @ self.item_features_).tocsr()
        norms = np.sqrt(np.asarray(profile.multiply(profile).sum(axis=1)).ravel())
        norms[norms == 0] = 1.0
        profile = sp.diags(1.0 / norms) @ profile
        return _evidence(profile @ self.item_features_.T)


def _documents(catalog: pd.DataFrame) -> pd.Series:
    parts = []
    for field in FIELDS:
        if field not in catalog.columns:
            continue
        col = catalog[field].fillna("").astype(str)
        parts.append(col)
        if field in ("category", "brand"):
            # the whole value as one token too: brand "North Face" should not match "face cream"
            parts.append(
                field + "_" + col.str.lower().str.replace(r"\W+", "_", regex=True).where(col != "", "")
            )
    text = parts[0]
    for p in parts[1:]:
        text = text + " " + p
    return text
