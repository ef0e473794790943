"""Simulations shared by the simulator's tests (each is built once per test session)."""

from __future__ import annotations

import pytest

from cartlift.simulate import SimulatedStore, simulate


@pytest.fixture(scope="session")
def large() -> SimulatedStore:
    """20k customers over 30 days with the default (realistic) settings: ~470k events, enough
    for marginal rates with tight, sample-size-justified tolerances."""
    return simulate(n_users=20_000, n_days=30, random_state=7)


@pytest.fixture(scope="session")
def small() -> SimulatedStore:
    """A small store for loading and format checks."""
    return simulate(n_users=600, n_days=14, random_state=3)
