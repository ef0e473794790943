"""Keys that can be listed, revoked and expire; erasure that reaches the audit log and served models;
live carts that survive a restart; error bodies without the store's path."""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from _serve_helpers import Api, Server, check_error, copy_store
from typer.testing import CliRunner

from cartlift.cli import app
from cartlift.serve._keys import audit_subject, create_key_in_store, hash_key, new_key
from cartlift.store import open_storage

AUDIT_KEY = "the-shop-audit-secret"
runner = CliRunner()


@pytest.fixture
def shop(trained_store: Path, tmp_path: Path) -> tuple[str, str]:
    """A private copy of the trained store and an admin key: ``(db, key)``."""
    db = str(copy_store(trained_store, tmp_path))
    return db, create_key_in_store(db, scope="admin")[0]


def server(db: str, folder: Path) -> Server:
    return Server(db, folder / "server.log", env={"CARTLIFT_SERVE_AUDIT_KEY": AUDIT_KEY})


def test_keys_list_revoke_and_expire_from_the_cli(shop: tuple[str, str], tmp_path: Path) -> None:
    db, admin = shop
    r = runner.invoke(app, ["keys", "create", "--scope", "read", "--db", db, "--label", "shop front"])
    assert r.exit_code == 0
    read = r.stdout.strip().splitlines()[-1]
    r = runner.invoke(app, ["keys", "create", "--scope", "read", "--db", db, "--expires-in-days", "0.00002"])
    assert r.exit_code == 0 and "expiring" in r.stderr
    short = r.stdout.strip().splitlines()[-1]
    listed = json.loads(runner.invoke(app, ["keys", "list", "--db", db, "--json"]).stdout)["keys"]
    assert {k["key_id"] for k in listed} >= {read[3:11], short[3:11], admin[3:11]}
    assert not any(read in json.dumps(k) or "hash" in k for k in listed)  # never a secret
    front = next(k for k in listed if k["key_id"] == read[3:11])
    assert (front["label"], front["active"], front["expires_at"]) == ("shop front", True, None)

    time.sleep(2.0)  # the short key (1.7 s) has expired
    r = runner.invoke(app, ["keys", "revoke", read[3:11], "--db", db])
    assert r.exit_code == 0
    r = runner.invoke(app, ["keys", "revoke", read[3:11], "--db", db])
    assert r.exit_code == 2 and "no active key" in r.stderr
    with server(db, tmp_path) as s:
        api = Api(s, admin)
        try:
            check_error(api("GET", "/v1/users/u1/recommendations", key=read), 401)
            body = check_error(api("GET", "/v1/users/u1/recommendations", key=short), 401)
            assert "expired" in body["message"]
            assert api("GET", "/v1/users/u1/recommendations").status_code == 200
        finally:
            api.close()


def test_key_ids_never_begin_with_a_dash_and_older_ones_are_revoked_after_double_dash(
    shop: tuple[str, str],
) -> None:
    """One id in 64 drawn from the URL-safe alphabet begins with '-', which a command line takes for
    an option: new ids never do, and one stored by an earlier version is revoked after `--`."""
    assert not any(new_key()[1].startswith("-") for _ in range(3000))  # 3000 draws: a miss is ~1e-21
    db, _ = shop
    key = "cl_-zA0RoxO" + "x" * 35
    storage = open_storage(db)
    storage.run_now(
        lambda ctx: storage.insert_key(
            ctx,
            key_hash=hash_key(key),
            key_id=key[3:11],
            scope="read",
            rate_limit=None,
            label=None,
            expires_at=None,
            origins=(),
        )
    )
    r = runner.invoke(app, ["keys", "revoke", "--db", db, "--json", "--", "-zA0RoxO"])
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout) == {"key_id": "-zA0RoxO", "revoked": 1}


