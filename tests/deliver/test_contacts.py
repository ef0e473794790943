"""Contacts and consent: checks against the field libraries, quarantine, idempotent loads, the consents the act rules read."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from _deliver_helpers import utcnow

from cartlift.act import cart_contexts
from cartlift.deliver import Db, check_contact, load_contacts, open_db
from cartlift.deliver._contacts import ContactError
from cartlift.store import EventStore

CLI = Path(sys.executable).with_name("cartlift")
GOOD = {"user_id": "u1", "email": "Alice@Example.com", "phone": "+49 151 12345678", "time_zone": "Europe/Berlin",
        "email_consent": "yes", "sms_consent": "true"}  # fmt: skip


def test_a_good_record_is_normalised() -> None:
    row = check_contact(GOOD, now=utcnow())
    assert row["email"] == "Alice@example.com"  # email-validator lowercases the domain only
    assert row["phone"] == "+4915112345678"
    assert row["email_consent"] is True and row["sms_consent"] is True
    assert (
        check_contact({**GOOD, "phone": "030 1234567"}, region="DE", now=utcnow())["phone"] == "+49301234567"
    )


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"user_id": None}, "missing customer id"),
        ({"email": "alice@"}, "invalid e-mail address"),
        ({"email": "two@@example.com"}, "invalid e-mail address"),
        ({"phone": "+1 202 555 01"}, "invalid phone number"),
        ({"phone": "12345"}, "invalid phone number"),
        ({"time_zone": "Mars/Olympus"}, "unknown time zone"),
        ({"time_zone": "../etc/passwd"}, "unknown time zone"),
        ({"email_consent": "maybe"}, "email_consent must be yes/no"),
        ({"email": None}, "email consent without an e-mail address"),
        ({"phone": None}, "sms consent without a phone number"),
        ({"favourite_colour": "red"}, "unknown field"),
        ({"unsubscribed_at": "yesterday-ish"}, "unsubscribed_at is not a date"),
    ],
)
def test_bad_records_are_refused_with_the_reason(change: dict[str, object], match: str) -> None:
    with pytest.raises(ContactError, match=match):
        check_contact({**GOOD, **change}, now=utcnow())


def test_loading_keeps_rejects_counts_everything_and_twice_is_harmless(tmp_path: Path) -> None:
    rows = [GOOD, {**GOOD, "user_id": "u2", "email": "nope"}, {**GOOD, "user_id": "u3", "time_zone": "X/Y"},
            GOOD, {**GOOD, "email": "other@example.com"}]  # fmt: skip
    path = tmp_path / "c.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    db_path = tmp_path / "s.duckdb"
    first = json.loads(subprocess.run([CLI, "contacts", "load", str(path), "--db", str(db_path), "--json"],
                                      capture_output=True, text=True, check=True).stdout)  # fmt: skip
    assert (first["accepted"], first["duplicates"], first["quarantined"]) == (1, 1, 3)
    assert first["reasons"] == {
        "invalid e-mail address": 1,
        "unknown time zone": 1,
        "a second, different record for the same customer id in this load": 1,
    }
    second = json.loads(subprocess.run([CLI, "contacts", "load", str(path), "--db", str(db_path), "--json"],
                                       capture_output=True, text=True, check=True).stdout)  # fmt: skip
    assert (second["accepted"], second["duplicates"], second["quarantined"]) == (0, 2, 3)
    with EventStore(db_path) as store:
        assert store.count("customers") == 1
        kept = store.con.execute(
            "SELECT row_number, user_id, reason FROM contact_quarantine ORDER BY 1"
        ).fetchall()
        assert [(n, u) for n, u, _ in kept] == [(2, "u2"), (3, "u3"), (5, "u1")]  # stored once, with the row
        assert (
            json.loads(
                store.con.execute("SELECT raw FROM contact_quarantine WHERE row_number = 2").fetchall()[0][0]
            )["email"]
            == "nope"
        )


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_json_lines_and_parquet_load_the_same(tmp_path: Path, suffix: str) -> None:
    frame = pd.DataFrame([GOOD, {**GOOD, "user_id": "u2", "phone": None, "sms_consent": "no"}])
    path = tmp_path / f"c{suffix}"
    frame.to_json(path, orient="records", lines=True) if suffix == ".jsonl" else frame.to_parquet(path)
    with open_db(tmp_path / "s.duckdb") as db:
        from cartlift.deliver import read_contacts

        result = load_contacts(db, read_contacts(path), source=str(path))
    assert result.accepted == 2 and result.quarantined == 0


def test_an_unreadable_file_is_one_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "c.xlsx"
    bad.write_text("x")
    run = subprocess.run(
        [CLI, "contacts", "load", str(bad), "--db", str(tmp_path / "s.duckdb")],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2 and "contacts come as .csv" in run.stderr and "Traceback" not in run.stderr


def test_a_failed_load_leaves_the_store_as_it_was(tmp_path: Path) -> None:
    with EventStore(tmp_path / "s.duckdb") as store:
        db = Db(store.con)
        load_contacts(db, [GOOD], source="a")
        store.con.execute("DROP TABLE consents")
        store.con.execute(
            "CREATE TABLE consents (user_id VARCHAR NOT NULL, email BOOLEAN)"
        )  # sms missing: sync fails
        with pytest.raises(Exception, match="sms"):
            load_contacts(
                db, [{**GOOD, "user_id": "u9"}, {**GOOD, "user_id": "u8", "email": "x"}], source="b"
            )
        assert store.count("customers") == 1 and store.count("contact_quarantine") == 0


def test_consents_reach_the_next_best_action_rules(tmp_path: Path) -> None:
    from _deliver_helpers import make_shop

    shop = make_shop(tmp_path / "s.duckdb")
    with EventStore(shop) as store:
        ctx = cart_contexts(store).set_index("user_id")
        assert (
            ctx.loc["u0", "sms_consent"] and not ctx.loc["u1", "sms_consent"] and ctx["email_consent"].all()
        )
        from cartlift.deliver._repo import unsubscribe

        unsubscribe(Db(store.con), user_id="u1", now=utcnow())
        ctx = cart_contexts(store).set_index("user_id")
        assert not ctx.loc["u1", "email_consent"]
