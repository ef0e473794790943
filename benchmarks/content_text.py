"""Content recommendations on one simulated store written in English and in Chinese, in one run.

Run: ``.venv/bin/python benchmarks/content_text.py [--users 5000 --products 2000 --seed 0]``
(and with ``.venv-embeddings/bin/python`` for the embedding rows, see ``make test-embeddings``).

The simulator draws the same products, latent attributes and events for ``locale="en"`` and
``locale="zh"``; only the catalog's words differ. Measured per catalog, with 95% bootstrap
intervals over users:

- ``taste NDCG@10``: each model fitted on every event, against each customer's true top-20
  products (``truth_user_taste``), seen items included;
- ``cold HR@20``: 20% of the products are hidden from training (nobody touched them, as for a
  new product); for every customer who added one of them to a cart or bought it, the model ranks
  the hidden products only, from the customer's other history; a hit is one of those products in
  the top 20. Popularity knows nothing about such products: its figure is chance.

Models: ``popularity``; ``content`` with the old tokenizer (``words``: split on spaces and
punctuation only), the new one (``auto``: rjieba for Chinese) and the bigram fallback; with the
``embeddings`` extra also the sentence-embedding model alone (``embedding_weight=1``) and
blended with TF-IDF (``0.5``), and their differences from TF-IDF on cold items (paired bootstrap).
The time to embed products is measured by ``benchmarks/embeddings.py``.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np
import pandas as pd

from cartlift.recommend import (
    ContentBased,
    ExcludeItems,
    Interactions,
    Popularity,
    Recommender,
    bootstrap_ci,
    hit_rate_at_k,
    hits,
    ndcg_at_k,
    paired_test,
)
from cartlift.recommend._embed import EMBEDDINGS_AVAILABLE
from cartlift.simulate import SimulatedStore, simulate


def _frame(sim: SimulatedStore) -> tuple[pd.DataFrame, pd.DataFrame]:
    events = sim.events.select(["user_id", "session_id", "product_id", "ts", "event_type"]).to_pandas()
    events = events.rename(columns={"product_id": "item_id"}).dropna(subset=["item_id"])
    for c in ("user_id", "session_id", "item_id", "event_type"):
        events[c] = events[c].astype(str)
    return events, sim.products.to_pandas()


def _relevance(users: np.ndarray, relevant: list[np.ndarray], items: pd.Index) -> Any:
    import scipy.sparse as sp

    cols = [items.get_indexer(r) for r in relevant]
    rows = np.repeat(np.arange(len(users)), [len(c) for c in cols])
    flat = np.concatenate(cols)
    return sp.csr_matrix((np.ones(len(flat)), (rows, flat)), shape=(len(users), len(items)))


def taste_ndcg(model: Recommender, taste: pd.DataFrame) -> np.ndarray:
    """Per-user NDCG@10 against the true top products (users the model knows)."""
    known = taste[taste["user_id"].isin(set(model.user_ids_.tolist()))]
    grouped = known.groupby("user_id")["product_id"]
    users = np.asarray(list(grouped.groups.keys()), dtype=str)
    relevant = [np.asarray(v, dtype=str) for _, v in grouped]
    recs = model.recommend(users, 10, exclude_seen=False)
    rel = _relevance(users, relevant, pd.Index(model.item_ids_))
    return ndcg_at_k(hits(recs.indices, rel), np.array([len(r) for r in relevant]), 10)


def cold_hr(model: Recommender, cold_pairs: pd.DataFrame, cold: np.ndarray) -> np.ndarray:
    """Per-user HR@20 among the cold products, for users with training history."""
    known = cold_pairs[cold_pairs["user_id"].isin(set(model.user_ids_.tolist()))]
    grouped = known.groupby("user_id")["item_id"]
    users = np.asarray(list(grouped.groups.keys()), dtype=str)
    relevant = [np.asarray(v, dtype=str) for _, v in grouped]
    warm = np.setdiff1d(model.item_ids_, cold)
    recs = model.recommend(users, 20, filter=ExcludeItems(warm))
    rel = _relevance(users, relevant, pd.Index(model.item_ids_))
    return hit_rate_at_k(hits(recs.indices, rel), 20)


def models() -> dict[str, Recommender]:
    built: dict[str, Recommender] = {
        "popularity": Popularity(),
        "content words (before)": ContentBased(tokenizer="words", embeddings="off"),
        "content auto (new)": ContentBased(tokenizer="auto", embeddings="off"),
        "content bigrams (fallback)": ContentBased(tokenizer="bigrams", embeddings="off"),
    }
    if EMBEDDINGS_AVAILABLE:
        built["content embeddings only"] = ContentBased(embeddings="on", embedding_weight=1.0)
        built["content auto + embeddings"] = ContentBased(embeddings="on", embedding_weight=0.5)
    return built


def run_locale(locale: str, fields: str, args: argparse.Namespace) -> dict[str, Any]:
    sim = simulate(
        n_users=args.users, n_days=args.days, n_products=args.products, random_state=args.seed, locale=locale
    )
    events, products = _frame(sim)
    if fields == "title":
        # a feed with titles only, as many marketplaces send: no brand or category column to lean on
        products = products[["product_id", "title"]]
    taste = sim.taste_ranking().select(["user_id", "product_id"]).to_pandas().astype(str)
    all_items = products["product_id"].astype(str).to_numpy()
    rng = np.random.default_rng(args.seed)
    cold = rng.choice(all_items, size=len(all_items) // 5, replace=False)
    is_cold = events["item_id"].isin(set(cold))
    cold_pairs = events[is_cold & events["event_type"].isin(["cart_add", "purchase"])]
    cold_pairs = cold_pairs[["user_id", "item_id"]].drop_duplicates()
    full = Interactions.from_frame(events, catalog=products, item_ids=all_items)
    train = Interactions.from_frame(events[~is_cold], catalog=products, item_ids=all_items)
    out: dict[str, Any] = {"locale": locale, "fields": fields, "models": {}, "values": {}}
    built = models()
    if fields == "title":
        # a diagnostic, not a model a shop has: the feed's true brand names handed to the segmenter
        # (``words=``), to see how much of the Chinese gap the splitting of brand names explains
        brands = tuple(sim.products.to_pandas()["brand"].astype(str).unique())
        built["content auto, brands given"] = ContentBased(tokenizer="auto", embeddings="off", words=brands)
    for name, model in built.items():
        ndcg = taste_ndcg(model.fit(full), taste)
        hr = cold_hr(model.fit(train), cold_pairs, cold)
        out["values"][name] = hr
        out["models"][name] = {
            "taste_NDCG@10": float(ndcg.mean()),
            "taste_NDCG@10_ci": bootstrap_ci(ndcg, np.arange(len(ndcg)), random_state=args.seed),
            "cold_HR@20": float(hr.mean()),
            "cold_HR@20_ci": bootstrap_ci(hr, np.arange(len(hr)), random_state=args.seed),
            "taste_users": len(ndcg),
            "cold_users": len(hr),
        }
    return out


def embedding_gain(result: dict[str, Any], args: argparse.Namespace) -> list[dict[str, Any]]:
    values = result["values"]
    base = values["content auto (new)"]
    rows = []
    for name in ("content embeddings only", "content auto + embeddings"):
        test = paired_test(
            values[name],
            base,
            np.arange(len(base)),
            metric="cold_HR@20",
            names=(name, "content auto (new)"),
            random_state=args.seed,
        )
        rows.append({"locale": result["locale"], "fields": result["fields"], **test.to_dict()})
    return rows


def _ci(m: dict[str, Any], key: str) -> str:
    low, high = m[f"{key}_ci"]
    return f"{m[key]:.3f} [{low:.3f}, {high:.3f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--products", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--fields",
        default="all,title",
        help="catalog columns the models read: all (title, description, category, brand), title (title only)",
    )
    parser.add_argument("--locales", default="en,zh", help="catalog languages to measure: en, zh or both")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    results = [run_locale(loc, f, args) for f in args.fields.split(",") for loc in args.locales.split(",")]
    report: dict[str, Any] = {
        "args": vars(args),
        "catalogs": [{k: r[k] for k in ("locale", "fields", "models")} for r in results],
    }
    if EMBEDDINGS_AVAILABLE:
        report["embedding_gain_cold_HR@20"] = [g for r in results for g in embedding_gain(r, args)]
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"{args.users} users, {args.days} days, {args.products} products, seed {args.seed}; 95% intervals")
    for r in report["catalogs"]:
        print(f"\n{r['locale']}, {r['fields']}: {'model':<28} {'taste NDCG@10':<26} {'cold HR@20':<26}")
        for name, m in r["models"].items():
            print(f"    {name:<28} {_ci(m, 'taste_NDCG@10'):<26} {_ci(m, 'cold_HR@20'):<26}")
        first = next(iter(r["models"].values()))
        print(f"    users: taste {first['taste_users']}, cold {first['cold_users']}")
    for g in report.get("embedding_gain_cold_HR@20", []):
        print(
            f"\n{g['locale']}, {g['fields']}: {g['a']} - {g['b']}, cold HR@20: {g['difference']:+.3f} "
            f"[{g['ci_low']:+.3f}, {g['ci_high']:+.3f}], p = {g['p_value']:.3g}, n = {g['n']}"
        )


if __name__ == "__main__":
    main()
