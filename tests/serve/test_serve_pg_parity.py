"""The service on PostgreSQL gives the DuckDB store's answers: decide, experiments, live cart risk.

One synthetic shop (events, a catalog whose categories hold products nobody touched, consents, a
saved policy, an experiment) is loaded into a DuckDB file and into a fresh PostgreSQL schema by
each store's own path (the importers; `PostgresStorage.ingest`; the PostgreSQL working copy and
the CLI for the policy and the experiment). The DuckDB answers are the reference. Runs against
the real PostgreSQL on 127.0.0.1:5432 and skips, saying why, without it.
"""

from __future__ import annotations

import asyncio
import json
import math
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import httpx
import numpy as np
import pytest
from _serve_helpers import CLI, Server, make_events, pg_schema

from cartlift.act import CONTEXT_FEATURES, ActionCatalog, ProfitPolicy, cart_contexts
from cartlift.act._workflows import save_policy
from cartlift.errors import StoreError
from cartlift.experiments import Experiment, save_experiment
from cartlift.predict import FeatureContext, LiveScorer
from cartlift.serve import LoadedModels, ModelRegistry, create_key_in_store
from cartlift.serve._decide import _decide_on, _decide_on_postgres
from cartlift.serve._live import PostgresFeatureContext
from cartlift.store import (
    EventStore,
    PostgresStorage,
    clear,
    connect,
    fill_cart,
    new_slice,
    postgres_store,
    write_back,
)


def _products() -> list[dict[str, Any]]:
    # the shop's 40 products (4 categories) at the prices the events carry, plus one untouched
    # product per category: a category median needs the whole category, not only what was seen
    rows = [
        {"product_id": f"p{p}", "title": f"Product {p}", "category": f"c{p // 10}", "price": 5.0 + p}
        for p in range(40)
    ]
    rows += [
        {"product_id": f"x{c}", "title": "Premium", "category": f"c{c}", "price": 120.0} for c in range(4)
    ]
    for r in rows:
        r["cost"] = round(0.55 * r["price"], 2)
    return rows


def _consents() -> list[tuple[str, bool, bool]]:
    return [(f"u{u}", u % 2 == 0, u % 3 == 0) for u in range(150)]


@dataclass
class Shop:
    """The same shop in a DuckDB file and a PostgreSQL schema."""

    duck: Path  # served by the DuckDB server
    reference: Path  # a copy, for reading while the server holds the file
    pg: str
    models: Path
    carts: list[str]  # abandoned carts of returning customers, two of them of one customer
    race_carts: list[str]


