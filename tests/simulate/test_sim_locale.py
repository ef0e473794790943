"""The simulated catalog in Chinese: the same products, written in Chinese, loaded end to end."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from cartlift.cli import app
from cartlift.errors import InvalidParameterError
from cartlift.recommend._embed import EMBEDDINGS_AVAILABLE
from cartlift.simulate import SimulationConfig
from cartlift.simulate._catalog import make_catalog
from cartlift.simulate._catalog_zh import ZH_CATEGORY, ZH_WORDS
from cartlift.simulate._config import DEFAULT_CATEGORIES
from cartlift.store import EventStore

HAN = re.compile(r"[\u4e00-\u9fff]")


def _catalogs(n: int = 600) -> tuple:  # type: ignore[type-arg]
    en = make_catalog(SimulationConfig(n_products=n), np.random.default_rng(4))
    zh = make_catalog(SimulationConfig(n_products=n, locale="zh"), np.random.default_rng(4))
    return en, zh


def test_same_products_and_latent_attributes_in_both_locales() -> None:
    en, zh = _catalogs()
    for name in ("ids", "category", "brand", "price", "cost", "factors", "log_popularity", "quality"):
        np.testing.assert_array_equal(getattr(en, name), getattr(zh, name), err_msg=name)
    assert en.table.column("price").equals(zh.table.column("price"))


def test_chinese_text_carries_the_same_attributes() -> None:
    en, zh = _catalogs()
    t_en, t_zh = en.table.to_pandas(), zh.table.to_pandas()
    assert all(HAN.search(t) for t in t_zh["title"])
    assert all(HAN.search(d) for d in t_zh["description"])
    assert set(t_zh["category"]) == set(ZH_CATEGORY.values())
    # a brand is one brand in both languages: the same products carry it
    pairs = set(zip(t_en["brand"], t_zh["brand"], strict=True))
    assert len(pairs) == t_en["brand"].nunique() == t_zh["brand"].nunique()
    # the Chinese title begins with the Chinese brand, as the English one with the English brand
    assert all(t.startswith(b) for t, b in zip(t_zh["title"], t_zh["brand"], strict=True))
    # the model number (and the price tier) is the same product's
    model_en = t_en["title"].str.extract(r"([A-Z]-\d{3})")[0]
    model_zh = t_zh["title"].str.extract(r"([A-Z]-\d{3})")[0]
    assert (model_en == model_zh).all()
    assert (
        t_en["description"].str.startswith("A premium") == t_zh["description"].str.startswith("高端")
    ).all()


def test_every_default_word_has_a_chinese_translation() -> None:
    words = {w for c in DEFAULT_CATEGORIES for w in (*c.nouns, *c.adjectives, *c.features)}
    assert words <= set(ZH_WORDS)
    assert {c.name for c in DEFAULT_CATEGORIES} == set(ZH_CATEGORY)


def test_unknown_locale_is_refused() -> None:
    with pytest.raises(InvalidParameterError, match="'locale' parameter of SimulationConfig"):
        SimulationConfig(locale="fr").validate()


def test_cli_simulates_a_chinese_store(tmp_path: Path) -> None:
    db = tmp_path / "zh.duckdb"
    result = CliRunner().invoke(
        app, ["simulate", "--users", "200", "--days", "5", "--locale", "zh", "--db", str(db), "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["users"] == 200
    with EventStore(db) as store:
        products = store.query("SELECT title, category FROM products")
    assert len(products) > 0
    assert products["title"].map(lambda t: bool(HAN.search(t))).all()
    assert set(products["category"]) <= set(ZH_CATEGORY.values())
    # end to end: content trains on the Chinese catalog and shows Chinese products
    trained = CliRunner().invoke(app, ["recommend", "train", "--model", "content", "--db", str(db), "--json"])
    assert trained.exit_code == 0, trained.output
    assert json.loads(trained.stdout)["items"] == len(products)
    if not EMBEDDINGS_AVAILABLE:
        # the note goes to stderr, so the JSON on stdout stays parseable
        assert "pip install 'cartlift[embeddings]'" in " ".join(trained.stderr.split())
    with EventStore(db) as store:
        user = str(store.query("SELECT min(user_id) AS u FROM events")["u"][0])
    shown = CliRunner().invoke(
        app, ["recommend", "show", user, "--model", "content", "--k", "5", "--db", str(db), "--json"]
    )
    assert shown.exit_code == 0, shown.output
    recs = json.loads(shown.stdout)["recommendations"]
    assert len(recs) == 5
    assert all(HAN.search(r["title"]) for r in recs)
