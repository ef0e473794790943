"""Protocols, bootstrap intervals, the paired test and the leaderboard."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from cartlift.errors import DataError, InvalidParameterError
from cartlift.recommend import (
    Hybrid,
    ItemKNN,
    Popularity,
    bootstrap_ci,
    evaluate,
    leave_last_out,
    next_item,
    paired_test,
    temporal_split,
)


def test_temporal_split_never_trains_on_the_future(events: pd.DataFrame) -> None:
    task = temporal_split(events, test_fraction=0.25)
    cutoff = pd.Timestamp(task.info["cutoff"])
    assert task.train.ts.max() < (cutoff - pd.Timestamp(0)).total_seconds()
    later = events[events["ts"] >= cutoff]
    # every relevant item comes from the test period, and seen items are not counted (exclude_seen)
    for user, items in zip(task.user_ids, task.relevant, strict=True):
        assert set(items) <= set(later.loc[later["user_id"] == user, "item_id"])
        row = task.train.matrix[list(task.train.user_ids).index(user)]
        seen = set(task.train.item_ids[row.indices])
        assert not set(items) & seen
    assert task.info["test_users"] == len(task.user_ids) > 0


def test_relevant_types_restrict_the_targets(events: pd.DataFrame) -> None:
    task = temporal_split(events, test_fraction=0.3, relevant_types=["purchase"], exclude_seen=False)
    bought = events[(events["event_type"] == "purchase")]
    pairs = set(zip(bought["user_id"], bought["item_id"], strict=True))
    for user, items in zip(task.user_ids, task.relevant, strict=True):
        assert all((user, i) in pairs for i in items)


def test_leave_last_out_holds_out_each_users_latest_item(events: pd.DataFrame) -> None:
    task = leave_last_out(events)
    frame = task.train.to_frame()
    for user, items in zip(task.user_ids[:10], task.relevant[:10], strict=True):
        (item,) = items
        mine = events[events["user_id"] == user]
        assert mine.sort_values("ts", kind="stable")["item_id"].iloc[-1] == item
        assert not ((frame["user_id"] == user) & (frame["item_id"] == item)).any()


def test_next_item_queries_are_prefixes() -> None:
    train = pd.DataFrame({"session_id": ["a", "a"], "item_id": ["1", "2"], "ts": [0.0, 1.0]})
    test = pd.DataFrame(
        {"session_id": ["b", "b", "b", "c"], "item_id": ["1", "2", "1", "3"], "ts": [5.0, 6.0, 7.0, 5.0]}
    )
    task = next_item(train, test)
    assert [c.tolist() for c in task.contexts or []] == [["1"], ["1", "2"]]
    assert [r.tolist() for r in task.relevant] == [["2"], ["1"]]
    assert task.groups.tolist() == ["b", "b"]
    assert not task.exclude_seen


def test_bootstrap_ci_resamples_whole_groups() -> None:
    values = np.array([1.0, 1.0, 0.0, 0.0])
    same_group = bootstrap_ci(values, np.array(["u", "u", "u", "u"]), n_bootstrap=200)
    assert same_group == (0.5, 0.5), "one user: nothing to resample"
    rng = np.random.default_rng(0)
    x = rng.normal(size=400)
    low, high = bootstrap_ci(x, np.arange(400), n_bootstrap=2000, random_state=1)
    se = x.std(ddof=1) / np.sqrt(len(x))
    assert low == pytest.approx(x.mean() - 1.96 * se, abs=0.25 * se)
    assert high == pytest.approx(x.mean() + 1.96 * se, abs=0.25 * se)


def test_paired_test_is_the_paired_t_test_with_one_query_per_user() -> None:
    rng = np.random.default_rng(3)
    a = rng.random(60)
    b = a - 0.05 + rng.normal(0, 0.1, 60)
    got = paired_test(a, b, np.arange(60), n_bootstrap=100)
    assert got.p_value == pytest.approx(stats.ttest_rel(a, b).pvalue, rel=1e-9)
    assert got.difference == pytest.approx((a - b).mean())
    assert got.ci_low < got.difference < got.ci_high


def test_paired_test_clusters_by_user() -> None:
    # user 0 has three queries, user 1 one: the difference is the mean over the four queries
    a = np.array([1.0, 1.0, 1.0, 0.0])
    b = np.array([0.0, 0.0, 0.0, 0.0])
    got = paired_test(a, b, np.array([0, 0, 0, 1]), n_bootstrap=50)
    assert got.difference == pytest.approx(0.75)
    assert got.n == 2
    with pytest.raises(DataError, match="at least 2"):
        paired_test(a, b, np.zeros(4))


def test_leaderboard(events: pd.DataFrame, catalog: pd.DataFrame) -> None:
    task = temporal_split(events, test_fraction=0.3, catalog=catalog)
    board = evaluate(
        {"popularity": Popularity(), "itemknn": ItemKNN(n_neighbors=10)},
        task,
        metrics=["HR@10", "NDCG@5", "Coverage@10"],
        n_bootstrap=100,
    )
    assert [r["model"] for r in board.rows] == sorted(
        (r["model"] for r in board.rows),
        key=lambda m: -next(r["HR@10"] for r in board.rows if r["model"] == m),
    )
    row = board.rows[0]
    assert {"model", "HR@10", "HR@10_ci", "NDCG@5", "Coverage@10", "fit_seconds", "queries"} <= row.keys()
    assert row["HR@10_ci"][0] <= row["HR@10"] <= row["HR@10_ci"][1]
    out = board.to_dict()
    assert out["protocol"] == "temporal"
    assert out["comparison"]["metric"] == "HR@10"
    # item-kNN finds the users' favourite category: it must beat global popularity here
    rows = {r["model"]: r for r in board.rows}
    assert rows["itemknn"]["HR@10"] > rows["popularity"]["HR@10"]


def test_every_model_is_compared_with_the_best_single_model(events: pd.DataFrame) -> None:
    task = temporal_split(events, test_fraction=0.3)
    blend = Hybrid(models=[("itemknn", ItemKNN(n_neighbors=10)), ("popularity", Popularity())])
    models = {"popularity": Popularity(), "itemknn": ItemKNN(n_neighbors=10), "blend": blend}
    board = evaluate(models, task, metrics=["Coverage@10", "HR@10"], n_bootstrap=100)
    rows = {r["model"]: r for r in board.rows}
    assert rows["blend"]["composite"] and not rows["itemknn"]["composite"]
    # the best single model is the best of the two singles on the first per-query metric
    best = max(("popularity", "itemknn"), key=lambda m: rows[m]["HR@10"])
    assert board.info["best_single"] == best
    assert "vs_best_single" not in rows[best]
    for name in set(rows) - {best}:
        comp = rows[name]["vs_best_single"]
        direct = board.compare(name, best, "HR@10")
        assert comp["model"] == best and comp["metric"] == "HR@10"
        assert comp["difference"] == pytest.approx(rows[name]["HR@10"] - rows[best]["HR@10"])
        assert comp["p_value"] == pytest.approx(direct.p_value)
        assert comp["ci"][0] <= comp["difference"] <= comp["ci"][1]


def test_models_that_cannot_fit_are_listed(events: pd.DataFrame) -> None:
    from cartlift.recommend import ContentBased

    task = temporal_split(events, test_fraction=0.3)
    board = evaluate(
        {"content": ContentBased(), "popularity": Popularity()}, task, metrics=["HR@10"], n_bootstrap=0
    )
    assert [r["model"] for r in board.rows] == ["popularity"]
    assert "content" in board.info["skipped"]
    with pytest.raises(InvalidParameterError, match="No model"):
        board.compare("content", "popularity")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"test_fraction": 0.0}, InvalidParameterError, "test_fraction"),
        ({"test_fraction": 1.0}, InvalidParameterError, "test_fraction"),
        ({"cutoff": pd.Timestamp("2030-01-01")}, DataError, "empty train or test"),
    ],
)
def test_bad_split_arguments(
    events: pd.DataFrame, kwargs: dict[str, object], error: type, match: str
) -> None:
    with pytest.raises(error, match=match):
        temporal_split(events, **kwargs)  # type: ignore[arg-type]
