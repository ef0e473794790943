"""One local Spark session for the whole run (starting one costs ~15 s on two cores)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cartlift.simulate import simulate
from cartlift.spark import HAS_SPARK
from cartlift.store import EventStore

REES = ("rees46_multicategory_sample", "2019-Oct.csv")


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """``local[2]``, no UI, 4 shuffle partitions, 1 GB driver; skips without pyspark or Java."""
    if not HAS_SPARK:
        pytest.skip("pyspark is not installed: pip install 'cartlift[spark]'")
    if not os.environ.get("JAVA_HOME") and shutil.which("java") is None:
        pytest.skip("no Java runtime for Spark (install openjdk-17-jre-headless or set JAVA_HOME)")
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from cartlift.spark import spark_session

    session = spark_session(
        "local[2]",
        app_name="cartlift-tests",
        conf={
            "spark.ui.enabled": "false",
            "spark.sql.shuffle.partitions": "4",
            "spark.default.parallelism": "4",
            "spark.driver.memory": "1g",
        },
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def rees_parquet(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The REES46 sample ingested into a temporary store and exported as the Parquet event table."""
    folder = tmp_path_factory.mktemp("rees_spark")
    with EventStore(folder / "rees.duckdb") as store:
        store.ingest(shared_data.joinpath(*REES))
        store.export("events", folder / "events.parquet")
    return folder / "events.parquet"


@pytest.fixture(scope="session")
def sim_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small simulated store (closed file, so commands and tests can open it)."""
    folder = tmp_path_factory.mktemp("sim_spark")
    sim = simulate(n_users=400, n_days=21, random_state=7)
    with EventStore(folder / "sim.duckdb") as store:
        sim.write_to(store)
        store.export("events", folder / "events.parquet")
    return folder / "sim.duckdb"


@pytest.fixture(scope="session")
def sim_parquet(sim_db: Path) -> Path:
    return sim_db.parent / "events.parquet"
