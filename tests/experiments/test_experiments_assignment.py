"""Assignment by hash: GrowthBook's published test cases, vectorised == scalar, splits, targeting, holdout."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from cartlift.errors import InvalidParameterError
from cartlift.experiments import (
    Experiment,
    assign,
    assign_units,
    bucket_ranges,
    choose_variant,
    hash_unit,
    hash_units,
)

# growthbook/growthbook packages/sdk-js/test/cases.json: (seed, value, hash version, bucket)
GROWTHBOOK_HASHES = [
    ("", "a", 1, 0.22),
    ("", "b", 1, 0.077),
    ("b", "a", 1, 0.946),
    ("ef", "d", 1, 0.652),
    ("", "123", 1, 0.011),
    ("feature", "123", 1, 0.863),
    ("seed", "a", 2, 0.0505),
    ("seed", "b", 2, 0.2696),
    ("foo", "ab", 2, 0.2575),
    ("foo", "def", 2, 0.2019),
    ("89123klj", "8952klfjas09ujkasdf", 2, 0.124),
    ("holdout", "1", 2, 0.8043),
    ("experiment", "1", 2, 0.4413),
    ("feature-exp", "i123", 2, 0.9943),
    ("feature-exp", "d123", 2, 0.6468),
]


@pytest.mark.parametrize(("seed", "value", "version", "bucket"), GROWTHBOOK_HASHES)
def test_hash_equals_growthbook(seed: str, value: str, version: int, bucket: float) -> None:
    assert hash_unit(seed, value, version) == bucket
    assert hash_units(seed, [value], version)[0] == bucket


# cases.json "run": experiment "my-test", hash version 1, ids "1".."9"
GROWTHBOOK_RUNS = [
    ({}, [1, 0, 0, 1, 1, 1, 0, 1, 0]),
    ({"weights": (0.1, 0.9)}, [1, 1, 0, 1, 1, 1, 0, 1, 1]),
    ({"coverage": 0.4}, [None, 0, 0, None, 1, None, 0, 1, None]),
    ({"variants": ("0", "1", "2")}, [2, 0, 0, 2, 1, 2, 0, 1, 0]),
]


@pytest.mark.parametrize(("options", "expected"), GROWTHBOOK_RUNS)
def test_assignment_equals_growthbook_run_cases(
    options: dict[str, object], expected: list[int | None]
) -> None:
    exp = Experiment("my-test", **{"variants": ("0", "1"), "hash_version": 1, **options})  # type: ignore[arg-type]
    got = [assign(exp, i).variant for i in range(1, 10)]
    assert got == [None if e is None else str(e) for e in expected]
    assert assign(Experiment("my-test-3", variants=("0", "1"), hash_version=1), 1).variant == "0"


def test_choose_variant_equals_growthbook_cases() -> None:
    even, reduced = [(0, 0.5), (0.5, 1)], [(0, 0.25), (0.5, 0.75)]
    assert choose_variant([0.2, 0.4, 0.6, 0.8, 0, 0.5], even).tolist() == [0, 0, 1, 1, 0, 1]
    assert choose_variant([0.2, 0.4, 0.6, 0.8, 0.25, 0.5], reduced).tolist() == [0, -1, 1, -1, -1, 1]
    assert choose_variant([0.5], [(0, 0.5), (0.5, 0.5), (0.5, 1)]).tolist() == [2]
    assert bucket_ranges([0.5, 0.5], 0.5) == [(0.0, 0.25), (0.5, 0.75)]


@settings(max_examples=60, deadline=None)
@given(
    ids=st.lists(st.one_of(st.text(max_size=24), st.integers(min_value=0, max_value=10**12)), max_size=30),
    salt=st.text(max_size=12),
    version=st.sampled_from([1, 2]),
)
def test_vectorised_hash_equals_scalar_hash(ids: list[object], salt: str, version: int) -> None:
    got = hash_units(salt, ids, version)
    assert got.tolist() == [hash_unit(salt, i, version) for i in ids]
    assert ((got >= 0) & (got < 1)).all()


def test_split_follows_weights_and_is_stable() -> None:
    exp = Experiment("checkout", variants=("control", "a", "b"), weights=(0.5, 0.25, 0.25), salt="s1")
    ids = [f"u{i}" for i in range(60_000)]
    first = assign_units(exp, ids)
    counts = first["variant"].value_counts().reindex(["control", "a", "b"]).to_numpy()
    assert stats.chisquare(counts, 60_000 * np.array([0.5, 0.25, 0.25])).pvalue > 0.001
    again = assign_units(exp, list(reversed(ids)))
    assert again.set_index("unit_id").loc[ids, "variant"].tolist() == first["variant"].tolist()


def test_new_salt_reshuffles_and_more_coverage_keeps_units() -> None:
    ids = [f"u{i}" for i in range(5_000)]
    base = assign_units(Experiment("t", salt="a", coverage=0.3), ids)
    wider = assign_units(Experiment("t", salt="a", coverage=0.8), ids)
    kept = base["status"] == "assigned"
    assert (wider.loc[kept, "variant"] == base.loc[kept, "variant"]).all()
    assert kept.mean() == pytest.approx(0.3, abs=0.02) and (
        wider["status"] == "assigned"
    ).mean() == pytest.approx(0.8, abs=0.02)
    other = assign_units(Experiment("t", salt="b"), ids)
    agree = (other["variant"] == assign_units(Experiment("t", salt="a"), ids)["variant"]).mean()
    assert agree == pytest.approx(0.5, abs=0.03)


def test_holdout_and_targeting() -> None:
    ids = [f"u{i}" for i in range(10_000)]
    attrs = pd.DataFrame(
        {"country": np.where(np.arange(10_000) % 2 == 0, "FR", "DE"), "orders": np.arange(10_000) % 5}
    )
    exp = Experiment("t", holdout=0.1, targeting={"country": "FR", "orders": {"$gte": 2}})
    out = assign_units(exp, ids, attrs)
    eligible = (attrs["country"] == "FR") & (attrs["orders"] >= 2)
    assert (out.loc[~eligible, "status"] == "not_targeted").all()
    assert (out.loc[eligible, "status"] == "holdout").mean() == pytest.approx(0.1, abs=0.02)
    assert out.loc[out["status"] != "assigned", "variant"].isna().all()
    held = assign_units(Experiment("t2", holdout=0.1, salt="x"), ids)
    assert (held["status"] == "holdout").mean() == pytest.approx(0.1, abs=0.01)
    one = assign(exp, "u0", {"country": "FR", "orders": 3})
    assert one.status in ("assigned", "holdout")
    assert assign(exp, "u1", {"country": "DE", "orders": 3}).variant is None
    ops = Experiment(
        "t3", targeting={"device": {"$in": ["ios", "android"]}, "age": {"$lt": 30}, "vip": {"$exists": False}}
    )
    frame = pd.DataFrame({"device": ["ios", "web", "android"], "age": [20, 20, 40]})
    assert assign_units(ops, ["a", "b", "c"], frame)["status"].tolist() == [
        "assigned",
        "not_targeted",
        "not_targeted",
    ]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"variants": ("a",)}, "'variants' parameter of Experiment"),
        ({"variants": ("a", "a")}, "'variants' parameter of Experiment"),
        ({"weights": (0.7, 0.7)}, "'weights' parameter of Experiment"),
        ({"weights": (0.5, 0.3, 0.2)}, "3 weights"),
        ({"coverage": 0.0}, "'coverage' parameter of Experiment must be a float in the range \\(0, 1\\]"),
        ({"holdout": 1.0}, "'holdout' parameter"),
        ({"hash_version": 3}, "'hash_version' parameter"),
        ({"control": "x"}, "not one of its variants"),
        ({"targeting": {"country": {"$regex": "F"}}}, "Unknown targeting operator"),
        ({"targeting": {"country": {"$in": "FR"}}}, "needs a list"),
    ],
)
def test_invalid_experiments_raise(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(InvalidParameterError, match=match):
        Experiment("t", **kwargs)  # type: ignore[arg-type]


def test_targeting_without_attributes_raises() -> None:
    with pytest.raises(InvalidParameterError, match="pass the units' attributes"):
        assign_units(Experiment("t", targeting={"country": "FR"}), ["a"])