def test_keys_list_revoke_and_expire_through_the_admin_api(shop: tuple[str, str], tmp_path: Path) -> None:
    db, admin = shop
    with server(db, tmp_path) as s:
        api = Api(s, admin)
        try:
            made = api("POST", "/v1/admin/keys", json={"scope": "read", "label": "app"}).json()
            soon = api("POST", "/v1/admin/keys", json={"scope": "read", "expires_in_days": 0.00002}).json()
            assert soon["expires_at"].endswith(("Z", "+00:00")) and made["expires_at"] is None  # RFC 3339
            options = api("OPTIONS", "/v1/admin/keys")
            assert options.status_code == 405 and options.headers["allow"] == "GET, POST"
            assert "'/v1/admin/keys'" in options.json()["error"]["message"]
            assert api("GET", "/v1/users/u1/recommendations", key=made["key"]).status_code == 200
            keys = api("GET", "/v1/admin/keys").json()["keys"]
            assert {made["key_id"], soon["key_id"]} <= {k["key_id"] for k in keys}
            assert made["key"] not in json.dumps(keys)
            revoked = api("DELETE", f"/v1/admin/keys/{made['key_id']}")
            assert revoked.status_code == 200 and revoked.json()["revoked"] == 1
            check_error(api("GET", "/v1/users/u1/recommendations", key=made["key"]), 401)  # at once
            check_error(api("DELETE", f"/v1/admin/keys/{made['key_id']}"), 404)
            time.sleep(2.0)
            assert (
                "expired"
                in check_error(api("GET", "/v1/users/u1/recommendations", key=soon["key"]), 401)["message"]
            )
            states = {k["key_id"]: k["active"] for k in api("GET", "/v1/admin/keys").json()["keys"]}
            assert states[made["key_id"]] is False and states[soon["key_id"]] is False
        finally:
            api.close()


def test_errors_never_name_the_store_file(tmp_path: Path) -> None:
    db = str(tmp_path / "secret-location.duckdb")
    admin = create_key_in_store(db, scope="admin")[0]
    with server(db, tmp_path) as s:
        api = Api(s, admin)
        try:
            for path in ("/v1/experiments/banner/assignment?unit=u1", "/v1/experiments/banner/results"):
                body = check_error(api("GET", path), 404)
                assert "secret-location" not in json.dumps(body) and "duckdb" not in json.dumps(body)
        finally:
            api.close()


def test_erasure_is_audited_under_a_keyed_hash_and_masks_the_served_models(
    shop: tuple[str, str], tmp_path: Path
) -> None:
    db, admin = shop
    with server(db, tmp_path) as s:
        api = Api(s, admin)
        try:
            before = api("GET", "/v1/users/u3/recommendations?k=5").json()
            assert "recommender" in before["sources"]
            assert api("DELETE", "/v1/users/u3").status_code == 200
            after = api("GET", "/v1/users/u3/recommendations?k=5").json()
            assert after["sources"] == ["store-popularity"] and "recommender" not in after["models"]
            # the fallback's items carry a score like every model's (their number of users)
            assert all(isinstance(i["score"], float) and i["score"] >= 1 for i in after["items"])
            # another user keeps the personalised list
            assert "recommender" in api("GET", "/v1/users/u4/recommendations?k=5").json()["sources"]
            record = api("GET", "/v1/admin/audit").json()["records"][0]
        finally:
            api.close()
    assert record["subject"] == audit_subject("u3", AUDIT_KEY)
    assert hashlib.sha256(b"u3").hexdigest() not in record["subject"]
    with server(db, tmp_path) as s:  # the mask survives a restart (it is the audit log)
        api = Api(s, admin)
        try:
            assert api("GET", "/v1/users/u3/recommendations?k=5").json()["sources"] == ["store-popularity"]
        finally:
            api.close()


