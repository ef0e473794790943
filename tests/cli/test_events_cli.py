"""`cartlift ingest / export / quarantine / summary` as a user runs them: exit codes and --json shapes."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
from typer.testing import CliRunner

from cartlift.cli import app

runner = CliRunner()
REES = ("rees46_multicategory_sample", "2019-Oct.csv")


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = runner.invoke(app, list(args), env=env)
    return result.exit_code, result.stdout


def test_ingest_json_shape_and_idempotence(shared_data: Path, tmp_path: Path) -> None:
    db = str(tmp_path / "s.duckdb")
    code, out = run("ingest", str(shared_data.joinpath(*REES)), "--format", "rees46", "--db", db, "--json")
    assert code == 0
    first = json.loads(out)
    assert {"accepted", "duplicates", "quarantined", "reasons"} <= first.keys()
    assert first["reasons"] == {"truncated line (missing columns)": 1}
    code, out = run("ingest", str(shared_data.joinpath(*REES)), "--db", db, "--json")
    second = json.loads(out)
    assert (second["accepted"], second["duplicates"]) == (0, first["accepted"] + first["duplicates"])


def test_quarantine_export_and_summary(shared_data: Path, tmp_path: Path) -> None:
    db = str(tmp_path / "s.duckdb")
    run("ingest", str(shared_data.joinpath(*REES)), "--db", db, "--json")
    code, out = run("quarantine", "--db", db, "--json")
    rows = json.loads(out)
    assert code == 0 and rows["total"] == 1 and rows["rows"][0]["line"] == 17436
    code, out = run("export", "events", "--out", str(tmp_path / "ev.parquet"), "--db", db, "--json")
    assert code == 0 and pq.read_table(tmp_path / "ev.parquet").num_rows == json.loads(out)["rows"]
    code, out = run("summary", "--db", db, "--json")
    summary = json.loads(out)
    assert summary["events_by_type"]["cart_add"] > 0 and 0 < summary["cart_abandonment_rate"] < 1


def test_db_from_the_environment(shared_data: Path, tmp_path: Path) -> None:
    db = tmp_path / "env.duckdb"
    code, _ = run("ingest", str(shared_data.joinpath(*REES)), "--json", env={"CARTLIFT_DB": str(db)})
    assert code == 0 and db.exists()


def test_errors_are_one_clear_line_and_exit_2(tmp_path: Path) -> None:
    db = str(tmp_path / "s.duckdb")
    result = runner.invoke(app, ["ingest", str(tmp_path / "missing.csv"), "--format", "rees46", "--db", db])
    assert result.exit_code == 2
    assert "No such file" in result.output and "Traceback" not in result.output
    odd = tmp_path / "odd.csv"
    odd.write_text("a,b\n1,2\n")
    result = runner.invoke(app, ["ingest", str(odd), "--db", db])
    assert result.exit_code == 2 and "Cannot detect the format" in result.output
    result = runner.invoke(app, ["ingest", str(odd), "--format", "nope", "--db", db])
    assert result.exit_code == 2 and "Unknown format 'nope'" in result.output
