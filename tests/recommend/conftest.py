"""Fixtures of the recommendation tests: the synthetic shop of ``_recommend_data``."""

from __future__ import annotations

import pandas as pd
import pytest
from _recommend_data import N_ITEMS, make_catalog, make_events

from cartlift.recommend import Interactions


@pytest.fixture(scope="session")
def events() -> pd.DataFrame:
    """The synthetic events (user_id, session_id, item_id, ts, event_type)."""
    return make_events()


@pytest.fixture(scope="session")
def catalog() -> pd.DataFrame:
    """The synthetic catalogue, with two products nobody touched (p24, p25)."""
    return make_catalog(N_ITEMS + 2)


@pytest.fixture(scope="session")
def interactions(events: pd.DataFrame, catalog: pd.DataFrame) -> Interactions:
    """Events + catalogue as Interactions; the item universe includes the untouched products."""
    return Interactions.from_frame(events, catalog=catalog, item_ids=catalog["product_id"])
