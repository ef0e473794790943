"""The Spark funnel gives the DuckDB funnel's whole result: every order, windows, exclusions, breakdowns, catalog.

The reference is ``funnel(store, ...)`` on the DuckDB store the Parquet was exported from (the
REES46 sample and a simulated store); the whole ``--json`` document must match, floats to 1e-9.
Every test shares the one session of ``conftest.spark``: slow, run by ``make test-slow``.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from analytics.conftest import make_store
from cartlift.analytics import Exclusion, Funnel, funnel, parse_exclusion, parse_step
from cartlift.cli import app
from cartlift.errors import DataError, InvalidParameterError
from cartlift.spark import funnel_on_parquet, read_events, spark_funnel
from cartlift.store import EventStore

pytestmark = [pytest.mark.spark, pytest.mark.slow]
runner = CliRunner()


@pytest.fixture(scope="module")
def stores(
    rees_parquet: Path, sim_db: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, dict[str, Path]]:
    """For "rees" and "sim": the DuckDB store, its events Parquet, and its catalog exported beside a copy of them."""
    out = {}
    for name, db, events in (
        ("rees", rees_parquet.parent / "rees.duckdb", rees_parquet),
        ("sim", sim_db, sim_db.parent / "events.parquet"),
    ):
        folder = tmp_path_factory.mktemp(f"catalog_{name}")
        with EventStore(db, read_only=True) as store:
            store.export("products", folder / "products.parquet")
        shutil.copy(events, folder / "events.parquet")
        out[name] = {"db": db, "events": folder / "events.parquet", "products": folder / "products.parquet"}
    return out


def _same_document(got: Any, expected: Any, where: str = "result") -> None:
    """Equal JSON documents: every key and value, floats to 1e-9 (quantiles interpolate in another order)."""
    if isinstance(expected, float) and isinstance(got, float):
        assert math.isclose(got, expected, rel_tol=1e-9, abs_tol=1e-9), f"{where}: {got} != {expected}"
    elif isinstance(expected, dict):
        assert isinstance(got, dict) and list(got) == list(expected), where
        for key in expected:
            _same_document(got[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, list | tuple):
        assert isinstance(got, list | tuple) and len(got) == len(expected), f"{where}: {got} != {expected}"
        for i, (g, e) in enumerate(zip(got, expected, strict=True)):
            _same_document(g, e, f"{where}[{i}]")
    else:
        assert got == expected, f"{where}: {got!r} != {expected!r}"


# (data set, options): each order with and without a window, exclusions, every kind of breakdown,
# catalog filters in steps and exclusions, entry ranges, trends, one-step funnels
CASES = [
    ("rees", {"breakdown": "brand"}),
    ("sim", {"unit": "user", "window": "2h", "breakdown": "device", "exclusions": ["view@2-3"]}),
    ("rees", {"order": "strict", "breakdown": "new_vs_returning"}),
    (
        "sim",
        {
            "order": "strict",
            "unit": "user",
            "window": "30m",
            "breakdown": "channel",
            "exclusions": ["view@2"],
        },
    ),
    ("rees", {"order": "unordered", "breakdown": "hour"}),
    (
        "sim",
        {
            "order": "unordered",
            "unit": "user",
            "window": "6h",
            "steps": ["view:category=headphones|laptops", "cart_add:category=headphones|laptops", "purchase"],
            "breakdown": "category",
        },
    ),
    (
        "sim",
        {
            "steps": ["view:category=headphones|laptops|beauty", "cart_add", "purchase"],
            "window": "10m",
            "breakdown": "price_band",
            "trend": "week",
            "exclusions": ["view:category=laptops@1-2"],
        },
    ),
    (
        "sim",
        {
            "order": "strict",
            "start": "2026-01-05",
            "end": "2026-01-11",
            "breakdown": "weekday",
            "trend": "hour",
        },
    ),
    (
        "rees",
        {
            "unit": "user",
            "window": "1h",
            "steps": ["view:brand=apple|samsung", "cart_add", "purchase"],
            "breakdown": "category",
            "breakdown_limit": 3,
            "trend": "hour",
        },
    ),
    ("sim", {"steps": ["cart_add"], "breakdown": "product_id", "breakdown_limit": 2, "trend": "month"}),
]


def _spec(options: dict[str, Any]) -> Funnel:
    opts = dict(options)
    if "exclusions" in opts:
        opts["exclusions"] = [parse_exclusion(x) for x in opts["exclusions"]]
    return Funnel(**opts)


@pytest.mark.parametrize(("which", "options"), CASES, ids=[f"{w}-{i}" for i, (w, _) in enumerate(CASES)])
def test_spark_funnel_equals_duckdb_on_the_store(
    spark: Any, stores: dict[str, dict[str, Path]], which: str, options: dict[str, Any]
) -> None:
    paths = stores[which]
    spec = _spec(options)
    with EventStore(paths["db"], read_only=True) as store:
        expected = spec.compute(store)
    # the comparison means something: units entered, some converted, and the breakdown has groups to test
    assert expected.steps[0].count > 0 and expected.time_to_convert.converted > 0
    assert expected.breakdown is not None and len(expected.breakdown.groups) >= 2
    if spec.exclusions:
        assert expected.excluded > 0
    # a session in another zone (+05:30 moves hours and days) still reads the store's times as UTC
    spark.conf.set("spark.sql.session.timeZone", "Asia/Kolkata")
    try:
        got = spark_funnel(
            read_events(spark, paths["events"]), spec, products=spark.read.parquet(str(paths["products"]))
        )
        assert spark.conf.get("spark.sql.session.timeZone") == "Asia/Kolkata"
    finally:
        spark.conf.set("spark.sql.session.timeZone", "UTC")
    _same_document(got.to_dict(), expected.to_dict())


def test_unordered_attempts_start_only_at_step_events(spark: Any, stores: dict[str, dict[str, Path]]) -> None:
    """Views of other brands are read (same event type) but start no attempt: every entrant is in the trend."""
    paths = stores["rees"]
    spec = Funnel(
        ["view:brand=apple|samsung", "cart_add:brand=apple|samsung", "purchase"],
        order="unordered",
        unit="user",
    )
    for result in (
        funnel_on_parquet(paths["events"], spec, engine="duckdb"),
        spark_funnel(
            read_events(spark, paths["events"]), spec, products=spark.read.parquet(str(paths["products"]))
        ),
    ):
        assert result.entered > 0
        assert sum(p.entered for p in result.trend) == result.entered
        assert all(p.period is not None for p in result.trend)


def test_a_breakdown_with_no_entrant_is_empty_not_an_error(
    spark: Any, stores: dict[str, dict[str, Path]]
) -> None:
    paths = stores["rees"]
    spec = Funnel(["view:category=no.such.category", "purchase"], breakdown="brand")
    expected = funnel_on_parquet(paths["events"], spec, engine="duckdb")
    assert expected.entered == 0 and expected.breakdown is not None
    assert expected.breakdown.groups == () and expected.breakdown.p_value is None
    assert expected.breakdown.note == "fewer than two non-empty rows or columns: nothing to compare"
    got = spark_funnel(
        read_events(spark, paths["events"]), spec, products=spark.read.parquet(str(paths["products"]))
    )
    _same_document(got.to_dict(), expected.to_dict())


def test_properties_breakdown_and_quoted_filter_values(spark: Any, tmp_path: Path) -> None:
    """JSON values of every kind give the same text on both engines; quotes in filter values are escaped."""
    from datetime import datetime, timedelta

    t = datetime(2025, 3, 1, 9)
    deep = ['{"a": [1, 2]}', '"x"', "1.50", "7", "true", "null"]
    rows = []
    for i in range(24):
        props = None if i % 7 == 6 else '{"deep": ' + deep[i % 7] + ', "other": 1}'
        user = f"u{i}"
        pid = ("p1", "p2", "p3")[i % 3]
        rows.append(
            {
                "ts": t + timedelta(minutes=i),
                "user_id": user,
                "event_type": "view",
                "product_id": pid,
                "properties": props,
            }
        )
        if i % 2 == 0:
            rows.append(
                {"ts": t + timedelta(minutes=i, seconds=30), "user_id": user, "event_type": "purchase"}
            )
    products = [
        {"product_id": "p1", "brand": "L'Oréal"},
        {"product_id": "p2", "brand": "back\\slash"},
        {"product_id": "p3", "brand": "acme"},
    ]
    spec = Funnel(["view:brand=L'Oréal|back\\slash", "purchase"], unit="user", breakdown="properties.deep")
    with make_store(rows, products) as store:
        store.export("events", tmp_path / "events.parquet")
        store.export("products", tmp_path / "products.parquet")
        expected = spec.compute(store)
    assert expected.steps[0].count == 16  # the p1 and p2 viewers: both quoted values matched
    assert expected.breakdown is not None
    assert {g.value for g in expected.breakdown.groups} == {'{"a":[1,2]}', "x", "1.5", "7", "true", "(none)"}
    got = funnel_on_parquet(tmp_path / "events.parquet", spec, engine="spark", master="local[2]")
    _same_document(got.to_dict(), expected.to_dict())


@pytest.mark.parametrize(
    ("options", "with_products", "error", "match"),
    [
        ({"breakdown": "price"}, True, InvalidParameterError, "a double column of products.*--engine duckdb"),
        ({"breakdown": "properties.it's"}, False, InvalidParameterError, "properties key.*--engine duckdb"),
        ({"breakdown": "category"}, False, InvalidParameterError, "need the products table"),
        ({"steps": ["view:brand=apple", "purchase"]}, False, DataError, "no products table was given"),
    ],
)
def test_what_spark_cannot_answer_alike_is_refused(
    spark: Any,
    stores: dict[str, dict[str, Path]],
    options: dict[str, Any],
    with_products: bool,
    error: type[Exception],
    match: str,
) -> None:
    paths = stores["rees"]
    products = spark.read.parquet(str(paths["products"])) if with_products else None
    with pytest.raises(error, match=match):
        spark_funnel(read_events(spark, paths["events"]), Funnel(**options), products=products)


def test_a_catalog_with_a_product_twice_is_refused(
    spark: Any, stores: dict[str, dict[str, Path]], tmp_path: Path
) -> None:
    paths = stores["sim"]
    head = pq.read_table(paths["products"]).slice(0, 5)
    pq.write_table(pa.concat_tables([head, head]), tmp_path / "products.parquet")
    shutil.copy(paths["events"], tmp_path / "events.parquet")
    spec = Funnel(["view:category=laptops", "purchase"])
    with pytest.raises(DataError, match="more than once"):
        spark_funnel(
            read_events(spark, paths["events"]),
            spec,
            products=spark.read.parquet(str(tmp_path / "products.parquet")),
        )
    with pytest.raises(DataError, match="more than once"):
        funnel_on_parquet(tmp_path / "events.parquet", spec, engine="duckdb")


def test_catalog_steps_without_a_catalog_fail_before_spark_starts(
    spark: Any, stores: dict[str, dict[str, Path]]
) -> None:
    alone = stores["sim"]["db"].parent / "events.parquet"  # no products.parquet beside it
    assert not (alone.parent / "products.parquet").exists()
    spec = Funnel(["view", "purchase"], exclusions=[Exclusion(parse_step("cart_add:brand=x"))])
    for engine in ("duckdb", "spark"):
        with pytest.raises(DataError, match=r"no products table was given.*--products"):
            funnel_on_parquet(alone, spec, engine=engine)
    with pytest.raises(DataError, match="No products table at"):
        funnel_on_parquet(alone, Funnel(), products=alone.parent / "nope.parquet")


def test_cli_strict_breakdown_json_is_the_same_on_both_engines(
    spark: Any, stores: dict[str, dict[str, Path]]
) -> None:
    """The catalog beside the events is found by both engines; the documents are the same."""
    docs = {}
    for engine in ("duckdb", "spark"):
        args = [
            "funnel",
            "--events",
            str(stores["sim"]["events"]),
            "--engine",
            engine,
            "--spark-master",
            "local[2]",
        ]
        args += ["--order", "strict", "--window", "30m", "--breakdown", "category", "--json"]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        docs[engine] = json.loads(result.stdout)
    with EventStore(stores["sim"]["db"], read_only=True) as store:
        reference = funnel(store, order="strict", window="30m", breakdown="category")
    assert [s["count"] for s in docs["duckdb"]["steps"]] == [s.count for s in reference.steps]
    assert len(docs["duckdb"]["breakdown"]["groups"]) == 10 + 1  # ten categories and (other)
    _same_document(docs["spark"], docs["duckdb"])


def test_cli_products_needs_events(stores: dict[str, dict[str, Path]]) -> None:
    result = runner.invoke(
        app, ["funnel", "--db", str(stores["sim"]["db"]), "--products", str(stores["sim"]["products"])]
    )
    assert result.exit_code == 2
    assert "--products goes with --events" in result.output
