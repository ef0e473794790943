"""The engine switch without starting Spark: the capability flag, its messages, and the DuckDB path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cartlift.analytics import Funnel
from cartlift.cli import app
from cartlift.errors import DataError, InvalidParameterError
from cartlift.spark import SparkUnavailableError, _engine, check_engine, funnel_on_parquet
from cartlift.store import EventStore

runner = CliRunner()


@pytest.fixture
def no_spark(monkeypatch: pytest.MonkeyPatch) -> None:
    """Simulate a machine without pyspark through the capability flag (nothing is uninstalled)."""
    monkeypatch.setattr(_engine, "HAS_SPARK", False)


def test_spark_engine_without_pyspark_says_how_to_install(no_spark: None) -> None:
    with pytest.raises(SparkUnavailableError, match=r"pip install 'cartlift\[spark\]'"):
        check_engine("spark")
    assert check_engine("DuckDB") == "duckdb"


@pytest.mark.parametrize(
    ("engine", "error", "match"),
    [
        ("polars", InvalidParameterError, "must be one of duckdb, spark"),
        ("", InvalidParameterError, "Got ''"),
    ],
)
def test_unknown_engines_are_refused(engine: str, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        check_engine(engine)


def test_cli_funnel_engine_spark_without_pyspark(no_spark: None, sim_db: Path, sim_parquet: Path) -> None:
    result = runner.invoke(app, ["funnel", "--events", str(sim_parquet), "--engine", "spark", "--json"])
    assert result.exit_code != 0
    assert "pip install 'cartlift[spark]'" in " ".join(result.output.split())


def test_duckdb_engine_on_parquet_equals_the_store(sim_db: Path, sim_parquet: Path) -> None:
    with EventStore(sim_db, read_only=True) as store:
        expected = Funnel().compute(store).to_dict()
    got = funnel_on_parquet(sim_parquet, Funnel(), engine="duckdb").to_dict()
    assert got == expected
    cli = runner.invoke(app, ["funnel", "--events", str(sim_parquet), "--json"])
    assert cli.exit_code == 0, cli.output
    assert [s["count"] for s in json.loads(cli.stdout)["steps"]] == [s["count"] for s in expected["steps"]]


def test_missing_parquet_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="export"):
        funnel_on_parquet(tmp_path / "nope.parquet")
