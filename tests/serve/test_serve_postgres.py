"""PostgreSQL as the store of several service processes, and Redis for the live state they share.

Runs against the real servers on 127.0.0.1 (PostgreSQL 5432, Redis 6379); each test uses its own
schema and key prefix and removes them after. Without a server, the tests skip and say why.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from _serve_helpers import Server, make_events, pg_schema

from cartlift.events import UNKNOWN_EVENT_TYPE
from cartlift.serve import ModelRegistry, create_key_in_store
from cartlift.serve._train import train_from_db
from cartlift.store import PostgresStorage

REDIS = "redis://127.0.0.1:6379/0"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh schema in the local PostgreSQL, dropped after the test."""
    with pg_schema() as url:
        yield url


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A fresh key prefix in the local Redis, deleted after the test."""
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(REDIS, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.RedisError as e:
        pytest.skip(f"Redis is not reachable at 127.0.0.1:6379 ({e}); `.ci/run` installs it")
    prefix = f"cartlift-test-{uuid.uuid4().hex[:10]}"
    try:
        yield prefix
    finally:
        keys = list(client.scan_iter(f"{prefix}:*"))
        if keys:
            client.delete(*keys)
        client.close()


def test_postgres_storage_validates_like_the_importers_and_is_idempotent(pg_url: str) -> None:
    storage = PostgresStorage(pg_url)
    storage.start()
    try:
        good = [
            {
                "event_id": f"pg-{i}",
                "ts": "2026-10-01T10:00:00Z",
                "user_id": "u1",
                "session_id": "s1",
                "event_type": "view",
                "product_id": "p1",
                "price": 2.5,
                "quantity": 1,
            }
            for i in range(3)
        ]
        bad = {**good[0], "event_id": "pg-bad", "event_type": "teleport"}

        async def run() -> tuple[object, object, int]:
            first = await storage.ingest(records=[*good, bad])
            second = await storage.ingest(records=good)
            return first, second, await storage.event_count()

        first, second, count = asyncio.run(run())
        assert (first.accepted, first.duplicates, first.rejected) == (3, 0, 1)  # type: ignore[attr-defined]
        assert first.errors == [{"index": 3, "event_id": "pg-bad", "reason": UNKNOWN_EVENT_TYPE}]  # type: ignore[attr-defined]
        assert (second.accepted, second.duplicates) == (0, 3)  # type: ignore[attr-defined]
        assert count == 3
        erased = asyncio.run(storage.erase_user(user_id="u1", actor="test"))
        # every table naming a person exists on PostgreSQL (contacts, outbox, identities too)
        assert erased == {
            "events": 3,
            "decisions": 0,
            "exposures": 0,
            "consents": 0,
            "quarantine": 1,
            "customers": 0,
            "contact_quarantine": 0,
            "messages": 0,
            "coupons": 0,
            "message_events": 0,
            "identities": 0,
            "holdout_assignments": 0,
            "attributions": 0,
            "rec_impressions": 0,
            "rec_attributions": 0,
        }
    finally:
        storage.close()


def test_two_processes_write_one_postgres_store_and_share_live_state_in_redis(
    pg_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    key = create_key_in_store(pg_url, scope="admin")[0]
    env = {"CARTLIFT_SERVE_REDIS_PREFIX": redis_prefix, "CARTLIFT_SERVE_MODEL_DIR": str(tmp_path / "models")}
    servers = [
        Server(pg_url, tmp_path / f"server{i}.log", env=env, args=["--redis", REDIS]) for i in range(2)
    ]
    events = make_events(sessions=120)
    headers = {"Authorization": f"Bearer {key}"}
    answers: list[dict[str, int]] = []
    lock = threading.Lock()

    def post(url: str, part: list[dict[str, object]]) -> None:
        with httpx.Client(base_url=url, timeout=60) as client:
            for i in range(0, len(part), 25):
                r = client.post("/v1/events", json={"events": part[i : i + 25]}, headers=headers)
                assert r.status_code == 200, r.text
                with lock:
                    answers.append(r.json())

    try:
        for s in servers:
            s.start()
        # both processes get every event, in different orders: each must be stored exactly once
        threads = [
            threading.Thread(target=post, args=(servers[0].url, events)),
            threading.Thread(target=post, args=(servers[1].url, events[::-1])),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sum(a["accepted"] for a in answers) == len(events)
        assert sum(a["duplicates"] for a in answers) == len(events)
        with httpx.Client(timeout=30) as client:
            dash = client.get(servers[1].url + "/v1/dashboard", headers=headers).json()
            assert dash["events"] == len(events)
            # a session's events went to both processes; each sees the whole session through Redis
            session = events[-1]["session_id"]
            n = sum(e["session_id"] == session for e in events)
            for s in servers:
                risk = client.get(f"{s.url}/v1/carts/{session}/risk", headers=headers).json()
                assert risk["events"] == n
    finally:
        for s in servers:
            s.stop()
    # training reads a snapshot of the PostgreSQL store
    trained = train_from_db(pg_url, ModelRegistry(tmp_path / "models"))
    assert trained["recommender"]["version"] == "v0001" and trained["popularity"]["version"] == "v0001"


def test_redis_rate_limit_is_shared_by_every_process(redis_prefix: str) -> None:
    from cartlift.serve._limits import RedisRateLimiter

    # two limiters stand for two worker processes: together they allow `rate` requests a second
    first, second = RedisRateLimiter(REDIS, redis_prefix), RedisRateLimiter(REDIS, redis_prefix)
    try:
        refused = []
        for _ in range(3):  # a pair may straddle a one-second window; then try again
            allowed = [first.hit("k", rate=2, burst=2), second.hit("k", rate=2, burst=2)]
            refused.append(second.hit("k", rate=2, burst=2))
            if allowed == [None, None] and refused[-1] is not None:
                break
        assert refused[-1] is not None and 0 < refused[-1] <= 1
        assert first.hit("another-key", rate=2, burst=2) is None
    finally:
        first.close()
        second.close()


def test_postgres_working_copy_writes_back_what_the_packages_log_and_erasure_removes_it(pg_url: str) -> None:
    from cartlift.errors import InvalidParameterError
    from cartlift.experiments import Experiment, log_exposures, save_experiment
    from cartlift.store import postgres_store

    decision = (
        "INSERT INTO decisions (decision_id, ts, user_id, cart_id, policy, action, propensity, window_hours)"
        " VALUES (?, TIMESTAMP '2026-10-01 10:00:00', 'u1', 's1', 'profit', ?, 1.0, 168)"
    )
    with postgres_store(pg_url) as store:
        assert save_experiment(store, Experiment("banner", variants=("control", "treatment"))) == 1
        log_exposures(store, "banner", ["u1", "u2"])
        store.con.execute(decision, ["d1", "nothing"])
    # the package's own rules run against PostgreSQL's definitions: re-weighting a running phase is refused
    with (
        pytest.raises(InvalidParameterError, match="new salt"),
        postgres_store(pg_url) as store,
    ):
        save_experiment(store, Experiment("banner", variants=("control", "treatment"), weights=(0.9, 0.1)))
    with postgres_store(pg_url) as store:
        store.con.execute(decision, ["d2", "coupon_10"])  # a second decision for cart s1 is not stored
        listed = store.con.execute("SELECT name, phase FROM experiments").fetchall()
        exposed = store.count("exposures")
    assert listed == [("banner", 1)] and exposed == 2
    from cartlift.store import connect

    con = connect(pg_url)
    try:
        con.execute(
            "INSERT INTO consents (user_id, email, sms) VALUES ('u1', true, false), ('u2', true, true)"
        )
        storage = PostgresStorage(pg_url)
        storage.start()
        try:
            erased = asyncio.run(storage.erase_user(user_id="u1", actor="test"))
            assert erased == {
                "events": 0,
                "decisions": 1,
                "exposures": 1,
                "consents": 1,
                "quarantine": 0,
                "customers": 0,
                "contact_quarantine": 0,
                "messages": 0,
                "coupons": 0,
                "message_events": 0,
                "identities": 0,
                "holdout_assignments": 0,
                "attributions": 0,
                "rec_impressions": 0,
                "rec_attributions": 0,
            }
        finally:
            storage.close()
        # everything naming u1 is gone, the others' rows stay
        assert con.execute("SELECT user_id FROM consents").fetchall() == [("u2",)]
    finally:
        con.close()
