"""Every importer on real rows from ../shared/data, checked against an independent pandas reading."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cartlift.errors import DataError, FormatDetectionError
from cartlift.events import detect_format
from cartlift.store import EventStore

REES = ("rees46_multicategory_sample", "2019-Oct.csv")
RETAIL = ("online_retail_uci_sample40k", "Online Retail.xlsx")
YOO = ("yoochoose_rsc15_100k", "yoochoose-clicks-100k_train_valid.txt")


def test_rees46_counts_match_pandas_and_the_cut_line_is_quarantined(
    store: EventStore, shared_data: Path
) -> None:
    path = shared_data.joinpath(*REES)
    lines = path.read_text(encoding="utf-8").splitlines()
    result = store.ingest(path)  # auto-detected
    assert result.format == "rees46"
    # exactly the last line (cut mid-row) is rejected, with its line number and its text
    assert result.quarantined == 1
    q = store.quarantine()
    assert q["line"].tolist() == [len(lines)]
    assert q["raw"].iloc[0] == lines[-1].strip()
    assert q["reason"].iloc[0] == "truncated line (missing columns)"
    # the rest, read independently by pandas, is what the store holds (exact duplicates collapse)
    ref = pd.read_csv(path, nrows=len(lines) - 2, dtype=str, keep_default_na=False)
    assert result.accepted + result.duplicates == len(ref)
    assert result.duplicates == int(ref.duplicated().sum())
    expected = ref.drop_duplicates()["event_type"].map(
        {"view": "view", "cart": "cart_add", "remove_from_cart": "cart_remove", "purchase": "purchase"}
    )
    got = dict(store.con.execute("SELECT event_type, count(*) FROM events GROUP BY 1").fetchall())
    assert got == expected.value_counts().to_dict()
    sessions = store.con.execute("SELECT count(DISTINCT session_id) FROM events").fetchall()[0][0]
    assert sessions == ref["user_session"].nunique()
    # prices and products come through as numbers and catalog rows
    assert store.con.execute("SELECT round(sum(price), 2) FROM events").fetchall()[0][0] == pytest.approx(
        ref.drop_duplicates()["price"].astype(float).sum(), rel=1e-9
    )
    assert store.count("products") == ref["product_id"].nunique()


def test_online_retail_returns_and_anonymous_buyers(store: EventStore, shared_data: Path) -> None:
    path = shared_data.joinpath(*RETAIL)
    ref = pd.read_excel(path, dtype={"InvoiceNo": str, "StockCode": str})
    result = store.ingest(path, "online-retail")
    assert result.rows_read == len(ref) == 40_000
    cancel = ref["InvoiceNo"].str.upper().str.startswith("C")
    adjustments = (~cancel) & (ref["Quantity"] < 0)
    assert result.reasons == {"negative quantity outside a cancellation": int(adjustments.sum())}
    events = store.query("SELECT event_type, user_id, quantity, order_id FROM events")
    kept = ref[~adjustments]
    # cancellations are returns (never purchases), with a positive quantity
    returns = events[events["event_type"] == "return"]
    assert len(returns) + result.duplicates >= int(cancel.sum()) >= len(returns)
    assert (returns["quantity"] > 0).all()
    assert set(returns["order_id"].str[0].str.upper()) == {"C"}
    # a missing CustomerID is an anonymous buyer of that invoice, never dropped
    anonymous = events["user_id"].str.startswith("anonymous:")
    assert anonymous.sum() + result.duplicates >= int(kept["CustomerID"].isna().sum()) >= anonymous.sum()
    assert anonymous.sum() > 0


def test_online_retail_csv_with_us_dates(store: EventStore, tmp_path: Path) -> None:
    path = tmp_path / "retail.csv"
    path.write_text(
        "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
        "536365,85123A,WHITE HANGING HEART,6,12/1/2010 8:26,2.55,17850,United Kingdom\n"
        "C536379,D,Discount,-1,12/1/2010 9:41,27.5,14527,United Kingdom\n"
        "536414,22139,,56,12/1/2010 11:52,0,,United Kingdom\n"
    )
    result = store.ingest(path)
    assert (result.format, result.accepted, result.quarantined) == ("online-retail", 3, 0)
    rows = store.query("SELECT ts, event_type, user_id, quantity FROM events ORDER BY ts")
    assert rows["ts"].iloc[0] == pd.Timestamp("2010-12-01 08:26:00")
    assert rows["event_type"].tolist() == ["purchase", "return", "purchase"]
    assert rows["user_id"].tolist() == ["17850", "14527", "anonymous:536414"]
    assert rows["quantity"].tolist() == [6, 1, 56]


def test_yoochoose_sessions_and_epoch_times(store: EventStore, shared_data: Path) -> None:
    path = shared_data.joinpath(*YOO)
    ref = pd.read_csv(path, sep="\t", dtype={"SessionId": str, "ItemId": str, "Time": float})
    result = store.ingest(path, "yoochoose")
    assert result.accepted + result.duplicates == len(ref)
    assert result.quarantined == 0
    got = store.con.execute("SELECT count(DISTINCT session_id), min(ts), max(ts) FROM events").fetchall()[0]
    assert got[0] == ref["SessionId"].nunique()
    assert abs(got[1] - pd.to_datetime(ref["Time"].min(), unit="s")).total_seconds() < 1e-3
    assert abs(got[2] - pd.to_datetime(ref["Time"].max(), unit="s")).total_seconds() < 1e-3


def test_retailrocket_sessionized_by_inactivity_gap(store: EventStore, tmp_path: Path) -> None:
    t0 = 1_433_221_332_117  # ms, as in the RetailRocket dump
    minute = 60_000
    rows = [
        (t0, "257597", "view", "355908", ""),
        (t0 + 10 * minute, "257597", "addtocart", "355908", ""),
        (t0 + 20 * minute, "257597", "transaction", "355908", "4000"),
        (t0 + 61 * minute, "257597", "view", "248676", ""),  # 41 minutes later: a new session
        (t0, "992329", "view", "248676", ""),
    ]
    path = tmp_path / "events.csv"
    path.write_text(
        "timestamp,visitorid,event,itemid,transactionid\n"
        + "".join(",".join(map(str, r)) + "\n" for r in rows)
    )
    result = store.ingest(path)
    assert (result.format, result.accepted, result.quarantined) == ("retailrocket", 5, 0)
    ev = store.query("SELECT user_id, session_id, event_type, order_id FROM events ORDER BY user_id, ts")
    assert ev["event_type"].tolist() == ["view", "cart_add", "purchase", "view", "view"]
    assert ev["order_id"].tolist()[2] == "4000"
    first_user = ev[ev["user_id"] == "257597"]["session_id"].tolist()
    assert first_user[0] == first_user[1] == first_user[2] != first_user[3]
    # loading more of the same history later gives the same sessions the same ids
    again = tmp_path / "more.csv"
    again.write_text(path.read_text() + f"{t0 + 62 * minute},257597,view,1,\n")
    store.ingest(again)
    later = store.query("SELECT session_id FROM events WHERE user_id = '257597' ORDER BY ts")[
        "session_id"
    ].tolist()
    assert later[:4] == first_user
    assert later[4] == first_user[3]


def test_cartlift_format_round_trips_through_parquet_and_jsonl(
    store: EventStore, shared_data: Path, tmp_path: Path
) -> None:
    store.ingest(shared_data.joinpath(*REES))
    exported = tmp_path / "events.parquet"
    store.export("events", exported)
    columns = ["event_id", "ts", "user_id", "session_id", "event_type", "product_id", "quantity", "price"]
    original = store.query(f"SELECT {', '.join(columns)} FROM events ORDER BY event_id")
    with EventStore(tmp_path / "copy.duckdb") as copy:
        result = copy.ingest(exported)  # auto: our own schema, from Parquet
        assert (result.format, result.accepted, result.quarantined) == ("cartlift", len(original), 0)
        back = copy.query(f"SELECT {', '.join(columns)} FROM events ORDER BY event_id")
    pd.testing.assert_frame_equal(original, back, check_dtype=False)
    # JSON lines, with a line that is not JSON
    jsonl = tmp_path / "events.jsonl"
    jsonl.write_text(
        '{"event_id": "a1", "ts": "2026-03-01T10:00:00Z", "user_id": "u", "session_id": "s", "event_type": "view", "product_id": "p"}\n'
        "{not json\n"
        '{"event_id": "a2", "ts": "2026-03-01T12:00:00+02:00", "user_id": "u", "session_id": "s", "event_type": "checkout"}\n'
    )
    result = store.ingest(jsonl)
    assert (result.accepted, result.quarantined, result.reasons) == (2, 1, {"invalid JSON": 1})
    q = store.quarantine(reason="invalid JSON")
    assert (q["line"].iloc[0], q["raw"].iloc[0]) == (2, "{not json")
    ts = store.query("SELECT ts FROM events WHERE event_id = 'a2'")["ts"].iloc[0]
    assert ts == pd.Timestamp("2026-03-01 10:00:00")  # converted to UTC


def test_python_records_without_sessions_get_them(store: EventStore) -> None:
    table = pa.table(
        {
            "ts": ["2026-03-01 10:00:00", "2026-03-01 10:05:00", "2026-03-01 12:00:00"],
            "user_id": ["u1", "u1", "u1"],
            "event_type": ["view", "cart_add", "view"],
            "product_id": ["p1", "p1", "p2"],
        }
    )
    result = store.ingest_records(table)
    assert result.accepted == 3
    sessions = store.query("SELECT session_id FROM events ORDER BY ts")["session_id"].tolist()
    assert sessions[0] == sessions[1] != sessions[2]


@pytest.mark.parametrize(
    ("parts", "fmt"),
    [(REES, "rees46"), (RETAIL, "online-retail"), (YOO, "yoochoose")],
)
def test_auto_detection_on_real_files(shared_data: Path, parts: tuple[str, str], fmt: str) -> None:
    assert detect_format(shared_data.joinpath(*parts)).name == fmt


def test_unknown_header_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "odd.csv"
    path.write_text("when,who,what\n1,2,3\n")
    with pytest.raises(FormatDetectionError, match=r"Cannot detect the format .* Pass --format with one of"):
        detect_format(path)


def test_missing_columns_for_an_explicit_format(store: EventStore, tmp_path: Path) -> None:
    path = tmp_path / "short.csv"
    path.write_text("event_time,event_type,product_id\n2019-10-01 00:00:00 UTC,view,1\n")
    with pytest.raises(DataError, match="lacks the rees46 column"):
        store.ingest(path, "rees46")
    assert store.count("events") == 0


def test_parquet_written_by_pyarrow_with_typed_columns(store: EventStore, tmp_path: Path) -> None:
    path = tmp_path / "typed.parquet"
    pq.write_table(
        pa.table(
            {
                "event_id": ["e1", "e2"],
                "ts": pa.array(
                    [pd.Timestamp("2026-02-01 09:00"), pd.Timestamp("2026-02-01 09:01")], pa.timestamp("us")
                ),
                "user_id": ["u", "u"],
                "session_id": ["s", "s"],
                "event_type": ["cart_add", "purchase"],
                "product_id": ["p", "p"],
                "quantity": pa.array([2, 2], pa.int32()),
                "price": [9.5, 9.5],
            }
        ),
        path,
    )
    result = store.ingest(path)
    assert (result.accepted, result.quarantined) == (2, 0)
    assert store.query("SELECT sum(quantity * price) AS v FROM events")["v"].iloc[0] == pytest.approx(38.0)
