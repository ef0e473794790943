"""Audiences as a marketer exports them: one row per customer, consent respected, erasure respected."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from cartlift.audiences import COLUMNS, build_audience
from cartlift.cli import app
from cartlift.errors import DataError
from cartlift.simulate import simulate_to
from cartlift.store import EventStore

runner = CliRunner()


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A simulated store with a contacts table (every customer has an address, a third consented),
    and one customer the audit log records as erased."""
    path = tmp_path_factory.mktemp("aud") / "store.duckdb"
    with EventStore(path) as store:
        simulate_to(store, random_state=2, n_users=500, n_days=21)
        users = [r[0] for r in store.con.execute("SELECT DISTINCT user_id FROM events ORDER BY 1").fetchall()]
        contacts = pd.DataFrame(
            {"user_id": users, "email": [f"{u}@example.com" for u in users], "unsubscribed_at": None}
        )
        contacts["unsubscribed_at"] = pd.to_datetime(contacts["unsubscribed_at"])
        store.write_table("contacts", contacts)
        store.write_table(
            "consents",
            pd.DataFrame({"user_id": users, "email": [i % 3 == 0 for i in range(len(users))], "sms": False}),
        )
        store.con.execute(
            "CREATE TABLE audit_log (audit_id VARCHAR, ts TIMESTAMP, action VARCHAR, subject VARCHAR,"
            " actor VARCHAR, details VARCHAR)"
        )
        subject = "sha256:" + hashlib.sha256(users[0].encode()).hexdigest()
        store.con.execute(
            "INSERT INTO audit_log VALUES ('a1', now(), 'erase_user', ?, 'admin', '{}')", [subject]
        )
    return path


def _export(store_path: Path, out: Path, *args: str) -> tuple[int, dict[str, object], str]:
    result = runner.invoke(
        app, ["export", "audiences", "--out", str(out), "--db", str(store_path), *args, "--json"]
    )
    payload = json.loads(result.stdout) if result.exit_code == 0 else {}
    return result.exit_code, payload, " ".join(result.stderr.split())


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_export_opens_in_pandas_with_the_documented_columns(
    store_path: Path, tmp_path: Path, fmt: str
) -> None:
    out = tmp_path / f"aud.{fmt}"
    code, payload, err = _export(store_path, out, "--format", fmt)
    assert code == 0, err
    frame = pd.read_csv(out) if fmt == "csv" else pd.read_parquet(out)
    assert list(frame.columns) == list(COLUMNS) == payload["columns"]
    assert len(frame) == payload["rows"] and frame["customer_id"].is_unique
    with EventStore(store_path, read_only=True) as store:
        customers = store.query("SELECT DISTINCT user_id FROM events")["user_id"].astype(str)
    # everyone but the erased customer, once
    assert set(frame["customer_id"].astype(str)) == set(customers) - {sorted(customers)[0]}
    assert frame["top_products"].notna().all()
    assert frame["cluster"].notna().all()
    assert frame["abandonment_risk"].between(0, 1).sum() > 10


def test_no_address_without_consent_and_every_consented_address_given(store_path: Path) -> None:
    with EventStore(store_path, read_only=True) as store:
        rows = build_audience(store).rows
        consents = store.query("SELECT user_id, email AS consent FROM consents").set_index("user_id")[
            "consent"
        ]
    consent = consents.reindex(rows["customer_id"]).to_numpy(dtype=bool)
    assert rows.loc[~consent, "email"].isna().all()
    assert (rows.loc[consent, "email"] == rows.loc[consent, "customer_id"] + "@example.com").all()
    assert (rows["email_consent"].to_numpy(dtype=bool) == consent).all()
    assert consent.sum() > 50 and (~consent).sum() > 50


def test_unsubscribed_customers_get_no_address(store_path: Path, tmp_path: Path) -> None:
    copy = tmp_path / "store.duckdb"
    copy.write_bytes(store_path.read_bytes())
    with EventStore(copy) as store:
        store.con.execute("UPDATE contacts SET unsubscribed_at = now()")
        rows = build_audience(store).rows
    assert rows["email"].isna().all() and not rows["email_consent"].any()


def test_segment_and_min_clv_filter_and_unknown_segment_exits_2(store_path: Path, tmp_path: Path) -> None:
    with EventStore(store_path, read_only=True) as store:
        whole = build_audience(store).rows
    segment = whole["rfm_segment"].dropna().value_counts().index[0]
    code, _, err = _export(store_path, tmp_path / "seg.csv", "--segment", segment.upper())
    assert code == 0, err
    part = pd.read_csv(tmp_path / "seg.csv")
    assert (part["rfm_segment"] == segment).all() and len(part) == (whole["rfm_segment"] == segment).sum()
    code, _, err = _export(store_path, tmp_path / "c.csv", "--segment", "cluster 1")
    assert code == 0 and (pd.read_csv(tmp_path / "c.csv")["cluster"] == 1).all()
    code, _, err = _export(store_path, tmp_path / "x.csv", "--segment", "Nobody")
    assert code == 2 and "No segment 'Nobody'" in err
    assert not (tmp_path / "x.csv").exists()
    code, _, err = _export(store_path, tmp_path / "y.csv", "--format", "xlsx")
    assert code == 2 and "csv or parquet" in err


def test_export_of_a_table_still_works_beside_audiences(store_path: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["export", "products", "--out", str(tmp_path / "p.parquet"), "--db", str(store_path)]
    )
    assert result.exit_code == 0
    assert json.loads(result.stdout)["table"] == "products"
    assert "audiences" in runner.invoke(app, ["export", "--help"]).stdout


def test_a_customer_erased_under_the_services_keyed_hash_never_appears(
    store_path: Path, tmp_path: Path
) -> None:
    from cartlift.store import audit_subject

    copy = tmp_path / "store.duckdb"
    copy.write_bytes(store_path.read_bytes())
    with EventStore(copy) as store:
        everyone = set(build_audience(store).rows["customer_id"])
        gone = sorted(everyone)[0]
        store.con.execute(
            "INSERT INTO audit_log VALUES ('k1', now(), 'erase_user', ?, 'admin', '{}')",
            [audit_subject(gone, "the-audit-secret")],
        )
        kept = set(build_audience(store, audit_key="the-audit-secret").rows["customer_id"])
    assert kept == everyone - {gone}


def test_a_name_no_store_can_have_is_refused_before_any_model_is_fitted(tmp_path: Path) -> None:
    # an empty store cannot fit clusters, CLV or the abandonment model: reaching "No segment"
    # there shows the name was refused first (the service answered such a 404 after a full build)
    with (
        EventStore(tmp_path / "empty.duckdb") as store,
        pytest.raises(DataError, match=r"No segment 'Nobody'.*Champions.*'cluster N', or all"),
    ):
        build_audience(store, segment="Nobody")
