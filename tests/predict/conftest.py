"""Fixtures of the predict tests: REES46, awkward random streams and a small simulated store.

Each store is a real DuckDB file, loaded once per session and only read by the tests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from _cart_streams import random_events

from cartlift.store import EventStore

REES = ("rees46_multicategory_sample", "2019-Oct.csv")


@pytest.fixture(scope="session")
def rees_store(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EventStore]:
    """The REES46 sample, ingested through the ordinary importer."""
    path = tmp_path_factory.mktemp("rees") / "rees.duckdb"
    with EventStore(path) as store:
        store.ingest(shared_data.joinpath(*REES))
        yield store


def _random_store(path: Path, seed: int) -> EventStore:
    store = EventStore(path)
    events, catalog = random_events(seed)
    store.ingest_records(events)
    store.ingest_products(catalog)
    return store


@pytest.fixture(scope="session")
def random_stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[int], EventStore]]:
    """``make(seed)``: a store of awkward random events (cached per seed)."""
    made: dict[int, EventStore] = {}

    def make(seed: int) -> EventStore:
        if seed not in made:
            made[seed] = _random_store(tmp_path_factory.mktemp(f"random{seed}") / "store.duckdb", seed)
        return made[seed]

    yield make
    for store in made.values():
        store.close()


@pytest.fixture(scope="session")
def sim_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EventStore]:
    """A small simulated store (600 customers, 10 days) with its truth tables."""
    from cartlift.simulate import simulate

    path = tmp_path_factory.mktemp("sim") / "sim.duckdb"
    with EventStore(path) as store:
        simulate(n_users=600, n_days=10, random_state=7).write_to(store)
        yield store
