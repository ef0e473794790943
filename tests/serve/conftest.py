"""Fixtures of the service tests: a trained store built once, and a real server on a copy of it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from _serve_helpers import Api, Running, Server, copy_store, make_events, pg_schema

from cartlift.act import CONTEXT_FEATURES, ActionCatalog, ProfitPolicy, cart_contexts
from cartlift.act._workflows import save_policy
from cartlift.experiments import Experiment, expose_event_users, save_experiment
from cartlift.serve import ModelRegistry, create_key_in_store, train_all
from cartlift.store import EventStore
from cartlift.store._storage import SERVICE_TABLES


@pytest.fixture(scope="session")
def trained_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with ``store.duckdb`` (the synthetic shop, one experiment) and ``models/`` (trained)."""
    folder = tmp_path_factory.mktemp("trained")
    with EventStore(folder / "store.duckdb") as store:
        result = store.ingest_records(make_events(), source="seed")
        assert result.accepted > 1000 and result.quarantined == 0
        save_experiment(store, Experiment("banner", variants=("control", "treatment")))
        # decisions as the act package logs them (its ``decisions`` table), for the dashboard
        bought = [
            r[0]
            for r in store.con.execute(
                "SELECT DISTINCT session_id FROM events WHERE event_type = 'purchase' ORDER BY 1 LIMIT 2"
            ).fetchall()
        ]
        other = store.con.execute(
            "SELECT session_id FROM events GROUP BY 1 HAVING NOT bool_or(event_type = 'purchase') ORDER BY 1 LIMIT 1"
        ).fetchall()[0][0]
        store.create_tables(SERVICE_TABLES)
        for i, (cart, action) in enumerate(
            [(bought[0], "coupon_10"), (bought[1], "coupon_10"), (other, "nothing")]
        ):
            store.con.execute(
                "INSERT INTO decisions (decision_id, ts, user_id, cart_id, policy, action, propensity, window_hours)"
                " SELECT ?, min(ts), any_value(user_id), ?, 'profit', ?, 0.5, 168 FROM events WHERE session_id = ?",
                [f"d{i}", cart, action, cart],
            )
        expose_event_users(store, "banner")
        # a next-best-action policy as `cartlift act train` saves one (fitted here on random
        # actions: the service only has to run it, the act tests judge its quality)
        contexts = cart_contexts(store)
        rng = np.random.default_rng(0)
        policy = ProfitPolicy(
            features=[c for c in CONTEXT_FEATURES if c in contexts.columns],
            min_child_samples=5,
            n_estimators=20,
            random_state=0,
        ).fit(contexts, rng.choice(ActionCatalog().names, len(contexts)), rng.random(len(contexts)) < 0.3)
        save_policy(store, policy)
        trained = train_all(store, ModelRegistry(folder / "models"))
        assert all("version" in v for v in trained.values()), trained
    return folder


@pytest.fixture(scope="module")
def running(trained_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """A server on a private copy of the trained store, with admin, read, ingest and rate-limited keys."""
    folder = tmp_path_factory.mktemp("running")
    db = str(copy_store(trained_store, folder))
    keys = {scope: create_key_in_store(db, scope=scope)[0] for scope in ("admin", "read", "ingest")}
    keys["slow"] = create_key_in_store(db, scope="read", rate_limit=1.0)[0]
    server = Server(db, folder / "server.log", env={"CARTLIFT_SERVE_MAX_BODY_BYTES": "200000"})
    with server:
        api = Api(server, keys["admin"])
        try:
            yield Running(server, folder, keys, api)
        finally:
            api.close()


@pytest.fixture(params=["duckdb", "postgres"])
def any_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh store of each backend (a DuckDB file; a schema of the local PostgreSQL)."""
    if request.param == "duckdb":
        yield str(tmp_path / "store.duckdb")
        return
    with pg_schema() as url:
        yield url
