"""The validation rules, checked row by row against an independent Python statement of them."""

from __future__ import annotations

import csv
import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cartlift.events import EVENT_TYPES, PRODUCT_EVENT_TYPES, UNKNOWN_EVENT_TYPE
from cartlift.store import EventStore

HEADER = ["event_id", "ts", "user_id", "session_id", "event_type", "product_id", "quantity", "price"]
FUTURE = (datetime.now(UTC) + timedelta(days=3)).strftime("%Y-%m-%d %H:%M:%S")


def reference_reason(row: dict[str, str]) -> str | None:
    """The rules of the importer, written again in plain Python, in the same order."""
    try:
        ts = datetime.fromisoformat(row["ts"].replace("Z", "+00:00"))
    except ValueError:
        return "unparseable time"
    if ts.tzinfo is not None:
        ts = ts.astimezone(UTC).replace(tzinfo=None)
    if ts > datetime.now(UTC).replace(tzinfo=None) + timedelta(days=1):
        return "time in the future"
    if ts < datetime(1970, 1, 1):
        return "time before 1970"
    if not row["user_id"].strip():
        return "missing user"
    event_type = row["event_type"].strip().lower()
    if event_type not in EVENT_TYPES:
        return UNKNOWN_EVENT_TYPE
    if event_type in PRODUCT_EVENT_TYPES and not row["product_id"].strip():
        return "missing product"
    if {row["price"].strip().lower(), row["quantity"].strip().lower()} & {"true", "false"}:
        return "a boolean is not a number"
    if row["price"].strip():
        try:
            price = float(row["price"])
        except ValueError:
            return "unparseable price"
        if not math.isfinite(price):
            return "unparseable price"
        if price < 0:
            return "negative price"
        if price > 1e9:
            return "price above 1,000,000,000"
    if row["quantity"].strip():
        try:
            qty = float(row["quantity"])
        except ValueError:
            return "unparseable quantity"
        if qty <= 0 or qty != math.floor(qty) or qty > 2**31 - 1:
            return "quantity must be a positive whole number"
    return None


TIMES = st.one_of(
    st.builds(
        lambda d, sep: d.replace(microsecond=0).isoformat(sep=sep),
        st.datetimes(min_value=datetime(2015, 1, 1), max_value=datetime(2026, 11, 1)),
        st.sampled_from([" ", "T"]),
    ),
    st.sampled_from(["2026-03-01T10:00:00Z", "2026-03-01 10:00:00+02:00", "2026-03-01", FUTURE]),
    st.sampled_from(["1969-12-31 23:59:59", "0001-01-01 00:00:00", "1970-01-01 00:00:00"]),
    st.sampled_from(["", "yesterday", "2026-13-01 00:00:00", "2026-02-30 10:00:00", "12/01/2026"]),
)
ROWS = st.fixed_dictionaries(
    {
        "ts": TIMES,
        "user_id": st.sampled_from(["u1", "u2", "42", "", "  "]),
        "session_id": st.sampled_from(["s1", "s2"]),
        "event_type": st.sampled_from([*EVENT_TYPES, "Cart_Add", " view ", "wishlist", "", "cart"]),
        "product_id": st.sampled_from(["p1", "p2", "", " "]),
        "quantity": st.sampled_from(["", "1", "3", "2.0", "0", "-1", "1.5", "many", "99999999999", "true"]),
        "price": st.sampled_from(
            ["", "0", "19.99", "-5", "abc", "nan", "inf", "1e3", "1e308", "1e9", "False"]
        ),
    }
)


