"""The recommender the service serves, read from its model registry by the packages below the service.

The registry (`cartlift.serve.ModelRegistry`) keeps ``<root>/recommender/v0001/{model.npz,
meta.json}``, newest version served; ``train --all`` and ``POST /v1/admin/train`` publish there the
model that evaluated best on the store (``CARTLIFT_SERVE_RECOMMENDER=best``). The outbox worker
reads the same newest version here, so the products a message suggests come from the model the
service answers with, without the deliver package importing the service.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from cartlift.recommend._base import Recommender

__all__ = ["ServedRecommender", "registry_versions", "served_recommender"]

SERVED_KIND: Final = "recommender"
"""The registry kind of the personalised recommender."""
_VERSION: Final = re.compile(r"^v(\d{4,})$")


def registry_versions(folder: str | Path) -> list[str]:
    """The version folders (``v0001`` ...) under one kind's folder of a registry, oldest first."""
    path = Path(folder)
    if not path.is_dir():
        return []
    found = [
        (int(m.group(1)), p.name) for p in path.iterdir() if p.is_dir() and (m := _VERSION.match(p.name))
    ]
    return [name for _, name in sorted(found)]


@dataclass(frozen=True)
class ServedRecommender:
    """The newest published recommender: the fitted model, its name and its version."""

    model: Recommender
    name: str
    version: str
    folder: Path


def served_recommender(root: str | Path, *, store: str | None = None) -> ServedRecommender | None:
    """The newest recommender of the registry ``root``, or None when none is published.

    ``store`` (`cartlift.store.store_identity`): a version that records another store is not used
    (its users and products are another shop's), as the service does not load it either.
    """
    versions = registry_versions(Path(root) / SERVED_KIND)
    if not versions:
        return None
    folder = Path(root) / SERVED_KIND / versions[-1]
    meta_file = folder / "meta.json"
    meta: dict[str, Any] = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
    if store is not None and meta.get("store") not in (None, store):
        return None
    model = Recommender.load(folder / "model.npz")
    return ServedRecommender(
        model, str(meta.get("model") or meta.get("name") or SERVED_KIND), versions[-1], folder
    )
