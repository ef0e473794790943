"""Values no reader can trust are refused per event, with a reason, on every way in (issue 18)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cartlift.events import CONFLICT_REASON
from cartlift.store import EventStore

GOOD: dict[str, Any] = {
    "ts": "2026-10-01T10:00:00Z",
    "user_id": "u1",
    "session_id": "s1",
    "event_type": "cart_add",
    "product_id": "p1",
    "price": 19.9,
}


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"ts": "0000-01-01T00:00:00Z"}, "time before 1970"),
        ({"ts": "-0044-03-15T12:00:00Z"}, "time before 1970"),
        ({"ts": "1969-12-31T23:59:59Z"}, "time before 1970"),
        ({"ts": "9999-12-31T23:59:59Z"}, "time in the future"),
        ({"price": 1e308}, "price above 1,000,000,000"),
        ({"price": "1e10"}, "price above 1,000,000,000"),
        ({"price": float("inf")}, "unparseable price"),
        ({"price": True}, "a boolean is not a number"),
        ({"quantity": False}, "a boolean is not a number"),
        ({"product_id": "p\x001"}, "NUL byte in text"),
        ({"user_id": "\x00"}, "NUL byte in text"),
        ({"event_id": ""}, "blank event id"),
        ({"event_id": "  "}, "blank event id"),
        ({"properties": {"score": float("nan")}}, "properties hold NaN or Infinity"),
        ({"properties": {"score": [1, float("-inf")]}}, "properties hold NaN or Infinity"),
    ],
)
def test_an_untrustworthy_value_is_quarantined_with_its_reason(change: dict[str, Any], reason: str) -> None:
    with EventStore(":memory:") as store:
        result = store.ingest_records([{**GOOD, "event_id": "ok"}, {"event_id": "bad", **GOOD, **change}])
        assert (result.accepted, result.quarantined, result.reasons) == (1, 1, {reason: 1})
        raw = store.con.execute("SELECT raw FROM quarantine").fetchall()[0][0]
    assert "\x00" not in raw  # kept visible as \0, storable on PostgreSQL too


def test_a_sane_range_is_accepted_at_its_edges() -> None:
    edges = [
        {**GOOD, "event_id": "epoch", "ts": "1970-01-01T00:00:00Z"},
        {**GOOD, "event_id": "max-price", "price": 1e9},
        {**GOOD, "event_id": "text-nan", "properties": {"note": "NaN, Infinity", "NaN": 1}},
    ]
    with EventStore(":memory:") as store:
        assert store.ingest_records(edges).accepted == 3


def test_stored_properties_are_strict_json() -> None:
    with EventStore(":memory:") as store:
        store.ingest_records(
            [
                {**GOOD, "event_id": "a", "properties": {"x": 1.5, "y": [None, True]}},
                {**GOOD, "event_id": "b", "properties": {"x": float("nan")}},
            ]
        )
        stored = [r[0] for r in store.con.execute("SELECT properties FROM events").fetchall()]

    def refuse(token: str) -> None:
        raise ValueError(f"non-strict JSON token {token}")

    assert [json.loads(p, parse_constant=refuse) for p in stored] == [{"x": 1.5, "y": [None, True]}]


def test_one_id_with_two_contents_in_a_load_is_named_a_conflict() -> None:
    with EventStore(":memory:") as store:
        result = store.ingest_records(
            [
                {**GOOD, "event_id": "x"},
                {**GOOD, "event_id": "x", "price": 25.0},  # another event under the same id
                {**GOOD, "event_id": "x", "price": "19.9"},  # the first again, spelled otherwise
            ]
        )
        assert (result.accepted, result.duplicates, result.quarantined) == (1, 1, 1)
        assert result.reasons == {CONFLICT_REASON: 1}
        row, reason = store.con.execute("SELECT row_number, reason FROM quarantine").fetchall()[0]
        price = store.con.execute("SELECT price FROM events").fetchall()[0][0]
    assert (row, reason, price) == (2, CONFLICT_REASON, 19.9)


def test_a_conflict_in_a_file_keeps_its_line(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    lines = [{**GOOD, "event_id": "x"}, {**GOOD, "event_id": "y"}, {**GOOD, "event_id": "x", "user_id": "u2"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    with EventStore(":memory:") as store:
        result = store.ingest(path, "cartlift")
        assert (result.accepted, result.quarantined, result.rows_read) == (2, 1, 3)
        q = store.quarantine()
    assert (q["line"].tolist(), q["reason"].tolist()) == ([3], [CONFLICT_REASON])
    assert json.loads(q["raw"].iloc[0])["user_id"] == "u2"
