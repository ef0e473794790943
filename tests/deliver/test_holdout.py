"""A cart in the global holdout is never messaged, whoever decided for it; due times agree with `after_quiet_hours`."""

from __future__ import annotations

import os
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from _deliver_helpers import SmtpServer, make_shop, settings

from cartlift.act import (
    DefaultPolicy,
    cart_contexts,
    create_decision_tables,
    decide_with_holdout,
    is_held_out,
    set_holdout,
)
from cartlift.deliver import Db, Worker, after_quiet_hours, connect_postgres, open_db, schedule
from cartlift.deliver._repo import create
from cartlift.store import EventStore

PG = "postgresql://postgres@127.0.0.1:5432/test"


def test_a_held_out_cart_is_never_messaged(tmp_path: Path, smtp: SmtpServer) -> None:
    carts = 60
    shop = make_shop(tmp_path / "shop.duckdb", carts=carts)
    with EventStore(shop) as store:
        set_holdout(
            store, 0.3
        )  # the decisions were logged outside the holdout check (as a store's own code may)
        # a recorded group wins over the hash, both ways (as `is_held_out` says)
        store.con.execute(
            "INSERT INTO holdout_assignments VALUES ('s0', 'u0', now(), 2, 0.3, true, 'd0', now()), "
            "('s1', 'u1', now(), 2, 0.3, false, 'd1', now())"
        )
        held = {f"s{i}" for i in range(carts) if is_held_out(store, f"s{i}")}
    assert "s0" in held and "s1" not in held and 5 < len(held) < 35
    with open_db(shop) as db:
        worker = Worker(db, settings(smtp_url=smtp.url), outbox_dir=tmp_path / "outbox")
        first = worker.run_once().to_dict()
        again = worker.run_once().to_dict()  # a second pass sends nothing to them either
        worker.close()
    assert first["held_out"] == len(held) and first["sent"] == carts - len(held)
    assert again["sent"] == again["held_out"] == 0
    received = {rcpt[0] for rcpt in smtp.sink.recipients}
    assert received == {f"u{i}@example.com" for i in range(carts) if f"s{i}" not in held}
    with EventStore(shop) as store:
        rows = store.con.execute("SELECT cart_id, status, last_error FROM messages").fetchall()
    assert {c for c, s, _ in rows if s == "cancelled"} == held
    assert all(e.startswith("held out: the cart is in the global holdout") for c, s, e in rows if c in held)


ZONES = ["Europe/Berlin", "America/New_York", "Asia/Tokyo", "Australia/Lord_Howe", "Asia/Kolkata", None]
QUIET = [(21, 8), (1, 6), (0, 23)]


def _due_times(
    db: Db, quiet: tuple[int, int]
) -> tuple[dict[str, datetime], dict[str, tuple[datetime, str | None]]]:
    """Schedule one decision per (hour of two DST-change days and a plain day, zone); the due times and the inputs."""
    create(db)
    starts = [datetime(2026, 3, 28, 12), datetime(2026, 10, 24, 12), datetime(2026, 7, 1, 0)]
    stamps = [s + timedelta(minutes=37 * k) for s in starts for k in range(40)]
    customers, decisions, inputs = [], [], {}
    for z, zone in enumerate(ZONES):
        customers.append([f"u{z}", zone])
        for k, ts in enumerate(stamps):
            decisions.append([f"d{z}-{k}", ts, f"u{z}", f"s{z}-{k}"])
            inputs[f"d{z}-{k}"] = (ts + timedelta(hours=1), zone)  # reminder_email_1h: one hour's delay
    db.insert("customers", ["user_id", "time_zone", "email_consent", "sms_consent", "updated_at"],
              [[u, z, True, False, datetime(2026, 1, 1)] for u, z in customers])  # fmt: skip
    db.insert("decisions", ["decision_id", "ts", "user_id", "cart_id", "policy", "action", "channel", "propensity",
                            "window_hours"],
              [[*d, "default", "reminder_email_1h", "email", 1.0, 168.0] for d in decisions])  # fmt: skip
    got = schedule(db, settings=settings(quiet_hours=quiet, max_age_hours=1e6), now=datetime(2026, 11, 1))
    assert got["too_late"] == 0
    return dict(db.rows("SELECT decision_id, due_at FROM messages")), inputs


