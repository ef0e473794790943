"""The catalog: categories, brands, prices, costs, titles and descriptions, and item latents.

Prices are log-normal per category, truncated to the category's range; a brand's premium
shifts its prices up or down. Titles and descriptions are built from the same attributes
(brand, adjective, noun, colour, features, price tier) that carry the products' latent taste
vectors, so a TF-IDF content recommender finds real signal in the text. ``config.locale``
picks the language of the text (``en`` or ``zh``); the draws, and so every product's latent
attributes, are the same in both.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from scipy.special import ndtr, ndtri

from cartlift.simulate._catalog_zh import (
    ZH_CATEGORY,
    ZH_COLOURS,
    ZH_ENDINGS,
    ZH_SYLLABLES,
    ZH_TIERS,
    zh_word,
)
from cartlift.simulate._config import SimulationConfig

__all__ = ["Catalog", "make_catalog"]

_SYLLABLES = (
    "ka", "no", "vi", "ra", "lu", "te", "mo", "si", "da", "re", "zo", "fi", "ba", "ne", "ko", "li",
    "ta", "vo", "mi", "sa", "el", "or", "an", "is", "ul", "ex", "ar", "on", "ri", "ve",
)  # fmt: skip
_ENDINGS = ("", "x", "n", "k", "r", "s", "ta", "ia", "ix", "on")
_COLOURS = ("Black", "White", "Grey", "Navy", "Red", "Green", "Beige", "Blue", "Silver", "Pink")
_MODEL_LETTERS = "ABCDEFGHKLMNPRSTVXZ"


@dataclass(frozen=True)
class Catalog:
    """Products sorted by category; row ``j`` of every array is product ``j``.

    Attributes
    ----------
    ids : ndarray of str, shape (n_products,)
        ``product_id`` of each product (shuffled numbers, so ids do not reveal the category).
    category, brand : ndarray of int, shape (n_products,)
        Category index (into ``config.categories``) and global brand index.
    price, cost : ndarray of float, shape (n_products,)
    log_price_ratio : ndarray of float, shape (n_products,)
        ``log(price / median price of the category)``: what price-sensitive customers react to.
    factors : ndarray of float32, shape (n_products, n_factors)
        Latent taste vectors; a customer's affinity to a product is the dot product.
    log_popularity : ndarray of float, shape (n_products,)
        How often a product is shown/browsed, all tastes equal.
    quality : ndarray of float, shape (n_products,)
        Appeal once viewed (adds to the cart-add logit).
    cat_start : ndarray of int, shape (n_categories + 1,)
        Products of category ``c`` are rows ``cat_start[c]:cat_start[c + 1]``.
    brand_names, category_names : list of str
    table : pyarrow.Table
        The ``products`` table (product_id, title, description, category, brand, price, cost).
    """

    ids: np.ndarray
    category: np.ndarray
    brand: np.ndarray
    price: np.ndarray
    cost: np.ndarray
    log_price_ratio: np.ndarray
    factors: np.ndarray
    log_popularity: np.ndarray
    quality: np.ndarray
    cat_start: np.ndarray
    brand_names: list[str]
    category_names: list[str]
    table: pa.Table

    @property
    def n_products(self) -> int:
        """Number of products."""
        return len(self.ids)


def _allocate(total: int, weights: np.ndarray) -> np.ndarray:
    """Split ``total`` into integer parts proportional to ``weights``, each part at least 1."""
    share = weights / weights.sum() * total
    counts = np.maximum(1, np.floor(share)).astype(np.int64)
    # largest remainders first, so the split is as proportional as integers allow
    while counts.sum() < total:
        counts[np.argmax(share - counts)] += 1
    while counts.sum() > total:
        counts[np.argmax(np.where(counts > 1, counts - share, -np.inf))] -= 1
    return counts


def _brand_names(rng: np.random.Generator, n: int) -> tuple[list[str], list[str]]:
    """``n`` distinct made-up brands, in English and transliterated into Chinese syllable by syllable."""
    names: list[str] = []
    zh: list[str] = []
    seen: set[str] = set()
    while len(names) < n:
        k = int(rng.integers(2, 4))
        parts = rng.integers(0, len(_SYLLABLES), k)
        ending = int(rng.integers(0, len(_ENDINGS)))
        word = ("".join(_SYLLABLES[i] for i in parts) + _ENDINGS[ending]).capitalize()
        if word not in seen:
            seen.add(word)
            names.append(word)
            zh.append("".join(ZH_SYLLABLES[i] for i in parts) + ZH_ENDINGS[ending])
    return names, zh


def _truncated_lognormal(
    rng: np.random.Generator, mu: np.ndarray, sigma: float, low: float, high: float
) -> np.ndarray:
    """Draws of ``exp(N(mu, sigma))`` restricted to ``[low, high]``, by inverting the normal CDF."""
    a = ndtr((np.log(low) - mu) / sigma)
    b = ndtr((np.log(high) - mu) / sigma)
    u = a + rng.random(len(mu)) * (b - a)
    return np.clip(np.exp(mu + sigma * ndtri(u)), low, high)


def _charm(price: np.ndarray, low: float, high: float) -> np.ndarray:
    """Shop prices end in .99 where that stays inside the range, else they are rounded to cents."""
    charm = np.floor(price) + 0.99
    return np.where((charm >= low) & (charm <= high), charm, np.clip(np.round(price, 2), low, high))


@dataclass(frozen=True)
class _Words:
    """The words of one locale that titles, descriptions, brands and categories are written in."""

    brands_en: list[str]
    brands_zh: list[str]
    locale: str

    @property
    def brands(self) -> list[str]:
        return self.brands_zh if self.locale == "zh" else self.brands_en

    @property
    def colours(self) -> tuple[str, ...]:
        return ZH_COLOURS if self.locale == "zh" else _COLOURS

    def word(self, english: str) -> str:
        return zh_word(english) if self.locale == "zh" else english

    def category(self, name: str) -> str:
        return ZH_CATEGORY.get(name, name) if self.locale == "zh" else name


def make_catalog(config: SimulationConfig, rng: np.random.Generator) -> Catalog:
    """Draw the catalog of ``config`` from ``rng``."""
    cats = config.categories
    n_cat, k, nb = len(cats), config.n_factors, config.brands_per_category
    counts = _allocate(config.n_products, np.array([c.share for c in cats], dtype=float))
    category = np.repeat(np.arange(n_cat), counts)
    cat_start = np.concatenate([[0], np.cumsum(counts)])
    n = int(counts.sum())

    brand_names, brand_names_zh = _brand_names(rng, n_cat * nb)
    premium = rng.normal(0.0, 1.0, n_cat * nb)
    brand_pop = rng.normal(0.0, 0.7, n_cat * nb)
    brand_vec = rng.normal(0.0, 1.0, (n_cat * nb, k))
    brand = category * nb + rng.integers(0, nb, n)
    max_adj = max(len(c.adjectives) for c in cats)
    adj_vec = rng.normal(0.0, 1.0, (n_cat, max_adj, k))
    adjective = np.floor(rng.random(n) * np.array([len(c.adjectives) for c in cats])[category]).astype(int)
    noun = np.floor(rng.random(n) * np.array([len(c.nouns) for c in cats])[category]).astype(int)
    n_feat = np.array([len(c.features) for c in cats])[category]
    feat1 = np.floor(rng.random(n) * n_feat).astype(int)
    feat2 = (feat1 + 1 + np.floor(rng.random(n) * np.maximum(n_feat - 1, 1)).astype(int)) % n_feat
    colour = rng.integers(0, len(_COLOURS), n)

    price = np.empty(n)
    cost = np.empty(n)
    log_ratio = np.empty(n)
    margin_draw = rng.random(n)
    for c, spec in enumerate(cats):
        rows = slice(cat_start[c], cat_start[c + 1])
        lo, hi = np.log(spec.price_low), np.log(spec.price_high)
        # the range spans about +-2.5 sd; premium brands sit about half an sd higher
        sigma = (hi - lo) / 5.0
        mu = (lo + hi) / 2.0 + 0.5 * sigma * premium[brand[rows]]
        p = _charm(
            _truncated_lognormal(rng, mu, sigma, spec.price_low, spec.price_high),
            spec.price_low,
            spec.price_high,
        )
        margin = spec.margin_low + margin_draw[rows] * (spec.margin_high - spec.margin_low)
        price[rows] = p
        # costs are rounded down to the cent so that cost < price holds after rounding
        cost[rows] = np.floor(p * (1.0 - margin) * 100.0) / 100.0
        log_ratio[rows] = np.log(p) - (lo + hi) / 2.0

    # tastes follow brand and adjective (both visible in the title) plus a product's own part
    factors = (
        0.6 * brand_vec[brand] + 0.6 * adj_vec[category, adjective] + 0.5 * rng.normal(0, 1, (n, k))
    ) / np.sqrt(k)
    log_popularity = brand_pop[brand] + rng.normal(0.0, 0.8, n)
    quality = 0.2 * premium[brand] + rng.normal(0.0, 0.4, n)

    width = len(str(max(n - 1, 1)))
    ids = np.array([f"p{i:0{width}d}" for i in rng.permutation(n)], dtype=object)
    position = (log_ratio - np.array([np.log(c.price_low) for c in cats])[category]) / np.array(
        [np.log(c.price_high / c.price_low) for c in cats]
    )[category]
    tier = np.where(position < 0.35, "An affordable", np.where(position > 0.65, "A premium", "A"))
    model_no = rng.integers(100, 1000, n)
    model_letter = rng.integers(0, len(_MODEL_LETTERS), n)
    words = _Words(brand_names, brand_names_zh, config.locale)
    titles: list[str] = []
    descriptions: list[str] = []
    for j in range(n):
        spec = cats[category[j]]
        adj, nn = words.word(spec.adjectives[adjective[j]]), words.word(spec.nouns[noun[j]])
        b, col, model = (
            words.brands[brand[j]],
            words.colours[colour[j]],
            f"{_MODEL_LETTERS[model_letter[j]]}-{model_no[j]}",
        )
        f1, f2 = words.word(spec.features[feat1[j]]), words.word(spec.features[feat2[j]])
        if config.locale == "zh":
            # brand, adjective and noun run together, as Chinese shops write titles
            titles.append(f"{b}{adj}{nn} {model}（{col}）")
            descriptions.append(
                f"{ZH_TIERS[str(tier[j])]}{adj}{nn}，{b}出品，{col}，配有{f1}和{f2}。"
                f"{words.category(spec.name)}系列。"
            )
        else:
            titles.append(f"{b} {adj} {nn} {model} ({col})")
            descriptions.append(
                f"{tier[j]} {adj.lower()} {nn.lower()} by {b} in {col.lower()}, with "
                f"{f1} and {f2}. Part of our {spec.name} range."
            )
    category_names = [words.category(c.name) for c in cats]
    table = pa.table(
        {
            "product_id": pa.array(ids, pa.string()),
            "title": pa.array(titles, pa.string()),
            "description": pa.array(descriptions, pa.string()),
            "category": pa.array([category_names[c] for c in category], pa.string()),
            "brand": pa.array([words.brands[b] for b in brand], pa.string()),
            "price": pa.array(price, pa.float64()),
            "cost": pa.array(cost, pa.float64()),
        }
    )
    return Catalog(
        ids=ids,
        category=category,
        brand=brand,
        price=price,
        cost=cost,
        log_price_ratio=log_ratio,
        factors=factors.astype(np.float32),
        log_popularity=log_popularity,
        quality=quality,
        cat_start=cat_start,
        brand_names=words.brands,
        category_names=category_names,
        table=table,
    )