def test_live_carts_are_rebuilt_from_the_store_after_a_restart(shop: tuple[str, str], tmp_path: Path) -> None:
    db, admin = shop
    now = datetime.now().replace(microsecond=0)
    events = [
        {
            "event_id": f"live-{i}",
            "ts": (now + timedelta(seconds=i)).isoformat() + "Z",
            "user_id": "u9",
            "session_id": "cart-before-restart",
            "event_type": kind,
            "product_id": "p3",
            "price": 8.0,
            "quantity": 1,
        }
        for i, kind in enumerate(["view", "cart_add"])
    ]
    with server(db, tmp_path) as s:
        api = Api(s, admin)
        try:
            assert api("POST", "/v1/events", json={"events": events}).json()["accepted"] == 2
            first = api("GET", "/v1/carts/cart-before-restart/risk").json()
        finally:
            api.close()
    with server(db, tmp_path) as s:
        api = Api(s, admin)
        try:
            risk = api("GET", "/v1/carts/cart-before-restart/risk")
            assert risk.status_code == 200, risk.text
            assert risk.json() == first
            # an old session of the store (not among the recent ones rebuilt at start): on demand
            assert api("GET", "/v1/carts/s1/risk").status_code == 200
        finally:
            api.close()


def test_the_schema_documents_400_and_numbers_are_never_booleans(tmp_path: Path) -> None:
    from pydantic import ValidationError

    from cartlift.serve import ServeSettings, create_app
    from cartlift.serve._schemas import CartRecommendationCreate, EventCreate, KeyCreate

    doc = create_app(ServeSettings(db=str(tmp_path / "s.duckdb"))).openapi()
    for path, operations in doc["paths"].items():
        for method, op in operations.items():
            if path.startswith("/v1"):
                assert "400" in op["responses"], (method, path)
    # an event's boolean price passes the schema as a boolean and is refused per event by the one
    # validation ("a boolean is not a number", tests/serve/test_serve_validation.py), so the rest
    # of its batch is still stored; it is never read as a number
    event = {"event_type": "view", "user_id": "u", "session_id": "s", "ts": "2026-01-01T00:00:00Z"}
    assert EventCreate(**event, price=False).price is False
    for bad in (
        lambda: CartRecommendationCreate(items=["p1"], k=True),
        lambda: KeyCreate(scope="read", rate_limit=True),
    ):
        with pytest.raises(ValidationError):
            bad()
    assert EventCreate(**event, price=9.5).price == 9.5 and CartRecommendationCreate(items=["p1"], k=3).k == 3


def test_a_key_revoked_by_the_cli_is_refused_at_once_by_running_services_on_postgres(tmp_path: Path) -> None:
    """Two services on one PostgreSQL store have the key cached; `cartlift keys revoke` in another
    process, and the very next request to either is refused (LISTEN/NOTIFY, not a cache timeout).
    The same holds after the services' listening connection was cut and re-made."""
    import psycopg
    from _serve_helpers import CLI, PG_BASE, pg_schema

    with pg_schema() as url:
        read = [create_key_in_store(url, scope="read")[0] for _ in range(2)]
        servers = [Server(url, tmp_path / f"pg{i}.log") for i in range(2)]
        for s in servers:
            s.start()
        apis = [Api(s) for s in servers]
        try:
            for api in apis:  # cached in both services
                assert api("GET", "/v1/users/u1/recommendations", key=read[0]).status_code == 200
            done = subprocess.run(
                [str(CLI), "keys", "revoke", read[0][3:11], "--db", url], capture_output=True, text=True
            )
            assert done.returncode == 0, done.stderr
            for api in apis:
                check_error(api("GET", "/v1/users/u1/recommendations", key=read[0]), 401)
                assert api("GET", "/v1/users/u1/recommendations", key=read[1]).status_code == 200

            # cut the services' listening connections: a revocation made meanwhile still counts
            schema = url.rsplit("=", 1)[1]
            with psycopg.connect(PG_BASE, autocommit=True) as admin:
                cut = admin.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = %s",
                    [f"cartlift-key-watch:{schema}"],
                ).fetchone()
            assert cut is not None and cut[0] == 2
            done = subprocess.run(
                [str(CLI), "keys", "revoke", read[1][3:11], "--db", url], capture_output=True, text=True
            )
            assert done.returncode == 0, done.stderr
            for api in apis:
                check_error(api("GET", "/v1/users/u1/recommendations", key=read[1]), 401)
            for s in servers:
                assert "Not hearing key revocations" in s.log.read_text()
        finally:
            for api in apis:
                api.close()
            for s in servers:
                s.stop()
