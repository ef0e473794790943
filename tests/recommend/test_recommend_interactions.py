"""Interactions from frames and from a real store: event weights, time decay, sessions; filters;
parameter validation of every model from one table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cartlift.errors import CartliftWarning, DataError, InvalidParameterError
from cartlift.recommend import (
    ALS,
    EASE,
    AssociationRules,
    ContentBased,
    ExcludeItems,
    Hybrid,
    InCategory,
    InStock,
    Interactions,
    ItemKNN,
    Popularity,
    SessionKNN,
    UserKNN,
    make_model,
)
from cartlift.store import EventStore


def _store_events() -> list[dict[str, str]]:
    rows = [
        ("e1", "2026-03-01T10:00:00Z", "alice", "s1", "view", "p1"),
        ("e2", "2026-03-01T10:01:00Z", "alice", "s1", "cart_add", "p1"),
        ("e3", "2026-03-01T10:02:00Z", "alice", "s1", "purchase", "p1"),
        ("e4", "2026-03-03T10:00:00Z", "alice", "s2", "view", "p2"),
        ("e5", "2026-03-03T10:00:00Z", "bob", "s3", "view", "p2"),
        ("e6", "2026-03-03T11:00:00Z", "bob", "s3", "cart_remove", "p2"),
    ]
    return [
        {
            "event_id": e,
            "ts": t,
            "user_id": u,
            "session_id": s,
            "event_type": k,
            "product_id": p,
            "quantity": "1",
        }
        for e, t, u, s, k, p in rows
    ]


@pytest.fixture
def filled(store: EventStore) -> EventStore:
    store.ingest_records(_store_events())
    store.ingest_products(
        [
            {"product_id": "p1", "title": "red shoe", "category": "shoes", "brand": "acme"},
            {"product_id": "p2", "title": "blue hat", "category": "hats", "brand": "acme"},
            {"product_id": "p3", "title": "green hat", "category": "hats", "brand": "nova"},
        ]
    )
    return store


def test_from_store_weights_events_by_type(filled: EventStore) -> None:
    data = Interactions.from_store(filled)
    assert list(data.item_ids) == ["p1", "p2", "p3"], "the whole catalogue is the item universe"
    m = pd.DataFrame(data.matrix.toarray(), index=data.user_ids, columns=data.item_ids)
    assert m.loc["alice", "p1"] == 1 + 3 + 5  # view + cart_add + purchase
    assert m.loc["bob", "p2"] == 1  # cart_remove weighs nothing
    assert m["p3"].sum() == 0
    assert data.catalog is not None and data.catalog.loc["p3", "category"] == "hats"


def test_from_store_with_custom_weights_and_decay(filled: EventStore) -> None:
    data = Interactions.from_store(filled, weights={"view": 2.0, "purchase": 10.0}, half_life_days=2.0)
    m = pd.DataFrame(data.matrix.toarray(), index=data.user_ids, columns=data.item_ids)
    # alice's p1 events are about 2 days before the latest event: half weight
    age = (pd.Timestamp("2026-03-03T11:00") - pd.Timestamp("2026-03-01T10:01")).total_seconds() / 86400
    assert m.loc["alice", "p1"] == pytest.approx((2 + 10) * 0.5 ** (age / 2), rel=1e-3)
    assert m.loc["alice", "p2"] == pytest.approx(2 * 0.5 ** (1 / 24 / 2), rel=1e-4)


def test_sessions_and_sequences(filled: EventStore) -> None:
    data = Interactions.from_store(filled)
    indptr, items = data.sequences
    seqs = {
        data.session_ids[s]: data.item_ids[items[indptr[s] : indptr[s + 1]]].tolist()
        for s in range(data.n_sessions)
    }
    assert seqs == {"s1": ["p1"], "s2": ["p2"], "s3": ["p2"]}
    last = data.last_session[list(data.user_ids).index("alice")]
    assert data.session_ids[last] == "s2"


def test_from_frame_needs_the_columns() -> None:
    with pytest.raises(DataError, match="user_id, item_id and ts"):
        Interactions.from_frame(pd.DataFrame({"user_id": ["a"]}))
    with pytest.raises(InvalidParameterError, match="half_life_days"):
        Interactions.from_frame(
            pd.DataFrame({"user_id": ["a"], "item_id": ["x"], "ts": [0]}), half_life_days=0
        )


def test_filters_from_the_store(filled: EventStore) -> None:
    model = Popularity().fit(Interactions.from_store(filled))
    assert model.recommend(
        ["bob"], k=3, exclude_seen=False, filter=InCategory.from_store("hats", filled)
    ).to_lists() == [["p2", "p3"]]
    bought = ExcludeItems.bought(filled)
    assert model.recommend(["alice", "bob"], k=3, exclude_seen=False, filter=bought).to_lists() == [
        ["p2", "p3"],
        ["p2", "p1", "p3"],  # p2 has two users, p1 one
    ]
    assert model.recommend(
        ["bob"], k=3, exclude_seen=False, filter=InStock({"p1": 0, "p3": 2})
    ).to_lists() == [["p3"]]


def test_partial_fit_warns_about_unknown_items(interactions: Interactions) -> None:
    model = ItemKNN(n_neighbors=5).fit(interactions)
    new = pd.DataFrame({"user_id": ["z"], "item_id": ["never-seen"], "ts": [0.0]})
    with pytest.warns(CartliftWarning, match="dropped 1 events"):
        model.partial_fit(Interactions.from_frame(new))


@pytest.mark.parametrize(
    ("model", "match"),
    [
        (
            ItemKNN(n_neighbors=0),
            "The 'n_neighbors' parameter of ItemKNN must be an int >= 1. Got 0 instead.",
        ),
        (ItemKNN(shrink=-1.0), "'shrink' parameter of ItemKNN"),
        (ItemKNN(backend="gpu"), "'backend' parameter of ItemKNN"),
        (UserKNN(n_neighbors=2.5), "'n_neighbors' parameter of UserKNN"),  # type: ignore[arg-type]
        (ALS(factors=0), "'factors' parameter of ALS"),
        (ALS(alpha=0.0), "'alpha' parameter of ALS"),
        (ALS(random_state="x"), "'random_state' parameter of ALS"),  # type: ignore[arg-type]
        (EASE(l2=0.0), "'l2' parameter of EASE"),
        (Popularity(mode="weekly"), "'mode' parameter of Popularity"),
        (SessionKNN(variant="gru"), "'variant' parameter of SessionKNN"),
        (SessionKNN(idf=1), "'idf' parameter of SessionKNN"),  # type: ignore[arg-type]
        (AssociationRules(min_confidence=2.0), "'min_confidence' parameter of AssociationRules"),
        (AssociationRules(max_len=1), "'max_len' parameter of AssociationRules"),
        (ContentBased(min_df=0), "'min_df' parameter of ContentBased"),
        (Hybrid(method="vote"), "'method' parameter of Hybrid"),
    ],
)
def test_invalid_parameters(interactions: Interactions, model: object, match: str) -> None:
    with pytest.raises(InvalidParameterError, match=match.replace("(", r"\(").replace(".", r"\.")):
        model.fit(interactions)  # type: ignore[attr-defined]


def test_make_model_by_name() -> None:
    assert isinstance(make_model("vsknn"), SessionKNN)
    assert make_model("als", random_state=3).get_params()["random_state"] == 3
    with pytest.raises(InvalidParameterError, match="Unknown model 'gru4rec'"):
        make_model("gru4rec")


def test_from_matrix_round_trip() -> None:
    dense = np.array([[0, 2, 0], [1, 0, 3]], dtype=np.float32)
    data = Interactions.from_matrix(dense, user_ids=["a", "b"], item_ids=["x", "y", "z"])
    np.testing.assert_array_equal(data.matrix.toarray(), dense)
    assert data.n_sessions == 2
