"""The ranker against single models on two real stores, with bootstrap intervals, in one run.

Run: ``.venv/bin/python benchmarks/recommend_datasets.py [--data ../shared/data] [--models ...]``

- **REES46** (the multi-category store's first 17k events): loaded with ``cartlift ingest
  --format rees46`` into a fresh store, evaluated as ``cartlift recommend evaluate --protocol
  temporal`` does (train before the cut, the last 20 % of events held out, seen items excluded).
- **diginetica purchases** (CIKM Cup 2016): each order is a basket (a session of purchases, in
  ``timeframe`` order) of its user (or, without a user id, of its browsing session); written as
  cartlift events and ingested; evaluated as ``--protocol next-item`` (the orders of the last
  20 % of the time are the test baskets: each item predicts the next one of its basket).

For each: the leaderboard (NDCG@10 and HR@20 with 95 % bootstrap intervals over users) and every
model's paired NDCG@10 difference to the best single model. Goal (issue 19): the ranker not behind
the best single model beyond its interval (the upper end of its paired interval >= 0).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # implicit warns (and slows) with a threaded BLAS

import pandas as pd

from cartlift.recommend._workflows import evaluate_store
from cartlift.store import EventStore

MODELS = "popularity,itemknn,als,vsknn,stan,vstan,hybrid,ranker"


def diginetica_events(folder: Path, out: Path) -> Path:
    """The purchases as cartlift events (CSV) and the item categories as a catalog beside them."""
    raw = pd.read_csv(folder / "train-purchases.csv", sep=";", dtype=str)
    user = raw["userId"].where(raw["userId"].notna() & (raw["userId"] != "NA"), "s" + raw["sessionId"])
    ts = pd.to_datetime(raw["eventdate"]) + pd.to_timedelta(raw["timeframe"].astype("int64"), unit="ms")
    events = pd.DataFrame(
        {
            "event_id": "dg-" + raw["ordernumber"] + "-" + raw["itemId"],
            "ts": ts.dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "user_id": user,
            "session_id": "order-" + raw["ordernumber"],
            "event_type": "purchase",
            "product_id": raw["itemId"],
            "order_id": raw["ordernumber"],
        }
    )
    path = out / "diginetica-events.csv"
    events.to_csv(path, index=False)
    categories = pd.read_csv(folder / "product-categories.csv", sep=";", dtype=str)
    catalog = pd.DataFrame({"product_id": categories["itemId"], "category": categories["categoryId"]})
    catalog = catalog[catalog["product_id"].isin(set(events["product_id"]))]
    catalog.to_csv(out / "diginetica-products.csv", index=False)
    return path


METRICS = ["NDCG@10", "HR@20", "MRR@20", "Recall@20"]


def report(name: str, store: EventStore, models: str, protocol: str) -> None:
    start = time.perf_counter()
    board = evaluate_store(
        store, models, protocol=protocol, metrics=METRICS, n_bootstrap=1000, random_state=0
    )
    seconds = time.perf_counter() - start
    info = board.info
    print(
        f"\n{name}: protocol {protocol}, {info.get('train_events', info.get('train_clicks', '?'))} training "
        f"events, {board.rows[0]['queries']:,} queries; best single model: {info.get('best_single')} "
        f"({seconds:.0f} s, load average {os.getloadavg()[0]:.1f})"
    )
    print(
        f"  {'model':12s} {'NDCG@10 (95% CI)':>26s} {'HR@20 (95% CI)':>26s}   NDCG@10 vs best single (95% CI)"
    )
    for row in board.rows:
        lo, hi = row.get("NDCG@10_ci", [float("nan")] * 2)
        hlo, hhi = row.get("HR@20_ci", [float("nan")] * 2)
        vs = row.get("vs_best_single")
        versus = f"{vs['difference']:+.4f} ({vs['ci'][0]:+.4f} to {vs['ci'][1]:+.4f})" if vs else "-"
        print(
            f"  {row['model']:12s} {row['NDCG@10']:.4f} ({lo:.4f}-{hi:.4f}) {row['HR@20']:12.4f} ({hlo:.4f}-{hhi:.4f})"
            f"   {versus}"
        )
    ranker = next((r for r in board.rows if r["model"] == "ranker"), None)
    if ranker is not None:
        vs = ranker.get("vs_best_single")
        met = vs is None or vs["ci"][1] >= 0
        print(
            f"  goal (ranker not behind the best single model beyond its interval): {'met' if met else 'MISSED'}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--models", default=MODELS)
    args = parser.parse_args()
    data = Path(args.data)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        with EventStore(folder / "rees46.duckdb") as store:
            store.ingest(data / "rees46_multicategory_sample" / "2019-Oct.csv", format="rees46")
            report("REES46", store, args.models, "temporal")
        with EventStore(folder / "diginetica.duckdb") as store:
            store.ingest(diginetica_events(data / "diginetica_cikm16", folder), format="cartlift")
            store.ingest(folder / "diginetica-products.csv", format="products")
            report("diginetica purchases", store, args.models, "next-item")


if __name__ == "__main__":
    main()