def write_rows(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=HEADER)
        writer.writeheader()
        for i, row in enumerate(rows):
            writer.writerow({"event_id": f"e{i}", **row})


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(ROWS, min_size=1, max_size=25))
def test_every_row_is_accepted_or_quarantined_for_the_reference_reason(
    tmp_path: Path, rows: list[dict[str, str]]
) -> None:
    path = tmp_path / "rows.csv"
    write_rows(path, rows)
    with EventStore(":memory:") as store:
        result = store.ingest(path, "cartlift")
        expected = {f"e{i}": reference_reason(r) for i, r in enumerate(rows)}
        accepted = {r[0] for r in store.con.execute("SELECT event_id FROM events").fetchall()}
        quarantined = dict(store.con.execute("SELECT row_number, reason FROM quarantine").fetchall())
    assert accepted == {k for k, v in expected.items() if v is None}
    assert quarantined == {i + 1: v for i, v in enumerate(expected.values()) if v is not None}
    assert result.accepted + result.duplicates + result.quarantined == len(rows)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"event_type": "wishlist"}, UNKNOWN_EVENT_TYPE),
        ({"ts": "not a time"}, "unparseable time"),
        ({"ts": FUTURE}, "time in the future"),
        ({"price": "-3.50"}, "negative price"),
        ({"price": "12,50"}, "unparseable price"),
        ({"product_id": ""}, "missing product"),
        ({"user_id": ""}, "missing user"),
        ({"quantity": "0"}, "quantity must be a positive whole number"),
        ({"quantity": "two"}, "unparseable quantity"),
    ],
)
def test_quarantine_reasons(store: EventStore, tmp_path: Path, change: dict[str, str], reason: str) -> None:
    good = {
        "ts": "2026-03-01 10:00:00",
        "user_id": "u",
        "session_id": "s",
        "event_type": "view",
        "product_id": "p",
        "quantity": "1",
        "price": "9.99",
    }
    path = tmp_path / "rows.csv"
    write_rows(path, [good, {**good, **change}, good | {"product_id": "q"}])
    result = store.ingest(path, "cartlift")
    assert (result.accepted, result.quarantined, result.reasons) == (2, 1, {reason: 1})
    row = store.quarantine().iloc[0]
    assert (row["row_number"], row["line"], row["reason"]) == (2, 3, reason)
    assert '"e1"' in row["raw"]  # the raw record is kept as received


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("e9,2026-03-01 10:00:00,u,s,view", "truncated line (missing columns)"),
        ("e9,2026-03-01 10:00:00,u,s,view,p,1,2.0,extra", "too many columns"),
    ],
)
def test_parser_rejects_keep_their_line_and_later_rows_their_numbers(
    store: EventStore, tmp_path: Path, line: str, reason: str
) -> None:
    path = tmp_path / "rows.csv"
    path.write_text(
        ",".join(HEADER) + "\n"
        "e1,2026-03-01 10:00:00,u,s,view,p,1,2.0\n"
        f"{line}\n"
        "e2,2026-03-01 10:00:00,u,s,wishlist,p,1,2.0\n"
    )
    result = store.ingest(path, "cartlift")
    assert (result.accepted, result.quarantined) == (1, 2)
    q = store.quarantine().sort_values("line")
    assert q["line"].tolist() == [3, 4]
    assert q["row_number"].tolist() == [2, 3]
    assert q["reason"].tolist() == [reason, UNKNOWN_EVENT_TYPE]
    assert q["raw"].iloc[0] == line


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_identical_rejected_records_each_keep_their_own_number(
    store: EventStore, tmp_path: Path, suffix: str
) -> None:
    # the checking pass reads text sources without record numbers and finds rejected records
    # again by content: identical bad records must still come back once each, in place
    good = {"ts": "2026-03-01 10:00:00", "user_id": "u", "session_id": "s", "event_type": "view"}
    bad = {**good, "event_type": "wishlist"}
    rows = [good | {"product_id": "p"}, bad, good | {"product_id": "q"}, bad, bad]
    path = tmp_path / f"rows{suffix}"
    if suffix == ".csv":
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=[*good, "product_id"])
            writer.writeheader()
            writer.writerows(rows)
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = store.ingest(path, "cartlift")
    assert (result.accepted, result.quarantined) == (2, 3)
    q = store.quarantine().sort_values("row_number")
    assert q["row_number"].tolist() == [2, 4, 5]
    assert q["reason"].unique().tolist() == [UNKNOWN_EVENT_TYPE]
    assert result.reasons == {UNKNOWN_EVENT_TYPE: 3}
    # loading again keeps the quarantine as it is
    store.ingest(path, "cartlift")
    assert len(store.quarantine()) == 3


def test_rejected_records_are_found_exactly_even_when_hashes_collide(
    store: EventStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # every record hashing alike is the worst collision: the fast look-up is then ambiguous and
    # the exact pass, comparing records, must still number exactly the rejected ones
    from cartlift.events import _ingest

    monkeypatch.setattr(_ingest, "_raw_hash_sql", lambda src: "hash(42)")
    good = {"ts": "2026-03-01 10:00:00", "user_id": "u", "session_id": "s", "event_type": "view"}
    rows = [
        good | {"product_id": "p"},
        good | {"event_type": "wishlist", "product_id": "p"},
        good | {"product_id": "q"},
    ]
    path = tmp_path / "rows.csv"
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[*good, "product_id"])
        writer.writeheader()
        writer.writerows(rows)
    result = store.ingest(path, "cartlift")
    assert (result.accepted, result.quarantined) == (2, 1)
    assert store.quarantine()[["row_number", "line"]].values.tolist() == [[2, 3]]
