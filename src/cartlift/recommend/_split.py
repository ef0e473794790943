"""Evaluation protocols: temporal split, leave-last-out, and session next-item.

Each protocol turns events into an :class:`EvalTask`: what to train on, the queries (users, or
session prefixes for anonymous next-item prediction), the relevant items of each query, and the
unit that bootstrap resampling draws (user or session). Splits never look at the future: the
temporal split cuts at a time, leave-last-out holds out each user's latest item, next-item asks
for the next click given the clicks so far.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from cartlift.errors import DataError, InvalidParameterError
from cartlift.recommend._interactions import DEFAULT_EVENT_WEIGHTS, Interactions

__all__ = ["EvalTask", "leave_last_out", "next_item", "temporal_split"]


@dataclass(frozen=True)
class EvalTask:
    """One offline evaluation: training data and the queries to answer.

    Attributes
    ----------
    protocol : str
        ``temporal``, ``leave-last-out`` or ``next-item``.
    train : Interactions
        What models are fitted on.
    relevant : list of ndarray of str, length n_queries
        Relevant item ids per query.
    groups : ndarray, shape (n_queries,)
        Resampling unit of each query (the user, or the test session).
    user_ids : ndarray of str, shape (n_queries,), optional
        Users to recommend for (temporal, leave-last-out).
    contexts : list of ndarray of str, optional
        Item sequences to recommend from (next-item).
    exclude_seen : bool
        Whether recommendations skip the query's known items.
    info : dict
        Sizes and choices, reported with the leaderboard.
    """

    protocol: str
    train: Interactions
    relevant: list[np.ndarray]
    groups: np.ndarray
    user_ids: np.ndarray | None = None
    contexts: list[np.ndarray] | None = None
    exclude_seen: bool = True
    info: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.relevant)


def _check_frame(events: pd.DataFrame, needed: Sequence[str]) -> None:
    missing = [c for c in needed if c not in events.columns]
    if missing:
        raise DataError(f"The events lack the column(s) {missing} (got {list(events.columns)}).")
    if events.empty:
        raise DataError("No events to evaluate on.")


def _relevant_mask(
    events: pd.DataFrame, relevant_types: Sequence[str] | None, weights: Mapping[str, float] | None
) -> np.ndarray:
    """Events that make their item relevant: the given types, else any type with a positive weight."""
    if "event_type" not in events.columns:
        return np.ones(len(events), bool)
    if relevant_types is None:
        table = DEFAULT_EVENT_WEIGHTS if weights is None else weights
        relevant_types = [k for k, v in table.items() if v > 0]
    return events["event_type"].isin(list(relevant_types)).to_numpy()


def temporal_split(
    events: pd.DataFrame,
    *,
    test_fraction: float = 0.2,
    cutoff: pd.Timestamp | float | None = None,
    weights: Mapping[str, float] | None = None,
    half_life_days: float | None = None,
    relevant_types: Sequence[str] | None = None,
    exclude_seen: bool = True,
    cold_users: bool = False,
    catalog: pd.DataFrame | None = None,
) -> EvalTask:
    """Train on events before a time, test on what users did after it.

    Parameters
    ----------
    events : DataFrame
        ``user_id, item_id, ts`` (+ ``session_id``, ``event_type``), as for
        :meth:`Interactions.from_frame`.
    test_fraction : float
        Share of the events (by time) in the test period when ``cutoff`` is not given.
    cutoff : Timestamp or float, optional
        Start of the test period.
    weights, half_life_days
        Interaction weights of the training data.
    relevant_types : sequence of str, optional
        Event types that make a test item relevant (default: any with a positive weight).
    exclude_seen : bool
        Items a user already had in training are neither recommended nor counted as relevant.
    cold_users : bool
        Also evaluate users with no training events (default: only known users).
    catalog : DataFrame, optional
        Product attributes for content-based models.
    """
    _check_frame(events, ["user_id", "item_id", "ts"])
    if not 0 < test_fraction < 1:
        raise InvalidParameterError(f"test_fraction must be in (0, 1). Got {test_fraction!r} instead.")
    ts = pd.Series(events["ts"])
    if cutoff is None:
        order = ts.sort_values(kind="stable")
        cut = order.iloc[min(len(order) - 1, int(len(order) * (1 - test_fraction)))]
    else:
        cut = cutoff
    cut_value = pd.Timestamp(cut) if pd.api.types.is_datetime64_any_dtype(ts) else cut
    train_frame = events[ts < cut_value]
    test_frame = events[ts >= cut_value]
    if train_frame.empty or test_frame.empty:
        raise DataError(f"The cutoff {cut!r} leaves an empty train or test period.")
    train = Interactions.from_frame(
        train_frame, weights=weights, half_life_days=half_life_days, catalog=catalog
    )
    task = _user_task(
        "temporal", train, test_frame, relevant_types, exclude_seen, cold_users, weights=weights
    )
    task.info["cutoff"] = str(cut)
    return task


def leave_last_out(
    events: pd.DataFrame,
    *,
    weights: Mapping[str, float] | None = None,
    half_life_days: float | None = None,
    relevant_types: Sequence[str] | None = None,
    catalog: pd.DataFrame | None = None,
) -> EvalTask:
    """Hold out each user's latest item (all its events of that user); train on the rest.

    Users with fewer than two distinct items are kept in training but not queried.
    """
    _check_frame(events, ["user_id", "item_id", "ts"])
    frame = events.reset_index(drop=True)
    eligible = frame[_relevant_mask(frame, relevant_types, weights)]
    last = eligible.sort_values(["user_id", "ts"], kind="stable").groupby("user_id", sort=False).tail(1)
    n_items = frame.groupby("user_id")["item_id"].nunique()
    last = last[last["user_id"].map(n_items).fillna(0).to_numpy() >= 2]
    held = frame.set_index(["user_id", "item_id"]).index.isin(last.set_index(["user_id", "item_id"]).index)
    train = Interactions.from_frame(
        frame[~held], weights=weights, half_life_days=half_life_days, catalog=catalog
    )
    return _user_task("leave-last-out", train, last, None, True, False, weights=weights)


def _user_task(
    protocol: str,
    train: Interactions,
    test_frame: pd.DataFrame,
    relevant_types: Sequence[str] | None,
    exclude_seen: bool,
    cold_users: bool,
    *,
    weights: Mapping[str, float] | None,
) -> EvalTask:
    test = test_frame[_relevant_mask(test_frame, relevant_types, weights)]
    pairs = test[["user_id", "item_id"]].astype(str).drop_duplicates()
    known_user = pd.Index(train.user_ids).get_indexer(pairs["user_id"].to_numpy())
    n_cold = int(pairs.loc[known_user < 0, "user_id"].nunique())
    if not cold_users:
        pairs = pairs[known_user >= 0]
        known_user = known_user[known_user >= 0]
    if exclude_seen and len(pairs):
        item_col = pd.Index(train.item_ids).get_indexer(pairs["item_id"].to_numpy())
        seen = np.zeros(len(pairs), bool)
        ok = (known_user >= 0) & (item_col >= 0)
        m = train.matrix
        seen[ok] = np.asarray(m[known_user[ok], item_col[ok]]).ravel() > 0
        pairs = pairs[~seen]
    grouped = pairs.groupby("user_id", sort=True)["item_id"]
    users = np.asarray(list(grouped.groups.keys()), dtype=str)
    relevant = [np.asarray(v, dtype=str) for _, v in grouped]
    if not len(users):
        raise DataError("No test user has a relevant item to find: use a larger test period.")
    return EvalTask(
        protocol=protocol,
        train=train,
        relevant=relevant,
        groups=users,
        user_ids=users,
        exclude_seen=exclude_seen,
        info={
            "train_events": len(train),
            "train_users": train.n_users,
            "items": train.n_items,
            "test_users": len(users),
            "cold_test_users_skipped": 0 if cold_users else n_cold,
        },
    )


def next_item(train: pd.DataFrame, test: pd.DataFrame, *, exclude_seen: bool = False) -> EvalTask:
    """Session next-item protocol: after each click of a test session, predict the next one.

    A test session of ``n`` clicks gives ``n - 1`` queries: context ``clicks[:t]`` and target
    ``clicks[t]``. Training sessions are users (each row of the model is a session), so
    models serve the prefixes as anonymous contexts. ``exclude_seen=False`` by default, as in
    the session-rec benchmark: re-clicking a seen item is a legitimate next click.

    Parameters
    ----------
    train, test : DataFrame
        ``session_id, item_id, ts``; see :func:`~cartlift.recommend.read_yoochoose`.
    """
    _check_frame(train, ["session_id", "item_id", "ts"])
    _check_frame(test, ["session_id", "item_id", "ts"])
    frame = train.assign(user_id=train["session_id"])
    interactions = Interactions.from_frame(frame.drop(columns=["event_type", "weight"], errors="ignore"))
    ordered = test.sort_values(["session_id", "ts"], kind="stable")
    contexts: list[np.ndarray] = []
    relevant: list[np.ndarray] = []
    groups: list[str] = []
    for session, items in ordered.groupby("session_id", sort=False)["item_id"]:
        seq = items.astype(str).to_numpy()
        for t in range(1, len(seq)):
            contexts.append(seq[:t])
            relevant.append(seq[t : t + 1])
            groups.append(str(session))
    if not contexts:
        raise DataError("No test session has two clicks: nothing to predict.")
    return EvalTask(
        protocol="next-item",
        train=interactions,
        relevant=relevant,
        groups=np.asarray(groups, dtype=str),
        contexts=contexts,
        exclude_seen=exclude_seen,
        info={
            "train_events": len(interactions),
            "train_sessions": interactions.n_users,
            "items": interactions.n_items,
            "test_sessions": len(set(groups)),
            "queries": len(contexts),
        },
    )
