"""Frequent itemsets and rules against mlxtend (real groceries baskets and random ones), and the
frequently-bought-together recommender through the mixin."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from _recommend_mixin import RecommenderTestMixin
from hypothesis import given, settings
from hypothesis import strategies as st
from mlxtend.frequent_patterns import association_rules as mlx_rules
from mlxtend.frequent_patterns import fpgrowth

from cartlift.errors import InvalidParameterError
from cartlift.recommend import (
    AssociationRules,
    association_rules,
    basket_matrix,
    frequent_itemsets,
    read_baskets,
)

# mlxtend computes a "certainty" column we do not use and divides by zero doing it
pytestmark = pytest.mark.filterwarnings("ignore:invalid value encountered in divide:RuntimeWarning")


class TestAssociationRules(RecommenderTestMixin):
    def make_model(self) -> AssociationRules:
        return AssociationRules(min_support=0.01, min_confidence=0.05)


def _mlxtend(X: sp.csr_matrix, ids: np.ndarray, support: float, confidence: float) -> tuple[set, int]:
    frame = pd.DataFrame(X.toarray().astype(bool), columns=list(ids))
    found = fpgrowth(frame, min_support=support, use_colnames=True)
    if found.empty:
        return set(), 0
    rules = mlx_rules(found, num_itemsets=len(frame), metric="confidence", min_threshold=confidence)
    return {frozenset(s) for s in found["itemsets"]}, len(rules)


@pytest.fixture(scope="module")
def groceries(shared_data: Path) -> tuple[sp.csr_matrix, np.ndarray]:
    """Member-day baskets of the Kaggle groceries data (14,963 baskets, 167 items)."""
    baskets = read_baskets(shared_data / "groceries_kaggle_member_date" / "Groceries_dataset.csv")
    return basket_matrix(baskets)


def test_groceries_are_read_as_member_day_baskets(groceries: tuple[sp.csr_matrix, np.ndarray]) -> None:
    X, ids = groceries
    assert X.shape == (14963, 167)
    assert "whole milk" in ids


@pytest.mark.parametrize(
    ("support", "confidence"), [(0.001, 0.05), (0.0005, 0.01), (0.002, 0.1), (0.0003, 0.0)]
)
def test_rule_counts_equal_mlxtend_on_groceries(
    groceries: tuple[sp.csr_matrix, np.ndarray], support: float, confidence: float
) -> None:
    X, ids = groceries
    want_sets, want_rules = _mlxtend(X, ids, support, confidence)
    found = frequent_itemsets(X, support, item_ids=ids)
    rules = association_rules(found, confidence)
    assert {frozenset(ids[list(s)]) for s in found.itemsets} == want_sets
    assert len(rules) == want_rules


def test_support_confidence_lift_on_groceries(groceries: tuple[sp.csr_matrix, np.ndarray]) -> None:
    X, ids = groceries
    frame = pd.DataFrame(X.toarray().astype(bool), columns=list(ids))
    ref = mlx_rules(
        fpgrowth(frame, min_support=0.002, use_colnames=True),
        num_itemsets=len(frame),
        metric="confidence",
        min_threshold=0.05,
    )
    ours = association_rules(frequent_itemsets(X, 0.002, item_ids=ids), 0.05)
    key = lambda a, c: (frozenset(a), frozenset(c))  # noqa: E731
    want = {
        key(a, c): (s, conf, lift)
        for a, c, s, conf, lift in zip(
            ref["antecedents"],
            ref["consequents"],
            ref["support"],
            ref["confidence"],
            ref["lift"],
            strict=True,
        )
    }
    for a, c, s, conf, lift in zip(
        ours["antecedents"],
        ours["consequents"],
        ours["support"],
        ours["confidence"],
        ours["lift"],
        strict=True,
    ):
        np.testing.assert_allclose((s, conf, lift), want[key(ids[list(a)], ids[list(c)])], rtol=1e-12)


@settings(max_examples=40, deadline=None)
@given(
    baskets=st.lists(st.sets(st.integers(0, 7), min_size=1, max_size=5), min_size=1, max_size=40),
    support=st.sampled_from([0.05, 0.1, 0.2, 0.25, 1 / 3, 0.5]),
    confidence=st.sampled_from([0.0, 0.2, 0.5, 2 / 3, 1.0]),
    max_len=st.sampled_from([None, 2, 3]),
)
def test_random_baskets_equal_mlxtend(
    baskets: list[set[int]], support: float, confidence: float, max_len: int | None
) -> None:
    X, ids = basket_matrix(baskets)
    frame = pd.DataFrame(X.toarray().astype(bool), columns=list(ids))
    ref = fpgrowth(frame, min_support=support, use_colnames=True, max_len=max_len)
    found = frequent_itemsets(X, support, item_ids=ids, max_len=max_len)
    assert {frozenset(ids[list(s)]) for s in found.itemsets} == {frozenset(s) for s in ref["itemsets"]}
    n_rules = (
        0
        if ref.empty
        else len(mlx_rules(ref, num_itemsets=len(frame), metric="confidence", min_threshold=confidence))
    )
    assert len(association_rules(found, confidence)) == n_rules


def test_rules_by_hand() -> None:
    baskets = [["milk", "bread"], ["milk", "bread", "eggs"], ["milk"], ["bread", "eggs"]]
    X, ids = basket_matrix(baskets)
    rules = association_rules(frequent_itemsets(X, 0.5, item_ids=ids), 0.6)
    got = {
        (tuple(ids[list(a)]), tuple(ids[list(c)])): (s, conf, lift)
        for a, c, s, conf, lift in zip(
            rules["antecedents"],
            rules["consequents"],
            rules["support"],
            rules["confidence"],
            rules["lift"],
            strict=True,
        )
    }
    # bread in 3/4 baskets, eggs 2/4, {bread, eggs} 2/4: eggs -> bread has confidence 1, lift 1 / (3/4)
    assert got[(("eggs",), ("bread",))] == pytest.approx((0.5, 1.0, 4 / 3))
    assert got[(("bread",), ("eggs",))] == pytest.approx((0.5, 2 / 3, 4 / 3))
    assert (("milk",), ("bread",)) in got and (("bread",), ("milk",)) in got  # 2/3 each


def test_cart_recommendations_follow_the_rules() -> None:
    baskets = [["a", "b"], ["a", "b"], ["a", "c"], ["b", "c"], ["a", "b", "d"]]
    frame = pd.DataFrame(
        [
            {"user_id": f"o{i}", "session_id": f"o{i}", "item_id": x, "ts": i}
            for i, b in enumerate(baskets)
            for x in b
        ]
    )
    from cartlift.recommend import Interactions

    model = AssociationRules(min_support=0.2, min_confidence=0.1, metric="confidence").fit(
        Interactions.from_frame(frame)
    )
    recs = model.recommend_for_items(["a"], k=3)
    # a -> b: 3/4, a -> c: 1/4, a -> d: 1/4 (ties by column)
    assert recs.to_lists()[0] == ["b", "c", "d"]
    np.testing.assert_allclose(recs.scores[0], [0.75, 0.25, 0.25])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"min_support": 0.0}, "min_support"),
        ({"min_support": 1.5}, "min_support"),
        ({"max_len": 0}, "max_len"),
    ],
)
def test_bad_mining_parameters(kwargs: dict[str, float], match: str) -> None:
    X, _ = basket_matrix([["a", "b"]])
    with pytest.raises(InvalidParameterError, match=match):
        frequent_itemsets(X, **{"min_support": 0.5, **kwargs})


def test_basket_files_lines_and_rows(tmp_path: Path) -> None:
    lines = tmp_path / "lines.csv"
    lines.write_text("milk,bread\nbread, eggs ,bread\n\n")
    assert read_baskets(lines) == [["milk", "bread"], ["bread", "eggs"]]
    rows = tmp_path / "rows.csv"
    rows.write_text("order_id,item\n1,milk\n2,tea\n1,bread\n")
    assert read_baskets(rows) == [["milk", "bread"], ["tea"]]
    assert read_baskets(rows, "lines")[0] == ["order_id", "item"]
