"""The outbox against a real SMTP server (aiosmtpd on 127.0.0.1): what arrives, retries, cancels, deferrals."""

from __future__ import annotations

from datetime import datetime, timedelta
from email.message import Message
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from _deliver_helpers import SmtpServer, settings, utcnow

from cartlift.deliver import Worker, after_quiet_hours, open_db, read_token
from cartlift.deliver._repo import secret, status_counts, unsubscribe
from cartlift.store import EventStore


def run(shop: Path, smtp_url: str | None = None, now: datetime | None = None, **kw: object) -> dict[str, int]:
    extra = {"smtp_url": smtp_url} if smtp_url else {}
    with open_db(shop) as db:
        worker = Worker(db, settings(**extra, **kw), outbox_dir=shop.parent / "outbox")
        try:
            return worker.run_once(now).to_dict()
        finally:
            worker.close()


def statuses(shop: Path) -> dict[str, str]:
    with EventStore(shop) as store:
        return dict(store.con.execute("SELECT decision_id, status FROM messages").fetchall())


def test_every_decision_arrives_once_with_both_parts_and_one_click_unsubscribe(
    shop: Path, smtp: SmtpServer
) -> None:
    result = run(shop, smtp.url)
    assert result["sent"] == 6 and result["scheduled"] == 6
    mails = smtp.sink.mails()
    assert sorted(m["To"] for m in mails) == [f"u{i}@example.com" for i in range(6)]
    for mail in mails:
        parts = {p.get_content_type(): p for p in mail.walk() if not p.is_multipart()}
        assert set(parts) == {"text/plain", "text/html"}
        html = parts["text/html"].get_payload(decode=True).decode()
        text = parts["text/plain"].get_payload(decode=True).decode()
        # autoescaped in HTML, as written in text
        assert "Product &lt;" in html and "Product <" in text
        assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        link = mail["List-Unsubscribe"].strip("<>")
        assert link.startswith("http://127.0.0.1:8000/m/u/") and link in html and link in text
        assert mail["Message-ID"].startswith("<") and mail["Message-ID"].endswith("@example.com>")
    with open_db(shop) as db:
        key = secret(db)
    ids = {read_token(key, "unsubscribe", m["List-Unsubscribe"].strip("<>").rsplit("/", 1)[1]) for m in mails}
    assert len(ids) == 6 and None not in ids
    coupon = next(m for m in mails if m["To"] == "u1@example.com")
    assert "10% off" in coupon["Subject"] and "CODE-U1" in str(coupon)
    # a second pass sends nothing again
    again = run(shop, smtp.url)
    assert again["sent"] == 0 and again["scheduled"] == 0 and len(smtp.sink.received) == 6
    assert set(statuses(shop).values()) == {"sent"}


def test_without_smtp_messages_are_eml_files_beside_the_store(shop: Path) -> None:
    assert run(shop)["sent"] == 6
    files = sorted((shop.parent / "outbox").glob("*.eml"))
    assert len(files) == 6
    from email import message_from_bytes

    mail: Message = message_from_bytes(files[0].read_bytes())
    assert mail["List-Unsubscribe"] and mail.is_multipart()


def test_transient_smtp_errors_are_retried_and_permanent_ones_end_dead(shop: Path, smtp: SmtpServer) -> None:
    smtp.sink.answers = ["451 Try again later", "550 No such user"]
    first = run(shop, smtp.url)
    assert first == {**first, "sent": 4, "failed": 1, "dead": 1}
    with EventStore(shop) as store:
        dead = store.con.execute("SELECT last_error, attempts FROM messages WHERE status = 'dead'").fetchall()
        retry = store.con.execute(
            "SELECT last_error, attempts, due_at FROM messages WHERE status = 'scheduled'"
        ).fetchall()
    assert dead[0][0].startswith("SMTP 550") and dead[0][1] == 1
    assert retry[0][0].startswith("SMTP 451") and retry[0][1] == 1
    second = run(shop, smtp.url, now=utcnow() + timedelta(seconds=5))
    assert second["sent"] == 1
    assert len(smtp.sink.received) == 5


