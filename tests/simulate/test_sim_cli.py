"""`cartlift simulate` and the demo step, on a real temporary store."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from cartlift.cli import app
from cartlift.cli._simulate import demo_step
from cartlift.store import EventStore

runner = CliRunner()


def _flat(text: str) -> str:
    """Rich wraps messages at the terminal width; compare them as one line."""
    return " ".join(text.split())


def test_simulate_json_loads_the_store_and_writes_files(tmp_path: Path) -> None:
    db = tmp_path / "sim.duckdb"
    args = [
        "simulate",
        "--users",
        "400",
        "--days",
        "7",
        "--seed",
        "5",
        "--db",
        str(db),
        "--out",
        str(tmp_path / "f"),
    ]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["users"] == 400
    assert doc["events"] == sum(doc["events_by_type"].values())
    assert doc["loaded"]["events"] == {
        "accepted": doc["events"],
        "duplicates": 0,
        "quarantined": 0,
        "reasons": {},
    }
    assert 0 < doc["cart_abandonment_rate"] < 1
    assert 0 < doc["conversion_rate"] < 1
    assert doc["seconds"] > 0
    assert Path(doc["paths"]["events"]).is_file()
    assert Path(doc["paths"]["truth_carts"]).is_file()
    with EventStore(db, read_only=True) as store:
        assert store.count("events") == doc["events"]
        assert store.summary()["sessions"] == doc["sessions"]
        assert "truth_carts" in store.tables()
    # the same seed again: every event is a duplicate
    again = json.loads(runner.invoke(app, [*args, "--json"]).stdout)
    assert again["loaded"]["events"]["duplicates"] == doc["events"]
    assert {k: again[k] for k in ("events_by_type", "run_id")} == {
        k: doc[k] for k in ("events_by_type", "run_id")
    }


def test_simulate_without_json_prints_a_summary(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["simulate", "--users", "50", "--days", "3", "--db", str(tmp_path / "s.duckdb")]
    )
    assert result.exit_code == 0, result.output
    assert "cart abandonment rate" in result.stdout


def test_files_only_and_nothing_to_do(tmp_path: Path) -> None:
    ok = runner.invoke(
        app, ["simulate", "--users", "30", "--days", "2", "--no-load", "--out", str(tmp_path), "--json"]
    )
    assert ok.exit_code == 0, ok.output
    assert "db" not in json.loads(ok.stdout)
    assert (tmp_path / "events.parquet").is_file()
    nothing = runner.invoke(app, ["simulate", "--no-load"])
    assert nothing.exit_code == 2
    assert "Nothing to do" in _flat(nothing.output)


def test_bad_values_give_one_line_errors(tmp_path: Path) -> None:
    db = str(tmp_path / "x.duckdb")
    bad = runner.invoke(app, ["simulate", "--users", "0", "--db", db])
    assert bad.exit_code == 2
    assert "'n_users' parameter of SimulationConfig must be an int >= 1. Got 0 instead" in _flat(bad.output)
    late = runner.invoke(
        app, ["simulate", "--users", "5", "--days", "2", "--start", "2100-01-01", "--db", db]
    )
    assert late.exit_code == 2
    assert "a store rejects them" in _flat(late.output)
    garbled = runner.invoke(app, ["simulate", "--start", "someday", "--db", db])
    assert garbled.exit_code == 2
    assert "--start must be a date like 2026-01-01. Got 'someday' instead." in _flat(garbled.output)


def test_demo_step_simulates_loads_and_writes(tmp_path: Path) -> None:
    with EventStore(tmp_path / "demo.duckdb") as store:
        doc = demo_step(store, tmp_path / "demo", users=300, days=5, seed=1)
        assert store.count("events") == doc["events"]
        assert store.count("quarantine") == 0
    assert doc["loaded"]["events"]["quarantined"] == 0
    assert Path(doc["paths"]["events"]).parent == tmp_path / "demo" / "simulated"
