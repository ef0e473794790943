"""Ranking metrics against values computed by hand on tiny cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from cartlift.errors import InvalidParameterError
from cartlift.recommend import (
    average_precision_at_k,
    catalog_coverage,
    hit_rate_at_k,
    hits,
    ndcg_at_k,
    novelty,
    precision_at_k,
    recall_at_k,
    reciprocal_rank_at_k,
)
from cartlift.recommend._metrics import parse_metric

# query 0: relevant {1, 3}, ranked [3, 0, 1, -1]: hits at ranks 1 and 3
# query 1: relevant {2}, ranked [0, 1, 4, 2]: hit at rank 4
# query 2: relevant {0, 1, 2}, ranked [4, 3, -1, -1]: no hit
RANKED = np.array([[3, 0, 1, -1], [0, 1, 4, 2], [4, 3, -1, -1]])
RELEVANT = sp.csr_matrix(np.array([[0, 1, 0, 1, 0], [0, 0, 1, 0, 0], [1, 1, 1, 0, 0]]))
N_REL = np.array([2, 1, 3])


@pytest.fixture
def hit() -> np.ndarray:
    return hits(RANKED, RELEVANT)


def test_hits(hit: np.ndarray) -> None:
    assert hit.tolist() == [[True, False, True, False], [False, False, False, True], [False] * 4]


def test_precision_and_recall(hit: np.ndarray) -> None:
    np.testing.assert_allclose(precision_at_k(hit, 3), [2 / 3, 0, 0])
    np.testing.assert_allclose(recall_at_k(hit, N_REL, 3), [1.0, 0, 0])
    np.testing.assert_allclose(recall_at_k(hit, N_REL, 4), [1.0, 1.0, 0])


def test_hit_rate_and_mrr(hit: np.ndarray) -> None:
    np.testing.assert_allclose(hit_rate_at_k(hit, 3), [1, 0, 0])
    np.testing.assert_allclose(reciprocal_rank_at_k(hit, 4), [1.0, 0.25, 0])
    np.testing.assert_allclose(reciprocal_rank_at_k(hit, 3), [1.0, 0, 0])


def test_ndcg(hit: np.ndarray) -> None:
    dcg0 = 1 / math.log2(2) + 1 / math.log2(4)
    idcg0 = 1 / math.log2(2) + 1 / math.log2(3)
    want = [dcg0 / idcg0, (1 / math.log2(5)) / 1.0, 0.0]
    np.testing.assert_allclose(ndcg_at_k(hit, N_REL, 4), want)
    # with k = 1 query 0 is perfect and the ideal is one item long
    np.testing.assert_allclose(ndcg_at_k(hit, N_REL, 1), [1.0, 0, 0])


def test_map(hit: np.ndarray) -> None:
    # AP@4 of query 0: (1/1 + 2/3) / min(4, 2); query 1: (1/4) / 1
    np.testing.assert_allclose(average_precision_at_k(hit, N_REL, 4), [(1 + 2 / 3) / 2, 0.25, 0])


def test_no_relevant_item_gives_nan() -> None:
    empty = hits(np.array([[0, 1]]), sp.csr_matrix((1, 3)))
    assert np.isnan(recall_at_k(empty, np.array([0]), 2)[0])
    assert np.isnan(ndcg_at_k(empty, np.array([0]), 2)[0])


def test_coverage_and_novelty() -> None:
    assert catalog_coverage(RANKED, 10, 2) == pytest.approx(4 / 10)  # top 2s hold items 0, 1, 3, 4
    users = np.array([8, 4, 2, 1, 0])
    # query 2 recommends items 4 (never seen: counts as 1 user) and 3: -log2(1/16) twice
    got = novelty(RANKED, users, 16, 2)
    np.testing.assert_allclose(got, [(4 + 1) / 2, (1 + 2) / 2, 4.0])


def test_coverage_counts_distinct_items_in_all_lists() -> None:
    assert catalog_coverage(np.array([[0, 1], [1, 2], [-1, -1]]), 4, 2) == pytest.approx(3 / 4)


@pytest.mark.parametrize("name", ["HR20", "XYZ@3", "NDCG@0", "ndcg@10"])
def test_unknown_metric_names(name: str) -> None:
    with pytest.raises(InvalidParameterError, match="Unknown metric"):
        parse_metric(name)
