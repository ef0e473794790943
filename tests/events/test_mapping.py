"""Files with the store's own column and event names, loaded through --map/--event-type or --mapping."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from cartlift.cli import app
from cartlift.errors import DataError, InvalidParameterError
from cartlift.events import (
    EVENT_TYPES,
    UNKNOWN_EVENT_TYPE,
    ColumnMapping,
    parse_pairs,
    read_mapping,
)
from cartlift.store import EventStore

REES = ("rees46_multicategory_sample", "2019-Oct.csv")
GROCERIES = ("groceries_kaggle_member_date", "Groceries_dataset.csv")
runner = CliRunner()

RENAMED = {
    "event_time": "Event Time",
    "event_type": "Action",
    "product_id": "SKU",
    "price": "Unit Price",
    "user_id": "Customer",
    "user_session": "Visit",
}
NAMES = {"view": "product_view", "cart": "add_to_cart", "remove_from_cart": "remove", "purchase": "order"}


def _renamed_rees(shared_data: Path, tmp_path: Path) -> tuple[Path, pd.DataFrame]:
    """The real REES46 sample written as another shop would export it: other columns, other event names."""
    path = shared_data.joinpath(*REES)
    n = len(path.read_text(encoding="utf-8").splitlines()) - 2  # without the header and the cut last line
    ref = pd.read_csv(path, nrows=n, dtype=str, keep_default_na=False)
    shop = ref[list(RENAMED)].rename(columns=RENAMED)
    shop["Action"] = shop["Action"].map(NAMES)
    shop["Event Time"] = shop["Event Time"].str.replace(" UTC", "Z").str.replace(" ", "T")
    out = tmp_path / "shop.csv"
    shop.to_csv(out, index=False)
    return out, ref


def test_cli_map_and_event_type_load_what_the_native_format_loads(shared_data: Path, tmp_path: Path) -> None:
    shop, ref = _renamed_rees(shared_data, tmp_path)
    db = str(tmp_path / "s.duckdb")
    args = [
        "ingest",
        str(shop),
        "--map",
        'ts="Event Time",user_id=Customer,event_type=Action,product_id=SKU',
        "--map",
        "price=Unit Price,session_id=Visit",
        "--event-type",
        "product_view=view,add_to_cart=cart_add,remove=cart_remove,order=purchase",
        "--db",
        db,
        "--json",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    first = json.loads(result.stdout)
    assert first["quarantined"] == 0 and first["format"] == "mapped"
    assert first["accepted"] + first["duplicates"] == len(ref)
    assert first["duplicates"] == int(ref.duplicated().sum())
    with EventStore(db, read_only=True) as store:
        got = dict(store.con.execute("SELECT event_type, count(*) FROM events GROUP BY 1").fetchall())
        sessions = store.con.execute("SELECT count(DISTINCT session_id) FROM events").fetchall()[0][0]
        first_ts = store.con.execute("SELECT min(ts) FROM events").fetchall()[0][0]
    expected = ref.drop_duplicates()["event_type"].map(
        {"view": "view", "cart": "cart_add", "remove_from_cart": "cart_remove", "purchase": "purchase"}
    )
    assert got == expected.value_counts().to_dict()
    assert sessions == ref["user_session"].nunique()
    assert first_ts == pd.Timestamp(ref["event_time"].str.replace(" UTC", "").min()).to_pydatetime()
    # loading the same file again is harmless
    second = json.loads(runner.invoke(app, args).stdout)
    assert second["accepted"] == 0 and second["duplicates"] == len(ref)


def test_unknown_event_name_is_quarantined_naming_the_types_and_the_option(tmp_path: Path) -> None:
    path = tmp_path / "shop.csv"
    path.write_text(
        "When,Who,What,Item\n"
        "2026-11-01T10:00:00Z,u1,add_to_cart,p1\n"
        "2026-11-01T10:01:00Z,u1,wishlist,p1\n"
        "2026-11-01T10:02:00Z,u1,view,p2\n"
    )
    mapping = ColumnMapping(
        columns={"ts": "When", "user_id": "Who", "event_type": "What", "product_id": "Item"},
        event_types={"add_to_cart": "cart_add"},
    )
    with EventStore(tmp_path / "s.duckdb") as store:
        result = store.ingest(path, mapping=mapping)
        assert (result.accepted, result.quarantined) == (2, 1)
        q = store.quarantine()
        assert q["reason"].tolist() == [UNKNOWN_EVENT_TYPE]
        assert "wishlist" in q["raw"].iloc[0]
        assert all(t in UNKNOWN_EVENT_TYPE for t in EVENT_TYPES) and "--event-type" in UNKNOWN_EVENT_TYPE
        # without the mapping of its event name, add_to_cart is refused with the same reason
        plain = ColumnMapping(columns=mapping.columns, name="unmapped")
        again = store.ingest(path, mapping=plain)
        assert again.reasons == {UNKNOWN_EVENT_TYPE: 2}


def test_toml_mapping_with_a_constant_loads_a_real_order_export(shared_data: Path, tmp_path: Path) -> None:
    """The groceries file is a member-day purchase list: no event type, no product ids, day-first dates."""
    path = shared_data.joinpath(*GROCERIES)
    toml = tmp_path / "groceries.toml"
    toml.write_text(
        'time_format = "%d-%m-%Y"\n\n[columns]\nuser_id = "Member_number"\nts = "Date"\n'
        'product_id = "itemDescription"\ntitle = "itemDescription"\n\n[constants]\nevent_type = "purchase"\n'
    )
    ref = pd.read_csv(path, dtype=str)
    code = runner.invoke(
        app, ["ingest", str(path), "--mapping", str(toml), "--db", str(tmp_path / "g.duckdb")]
    )
    assert code.exit_code == 0, code.output
    with EventStore(tmp_path / "g.duckdb", read_only=True) as store:
        loads = store.query("SELECT format, rows_read, accepted, duplicates FROM loads").iloc[0]
        per_user = store.query("SELECT user_id, count(*) AS n FROM events GROUP BY 1")
        days = store.con.execute("SELECT min(ts), max(ts) FROM events").fetchall()[0]
    assert loads["format"] == "mapped:groceries.toml" and loads["rows_read"] == len(ref)
    # identical lines (the same item twice on the same day) are one event: the id is the row's content
    assert loads["accepted"] == len(ref.drop_duplicates()) and loads["duplicates"] == int(
        ref.duplicated().sum()
    )
    dates = pd.to_datetime(ref["Date"], format="%d-%m-%Y")
    assert (days[0], days[1]) == (dates.min().to_pydatetime(), dates.max().to_pydatetime())
    expected = ref.drop_duplicates().groupby("Member_number").size()
    assert per_user.set_index("user_id")["n"].sort_index().to_dict() == expected.sort_index().to_dict()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"columns": {"when": "x"}}, "unknown column.*'when'.*ts, user_id"),
        ({"event_types": {"atc": "add"}}, "unknown type.*'add'.*view, cart_add"),
        (
            {"columns": {"event_type": "x"}, "constants": {"event_type": "view"}},
            "both a source column and a constant",
        ),
    ],
)
def test_invalid_mappings_say_what_is_allowed(kwargs: dict[str, dict[str, str]], message: str) -> None:
    with pytest.raises(InvalidParameterError, match=message):
        ColumnMapping(**kwargs)  # type: ignore[arg-type]


def test_pairs_and_missing_columns(tmp_path: Path) -> None:
    assert parse_pairs(['ts="Event Time",user_id=Customer', "price=P"], "--map") == {
        "ts": "Event Time",
        "user_id": "Customer",
        "price": "P",
    }
    with pytest.raises(InvalidParameterError, match="NAME=VALUE"):
        parse_pairs(["ts"], "--map")
    bad = tmp_path / "bad.toml"
    bad.write_text("[colums]\nts = 'x'\n")
    with pytest.raises(InvalidParameterError, match=r"unknown key.*colums"):
        read_mapping(bad)
    bad.write_text("[columns]\nts = 'x'\ntime_format = '%d'\n")
    with pytest.raises(InvalidParameterError, match="inside \\[columns\\]; write it above"):
        read_mapping(bad)
    path = tmp_path / "f.csv"
    path.write_text("When,Who\n2026-11-01,u1\n")
    with (
        EventStore(tmp_path / "s.duckdb") as store,
        pytest.raises(DataError, match=r"no 'event_type' column.*--map event_type=COLUMN"),
    ):
        store.ingest(path, mapping=ColumnMapping(columns={"ts": "When", "user_id": "Who"}))
    result = runner.invoke(app, ["ingest", str(path), "--map", "ts", "--db", str(tmp_path / "c.duckdb")])
    assert result.exit_code == 2 and "NAME=VALUE" in result.output
