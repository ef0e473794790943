"""Drawing outcomes of chosen actions from the truth, as `cartlift act simulate` will."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cartlift.errors import DataError, InvalidParameterError
from cartlift.simulate import ACTIONS, SimulatedStore, draw_outcomes, potential_outcomes, true_uplift


def test_potential_outcomes_read_the_right_cell(small: SimulatedStore) -> None:
    carts = small.truth["truth_carts"].to_pandas()
    ids = carts["cart_id"].to_numpy()[::-1]
    actions = np.array([ACTIONS[i % len(ACTIONS)] for i in range(len(ids))])
    got = potential_outcomes(small.truth["truth_carts"], ids, actions)
    by_id = carts.set_index("cart_id")
    want = [by_id.loc[c, f"p_{a}"] for c, a in zip(ids, actions, strict=True)]
    np.testing.assert_array_equal(got, want)
    # a DataFrame read back from a store works the same
    np.testing.assert_array_equal(potential_outcomes(carts, ids, actions), want)


def test_draws_follow_the_potential_outcomes(small: SimulatedStore) -> None:
    table = small.truth["truth_carts"]
    ids = np.repeat(table.column("cart_id").to_numpy(), 400)
    for action in ("nothing", "coupon_15", "reminder_sms_1h"):
        p = potential_outcomes(table, ids, action)
        y = draw_outcomes(table, ids, action, random_state=1)
        assert y.dtype == bool
        # a sum of independent Bernoullis: within 4 standard deviations of its mean
        assert abs(y.sum() - p.sum()) < 4 * math.sqrt((p * (1 - p)).sum()), action
    # same seed, same outcomes; another seed, others
    a = draw_outcomes(table, ids, "coupon_10", random_state=3)
    assert np.array_equal(a, draw_outcomes(table, ids, "coupon_10", random_state=3))
    assert not np.array_equal(a, draw_outcomes(table, ids, "coupon_10", random_state=4))


def test_true_uplift_is_the_difference_to_doing_nothing(small: SimulatedStore) -> None:
    carts = small.truth["truth_carts"].to_pandas()
    np.testing.assert_allclose(true_uplift(carts, "coupon_5"), carts["p_coupon_5"] - carts["p_nothing"])
    assert (true_uplift(carts, "nothing") == 0).all()


@pytest.mark.parametrize(
    ("ids", "actions", "error", "match"),
    [
        (
            ["nope"],
            "nothing",
            DataError,
            r"1 cart id\(s\) are not abandoned carts of this simulation, e.g. nope",
        ),
        (
            None,
            "email_blast",
            InvalidParameterError,
            r"Unknown action\(s\) email_blast\. Use one of: nothing, ",
        ),
        (
            None,
            ["nothing", "nothing", "nothing"],
            InvalidParameterError,
            r"one per cart \(1\)\. Got 3 instead",
        ),
    ],
)
def test_bad_requests_are_refused(
    small: SimulatedStore, ids: list[str] | None, actions: object, error: type[Exception], match: str
) -> None:
    table = small.truth["truth_carts"]
    ids = ids if ids is not None else [table.column("cart_id")[0].as_py()]
    with pytest.raises(error, match=match):
        draw_outcomes(table, ids, actions, random_state=0)  # type: ignore[arg-type]


def test_a_table_that_is_not_the_truth_is_refused() -> None:
    with pytest.raises(DataError, match="no column 'cart_id'"):
        potential_outcomes(pd.DataFrame({"x": [1]}), ["a"], "nothing")


@settings(max_examples=40, deadline=None)
@given(
    picks=st.lists(st.tuples(st.integers(0, 10_000), st.sampled_from(ACTIONS)), min_size=0, max_size=60),
    seed=st.integers(0, 2**32 - 1),
)
def test_outcomes_are_booleans_bounded_by_their_probabilities(
    small: SimulatedStore, picks: list[tuple[int, str]], seed: int
) -> None:
    table = small.truth["truth_carts"]
    all_ids = table.column("cart_id").to_numpy()
    ids = np.array([all_ids[i % len(all_ids)] for i, _ in picks], dtype=object)
    actions = np.array([a for _, a in picks], dtype=object)
    p = potential_outcomes(table, ids, actions)
    y = draw_outcomes(table, ids, actions, random_state=seed)
    assert len(p) == len(y) == len(picks)
    assert ((p > 0) & (p < 1)).all()
    assert y.dtype == bool
    assert np.array_equal(y, draw_outcomes(table, ids, actions, random_state=seed))