@pytest.mark.parametrize("quiet", QUIET)
def test_due_times_computed_in_sql_match_after_quiet_hours(tmp_path: Path, quiet: tuple[int, int]) -> None:
    with EventStore(tmp_path / "s.duckdb") as store:
        create_decision_tables(store)
        store.con.execute("CREATE TABLE holdout_phases (phase INTEGER, share DOUBLE, salt VARCHAR, "
                          "started_at TIMESTAMP, created_at TIMESTAMP)")  # fmt: skip
        store.con.execute("INSERT INTO holdout_phases VALUES (1, 0.0, 'none', NULL, now())")
        due, inputs = _due_times(Db(store.con), quiet)
    assert len(due) == len(inputs)
    for d, (base, zone) in inputs.items():
        assert due[d] == after_quiet_hours(base, zone, quiet), (d, base, zone)


def test_due_times_on_postgresql_match_after_quiet_hours() -> None:
    schema = f"quiet_{os.getpid()}_{int(time.time())}"
    try:
        admin = connect_postgres(PG)
    except Exception as e:  # pragma: no cover - the machines run PostgreSQL
        pytest.skip(f"no PostgreSQL: {e}")
    try:
        db = connect_postgres(f"{PG}?schema={schema}")  # the store's tables, decisions among them
        # declared in the store (`cartlift.store.TABLES`), so connecting made it already
        db.execute("INSERT INTO holdout_phases VALUES (1, 0.0, 'none', NULL, now())")
        due, inputs = _due_times(db, (21, 8))
        db.con.close()
        for d, (base, zone) in inputs.items():
            assert due[d] == after_quiet_hours(base, zone, (21, 8)), (d, base, zone)
    finally:
        admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.con.close()


def test_deciding_a_batch_goes_through_the_holdout_first(tmp_path: Path, smtp: SmtpServer) -> None:
    carts = 60
    shop = make_shop(tmp_path / "shop.duckdb", carts=carts)
    with EventStore(shop) as store:
        store.con.execute("DELETE FROM decisions")
        set_holdout(store, 0.3)
        ctx = cart_contexts(store)
        assert len(ctx) == carts
        decisions = decide_with_holdout(store, DefaultPolicy(random_state=0), ctx)
        assert list(decisions["cart_id"]) == list(ctx["cart_id"])  # in the order of the contexts
        held = {c for c in ctx["cart_id"] if is_held_out(store, c)}
        got = store.con.execute(
            "SELECT cart_id, policy, action, channel, propensity FROM decisions"
        ).fetchall()
        recorded = dict(store.con.execute("SELECT cart_id, held_out FROM holdout_assignments").fetchall())
        linked = store.con.execute(
            "SELECT count(*) FROM holdout_assignments a JOIN decisions d USING (decision_id)"
        ).fetchall()[0][0]
    assert 5 < len(held) < 35 and len(got) == carts
    assert {c for c, p, a, ch, pr in got if p == "holdout"} == held
    assert all((a, ch, pr) == ("nothing", "none", 1.0) for c, p, a, ch, pr in got if c in held)
    assert recorded == {c: c in held for c in ctx["cart_id"]} and linked == carts
    messaged = {c for c, p, a, ch, pr in got if ch in ("email", "sms")}
    assert messaged and not messaged & held
    with open_db(shop) as db:
        worker = Worker(db, settings(smtp_url=smtp.url), outbox_dir=tmp_path / "outbox")
        result = worker.run_once().to_dict()
        worker.close()
    assert result["held_out"] == 0 and result["scheduled"] == len(messaged)
    with EventStore(shop) as store:
        sent = {
            c for (c,) in store.con.execute("SELECT cart_id FROM messages WHERE status = 'sent'").fetchall()
        }
    assert sent and sent <= messaged and not sent & held