def test_an_unreachable_server_ends_dead_after_max_attempts(shop: Path) -> None:
    url = "smtp://127.0.0.1:9"  # nothing listens on the discard port
    now = utcnow()
    for k in range(3):
        result = run(shop, url, now=now + timedelta(minutes=k), max_attempts=3, send_timeout=2)
    assert result["dead"] == 6
    with EventStore(shop) as store:
        errors = store.con.execute("SELECT DISTINCT attempts, last_error FROM messages").fetchall()
    assert len(errors) == 1 and errors[0][0] == 3 and "gave up after 3 attempts" in errors[0][1]


def test_bought_emptied_or_unsubscribed_carts_are_cancelled_before_sending(
    shop: Path, smtp: SmtpServer
) -> None:
    now = utcnow()
    with EventStore(shop) as store:
        store.ingest_records(
            [
                {"event_id": "b", "ts": now.isoformat() + "Z", "user_id": "u2", "session_id": "s2x",
                 "event_type": "purchase", "product_id": "p2", "price": 12.0, "quantity": 1},
                *({"event_id": f"r{j}", "ts": now.isoformat() + "Z", "user_id": "u3", "session_id": "s3",
                   "event_type": "cart_remove", "product_id": f"p{(3 + j) % 5}", "price": 1.0, "quantity": 1}
                  for j in range(2)),
            ],
            source="later",
        )  # fmt: skip
    with open_db(shop) as db:
        unsubscribe(db, user_id="u4", now=now)
    result = run(shop, smtp.url)
    assert result["cancelled"] == 3 and result["sent"] == 3
    with EventStore(shop) as store:
        why = dict(
            store.con.execute(
                "SELECT user_id, last_error FROM messages WHERE status = 'cancelled'"
            ).fetchall()
        )
    assert why == {
        "u2": "the customer bought after the decision",
        "u3": "the cart was emptied",
        "u4": "the customer unsubscribed",
    }
    assert {m["To"] for m in smtp.sink.mails()} == {"u0@example.com", "u1@example.com", "u5@example.com"}


def test_a_template_that_fails_ends_dead_with_its_reason(
    shop: Path, tmp_path: Path, smtp: SmtpServer
) -> None:
    own = tmp_path / "templates"
    own.mkdir()
    (own / "email.txt").write_text("Hello {{ customer.nickname }}")
    result = run(shop, smtp.url, templates=own)
    assert result["dead"] == 6 and not smtp.sink.received
    with EventStore(shop) as store:
        reasons = {r[0] for r in store.con.execute("SELECT last_error FROM messages").fetchall()}
    assert (
        len(reasons) == 1
        and "template failed to render" in next(iter(reasons))
        and "nickname" in next(iter(reasons))
    )


def test_a_replaced_template_is_used(shop: Path, tmp_path: Path, smtp: SmtpServer) -> None:
    own = tmp_path / "templates"
    own.mkdir()
    (own / "subject.txt").write_text("Still thinking about it?")
    run(shop, smtp.url, templates=own)
    assert {m["Subject"] for m in smtp.sink.mails()} == {"Still thinking about it?"}


def test_frequency_cap_and_budget_defer_and_the_deferral_is_visible(shop: Path, smtp: SmtpServer) -> None:
    now = utcnow()
    assert run(shop, smtp.url, now=now, daily_budget=4)["sent"] == 4
    with open_db(shop) as db:
        counts = status_counts(db)
    assert counts["by_status"] == {"sent": 4, "scheduled": 2} and counts["deferred"] == 2
    tomorrow = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    with EventStore(shop) as store:
        rows = store.con.execute(
            "SELECT deferred_reason, due_at FROM messages WHERE status = 'scheduled'"
        ).fetchall()
    assert {r[0] for r in rows} == {"daily budget of 4 messages reached"} and {r[1] for r in rows} == {
        tomorrow
    }
    assert run(shop, smtp.url, now=tomorrow, daily_budget=4)["sent"] == 2


