"""What the commands do, as functions: train on the store, evaluate, show, mine rules, the demo.

The CLI only parses options and prints; everything it runs is here, so scripts and the service
can call the same code.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import pandas as pd

from cartlift._jsonable import jsonable
from cartlift.errors import DataError, InvalidParameterError
from cartlift.recommend._base import Recommender
from cartlift.recommend._evaluate import DEFAULT_METRICS, Leaderboard, evaluate
from cartlift.recommend._filters import AllOf, ExcludeItems, InCategory, InStock, ItemFilter
from cartlift.recommend._interactions import Interactions, catalog_frame, events_frame
from cartlift.recommend._io import read_baskets, read_yoochoose
from cartlift.recommend._metrics import hits, ndcg_at_k
from cartlift.recommend._registry import make_model
from cartlift.recommend._rules import association_rules, basket_matrix, frequent_itemsets
from cartlift.recommend._split import EvalTask, leave_last_out, next_item, temporal_split
from cartlift.store import store_identity

if TYPE_CHECKING:
    from cartlift.store import EventStore

__all__ = [
    "BEST",
    "PROTOCOLS",
    "SERVED_CANDIDATES",
    "best_recommender",
    "check_store",
    "default_model_path",
    "demo_leaderboard",
    "evaluate_files",
    "evaluate_store",
    "example_lists",
    "load_or_train",
    "mine_rules",
    "parse_weights",
    "select_best",
    "show_user",
    "taste_ndcg",
    "train_on_store",
]

PROTOCOLS: Final = ("temporal", "leave-last-out", "next-item")
FILE_FORMATS: Final = ("yoochoose",)
TASTE_TABLE: Final = "truth_user_taste"
BEST: Final = "best"
"""The model name that means "whichever of :data:`BEST_SHORTLIST` evaluates best on this store"."""
BEST_SHORTLIST: Final = ("ranker", "hybrid", "vstan", "itemknn", "als", "popularity")
DEMO_SHORTLIST: Final = ("popularity", "itemknn", "als", "vsknn", "content", "hybrid", "ranker")
"""The demo's leaderboard: STAN and VSTAN are left out as rows (slow to rank, weak on a store whose
users return over weeks) but still feed the ranker as candidate generators."""
Progress = Callable[[str, float], None]


def _model_names(models: str | Sequence[str]) -> list[str]:
    names = [m.strip() for m in models.split(",")] if isinstance(models, str) else list(models)
    names = [n for n in names if n]
    if not names:
        raise InvalidParameterError("No model given: pass --models a,b,c (see `cartlift recommend models`).")
    return names


def parse_weights(text: str | None) -> dict[str, float] | None:
    """``"view=1,cart_add=3,purchase=5"`` -> ``{"view": 1.0, ...}`` (None for None or "")."""
    if not text:
        return None
    weights: dict[str, float] = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        try:
            weights[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise InvalidParameterError(
                f"Cannot read the event weight {part.strip()!r}: write TYPE=NUMBER, e.g. view=1,cart_add=3,purchase=5."
            )
    return weights


def default_model_path(db: str | Path, name: str) -> Path:
    """Where ``train`` saves a model by default: ``<store folder>/models/<store name>/<name>.npz``.

    One folder per store: two stores side by side never overwrite each other's models.
    """
    path = Path(db).resolve()
    return path.parent / "models" / path.stem / f"{name}.npz"


SERVED_CANDIDATES: Final = BEST_SHORTLIST
"""The recommenders `best_recommender` compares for the service: the same shortlist as ``best``
everywhere (all answer users, carts and similar items)."""


def best_recommender(
    store: EventStore, candidates: Sequence[str] = SERVED_CANDIDATES, *, metric: str = "NDCG@10"
) -> tuple[str, list[dict[str, Any]]]:
    """The candidate with the best ``metric`` on a temporal split of the store, and the leaderboard.

    `select_best` over ``candidates`` (the evaluation of `cartlift recommend evaluate`, the latest
    20 % of time held out), so the model served is the one the leaderboard puts first.
    """
    chosen = select_best(store, candidates, metric=metric)
    return str(chosen["model"]), [{"model": m, metric: v} for m, v in chosen["scores"].items()]


def check_store(model: Recommender, store_id: str, where: str | Path) -> Recommender:
    """``model`` if it was trained on the store ``store_id`` (or does not say), else a clear error."""
    trained_on = getattr(model, "trained_on_", None)
    if trained_on is not None and trained_on != store_id:
        raise DataError(
            f"The model {str(where)!r} was trained on the store {trained_on!r}, not on {store_id!r}: "
            "its users and products are another store's. Train one on this store with "
            "`cartlift recommend train --model NAME --db ...`, or give its own --model-path."
        )
    return model


def train_on_store(
    store: EventStore,
    name: str,
    *,
    out: str | Path | None = None,
    half_life_days: float | None = None,
    weights: Mapping[str, float] | None = None,
    random_state: int | None = 0,
    store_id: str | None = None,
) -> dict[str, Any]:
    """Fit the model ``name`` on all product events of the store and save it.

    The saved model records which store it learned from (``store_id``, default the store's file:
    `cartlift.store.store_identity`), so that it is never served for another store.

    Returns
    -------
    dict
        ``model, path, users, items, events, fit_seconds``.
    """
    import time

    data = Interactions.from_store(store, weights=weights, half_life_days=half_life_days)
    if len(data) == 0:
        raise DataError("The store has no product events to learn from: ingest events first.")
    selection: dict[str, Any] | None = None
    chosen = name
    if name == BEST:
        selection = select_best(store, random_state=random_state or 0)
        chosen = selection["model"]
    model = make_model(chosen, random_state=random_state)
    start = time.perf_counter()
    model.fit(data)
    model.trained_on_ = store_id or store_identity(store.path)
    seconds = time.perf_counter() - start
    path = model.save(out if out is not None else default_model_path(store.path, name))
    result = {
        "model": chosen,
        "path": str(path),
        "users": data.n_users,
        "items": data.n_items,
        "events": len(data),
        "fit_seconds": round(seconds, 4),
    }
    if selection is not None:
        result["selection"] = selection
    return result


def select_best(
    store: EventStore,
    models: Sequence[str] = BEST_SHORTLIST,
    *,
    metric: str = "NDCG@10",
    random_state: int = 0,
) -> dict[str, Any]:
    """The model of ``models`` with the best ``metric`` on the store's temporal split (last 20 %).

    Models that cannot be fitted on the store (too little data for the ranker's own split ...)
    are left out. Returns ``{"model", "metric", "scores": {model: value}}``.
    """
    task = _store_task(store, "temporal", test_fraction=0.2, half_life_days=None, relevant_types=None)
    built = {n: make_model(n, random_state=random_state) for n in models}
    board = evaluate(built, task, metrics=[metric], n_bootstrap=0, random_state=random_state)
    return {
        "model": board.rows[0]["model"],
        "metric": metric,
        "scores": {r["model"]: r[metric] for r in board.rows},
    }


def _store_task(
    store: EventStore,
    protocol: str,
    *,
    test_fraction: float,
    half_life_days: float | None,
    relevant_types: Sequence[str] | None,
    weights: Mapping[str, float] | None = None,
) -> EvalTask:
    frame = events_frame(store)
    if frame.empty:
        raise DataError("The store has no product events to evaluate on: ingest events first.")
    products = catalog_frame(store)
    catalog = products if len(products) else None
    if protocol == "temporal":
        return temporal_split(
            frame,
            test_fraction=test_fraction,
            weights=weights,
            half_life_days=half_life_days,
            relevant_types=relevant_types,
            catalog=catalog,
        )
    if protocol == "leave-last-out":
        return leave_last_out(
            frame,
            weights=weights,
            half_life_days=half_life_days,
            relevant_types=relevant_types,
            catalog=catalog,
        )
    if protocol == "next-item":
        cut = frame["ts"].sort_values().iloc[int(len(frame) * (1 - test_fraction))]
        last = frame.groupby("session_id")["ts"].transform("min")
        return next_item(frame[last < cut], frame[last >= cut])
    raise InvalidParameterError(f"protocol must be one of {PROTOCOLS}. Got {protocol!r} instead.")


def evaluate_store(
    store: EventStore,
    models: str | Sequence[str],
    *,
    protocol: str = "temporal",
    test_fraction: float = 0.2,
    half_life_days: float | None = None,
    weights: Mapping[str, float] | None = None,
    relevant_types: Sequence[str] | None = None,
    metrics: Sequence[str] = DEFAULT_METRICS,
    n_bootstrap: int = 1000,
    random_state: int | None = 0,
    progress: Progress | None = None,
) -> Leaderboard:
    """Evaluate models on the store's events with ``protocol`` (temporal, leave-last-out, next-item).

    For next-item, sessions that start in the last ``test_fraction`` of the time are the test
    sessions and the earlier ones the training sessions.
    """
    task = _store_task(
        store,
        protocol,
        test_fraction=test_fraction,
        half_life_days=half_life_days,
        relevant_types=relevant_types,
        weights=weights,
    )
    built = {n: make_model(n, random_state=random_state) for n in _model_names(models)}
    return evaluate(
        built, task, metrics=metrics, n_bootstrap=n_bootstrap, random_state=random_state, progress=progress
    )


def evaluate_files(
    train: str | Path,
    test: str | Path,
    models: str | Sequence[str],
    *,
    format: str = "yoochoose",
    protocol: str = "next-item",
    metrics: Sequence[str] = DEFAULT_METRICS,
    n_bootstrap: int = 1000,
    random_state: int | None = 0,
    progress: Progress | None = None,
) -> Leaderboard:
    """Evaluate models on external train/test files (yoochoose: session-rec's prepared clicks)."""
    if format not in FILE_FORMATS:
        raise InvalidParameterError(f"format must be one of {FILE_FORMATS}. Got {format!r} instead.")
    if protocol != "next-item":
        raise InvalidParameterError(
            f"Files of format {format!r} are anonymous sessions: only protocol 'next-item' applies (got {protocol!r})."
        )
    task = next_item(read_yoochoose(train), read_yoochoose(test))
    task.info["train_file"] = str(train)
    task.info["test_file"] = str(test)
    built = {n: make_model(n, random_state=random_state) for n in _model_names(models)}
    return evaluate(
        built, task, metrics=metrics, n_bootstrap=n_bootstrap, random_state=random_state, progress=progress
    )


def load_or_train(
    store: EventStore,
    name: str,
    path: str | Path | None = None,
    *,
    notify: Callable[[str], None] | None = None,
    store_id: str | None = None,
) -> Recommender:
    """The saved model at ``path`` (default: where ``train`` saves ``name``), else ``name`` fitted now.

    A saved model trained on another store is refused (`check_store`).
    """
    target = Path(path) if path is not None else default_model_path(store.path, name)
    if target.exists():
        return check_store(Recommender.load(target), store_id or store_identity(store.path), target)
    if notify:
        notify(f"no saved model at {target}: training {name} now (save one with `cartlift recommend train`)")
    chosen = select_best(store)["model"] if name == BEST else name
    return make_model(chosen, random_state=0).fit(Interactions.from_store(store))


def build_filter(
    store: EventStore,
    *,
    category: str | None = None,
    in_stock: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
    exclude_bought: bool = False,
) -> ItemFilter | None:
    """Combine the business filters the options ask for (None when none)."""
    parts: list[ItemFilter] = []
    if category:
        parts.append(InCategory.from_store(category, store))
    if in_stock is not None:
        parts.append(InStock(in_stock))
    if exclude:
        parts.append(ExcludeItems(exclude))
    if exclude_bought:
        parts.append(ExcludeItems.bought(store))
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else AllOf(*parts)


def show_user(
    model: Recommender,
    user_id: str,
    *,
    k: int = 10,
    item_filter: ItemFilter | None = None,
    catalog: pd.DataFrame | None = None,
    history: int = 10,
) -> dict[str, Any]:
    """A user's recent items and their recommendations, with product titles when known."""
    known = user_id in set(model.user_ids_.tolist())
    recs = model.recommend([user_id], k, filter=item_filter)
    seen: list[str] = []
    if known:
        row = int(np.flatnonzero(model.user_ids_ == user_id)[0])
        seq = model.seq_items_[model.seq_indptr_[row] : model.seq_indptr_[row + 1]]
        seen = [str(model.item_ids_[i]) for i in seq[::-1][:history]]

    def describe(item: str) -> dict[str, Any]:
        out: dict[str, Any] = {"item_id": item}
        if catalog is not None and item in catalog.index:
            for field in ("title", "category", "brand"):
                value = catalog.at[item, field] if field in catalog.columns else None
                if isinstance(value, str) and value:
                    out[field] = value
        return out

    items = []
    for rank, (item, score) in enumerate(zip(recs.ids[0], recs.scores[0], strict=True), start=1):
        if item is None:
            break
        items.append({"rank": rank, **describe(str(item)), "score": float(score)})
    return {
        "user_id": user_id,
        "known_user": known,
        "model": type(model).__name__,
        "recent": [describe(i) for i in seen],
        "recommendations": items,
    }


def mine_rules(
    baskets_path: str | Path,
    *,
    min_support: float,
    min_confidence: float,
    max_len: int | None = None,
    basket_format: str = "auto",
    limit: int | None = None,
) -> dict[str, Any]:
    """Association rules of a basket file (see :func:`read_baskets`), strongest first."""
    baskets = read_baskets(baskets_path, basket_format)
    matrix, ids = basket_matrix(baskets)
    found = frequent_itemsets(matrix, min_support, max_len=max_len, item_ids=ids)
    rules = association_rules(found, min_confidence)
    rows = [
        {
            "antecedents": [str(ids[i]) for i in a],
            "consequents": [str(ids[i]) for i in c],
            "support": float(s),
            "confidence": float(conf),
            "lift": float(lift),
        }
        for a, c, s, conf, lift in zip(
            rules["antecedents"],
            rules["consequents"],
            rules["support"],
            rules["confidence"],
            rules["lift"],
            strict=True,
        )
    ]
    return {
        "baskets": int(matrix.shape[0]),
        "items": len(ids),
        "itemsets": len(found),
        "rule_count": len(rows),
        "rules": rows if limit is None else rows[:limit],
    }


def taste_ndcg(model: Recommender, truth: pd.DataFrame, *, k: int = 10) -> dict[str, Any]:
    """NDCG@k of a model's recommendations against each user's true taste ranking.

    Parameters
    ----------
    model : Recommender
        Fitted.
    truth : DataFrame
        ``user_id, product_id`` (and ``rank``): each user's truly best products, as the
        simulator's ``truth_user_taste`` table. Those products are the relevant ones.
    k : int

    Returns
    -------
    dict
        ``NDCG@k`` (mean over the users the model knows), ``users``.
    """
    frame = truth[truth["user_id"].astype(str).isin(set(model.user_ids_.tolist()))]
    if frame.empty:
        raise DataError("No user of the taste table is known to the model.")
    grouped = frame.groupby(frame["user_id"].astype(str))["product_id"]
    users = np.asarray(list(grouped.groups.keys()), dtype=str)
    relevant = [np.asarray(v.astype(str)) for _, v in grouped]
    # the taste ranking covers items users saw too: judge the whole list, seen items included
    recs = model.recommend(users, k, exclude_seen=False)
    index = pd.Index(model.item_ids_)
    cols = [index.get_indexer(r) for r in relevant]
    import scipy.sparse as sp

    rows = np.repeat(np.arange(len(users)), [len(c) for c in cols])
    flat = np.concatenate(cols)
    ok = flat >= 0
    rel = sp.csr_matrix((np.ones(int(ok.sum())), (rows[ok], flat[ok])), shape=(len(users), len(index)))
    n_rel = np.array([len(r) for r in relevant])
    values = ndcg_at_k(hits(recs.indices, rel), n_rel, k)
    return {f"NDCG@{k}": float(np.nanmean(values)), "users": len(users)}


def demo_leaderboard(
    store: EventStore,
    out_dir: str | Path,
    *,
    models: Sequence[str] = DEMO_SHORTLIST,
    n_bootstrap: int = 200,
    random_state: int = 0,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """The demo's step: a temporal-split leaderboard of a few models on the store, sorted by NDCG@10.

    When the store holds the simulator's ``truth_user_taste`` table, every row also gets
    ``taste_NDCG@10``: the model (fitted on the training period) against each user's true taste
    ranking, and ``taste`` reports it for the best model. Writes ``recommend_leaderboard.json`` to
    ``out_dir`` and returns the same dict.
    """
    task = _store_task(store, "temporal", test_fraction=0.2, half_life_days=None, relevant_types=None)
    built = {n: make_model(n, random_state=random_state) for n in models}
    metrics = ["NDCG@10", *(m for m in DEFAULT_METRICS if m != "NDCG@10")]
    board = evaluate(
        built, task, metrics=metrics, n_bootstrap=n_bootstrap, random_state=random_state, progress=progress
    )
    result = board.to_dict()
    if TASTE_TABLE in store.tables():
        truth = store.query(f"SELECT user_id, product_id, rank FROM {TASTE_TABLE}")
        tastes = {}
        for number, row in enumerate(result["leaderboard"]):
            if progress:  # recommending for every simulated user: not silent either
                progress("true tastes", 100.0 * number / len(result["leaderboard"]))
            tastes[row["model"]] = taste_ndcg(built[row["model"]], truth, k=10)
            row["taste_NDCG@10"] = tastes[row["model"]]["NDCG@10"]
        if progress:
            progress("true tastes", 100.0)
        best = result["leaderboard"][0]["model"]
        result["taste"] = {"model": best, **tastes[best]}
    # the report shows these, so it need not fit the best model (the ranker: minutes) a second time
    result["examples"] = example_lists(built[result["leaderboard"][0]["model"]], task)
    target = Path(out_dir)
    target.mkdir(parents=True, exist_ok=True)
    (target / "recommend_leaderboard.json").write_text(json.dumps(jsonable(result), indent=2))
    return result


def example_lists(model: Recommender, task: EvalTask, *, n: int = 3, k: int = 5) -> list[dict[str, Any]]:
    """A few held-out users of ``task``: what they touched in training, ``model``'s top ``k`` (the
    model fitted on ``task.train``) and what they carted or bought afterwards, so a reader sees hits.

    Users with at least two training items come first, in the task's order; at most ``n``.
    """
    if task.user_ids is None:
        return []
    train = task.train
    code = {str(u): i for i, u in enumerate(train.user_ids)}
    chosen: list[tuple[str, list[str], list[str]]] = []
    for user, relevant in zip(task.user_ids, task.relevant, strict=True):
        c = code.get(str(user))
        if c is None:
            continue
        rows = np.flatnonzero(train.user == c)
        seen = pd.unique(train.item[rows[np.argsort(train.ts[rows])[::-1]]])  # most recent first
        if len(seen) >= 2:
            chosen.append((str(user), [str(train.item_ids[i]) for i in seen[:5]], [str(x) for x in relevant]))
        if len(chosen) == n:
            break
    if not chosen:
        return []
    lists = model.recommend([u for u, _, _ in chosen], k=k).to_lists()
    return [
        {"user_id": u, "before": before, "recommended": [str(x) for x in recs], "after": after}
        for (u, before, after), recs in zip(chosen, lists, strict=True)
    ]
