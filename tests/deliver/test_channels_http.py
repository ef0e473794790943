"""SMS (Twilio's Messages API request shape) and the signed webhook, against a local HTTP server."""

from __future__ import annotations

import hmac
import json
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs

from _deliver_helpers import HttpServer, settings, utcnow

from cartlift.deliver import Worker, open_db, sign_webhook
from cartlift.store import EventStore


def sms_shop(shop: Path) -> None:
    """Only u0's decision stays, as an SMS reminder (u0 consented to SMS, +12025550100)."""
    with EventStore(shop) as store:
        store.con.execute("DELETE FROM decisions WHERE user_id <> 'u0'")
        store.con.execute("UPDATE decisions SET action = 'reminder_sms_1h', channel = 'sms'")


def run(shop: Path, now_offset: float = 0.0, **kw: object) -> dict[str, int]:
    with open_db(shop) as db:
        worker = Worker(db, settings(**kw), outbox_dir=shop.parent / "outbox")
        try:
            return worker.run_once(utcnow() + timedelta(seconds=now_offset)).to_dict()
        finally:
            worker.close()


def test_sms_goes_to_twilio_messages_api_as_documented(shop: Path, http: HttpServer) -> None:
    sms_shop(shop)
    url = f"twilio://AC123:secret-token@127.0.0.1:{http.port}?from=%2B15005550006"
    assert run(shop, sms_url=url)["sent"] == 1
    (req,) = http.log.requests
    assert req["path"] == "/2010-04-01/Accounts/AC123/Messages.json"
    assert req["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    import base64

    assert req["headers"]["Authorization"] == "Basic " + base64.b64encode(b"AC123:secret-token").decode()
    form = {k: v[0] for k, v in parse_qs(req["body"].decode()).items()}
    assert form["To"] == "+12025550100" and form["From"] == "+15005550006"
    assert (
        "http://127.0.0.1:8000/m/r/" in form["Body"] and "/m/u/" in form["Body"] and len(form["Body"]) < 480
    )
    with EventStore(shop) as store:
        assert store.con.execute("SELECT provider_id, status FROM messages").fetchall() == [("SM1", "sent")]


def test_sms_retries_on_5xx_and_time_outs_but_not_on_4xx(shop: Path, http: HttpServer) -> None:
    sms_shop(shop)
    url = f"twilio://AC1:t@127.0.0.1:{http.port}?from=%2B15005550006"
    http.log.answers = [
        (503, {"message": "busy"}, 0.0),
        (201, {"sid": "late"}, 3.0),
        (201, {"sid": "SMok"}, 0.0),
    ]
    assert run(shop, sms_url=url, send_timeout=1.0)["failed"] == 1  # 503
    assert run(shop, 1, sms_url=url, send_timeout=1.0)["failed"] == 1  # time-out
    assert run(shop, 2, sms_url=url, send_timeout=1.0)["sent"] == 1
    with EventStore(shop) as store:
        assert store.con.execute("SELECT provider_id, attempts FROM messages").fetchall() == [("SMok", 3)]
    # a 4xx is final at the first attempt
    with EventStore(shop) as store:
        store.con.execute("DELETE FROM messages")
    http.log.answers = [
        (400, {"code": 21211, "message": "The 'To' number is not a valid phone number."}, 0.0)
    ]
    assert run(shop, 3, sms_url=url)["dead"] == 1
    with EventStore(shop) as store:
        (err,) = store.con.execute("SELECT last_error FROM messages").fetchall()[0]
    assert err.startswith("SMS provider answered HTTP 400") and "not a valid phone number" in err
    assert len(http.log.requests) == 4


def test_webhook_calls_are_signed_over_timestamp_and_body(shop: Path, http: HttpServer) -> None:
    assert run(shop, webhook_url=http.url + "/hook", webhook_secret="s3cret")["sent"] == 6
    assert len(http.log.requests) == 6
    for req in http.log.requests:
        stamp, body = req["headers"]["X-Cartlift-Timestamp"], req["body"]
        expected = "v1=" + hmac.new(b"s3cret", stamp.encode() + b"." + body, "sha256").hexdigest()
        assert req["headers"]["X-Cartlift-Signature"] == expected == sign_webhook(b"s3cret", stamp, body)
        doc = json.loads(body)
        assert doc["channel"] == "email" and doc["to"].endswith("@example.com") and "<html" in doc["html"]
        assert req["headers"]["Idempotency-Key"] == doc["message_id"]
        # a receiver with the wrong key refuses it
        wrong = "v1=" + hmac.new(b"other", stamp.encode() + b"." + body, "sha256").hexdigest()
        assert not hmac.compare_digest(wrong, req["headers"]["X-Cartlift-Signature"])


def test_webhook_4xx_is_final_5xx_is_retried(shop: Path, http: HttpServer) -> None:
    http.log.answers = [(500, {}, 0.0), (422, {"error": "bad"}, 0.0)]
    result = run(shop, webhook_url=http.url, webhook_secret="k")
    assert result["failed"] == 1 and result["dead"] == 1 and result["sent"] == 4
