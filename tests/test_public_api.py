"""Every name a subpackage exports in ``__all__`` exists (STYLE.md: re-exports are checked)."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import cartlift

SUBPACKAGES = sorted(
    m.name
    for m in pkgutil.iter_modules(cartlift.__path__, "cartlift.")
    if not m.name.split(".")[-1].startswith("_")
)


@pytest.mark.parametrize("name", SUBPACKAGES)
def test_all_names_exist(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", [])
    missing = [n for n in exported if not hasattr(module, n)]
    assert not missing, f"{name}.__all__ lists names it does not define: {missing}"
    assert len(set(exported)) == len(exported), f"{name}.__all__ has duplicates"
