"""The delivery parts of `cartlift serve`: its worker sends, its links work, its routes store contacts and check coupons."""

from __future__ import annotations

import time
from email.message import Message
from pathlib import Path

import httpx
from _deliver_helpers import Served, SmtpServer

from cartlift.serve import create_key_in_store
from cartlift.store import EventStore


def html_part(mail: Message) -> str:
    return (
        next(p for p in mail.walk() if p.get_content_type() == "text/html").get_payload(decode=True).decode()
    )


def test_the_service_sends_due_messages_and_handles_their_links(shop: Path, smtp: SmtpServer) -> None:
    key = create_key_in_store(str(shop), scope="ingest")[0]
    env = {"CARTLIFT_SMTP_URL": smtp.url, "CARTLIFT_WORKER_INTERVAL": "0.3", "CARTLIFT_QUIET_HOURS": "",
           "CARTLIFT_STORE_URL": "https://shop.example.com/cart/{cart_id}"}  # fmt: skip
    with Served(shop, env) as served:
        deadline = time.monotonic() + 30
        while len(smtp.sink.received) < 6 and time.monotonic() < deadline:
            time.sleep(0.2)
        mails = smtp.sink.mails()
        assert len(mails) == 6
        mail = next(m for m in mails if m["To"] == "u1@example.com")
        restore = html_part(mail).split('href="')[1].split('"')[0]
        assert restore.startswith(served.url + "/m/r/")
        hop = httpx.get(restore, follow_redirects=False)
        assert hop.status_code == 303 and hop.headers["location"] == "https://shop.example.com/cart/s1"
        # a tampered link is refused, never a 5xx
        assert httpx.get(restore[:-3] + "abc").status_code == 404
        unsub = mail["List-Unsubscribe"].strip("<>")
        page = httpx.get(unsub)
        assert (
            page.status_code == 200 and "<form method='post'" in page.text
        )  # a GET alone never unsubscribes
        one_click = httpx.post(unsub, content=b"List-Unsubscribe=One-Click",
                               headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
        assert one_click.status_code == 200 and "unsubscribed" in one_click.text
        auth = {"Authorization": f"Bearer {key}"}
        put = httpx.put(f"{served.url}/v1/customers/u42", headers=auth,
                        json={"email": "new@example.com", "email_consent": True, "time_zone": "Europe/Paris"})  # fmt: skip
        assert put.status_code == 200 and put.json()["changed"], put.text
        assert put.json()["customer"]["email"] == "new@example.com"
        again = httpx.put(f"{served.url}/v1/customers/u42", headers=auth,
                          json={"email": "new@example.com", "email_consent": True, "time_zone": "Europe/Paris"})  # fmt: skip
        assert again.status_code == 200 and not again.json()["changed"]
        bad = httpx.put(
            f"{served.url}/v1/customers/u43", headers=auth, json={"email": "nope", "email_consent": True}
        )
        assert bad.status_code == 422 and "invalid e-mail address" in bad.json()["error"]["message"]
        assert httpx.put(f"{served.url}/v1/customers/u44", json={}).status_code == 401
        check = httpx.post(
            f"{served.url}/v1/coupons/validate", headers=auth, json={"code": "CODE-U1", "user_id": "u2"}
        )
        assert check.status_code == 200 and check.json()["reason"] == "other_customer"
        use = httpx.post(f"{served.url}/v1/coupons/validate", headers=auth,
                         json={"code": "CODE-U1", "user_id": "u1", "redeem": True, "order_id": "o-1"})  # fmt: skip
        assert use.json()["redeemed"] is True
        assert (
            httpx.post(f"{served.url}/v1/coupons/validate", headers=auth, json={"code": ""}).status_code
            == 422
        )
    with EventStore(shop) as store:
        assert store.con.execute("SELECT kind, user_id FROM message_events ORDER BY kind").fetchall() == [
            ("click", "u1"),
            ("unsubscribe", "u1"),
        ]
        assert store.con.execute("SELECT email, sms FROM consents WHERE user_id = 'u1'").fetchall() == [
            (False, False)
        ]
        assert store.con.execute(
            "SELECT count(*) FROM contact_quarantine WHERE user_id = 'u43'"
        ).fetchall() == [(1,)]


def test_erasure_covers_contacts_messages_and_coupons(shop: Path, smtp: SmtpServer) -> None:
    key = create_key_in_store(str(shop), scope="admin")[0]
    with Served(
        shop, {"CARTLIFT_SMTP_URL": smtp.url, "CARTLIFT_WORKER_INTERVAL": "0.3", "CARTLIFT_QUIET_HOURS": ""}
    ) as served:
        deadline = time.monotonic() + 30
        while len(smtp.sink.received) < 6 and time.monotonic() < deadline:
            time.sleep(0.2)
        gone = httpx.delete(f"{served.url}/v1/users/u1", headers={"Authorization": f"Bearer {key}"})
        assert gone.status_code == 200, gone.text
        erased = gone.json()["erased"]
        assert erased["customers"] == 1 and erased["messages"] == 1 and erased["coupons"] == 1
    with EventStore(shop) as store:
        for table in ("customers", "messages", "coupons", "consents"):
            assert store.con.execute(f"SELECT count(*) FROM {table} WHERE user_id = 'u1'").fetchall() == [
                (0,)
            ]
