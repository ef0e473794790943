"""The customer history kept as per-session sums gives exactly what reading the events gives."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

from cartlift.predict import FeatureContext
from cartlift.predict._context import CUSTOMER_FEATURES
from cartlift.store import EventStore


def _same(a: tuple[tuple[float, ...], frozenset[str]], b: tuple[tuple[float, ...], frozenset[str]]) -> None:
    assert a[1] == b[1]
    for name, x, y in zip(CUSTOMER_FEATURES, a[0], b[0], strict=True):
        assert (math.isnan(x) and math.isnan(y)) or x == y, name


def _moments(store: EventStore, limit: int = 400) -> list[tuple[str, datetime]]:
    """Session starts, and moments inside sessions (a look-up while another session is going on)."""
    rows = store.con.execute(
        """SELECT user_id, min(ts), max(ts) FROM events GROUP BY user_id, session_id
           ORDER BY hash(session_id) LIMIT ?""",
        [limit],
    ).fetchall()
    out = []
    for user, first, last in rows:
        out += [(user, first), (user, first + (last - first) / 2), (user, last + timedelta(microseconds=1))]
    return out


@pytest.mark.parametrize("store_name", ["sim_store", "rees_store"])
def test_the_history_answers_as_the_events_do(store_name: str, request: pytest.FixtureRequest) -> None:
    store: EventStore = request.getfixturevalue(store_name)
    scan = FeatureContext(store.con, index_customers=False)
    kept = FeatureContext(store.con)
    history = kept.customer_history()
    assert history is not None and len(history) > 0
    answered = 0
    for user, start in _moments(store):
        _same(kept.customer(user, start), scan.customer(user, start))
        answered += (
            history.features(user, (start - datetime(1970, 1, 1)) // timedelta(microseconds=1)) is not None
        )
    assert answered > 0


def test_events_taken_in_and_customers_forgotten_keep_the_history_exact(sim_store: EventStore) -> None:
    con = sim_store.con.cursor()
    con.execute("CREATE TEMP TABLE later AS SELECT * FROM events WHERE hash(session_id) % 3 = 0")
    con.execute("CREATE TEMP TABLE events AS SELECT * FROM main.events WHERE hash(session_id) % 3 <> 0")
    kept = FeatureContext(con)
    assert kept.customer_history() is not None  # built without a third of the sessions
    columns = "event_id, ts, user_id, session_id, event_type, product_id, quantity, price"
    later: list[dict[str, Any]] = (
        con.sql(f"SELECT {columns} FROM later ORDER BY ts").to_arrow_table().to_pylist()
    )
    con.execute("INSERT INTO events SELECT * FROM later")
    for i in range(0, len(later), 500):  # as the writer hands over committed groups
        kept.take(later[i : i + 500])
    # a customer's events move to another id (an identity join): read again at the next take
    moved_from, moved_to = con.execute("SELECT min(user_id), max(user_id) FROM events").fetchall()[0]
    con.execute("UPDATE events SET user_id = ? WHERE user_id = ?", [moved_to, moved_from])
    kept.forget([moved_from, moved_to])
    scan = FeatureContext(con, index_customers=False)
    check: Callable[[], None] = lambda: [  # noqa: E731
        _same(kept.customer(user, start), scan.customer(user, start))
        for user, start in [
            *_moments(sim_store),
            (moved_to, datetime(2100, 1, 1)),
            (moved_from, datetime(2100, 1, 1)),
        ]
    ]
    check()
    kept.take([])  # the writer's next group: the forgotten customers are read again
    check()
    con.close()
