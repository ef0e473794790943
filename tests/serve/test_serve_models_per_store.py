"""Models belong to their store: per-store folders, another store's model refused, the best one served."""

from __future__ import annotations

import json
from pathlib import Path

from _serve_helpers import make_events
from typer.testing import CliRunner

from cartlift.cli import app
from cartlift.recommend._workflows import SERVED_CANDIDATES, evaluate_store
from cartlift.serve import LoadedModels, ModelRegistry, ServeSettings, train_all
from cartlift.store import EventStore, store_identity

runner = CliRunner()


def two_stores(folder: Path) -> tuple[Path, Path]:
    """Two shops side by side with different products (``p..`` and ``q..``)."""
    a, b = folder / "a.duckdb", folder / "b.duckdb"
    with EventStore(a) as store:
        store.ingest_records(make_events(sessions=300), source="a")
    with EventStore(b) as store:
        events = make_events(sessions=300, seed=1)
        for e in events:
            e["product_id"] = e["product_id"] and e["product_id"].replace("p", "q")
        store.ingest_records(events, source="b")
    return a, b


def test_recommend_models_of_two_stores_in_one_folder_stay_apart(tmp_path: Path) -> None:
    a, b = two_stores(tmp_path)
    paths = {}
    for db in (a, b):
        r = runner.invoke(app, ["recommend", "train", "--model", "itemknn", "--db", str(db), "--json"])
        assert r.exit_code == 0, r.output
        paths[db] = json.loads(r.stdout)["path"]
    assert paths[a] != paths[b]
    r = runner.invoke(app, ["recommend", "show", "u1", "--model", "itemknn", "--db", str(b), "--json"])
    assert r.exit_code == 0
    assert all(i["item_id"].startswith("q") for i in json.loads(r.stdout)["recommendations"])
    # a's model on b: refused in one line, not b's users answered with a's products
    r = runner.invoke(app, ["recommend", "show", "u1", "--model-path", paths[a], "--db", str(b)])
    assert r.exit_code == 2 and "trained on the store" in r.stderr and str(a.resolve()) in r.stderr


def test_the_service_refuses_another_stores_models(tmp_path: Path) -> None:
    a, b = two_stores(tmp_path)
    with EventStore(a, read_only=True) as store:
        train_all(store, ModelRegistry(tmp_path / "reg", store=store_identity(a)), recommender="itemknn")
    served = LoadedModels.load(ModelRegistry(tmp_path / "reg", store=store_identity(b)))
    assert served.recommender is None and served.abandonment is None
    assert (
        "trained on the store" in served.errors["recommender"]
        and str(a.resolve()) in served.errors["recommender"]
    )
    own = LoadedModels.load(ModelRegistry(tmp_path / "reg", store=store_identity(a)))
    assert own.recommender is not None and not own.errors


def test_each_store_gets_its_own_registry_folder(tmp_path: Path) -> None:
    a, b = tmp_path / "a.duckdb", tmp_path / "b.duckdb"
    assert ServeSettings(db=str(a)).registry_dir() != ServeSettings(db=str(b)).registry_dir()


def test_train_all_serves_what_evaluated_best(tmp_path: Path) -> None:
    a, _ = two_stores(tmp_path)
    with EventStore(a, read_only=True) as store:
        trained = train_all(store, ModelRegistry(tmp_path / "reg", store=store_identity(a)))
        reference = evaluate_store(store, SERVED_CANDIDATES, metrics=["NDCG@10"], n_bootstrap=0)
    best = reference.rows[0]["model"]
    assert trained["recommender"]["name"] == best
    board = trained["recommender"]["chosen_by"]["leaderboard"]
    assert [r["model"] for r in board] == [r["model"] for r in reference.rows]
    # told otherwise, it serves what it is told
    with EventStore(a, read_only=True) as store:
        other = next(m for m in ("itemknn", "als") if m != best)
        told = train_all(store, ModelRegistry(tmp_path / "reg2"), recommender=other)
    assert told["recommender"]["name"] == other


def test_a_registry_made_before_per_store_folders_is_still_found(tmp_path: Path) -> None:
    a, _ = two_stores(tmp_path)
    (tmp_path / "models" / "recommender" / "v0001").mkdir(parents=True)
    assert ServeSettings(db=str(a)).registry_dir() == tmp_path / "models"