@pytest.fixture(scope="module")
def shop(trained_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    folder = tmp_path_factory.mktemp("pg-parity")
    events, products, consents = make_events(), _products(), _consents()
    with pg_schema() as url:
        duck = folder / "store.duckdb"
        with EventStore(duck) as store:
            store.ingest_records(events, source="seed")
            store.ingest_products(products)
            store.create_tables(("consents",))
            store.con.executemany("INSERT INTO consents VALUES (?, ?, ?)", consents)
            contexts = cart_contexts(store)
            # logged at random, and an e-mail reminder doubles the purchase rate: the policy sends
            # one where the customer consented and the rules allow it
            rng = np.random.default_rng(0)
            actions = rng.choice(ActionCatalog().names, len(contexts))
            reminded = (actions == "reminder_email_1h") & contexts["email_consent"].to_numpy()
            bought = rng.random(len(contexts)) < np.where(reminded, 0.6, 0.3)
            policy = ProfitPolicy(
                features=[c for c in CONTEXT_FEATURES if c in contexts.columns],
                min_child_samples=5,
                n_estimators=20,
                random_state=0,
            ).fit(contexts, actions, bought)
            save_policy(store, policy)
            save_experiment(store, Experiment("banner", variants=("control", "treatment")))
        shutil.copy(duck, folder / "reference.duckdb")

        storage = PostgresStorage(url)
        storage.start()
        try:
            for i in range(0, len(events), 1000):
                asyncio.run(storage.ingest(records=events[i : i + 1000]))
        finally:
            storage.close()
        pg = connect(url)
        with pg.cursor() as cur:
            cur.executemany(
                "INSERT INTO products (product_id, title, category, price, cost) VALUES (%s, %s, %s, %s, %s)",
                [[r["product_id"], r["title"], r["category"], r["price"], r["cost"]] for r in products],
            )
            cur.executemany("INSERT INTO consents VALUES (%s, %s, %s)", consents)
        pg.close()
        # the policy and the experiment through the PostgreSQL working copy (what the CLI opens)
        with postgres_store(url) as working:
            save_policy(working, policy)
            save_experiment(working, Experiment("banner", variants=("control", "treatment")))

        returning = contexts[(contexts["past_sessions"] > 0) & contexts["email_consent"]]
        twice = returning["user_id"].value_counts().index[0]
        carts = returning.loc[returning["user_id"] == twice, "cart_id"].tolist()[-2:]
        others = [c for c in returning["cart_id"].tolist() if c not in carts]
        models = folder / "models"
        shutil.copytree(trained_store / "models", models)
        yield Shop(duck, folder / "reference.duckdb", url, models, carts + others[:3], others[3:6])


@dataclass
class Servers:
    """A server on the DuckDB file and two on the PostgreSQL schema, each with an admin key."""

    duck: Server
    pg: list[Server]
    keys: dict[str, str]

    def call(self, server: Server, method: str, path: str, **kw: Any) -> httpx.Response:
        key = self.keys["duck" if server is self.duck else "pg"]
        return httpx.request(
            method, server.url + path, headers={"Authorization": f"Bearer {key}"}, timeout=60, **kw
        )


@pytest.fixture(scope="module")
def servers(shop: Shop, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    folder = tmp_path_factory.mktemp("pg-parity-servers")
    keys = {
        "duck": create_key_in_store(str(shop.duck), scope="admin")[0],
        "pg": create_key_in_store(shop.pg, scope="admin")[0],
    }
    env = {"CARTLIFT_SERVE_MODEL_DIR": str(shop.models)}
    duck = Server(str(shop.duck), folder / "duck.log", env=env)
    pg = [Server(shop.pg, folder / f"pg{i}.log", env=env) for i in range(2)]
    try:
        # started together: each spends seconds importing before it answers
        starting = [threading.Thread(target=s.start) for s in (duck, *pg)]
        for t in starting:
            t.start()
        for t in starting:
            t.join()
        for s in (duck, *pg):
            assert httpx.get(s.url + "/healthz", timeout=10).status_code == 200, s.log.read_text()[-3000:]
        yield Servers(duck, pg, keys)
    finally:
        for s in (duck, *pg):
            s.stop()


def _at_once(calls: list[Callable[[], httpx.Response]]) -> list[httpx.Response]:
    """Run the calls on as many threads, released together."""
    barrier = threading.Barrier(len(calls))
    answers: list[httpx.Response] = []
    lock = threading.Lock()

    def run(call: Callable[[], httpx.Response]) -> None:
        barrier.wait()
        answer = call()
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=run, args=(c,)) for c in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return answers


def _close(a: Any, b: Any, path: str = "") -> None:
    """``a`` equals ``b``, floats to 1e-9 relative (the same model on the same features)."""
    if isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            _close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _close(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12), (
            f"{path}: {a} != {b}"
        )
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


# -- the live features' look-ups -----------------------------------------------------------------


def test_postgres_feature_context_reads_what_the_duckdb_one_reads(shop: Shop) -> None:
    con = duckdb.connect(str(shop.reference), read_only=True)
    reference, pg = FeatureContext(con), PostgresFeatureContext(shop.pg)
    try:
        products = [f"p{p}" for p in range(40)]
        medians = [pg.median(p) for p in products]
        assert medians == [reference.median(p) for p in products]
        # the median of a category includes its untouched premium product: (5..14, 120) -> 10.0
        assert pg.median("p3") == (10.0, 1000)
        for day in (datetime(2026, 9, 5).date(), datetime(2026, 9, 12).date()):
            snapshot = pg.products(day)
            assert snapshot == reference.products(day) and len(snapshot) > 30
        for user in ("u3", "u17", "u150", "nobody"):
            start = datetime(2026, 9, 14, 12, 0)
            got, want = pg.customer(user, start), reference.customer(user, start)
            assert got[1] == want[1]
            _close(list(got[0]), list(want[0]))
        assert pg.customer("u3", datetime(2026, 9, 14))[0][0] > 0  # a returning customer
    finally:
        pg.close()
        con.close()


# -- decisions -----------------------------------------------------------------------------------


def test_a_decision_stored_by_another_process_first_is_the_answer(shop: Shop) -> None:
    cart = shop.race_carts[-1]
    first_pg, second_pg = connect(shop.pg), connect(shop.pg)
    mine, theirs = new_slice(), new_slice()
    try:
        fill_cart(first_pg, mine, cart, "profit")
        lost = _decide_on(mine, cart, log=True)  # decided here, not stored yet
        assert lost is not None and lost["logged"] is True
        won = _decide_on_postgres(second_pg, theirs, cart, log=True)  # another process stores first
        assert won is not None and won["logged"] is True
        assert write_back(first_pg, mine, "decisions", "decision_id = ?", [lost["decision_id"]]) == 0
        clear(mine)
        answer = _decide_on_postgres(first_pg, mine, cart, log=True)
        assert answer is not None and answer["already_decided"] is True
        assert answer["decision_id"] == won["decision_id"]
        stored = first_pg.execute("SELECT decision_id FROM decisions WHERE cart_id = %s", [cart]).fetchall()
        assert stored == [(won["decision_id"],)]
    finally:
        for c in (first_pg, second_pg):
            c.close()
        for s in (mine, theirs):
            s.close()


@pytest.mark.slow
def test_decide_on_postgres_equals_decide_on_duckdb(shop: Shop, servers: Servers) -> None:
    random_parts = ("decision_id", "coupon_code")  # random ids (and codes derived from them)
    actions = []
    for cart in shop.carts:
        answers = []
        for server in (servers.duck, servers.pg[0]):
            dry = servers.call(server, "POST", f"/v1/carts/{cart}/decide?log=false")
            assert dry.status_code == 200, dry.text
            logged = servers.call(server, "POST", f"/v1/carts/{cart}/decide")
            assert logged.status_code == 200, logged.text
            answers.append(
                [{k: v for k, v in a.json().items() if k not in random_parts} for a in (dry, logged)]
            )
        # decided in the same order on both stores: the second cart of the same customer meets the
        # same frequency cap and coupon history
        _close(answers[1], answers[0])
        actions.append((cart, answers[1][1]["action"], answers[1][1]["propensity"]))
        assert answers[1][1]["logged"] is True
    assert {a for _, a, _ in actions} - {"nothing"}  # messages were sent: the rules were at work
    pg = connect(shop.pg)
    try:
        rows = pg.execute(
            "SELECT cart_id, action, propensity FROM decisions WHERE cart_id = ANY(%s) ORDER BY ts, cart_id",
            [shop.carts],
        ).fetchall()
    finally:
        pg.close()
    assert sorted(rows) == sorted(actions)  # every decision stored in PostgreSQL, as answered
    again = servers.call(servers.pg[1], "POST", f"/v1/carts/{shop.carts[0]}/decide").json()
    assert again["already_decided"] is True  # and seen by the other process


@pytest.mark.slow
def test_two_processes_deciding_one_cart_at_once_log_one_decision(shop: Shop, servers: Servers) -> None:
    for cart in shop.race_carts[:2]:
        answers = _at_once(
            [
                lambda server=servers.pg[i % 2], cart=cart: servers.call(
                    server, "POST", f"/v1/carts/{cart}/decide"
                )
                for i in range(8)
            ]
        )
        assert all(r.status_code == 200 for r in answers), [r.text for r in answers]
        bodies = [r.json() for r in answers]
        assert len({b["decision_id"] for b in bodies}) == 1
        assert sum(b["logged"] for b in bodies) == 1
        pg = connect(shop.pg)
        try:
            assert pg.execute("SELECT count(*) FROM decisions WHERE cart_id = %s", [cart]).fetchall() == [
                (1,)
            ]
        finally:
            pg.close()


# -- experiments ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_experiment_assignment_and_results_on_postgres_equal_duckdb(shop: Shop, servers: Servers) -> None:
    units = [f"u{i}" for i in range(30)] + [f"visitor-{i}" for i in range(10)]
    for i, unit in enumerate(units):
        want = servers.call(servers.duck, "GET", f"/v1/experiments/banner/assignment?unit={unit}").json()
        got = servers.call(servers.pg[i % 2], "GET", f"/v1/experiments/banner/assignment?unit={unit}").json()
        assert got == want and got["logged"] is True
    # after exposure: a third of the units buy, the same events on both stores
    now = datetime.now(UTC).replace(tzinfo=None)
    bought = [
        {
            "event_id": f"after-{unit}",
            "ts": (now + timedelta(seconds=1)).isoformat() + "Z",
            "user_id": unit,
            "session_id": f"after-{unit}",
            "event_type": "purchase",
            "product_id": "p1",
            "price": 6.0,
            "quantity": 1,
        }
        for unit in units[::3]
    ]
    for server in (servers.duck, servers.pg[0]):
        assert servers.call(server, "POST", "/v1/events", json={"events": bought}).json()["accepted"] == len(
            bought
        )
    want = servers.call(servers.duck, "GET", "/v1/experiments/banner/results").json()
    got = servers.call(servers.pg[1], "GET", "/v1/experiments/banner/results").json()
    _close(got, want)
    assert sum(v["n"] for v in got["variants"]) == len(units)
    assert sum(v["mean"] * v["n"] for v in got["variants"]) == pytest.approx(len(bought))
    # an exposure logged again keeps its first exposure time
    pg = connect(shop.pg)
    try:
        first = pg.execute("SELECT first_exposed_at FROM exposures WHERE unit_id = 'u0'").fetchall()
        servers.call(servers.pg[0], "GET", "/v1/experiments/banner/assignment?unit=u0")
        assert pg.execute("SELECT first_exposed_at FROM exposures WHERE unit_id = 'u0'").fetchall() == first
        assert pg.execute("SELECT count(*) FROM exposures").fetchall() == [(len(units),)]
    finally:
        pg.close()


# -- live cart risk ------------------------------------------------------------------------------


@pytest.mark.slow
def test_live_risk_on_postgres_equals_duckdb_for_a_returning_customer(shop: Shop, servers: Servers) -> None:
    now = datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=10)
    events = [
        {
            "event_id": f"live-{i}",
            "ts": (now + timedelta(seconds=30 * i)).isoformat() + "Z",
            "user_id": "u3",
            "session_id": "live-u3",
            "event_type": kind,
            "product_id": product,
            "price": 5.0 + int(product[1:]),
            "quantity": 1,
        }
        for i, (kind, product) in enumerate([("view", "p31"), ("cart_add", "p31"), ("view", "p35")])
    ]
    risks = []
    for server in (servers.duck, servers.pg[0]):
        assert servers.call(server, "POST", "/v1/events", json={"events": events}).json()["accepted"] == 3
        r = servers.call(server, "GET", "/v1/carts/live-u3/risk")
        assert r.status_code == 200, r.text
        risks.append(r.json())
    _close(risks[1], risks[0])
    assert risks[1]["cart_open"] is True and 0.0 < risks[1]["p_abandon"] < 1.0
    # without the customer's history and the catalog the same cart scores otherwise
    model = LoadedModels.load(ModelRegistry(shop.models)).abandonment
    scorer = LiveScorer(model)
    state = scorer.session()
    for e in events:
        state.update(e)
    assert not math.isclose(scorer.score(state), risks[1]["p_abandon"], rel_tol=1e-6)


