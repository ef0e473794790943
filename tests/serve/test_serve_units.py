"""The service's parts without a server: outcomes, the single writer, live state, limits, registry."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from _serve_helpers import make_events
from pydantic import ValidationError
from typer.testing import CliRunner

from cartlift.cli import app
from cartlift.events import CheckedRecords
from cartlift.predict import FeatureContext, SessionState
from cartlift.serve import MemorySessions, ModelRegistry, ServeSettings, hash_key, pseudonymise
from cartlift.serve._limits import MemoryRateLimiter
from cartlift.serve._metrics import Metrics
from cartlift.store import EventStore, Writer
from cartlift.store._storage import split_outcomes
from cartlift.store._writer import group_ready


def test_split_outcomes_shares_one_load_among_merged_batches() -> None:
    batches = [
        [{"event_id": "a"}, {"event_id": "b"}, {"event_id": "bad"}],
        [{"event_id": "a"}, {"event_id": "c"}],
    ]
    # what the check found: "b" valid, "bad" rejected, the second "a" a repeat of the first
    checked = CheckedRecords(
        accepted=pa.table({"event_id": ["a", "b", "c"], "_row": [1, 2, 5]}),
        repeated=[(4, "a")],
        rejected=[(3, '{"event_id":"bad"}', "unknown event type", "bad")],
    )
    # the ids the store took ("b" it already had)
    first, second = split_outcomes(batches, checked, {"a", "c"})
    # "b" was already stored (not in the load's accepted rows): a duplicate
    assert (first.accepted, first.duplicates, first.rejected) == (1, 1, 1)
    assert first.errors == [{"index": 2, "event_id": "bad", "reason": "unknown event type"}]
    # the second "a" repeats the first batch's: the first occurrence wins
    assert (second.accepted, second.duplicates, second.duplicate_ids) == (1, 1, ["a"])


def test_writer_merges_waiting_batches_and_isolates_a_failing_one() -> None:
    groups: list[int] = []
    gate = threading.Event()

    def ingest(ctx: None, batches: list[list[dict[str, Any]]]) -> list[int]:
        gate.wait(5)
        groups.append(len(batches))
        if any(r.get("bad") for b in batches for r in b):
            raise ValueError("bad batch")
        return [len(b) for b in batches]

    writer: Writer[None] = Writer("test", lambda: None, ingest, lambda ctx: None, max_events=100)
    writer.start()
    try:
        first = writer.submit_ingest([{"n": 0}])
        time.sleep(0.1)  # the first group is running (blocked on the gate); the rest queue up
        rest = [writer.submit_ingest([{"n": i}] * 3) for i in range(5)]
        bad = writer.submit_ingest([{"bad": True}])
        gate.set()
        assert first.result(5) == 1
        assert [f.result(5) for f in rest] == [3] * 5
        with pytest.raises(ValueError, match="bad batch"):
            bad.result(5)
        # the batches that waited were tried as one group; when the bad one failed it, each was retried alone
        assert groups[0] == 1 and groups[1] == 6 and groups[2:] == [1] * 6
        assert writer.submit(lambda ctx: "calls run in order too").result(5) == "calls run in order too"
    finally:
        writer.stop()
    assert not writer.alive


def test_writer_commits_once_the_last_groups_clients_are_back() -> None:
    # 64 clients answered together come back together: once all 64 wait, no need to linger a step
    assert group_ready(waiting=64, seen=60, last_group=64, full=False)
    assert not group_ready(waiting=63, seen=60, last_group=64, full=False)  # still arriving: wait
    assert group_ready(waiting=70, seen=-1, last_group=64, full=False)  # more than before: go
    # fewer clients than last time: the group goes once no batch arrived during a step
    assert group_ready(waiting=40, seen=40, last_group=64, full=False)
    # the first group (nothing taken before) waits for a step without arrivals, as before
    assert not group_ready(waiting=1, seen=-1, last_group=0, full=False)
    assert group_ready(waiting=1, seen=1, last_group=0, full=False)
    assert group_ready(waiting=2, seen=1, last_group=0, full=True)  # a full group never waits


def test_pseudonymise_is_a_keyed_hash() -> None:
    assert pseudonymise("alice", None) == "alice"
    a = pseudonymise("alice", "secret-1")
    assert a == pseudonymise("alice", "secret-1") and a.startswith("p_") and "alice" not in a
    assert a != pseudonymise("alice", "secret-2") and a != pseudonymise("bob", "secret-1")
    assert hash_key("cl_x") != "cl_x" and len(hash_key("cl_x")) == 64


def test_memory_sessions_match_the_predict_state_in_any_arrival_order() -> None:
    events = [e for e in make_events(sessions=40) if e["session_id"] in {"s3", "s4", "s5"}]
    live = MemorySessions(FeatureContext())
    live.record(events[::2])
    live.record(events[1::2])  # older events arrive after newer ones: rebuilt in order
    for sid in ("s3", "s4", "s5"):
        expected = SessionState()
        for e in sorted(
            (e for e in events if e["session_id"] == sid), key=lambda e: (e["ts"], e["event_id"])
        ):
            expected.update(e)
        got = live.evaluate(sid, lambda s: s.features())
        assert got is not None
        want = expected.features()
        assert {k: v for k, v in got.items() if v == v} == {k: v for k, v in want.items() if v == v}
    assert live.evaluate("unknown", lambda s: 1) is None
    assert live.forget_user(events[0]["user_id"]) >= 1


def test_memory_sessions_order_stored_times_by_instant_then_id() -> None:
    # stored rows carry naive UTC datetimes; a replayed text with an offset names the same instant
    base = datetime(2026, 10, 1, 10)
    events = [
        {"event_id": f"e{i}", "ts": base + timedelta(seconds=i // 3), "user_id": "u1", "session_id": "s1",
         "event_type": "cart_add" if i % 4 == 0 else "view", "product_id": f"p{i % 5}", "quantity": 1, "price": 5.0 + i}
        for i in range(12)
    ]  # fmt: skip
    events.append({**events[0], "event_id": "e12", "ts": "2026-10-01T11:00:01+01:00"})  # 10:00:01 UTC
    live = MemorySessions(FeatureContext())
    live.record(events[:2])
    live.evaluate("s1", lambda s: s.features())  # a state read: later events update it in place
    live.record(events[6:])  # equal times with ids e10 < e9 as text, and an earlier time after a later one
    live.record(events[2:6])
    expected = SessionState()
    instant = {"e12": datetime(2026, 10, 1, 10, 0, 1)}
    for e in sorted(events, key=lambda e: (instant.get(e["event_id"], e["ts"]), e["event_id"])):
        expected.update(e)
    got, want = live.evaluate("s1", lambda s: s.features()), expected.features()
    assert got is not None
    assert {k: v for k, v in got.items() if v == v} == {k: v for k, v in want.items() if v == v}


def test_memory_sessions_are_bounded() -> None:
    live = MemorySessions(FeatureContext(), capacity=10)
    live.record(make_events(sessions=50))
    assert len(live) == 10
    assert live.recent(3) == ["s49", "s48", "s47"]


def test_token_bucket() -> None:
    limiter = MemoryRateLimiter()
    assert all(limiter.hit("k", rate=1000.0, burst=5) is None for _ in range(5))
    wait = limiter.hit("k", rate=1000.0, burst=5)
    assert wait is not None and 0 < wait <= 0.001
    assert limiter.hit("other", rate=1000.0, burst=5) is None
    time.sleep(0.01)
    assert limiter.hit("k", rate=1000.0, burst=5) is None


def test_metrics_histogram_is_cumulative() -> None:
    m = Metrics()
    for seconds in (0.0001, 0.003, 0.003, 7.0):
        m.observe("GET", "/x", 200, seconds)
    text = m.render(models={"recommender": {"name": "itemknn", "version": "v0003"}}, gauges={"g": 1.5})
    assert 'cartlift_http_request_duration_seconds_bucket{method="GET",route="/x",le="0.0005"} 1' in text
    assert 'cartlift_http_request_duration_seconds_bucket{method="GET",route="/x",le="0.005"} 3' in text
    assert 'cartlift_http_request_duration_seconds_bucket{method="GET",route="/x",le="+Inf"} 4' in text
    assert 'cartlift_http_request_duration_seconds_count{method="GET",route="/x"} 4' in text
    assert 'cartlift_model_info{kind="recommender",name="itemknn",version="v0003"} 1' in text


def test_registry_versions_are_atomic_and_pruned(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "models", keep=2)

    def build(folder: Path) -> dict[str, Any]:
        (folder / "model.npz").write_bytes(b"x")
        return {"name": "dummy"}

    assert [registry.publish("popularity", build) for _ in range(3)] == ["v0001", "v0002", "v0003"]
    assert registry.versions("popularity") == ["v0002", "v0003"]

    def broken(folder: Path) -> dict[str, Any]:
        (folder / "half-written").write_bytes(b"x")
        raise ValueError("training failed")

    with pytest.raises(ValueError, match="training failed"):
        registry.publish("popularity", broken)
    assert registry.versions("popularity") == ["v0002", "v0003"]
    assert not any(p.name.startswith(".building") for p in (tmp_path / "models" / "popularity").iterdir())
    assert registry.meta("popularity", "v0003")["name"] == "dummy"


def test_settings_fail_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARTLIFT_SERVE_MAX_BODY_BYTES", "-5")
    with pytest.raises(ValidationError, match="max_body_bytes"):
        ServeSettings()
    monkeypatch.delenv("CARTLIFT_SERVE_MAX_BODY_BYTES")
    monkeypatch.setenv("CARTLIFT_SERVE_CORS_ORIGINS", "https://a.example, https://b.example")
    assert ServeSettings().cors_origins == ["https://a.example", "https://b.example"]
    assert ServeSettings(db="postgresql://u@h/db").store.is_postgres


def test_keys_create_prints_the_key_alone_on_the_last_line(tmp_path: Path) -> None:
    db = tmp_path / "store.duckdb"
    result = CliRunner().invoke(app, ["keys", "create", "--scope", "ingest", "--db", str(db)])
    assert result.exit_code == 0, result.output
    key = result.stdout.strip().splitlines()[-1]
    assert key.startswith("cl_") and " " not in key
    with EventStore(db, read_only=True) as store:
        rows = store.con.execute("SELECT key_hash, scope FROM api_keys").fetchall()
    assert rows == [(hash_key(key), "ingest")]  # stored hashed, never in clear
    bad = CliRunner().invoke(app, ["keys", "create", "--scope", "root", "--db", str(db)])
    assert bad.exit_code == 2 and "scope must be one of" in bad.output


def test_train_all_publishes_new_versions(trained_store: Path, tmp_path: Path) -> None:
    from _serve_helpers import copy_store

    db = copy_store(trained_store, tmp_path)
    result = CliRunner().invoke(app, ["train", "--all", "--db", str(db), "--json"])
    assert result.exit_code == 0, result.output
    models = json.loads(result.stdout)["models"]
    assert {k: v["version"] for k, v in models.items()} == {
        "recommender": "v0002",
        "popularity": "v0002",
        "abandonment": "v0002",
    }
    assert CliRunner().invoke(app, ["train", "--db", str(db)]).exit_code == 2  # --all is required


def test_serve_refuses_several_workers_on_one_duckdb_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["serve", "--db", str(tmp_path / "s.duckdb"), "--workers", "2"])
    assert result.exit_code == 2 and "PostgreSQL store" in result.output


def test_a_serve_process_collects_garbage_less_often_and_an_embedding_app_keeps_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`cartlift serve`'s factory sets the collector's thresholds (the live sessions keep every posted
    event: the default made full passes over them every few seconds); `create_app` leaves them alone."""
    import gc

    from cartlift.serve import create_app
    from cartlift.serve._app import GC_THRESHOLDS, app_from_env

    before = gc.get_threshold()
    monkeypatch.setenv("CARTLIFT_DB", str(tmp_path / "store.duckdb"))
    try:
        gc.set_threshold(700, 10, 10)
        create_app(ServeSettings())
        assert gc.get_threshold() == (700, 10, 10)
        app_from_env()
        assert gc.get_threshold() == GC_THRESHOLDS
    finally:
        gc.set_threshold(*before)
