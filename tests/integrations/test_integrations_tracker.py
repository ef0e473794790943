"""The tracker's batch mapping and the signed restore tokens (pure parts; the browser test is in tests/serve)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from typer.testing import CliRunner

from cartlift.cli import app
from cartlift.errors import PayloadError
from cartlift.integrations import restore_link, sign_restore, tracker_records, tracker_script, verify_restore

NOW = datetime(2026, 11, 1, 12, 0, 0)


def test_batch_maps_events_identify_and_corrects_the_clock() -> None:
    payload = {
        "sent_at": "2026-11-01T11:59:00Z",  # the browser's clock is a minute behind
        "batch": [
            {
                "kind": "event",
                "id": "e1",
                "type": "view",
                "product_id": "p1",
                "price": 10,
                "ts": "2026-11-01T11:58:00Z",
                "anonymous_id": "a_1",
                "session_id": "s_1",
            },
            {
                "kind": "identify",
                "user_id": "c9",
                "anonymous_id": "a_1",
                "email": "c9@example.com",
                "ts": "2026-11-01T11:58:30Z",
            },
            {
                "kind": "event",
                "id": "e2",
                "type": "purchase",
                "order_id": "o1",
                "user_id": "c9",
                "anonymous_id": "a_1",
                "session_id": "s_1",
                "ts": "2026-11-01T11:58:50Z",
                "items": [{"product_id": "p1", "quantity": 2, "price": 10}, {"product_id": "p2", "price": 3}],
            },
        ],
    }
    mapped = tracker_records(payload, received_at=NOW)
    assert [(e["event_id"], e["event_type"], e["user_id"], e["ts"]) for e in mapped.events] == [
        ("e1", "view", "a_1", "2026-11-01T11:59:00.000Z"),
        ("e2#0", "purchase", "c9", "2026-11-01T11:59:50.000Z"),
        ("e2#1", "purchase", "c9", "2026-11-01T11:59:50.000Z"),
    ]
    assert mapped.events[1]["quantity"] == 2 and mapped.events[2]["order_id"] == "o1"
    [who] = mapped.identities
    assert (who.user_id, who.anonymous_id, who.email, who.source) == (
        "c9",
        "a_1",
        "c9@example.com",
        "tracker",
    )
    # a clock off by more than a day is not trusted
    far = tracker_records({**payload, "sent_at": "2020-01-01T00:00:00Z"}, received_at=NOW)
    assert far.events[0]["ts"] == "2026-11-01T11:58:00.000Z"


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"batch": []}, "non-empty"),
        (
            {"batch": [{"kind": "event", "type": "wishlist", "id": "x", "ts": "2026-11-01T10:00:00Z"}]},
            "wishlist",
        ),
        ({"batch": [{"kind": "event", "type": "view", "ts": "2026-11-01T10:00:00Z"}]}, 'no "id"'),
        ({"batch": [{"kind": "identify", "ts": "2026-11-01T10:00:00Z"}]}, "without a user_id"),
        ({"batch": [{"kind": "event", "type": "view", "id": "x", "ts": "soon"}]}, "ISO 8601"),
        ({"batch": [{"kind": "alias"}]}, "'event' or 'identify'"),
    ],
)
def test_malformed_batches_say_why(payload: Any, message: str) -> None:
    with pytest.raises(PayloadError, match=message):
        tracker_records(payload, received_at=NOW)


def test_restore_tokens_cannot_be_forged_altered_or_reused_late() -> None:
    token = sign_restore("s_42", "k1", expires=NOW + timedelta(days=1))
    assert verify_restore(token, "k1", now=NOW) == "s_42"
    assert verify_restore(token, "k2", now=NOW) is None  # another secret
    assert verify_restore(token, "k1", now=NOW + timedelta(days=2)) is None  # expired
    cart, expiry, mac = token.split(".")
    longer = sign_restore("s_42", "k1", expires=NOW + timedelta(days=99)).split(".")[1]
    assert verify_restore(f"{cart}.{longer}.{mac}", "k1", now=NOW) is None  # expiry extended
    other = sign_restore("s_43", "k1", expires=NOW + timedelta(days=1)).split(".")[0]
    assert verify_restore(f"{other}.{expiry}.{mac}", "k1", now=NOW) is None  # another cart
    assert verify_restore("garbage", "k1", now=NOW) is None
    link = restore_link("https://shop.example/cart?ref=mail", "s_42", "k1", days=1)
    query = parse_qs(urlsplit(link).query)
    assert query["ref"] == ["mail"] and verify_restore(query["cl_restore"][0], "k1") == "s_42"
    assert datetime.now(UTC) < datetime.fromtimestamp(int(query["cl_restore"][0].split(".")[1]), UTC)


def test_tracker_script_is_shipped_and_has_no_dependencies() -> None:
    script = tracker_script().decode()
    assert "sendBeacon" in script and "localStorage" in script
    assert "import " not in script and "require(" not in script


def test_keys_create_track_needs_a_valid_origin(tmp_path: Any) -> None:
    runner = CliRunner()
    db = str(tmp_path / "k.duckdb")
    ok = runner.invoke(
        app, ["keys", "create", "--scope", "track", "--origin", "https://shop.example", "--db", db]
    )
    assert ok.exit_code == 0 and ok.stdout.strip().splitlines()[-1].startswith("cl_")
    for extra, message in (
        ([], "needs the origin"),
        (["--origin", "shop.example"], "scheme://host"),
        (["--origin", "https://shop.example/cart"], "scheme://host"),
    ):
        bad = runner.invoke(app, ["keys", "create", "--scope", "track", *extra, "--db", db])
        assert bad.exit_code == 2 and message in bad.output
    other = runner.invoke(app, ["keys", "create", "--scope", "ingest", "--origin", "https://a.b", "--db", db])
    assert other.exit_code == 2 and "Only track keys" in other.output
