"""Content-based recommendations: TF-IDF of the products' text in any script, plus optional embeddings."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import pandas as pd
import scipy.sparse as sp

from cartlift._params import Constraint, Interval, Options
from cartlift.errors import DataError
from cartlift.recommend._base import Recommender
from cartlift.recommend._embed import (
    EMBEDDINGS_AVAILABLE,
    EMBEDDINGS_NOTE,
    MODEL_NAME,
    embed_products,
    require_embeddings,
)
from cartlift.recommend._interactions import Interactions
from cartlift.recommend._knn import _evidence
from cartlift.recommend._query import Query
from cartlift.recommend._text import TOKENIZERS, dictionary_words, tokenize

__all__ = ["ContentBased"]

log = logging.getLogger("cartlift.recommend")

FIELDS = ("title", "description", "category", "brand")


class ContentBased(Recommender):
    """Items whose text resembles what the user interacted with (works for brand-new products).

    Each product becomes an L2-normalised TF-IDF vector ``t_i`` of its title, description,
    category and brand (category and brand also as whole tokens, so "running shoes" the category
    is one feature). Text is tokenized per document by its script (``cartlift.recommend._text``):
    Chinese is segmented by rjieba, Japanese and the fallback use character bigrams, other
    scripts give words. With the ``embeddings`` extra, each product also gets a unit sentence
    embedding ``e_i`` of its title and description, and its vector is
    ``v_i = [sqrt(1 - w) t_i, sqrt(w) e_i]`` with ``w = embedding_weight``, so the cosine of two
    products is ``(1 - w) cos(t_i, t_j) + w cos(e_i, e_j)``. A user's profile is the weighted sum of
    the vectors of their items; items are scored by cosine to the profile.

    Parameters
    ----------
    max_features : int
        Vocabulary size (most frequent terms).
    min_df : int
        Ignore terms in fewer products.
    tokenizer : {"auto", "bigrams", "words"}
        ``auto``: by script (see above); ``bigrams``: CJK always as character bigrams;
        ``words``: split on spaces and punctuation only (cartlift before 0.2; reads a Chinese
        title as one token).
    embeddings : {"auto", "on", "off"}
        ``auto``: use the sentence-embedding model when the extra is installed, else TF-IDF alone
        with a note (``note_``, and the ``cartlift.recommend`` log) saying what the extra adds;
        ``on``: require it (:class:`~cartlift.errors.EmbeddingsUnavailableError` without it).
    embedding_weight : float
        ``w`` above, in [0, 1].
    embedding_cache : str, optional
        Directory that keeps product vectors between runs (keyed by product id and text).
    words : tuple of str
        Names the shop uses that a Chinese dictionary cannot know (brands, product lines), kept
        whole by the segmenter, in addition to the values of the catalog's brand and category
        columns (which are always used): for a feed with titles only.

    Attributes
    ----------
    item_features_ : csr_matrix of float32, shape (n_items, n_features)
        TF-IDF rows (zero for products without text).
    item_embeddings_ : ndarray of float32, shape (n_items, 384) or (n_items, 0)
        Sentence embeddings (no columns when embeddings are off).
    embedding_model_ : str
        The model behind ``item_embeddings_``, or "".
    note_ : str
        What the model could not do here and how to get it, or "".
    """

    needs_catalog = True
    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {
        "max_features": [Interval(int, 1, None)],
        "min_df": [Interval(int, 1, None)],
        "tokenizer": [Options(TOKENIZERS)],
        "embeddings": [Options(("auto", "on", "off"))],
        "embedding_weight": [Interval(float, 0, 1)],
        "embedding_cache": [str, None],
        "words": [tuple, list],
    }

    def __init__(
        self,
        max_features: int = 50_000,
        min_df: int = 1,
        tokenizer: str = "auto",
        embeddings: str = "auto",
        embedding_weight: float = 0.5,
        embedding_cache: str | None = None,
        words: Sequence[str] = (),
    ) -> None:
        self.max_features = max_features
        self.min_df = min_df
        self.tokenizer = tokenizer
        self.embeddings = embeddings
        self.embedding_weight = embedding_weight
        self.embedding_cache = embedding_cache
        self.words = words

    def _fit(self, interactions: Interactions) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer

        catalog = interactions.catalog
        if catalog is None or not any(f in catalog.columns for f in FIELDS):
            raise DataError(
                "ContentBased needs product attributes (title, description, category, brand): "
                "load a catalog into the store's products table first."
            )
        docs = _documents(catalog, self.tokenizer, self.words)
        if not any(docs):
            raise DataError("Every product's title, description, category and brand is empty.")
        vectorizer = TfidfVectorizer(
            analyzer=_given,
            max_features=self.max_features,
            min_df=self.min_df,
            sublinear_tf=True,
            dtype=np.float32,
        )
        self.item_features_ = sp.csr_matrix(vectorizer.fit_transform(docs), dtype=np.float32)
        self.note_ = ""
        self.embedding_model_ = ""
        self.item_embeddings_ = np.zeros((len(docs), 0), np.float32)
        if self.embeddings == "on":
            require_embeddings()
        if self.embeddings == "off":
            return
        if not EMBEDDINGS_AVAILABLE:
            self.note_ = EMBEDDINGS_NOTE
            log.info(EMBEDDINGS_NOTE)
            return
        self.item_embeddings_ = embed_products(
            [str(i) for i in self.item_ids_], _sentences(catalog), cache_dir=self.embedding_cache
        )
        self.embedding_model_ = MODEL_NAME

    def _score(self, query: Query) -> np.ndarray | sp.csr_matrix:
        profile = (query.history @ self.item_features_).tocsr()
        sq = np.asarray(profile.multiply(profile).sum(axis=1)).ravel()
        if self.item_embeddings_.shape[1] == 0:
            norms = np.sqrt(sq)
            norms[norms == 0] = 1.0
            return _evidence(sp.diags(1.0 / norms) @ profile @ self.item_features_.T)
        w = self.embedding_weight
        semantic = np.asarray(query.history @ self.item_embeddings_)
        # |p|^2 of the joint vector [sqrt(1-w) t, sqrt(w) e] summed over the history
        norms = np.sqrt((1.0 - w) * sq + w * np.einsum("ij,ij->i", semantic, semantic))
        norms[norms == 0] = 1.0
        words = np.asarray((profile @ self.item_features_.T).todense())
        scores = ((1.0 - w) * words + w * (semantic @ self.item_embeddings_.T)) / norms[:, None]
        # users with no history have nothing to resemble: no score rather than a tie of zeros
        scores[np.asarray(query.history.sum(axis=1)).ravel() == 0] = -np.inf
        return scores


def _given(tokens: list[str]) -> list[str]:
    """The analyzer of already tokenized documents."""
    return tokens


def _column(catalog: pd.DataFrame, field: str) -> pd.Series:
    if field not in catalog.columns:
        return pd.Series("", index=catalog.index)
    return catalog[field].fillna("").astype(str)


def _documents(catalog: pd.DataFrame, tokenizer: str, words: Sequence[str] = ()) -> list[list[str]]:
    """Each product's tokens: its text by script, plus category and brand as whole values."""
    docs: list[list[str]] = [[] for _ in range(len(catalog))]
    # the catalog's own names (brands, categories) are words of its language, kept whole
    names = dictionary_words(
        [
            *words,
            *(v for f in ("brand", "category") if f in catalog.columns for v in _column(catalog, f).unique()),
        ]
    )
    for field in FIELDS:
        if field not in catalog.columns:
            continue
        for doc, value in zip(docs, _column(catalog, field), strict=True):
            if not value:
                continue
            doc.extend(tokenize(value, tokenizer, words=names))
            if field in ("category", "brand"):
                # the whole value as one token too: brand "North Face" should not match "face cream"
                doc.append(f"{field}={value.strip().lower()}")
    return docs


def _sentences(catalog: pd.DataFrame) -> list[str]:
    """What the embedding model reads of a product: its title and description."""
    title, description = _column(catalog, "title"), _column(catalog, "description")
    return [f"{t}. {d}".strip(". ") for t, d in zip(title, description, strict=True)]
