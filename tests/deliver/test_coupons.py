"""Coupons: issued once per decision, checked with the reason, redeemed by exactly one of two racers."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest
from _deliver_helpers import settings, utcnow

from cartlift.deliver import Db, Worker, connect_postgres, open_db, validate_coupon
from cartlift.deliver._repo import create, insert_coupons

PG = "postgresql://postgres@127.0.0.1:5432/test"


def issued(shop: Path) -> None:
    with open_db(shop) as db:
        Worker(db, settings(), outbox_dir=shop.parent / "outbox").run_once()


def test_a_coupon_is_valid_for_its_customer_only_once_and_until_it_expires(shop: Path) -> None:
    issued(shop)
    now = utcnow()
    with open_db(shop) as db:
        check = validate_coupon(db, code="CODE-U1", user_id="u1", now=now)
        assert check["valid"] and check["discount_share"] == pytest.approx(0.10)
        assert validate_coupon(db, code="NOPE", user_id="u1", now=now)["reason"] == "unknown"
        assert validate_coupon(db, code="CODE-U1", user_id="u2", now=now)["reason"] == "other_customer"
        assert (
            validate_coupon(db, code="CODE-U1", user_id="u1", now=now + timedelta(days=4))["reason"]
            == "expired"
        )
        used = validate_coupon(db, code="CODE-U1", user_id="u1", now=now, redeem=True, order_id="o1")
        assert used["valid"] and used["redeemed"]
        again = validate_coupon(db, code="CODE-U1", user_id="u1", now=now, redeem=True, order_id="o2")
        assert not again["valid"] and again["reason"] == "used"


def race(make_db: object, n: int = 8) -> list[bool]:
    """``n`` threads redeem one code at the same moment, each on its own connection."""
    dbs = [make_db() for _ in range(n)]  # type: ignore[operator]
    barrier = threading.Barrier(n)
    won: list[bool] = []

    def go(db: Db) -> None:
        barrier.wait()
        won.append(validate_coupon(db, code="RACE", user_id="u1", now=utcnow(), redeem=True)["redeemed"])

    threads = [threading.Thread(target=go, args=(db,)) for db in dbs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return won


def coupon_row() -> dict[str, object]:
    now = utcnow()
    return {"code": "RACE", "user_id": "u1", "cart_id": "s1", "decision_id": "d", "discount_share": 0.1,
            "discount_amount": 0.0, "created_at": now, "expires_at": now + timedelta(days=1)}  # fmt: skip


def test_concurrent_redemptions_on_duckdb_exactly_one_wins(shop: Path) -> None:
    import duckdb

    con = duckdb.connect(str(shop))
    db = Db(con)
    create(db)
    insert_coupons(db, [coupon_row()])
    won = race(lambda: Db(con.cursor()))
    assert sorted(won) == [False] * 7 + [True]


def test_concurrent_redemptions_on_postgres_exactly_one_wins() -> None:
    schema = f"coupons_{utcnow():%H%M%S%f}"
    url = f"{PG}?schema={schema}"
    try:
        db = connect_postgres(url)
    except Exception as e:  # pragma: no cover - the machines run PostgreSQL
        pytest.skip(f"no PostgreSQL: {e}")
    try:
        create(db)
        insert_coupons(db, [coupon_row()])
        won = race(lambda: connect_postgres(url))
        assert sorted(won) == [False] * 7 + [True]
    finally:
        db.execute(f'DROP SCHEMA "{schema}" CASCADE')
        db.con.close()
