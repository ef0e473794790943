"""Fixtures every test module shares: the real data folder and a fresh store on a temporary file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cartlift.store import EventStore

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the project (CI has it too); tests that need it skip without it."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"the real data folder {SHARED_DATA} is absent (it sits beside the project in CI)")
    return SHARED_DATA


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EventStore]:
    """An empty event store on a real temporary DuckDB file."""
    with EventStore(tmp_path / "store.duckdb") as s:
        yield s