def test_quiet_hours_follow_the_customers_time_zone() -> None:
    # 22:30 in Berlin (UTC+1 in winter) is quiet until 08:00 Berlin = 07:00 UTC
    assert after_quiet_hours(datetime(2026, 1, 10, 21, 30), "Europe/Berlin", (21, 8)) == datetime(
        2026, 1, 11, 7, 0
    )
    # the same instant is 16:30 in New York: not quiet
    assert after_quiet_hours(datetime(2026, 1, 10, 21, 30), "America/New_York", (21, 8)) == datetime(
        2026, 1, 10, 21, 30
    )
    # 03:00 local Tokyo is quiet until 08:00 the same local day
    got = after_quiet_hours(datetime(2026, 7, 1, 18, 0), "Asia/Tokyo", (21, 8))
    assert got.replace(tzinfo=ZoneInfo("UTC")).astimezone(ZoneInfo("Asia/Tokyo")).hour == 8
    # across the spring change in Berlin (29 March 2026, 02:00 -> 03:00): 08:00 local is 06:00 UTC
    assert after_quiet_hours(datetime(2026, 3, 28, 23, 0), "Europe/Berlin", (21, 8)) == datetime(
        2026, 3, 29, 6, 0
    )


def test_quiet_hours_defer_at_schedule_time(shop: Path) -> None:
    # decided "now" at 21:30 in New York: due after the 1 h delay at 22:30, moved to 08:00 next day there
    decided = datetime(2026, 1, 10, 2, 30)  # 21:30 New York (UTC-5)
    with EventStore(shop) as store:
        store.con.execute("UPDATE decisions SET ts = ?", [decided])
    result = run(shop, now=decided, quiet_hours=(21, 8))
    assert result["sent"] == 0 and result["scheduled"] == 6
    with EventStore(shop) as store:
        due = dict(store.con.execute("SELECT user_id, due_at FROM messages").fetchall())
    assert due["u0"] == datetime(2026, 1, 10, 13, 0)  # 08:00 New York
    assert due["u1"] == datetime(2026, 1, 10, 7, 0)  # 03:30 Berlin -> 08:00 Berlin = 07:00 UTC


@pytest.mark.parametrize("age_hours", [80])
def test_decisions_too_old_to_send_are_recorded_as_cancelled(tmp_path: Path, age_hours: int) -> None:
    from _deliver_helpers import make_shop

    shop = make_shop(tmp_path / "old.duckdb", decided_ago=timedelta(hours=age_hours))
    result = run(shop)
    assert result["too_late"] == 6 and result["sent"] == 0
    with EventStore(shop) as store:
        rows = store.con.execute("SELECT DISTINCT status, last_error FROM messages").fetchall()
    assert rows == [("cancelled", "too late: due more than 72 h ago")]


def test_the_frequency_cap_counts_messages_of_the_same_batch(shop: Path, smtp: SmtpServer) -> None:
    # four messages to u0 (carts s0, s2, s3, s5), all in the one batch the worker claims
    with EventStore(shop) as store:
        store.con.execute("UPDATE decisions SET user_id = 'u0' WHERE cart_id IN ('s2', 's3', 's5')")
    result = run(shop, smtp.url, max_per_week=2)
    to_u0 = [r for r in smtp.sink.recipients if r == ["u0@example.com"]]
    assert len(to_u0) == 2 and result["deferred"] == 2 and result["sent"] == 4
    with EventStore(shop) as store:
        held = store.con.execute(
            "SELECT user_id, deferred_reason FROM messages WHERE status = 'scheduled'"
        ).fetchall()
    assert held == [("u0", "frequency cap: 2 messages in 7 days")] * 2
