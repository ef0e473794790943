"""The shortcut for records given in Python answers exactly as the importers' SQL, or not at all.

`accept_typed` types records itself (no SQL statement to plan) and gives up on a batch as soon
as one record is spelled in a way it is not certain of. Wherever it answers, its accepted rows,
ids, duplicates and (no) rejections must be the SQL's own; wherever the SQL refuses a record, it
must give up. Checked on a corpus of hostile values and on generated records.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cartlift.events import CheckedRecords, accept_typed, check_records, records_table

NOW = datetime(2026, 12, 6, 12, 0, 0, 123456, tzinfo=UTC)

GOOD: dict[str, Any] = {
    "event_id": None,
    "ts": "2026-10-01T10:00:00Z",
    "user_id": "u1",
    "session_id": "s1",
    "event_type": "cart_add",
    "product_id": "p1",
    "quantity": None,
    "price": 19.9,
    "order_id": None,
    "channel": None,
    "device": None,
    "properties": None,
}

HOSTILE: dict[str, list[Any]] = {
    "ts": [
        "1969-12-31T23:59:59Z", "1970-01-01T00:00:00Z", "1970-01-01T00:30:00+01:00", "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z", "9999-12-31T23:59:59-05:00", "2026-12-07T12:00:00Z", "2026-12-07T12:00:00.000001Z",
        "2026-12-07T12:00:01Z", "2026-12-07T13:00:00+01:00", "2026-02-30T00:00:00Z", "2026-10-01T24:00:00Z",
        "2026-10-01T10:00:60Z", "2026-10-01", "2026-10-01T10:00:00.1234567Z", "2026-10-01t10:00:00z",
        "20261001T100000Z", "2026-10-01T10:00:00+05:30", "2026-10-01T10:00:00-23:59", "2026-10-01 10:00:00",
        "2026-10-01T10:00:00.5", " 2026-10-01T10:00:00Z", "2026-10-01T10:00:00Z\x00", "", "nan", None, 1759312800,
        "2026-10-01T10:00:00+24:00", "2026-10-01T10:00:00+0100", "٢٠٢٦-10-01T10:00:00Z",
    ],
    "price": [
        1e308, -1e308, 1e9, 1000000000.0000001, math.nan, math.inf, -math.inf, True, False, "true", " TRUE ",
        "19.9", "19.90", " 19.9", "1e10", "1e-400", "1e-99", "-0", -0.0, 0, "0x10", "1_000", "", " ", None,
        10**400, 5e-324, 2**53 + 1, "007", "1.", ".5", "NaN", "Infinity", "-1", -0.01, 123456789.123, "١٢",
    ],
    "quantity": [
        0, -1, 1.5, 2.0, "2", "2.0", 2147483647, 2147483648, True, "true", math.nan, "", None, 1e308, "1e2",
        "2.5", " 3", "٣",
    ],
    # DuckDB's trim also removes Unicode spaces: U+00A0, U+2007, U+3000 at an edge (U+200B it keeps)
    "user_id": [None, "", "  ", " u1 ", "u\x001", "ü", "\t", "u1\n", "\u00a0", "u1\u3000", "\u200b"],
    "event_type": [
        "VIEW", " view ", "Cart_Add", "vİew", "unknown", None, "view\x00", "\tview", "", "checkout", "purchase",
    ],
    "product_id": [None, "", " ", " p1 ", "p\x00", "p1\t", "\u2007", "\u00a0p1"],
    "session_id": [None, "", " ", " s1 ", "s\x001", "\u3000", "s1\u00a0"],
    "event_id": [None, "", "  ", " e1 ", "e\x00", "e1", "\te1", "\u00a0", "e1\u2007", "\u200be1"],
    "order_id": ["", "o1", " ", "o\x00"],
    "channel": ["", "web", "w\x00"],
    "device": ["", "ios"],
    "properties": [
        None, "", "{}", '{"a":NaN}', '{"a":Infinity}', '{"a":-Infinity}', '{"a": "NaN"}', "[1,]", '{"a":1}x',
        '"\\ud800"', '{"a":"\\ud83d\\ude00"}', '{"a":1e400}', "\u00a0{}", "[" * 1200 + "]" * 1200, "null", "1",
        '{"a":"x\\u0000y"}', '{"a":"\x01"}', "{'a': 1}", '{"a":1,"a":2}', " {} ", '{"a":[1,2,{"b":null}]}',
    ],
}  # fmt: skip


def _sql(con: duckdb.DuckDBPyConnection, records: Sequence[dict[str, Any]]) -> CheckedRecords:
    # a table goes to the SQL whatever its values: the reference
    return check_records(con, records_table(records), now=NOW)


def _same(fast: CheckedRecords, sql: CheckedRecords) -> None:
    assert fast.accepted.schema == sql.accepted.schema
    assert fast.accepted.to_pylist() == sql.accepted.to_pylist()
    assert fast.repeated == sql.repeated
    assert fast.rejected == sql.rejected == []


def _compare(con: duckdb.DuckDBPyConnection, records: Sequence[dict[str, Any]]) -> bool:
    """True when the shortcut answered (and then answered as the SQL did)."""
    sql = _sql(con, records)
    fast = accept_typed(records, now=NOW)
    if sql.rejected:
        assert fast is None, ("the shortcut accepted what the SQL refuses", sql.rejected)
    if fast is None:
        return False
    _same(fast, sql)
    return True


@pytest.fixture(scope="module")
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    with duckdb.connect() as c:
        yield c


def _variants() -> list[dict[str, Any]]:
    return [{**GOOD, field: value} for field, values in HOSTILE.items() for value in values]


@pytest.mark.parametrize("record", _variants(), ids=lambda r: repr(r)[:60])
def test_each_hostile_value_is_typed_as_the_sql_types_it_or_left_to_the_sql(
    con: duckdb.DuckDBPyConnection, record: dict[str, Any]
) -> None:
    _compare(con, [record])


def test_the_shortcut_answers_for_the_ordinary_spellings(con: duckdb.DuckDBPyConnection) -> None:
    # not vacuous: the spellings clients send are typed by the shortcut (and equal the SQL's rows)
    ordinary = [
        {**GOOD, "ts": "2026-10-01T11:00:00+01:00"},
        {**GOOD, "ts": "2026-10-01 10:00:00.25"},
        {**GOOD, "price": "19.90", "quantity": 2},
        {**GOOD, "price": 0, "quantity": "3", "event_type": " VIEW "},
        {**GOOD, "event_id": " e1 ", "order_id": "o1", "channel": "web", "device": "ios"},
        {**GOOD, "properties": '{"a": [1, 2.5, "x"], "b": {"c": null}}', "session_id": " s1 "},
        {**GOOD, "event_type": "checkout", "product_id": None, "price": None},
        {**GOOD, "ts": "1970-01-01T00:00:00Z", "price": 1e9, "quantity": 2147483647},
        {**GOOD, "ts": (NOW + timedelta(days=1)).replace(microsecond=0, tzinfo=None).isoformat() + "Z"},
    ]
    assert all(_compare(con, [r]) for r in ordinary)
    # together (one customer each: some differ only in what the derived id leaves out)
    assert _compare(con, [{**r, "user_id": f"u{i}"} for i, r in enumerate(ordinary)])


def test_one_event_in_three_spellings_is_one_event_and_two_duplicates(con: duckdb.DuckDBPyConnection) -> None:
    spellings = [
        {**GOOD, "price": "19.9"},
        {**GOOD, "ts": "2026-10-01T11:00:00+01:00"},
        {**GOOD, "ts": "2026-10-01T10:00:00.000000Z", "quantity": 1},
    ]
    assert _compare(con, spellings)
    fast = accept_typed(spellings, now=NOW)
    assert fast is not None and fast.accepted.num_rows == 1 and [r for r, _ in fast.repeated] == [2, 3]


def test_a_time_typed_again_is_the_same_instant_and_checked_against_the_clock_again(
    con: duckdb.DuckDBPyConnection,
) -> None:
    # the shortcut remembers the instants of texts it parsed: a text seen before must give the same
    # row as the SQL (also as the second of a batch), and a remembered time is still refused once
    # it lies more than a day after the check's clock
    batch = [
        {**GOOD, "event_id": "e1", "ts": "2026-10-01T10:00:00.5Z"},
        {**GOOD, "event_id": "e2", "ts": "2026-10-01T12:00:00.5+02:00"},
        {**GOOD, "event_id": "e3", "ts": "2026-10-01T10:00:00.5Z"},
    ]
    assert _compare(con, batch) and _compare(con, batch)
    later = {**GOOD, "ts": "2026-12-07T23:00:00Z"}
    assert accept_typed([later], now=NOW + timedelta(days=1)) is not None
    assert accept_typed([later], now=NOW) is None
    assert _sql(con, [later]).rejected


def test_a_retry_between_new_events_keeps_the_record_numbers(con: duckdb.DuckDBPyConnection) -> None:
    batch = [{**GOOD, "event_id": "e1"}, {**GOOD, "event_id": "e2"}, {**GOOD, "event_id": "e1"}, {**GOOD}]
    assert _compare(con, batch)
    fast = accept_typed(batch, now=NOW)
    assert fast is not None and fast.accepted.column("_row").to_pylist() == [1, 2, 4]
    assert fast.repeated == [(3, "e1")] and fast.rows is not None and len(fast.rows) == 3


def test_a_conflict_in_the_batch_is_left_to_the_sql(con: duckdb.DuckDBPyConnection) -> None:
    batch = [{**GOOD, "event_id": "e1"}, {**GOOD, "event_id": "e1", "price": 20.0}]
    assert accept_typed(batch, now=NOW) is None
    assert [r[2] for r in _sql(con, batch).rejected] == [
        "conflicting event id (an earlier event of this load has it, with other content)"
    ]


def test_the_whole_hostile_corpus_as_one_batch(con: duckdb.DuckDBPyConnection) -> None:
    batch = _variants()
    assert accept_typed(batch, now=NOW) is None  # some are refused: the SQL answers for all
    # the records it types one by one, one customer each (some differ only where ids look away)
    good = [
        {**r, "user_id": f"u{i}", "event_id": r["event_id"] and f"{r['event_id']}{i}"}
        for i, r in enumerate(batch)
        if _compare(con, [r])
    ]
    assert len(good) > 40
    assert _compare(con, good)
    with_ids = [{**r, "event_id": f"e{i}"} for i, r in enumerate(good)]
    assert _compare(con, with_ids + with_ids[:5])  # with retries of the first five


# -- generated records ---------------------------------------------------------------------------

_offsets = st.sampled_from(["Z", "", "+00:00", "-00:00", "+01:00", "-05:30", "+14:00", "-23:59", "+00:01"])


@st.composite
def _times(draw: st.DrawFn) -> str:
    when = draw(st.datetimes(min_value=datetime(1969, 12, 30), max_value=datetime(2026, 12, 8, 23)))
    sep = draw(st.sampled_from(["T", " "]))
    digits = draw(st.integers(0, 7))
    frac = "" if digits == 0 else "." + f"{when.microsecond:06d}{draw(st.integers(0, 9))}"[:digits]
    return when.strftime(f"%Y-%m-%d{sep}%H:%M:%S") + frac + draw(_offsets)


_numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=0, max_value=2e9),
    st.integers(-10, 3_000_000_000),
    st.floats(min_value=0, max_value=1e9).map(repr),
    st.decimals(min_value=0, max_value=10**10, allow_nan=False, places=3).map(str),
    st.sampled_from(HOSTILE["price"]),
)
_texts = st.one_of(st.sampled_from(["u1", "u2", " s ", "", "p1", "x\x00"]), st.text(max_size=6))
_properties = st.one_of(
    st.none(),
    st.recursive(
        st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=4),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
        max_leaves=6,
    ).map(json.dumps),
    st.sampled_from(HOSTILE["properties"]),
)


@st.composite
def _records(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "event_id": draw(st.one_of(st.none(), st.sampled_from(["e1", "e2", " e1"]), _texts)),
        "ts": draw(st.one_of(_times(), st.sampled_from(HOSTILE["ts"]))),
        "user_id": draw(st.one_of(st.sampled_from(["u1", "u2"]), _texts)),
        "session_id": draw(st.one_of(st.sampled_from(["s1", "s2"]), _texts)),
        "event_type": draw(st.one_of(st.sampled_from(["view", "cart_add", "purchase", "checkout"]), _texts)),
        "product_id": draw(st.one_of(st.sampled_from(["p1", "p2"]), st.none(), _texts)),
        "quantity": draw(st.one_of(st.none(), st.integers(-2, 5), _numbers)),
        "price": draw(st.one_of(st.none(), _numbers)),
        "order_id": draw(st.one_of(st.none(), _texts)),
        "channel": draw(st.one_of(st.none(), _texts)),
        "device": draw(st.none() | _texts),
        "properties": draw(_properties),
    }


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(_records(), min_size=1, max_size=4))
def test_generated_batches_get_the_sql_answer(
    con: duckdb.DuckDBPyConnection, batch: list[dict[str, Any]]
) -> None:
    _compare(con, batch)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ts=_times(), price=_numbers, quantity=st.one_of(st.none(), _numbers), event_id=st.none() | _texts)
def test_generated_values_in_a_valid_record_get_the_sql_answer(
    con: duckdb.DuckDBPyConnection, ts: str, price: Any, quantity: Any, event_id: Any
) -> None:
    _compare(con, [{**GOOD, "ts": ts, "price": price, "quantity": quantity, "event_id": event_id}])