# -- the working copy ----------------------------------------------------------------------------


def test_working_copy_refuses_to_change_events(shop: Shop) -> None:
    pg = connect(shop.pg)
    try:
        before = pg.execute("SELECT count(*) FROM events").fetchall()
        fresh = [{**e, "event_id": f"cli-{e['event_id']}"} for e in make_events(sessions=2, seed=7)]
        with pytest.raises(StoreError, match="POST /v1/events"), postgres_store(shop.pg) as store:
            assert store.ingest_records(fresh, source="cli").accepted == len(fresh)
        assert pg.execute("SELECT count(*) FROM events").fetchall() == before
    finally:
        pg.close()


@pytest.mark.slow
def test_the_cli_works_on_a_postgres_store(shop: Shop, tmp_path: Path) -> None:
    def cli(*args: str) -> Any:
        done = subprocess.run(
            [str(CLI), *args, "--db", shop.pg, "--json"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    assert cli("experiment", "create", "checkout-copy", "--variants", "control,short,long")["phase"] == 1
    listed = {e["name"]: e for e in cli("experiment", "list")["experiments"]}
    assert set(listed) == {"banner", "checkout-copy"}
    assert json.loads(listed["checkout-copy"]["variants"]) == ["control", "short", "long"]
    # a catalog load, with its load record (a new category: the shop's medians stay)
    catalog = tmp_path / "catalog.jsonl"
    catalog.write_text(
        json.dumps({"product_id": "z1", "title": "Gift card", "category": "c9", "price": 25.0}) + "\n"
    )
    loaded = cli("ingest", str(catalog), "--format", "products")
    assert (loaded["accepted"], loaded["quarantined"]) == (1, 0)
    pg = connect(shop.pg)
    try:
        assert pg.execute("SELECT category, price FROM products WHERE product_id = 'z1'").fetchall() == [
            ("c9", 25.0)
        ]
        assert pg.execute(
            "SELECT accepted FROM loads WHERE load_id = %s", [loaded["load_id"]]
        ).fetchall() == [(1,)]
    finally:
        pg.close()
