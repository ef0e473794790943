"""The model registry: a folder of versioned artifacts the service loads and hot-swaps.

Layout::

    models/
      recommender/v0001/{model.npz, meta.json}     # the personalised recommender
      popularity/v0001/{model.npz, meta.json}      # the fallback for unknown users
      abandonment/v0001/{model.json, ..., meta.json}  # the cart abandonment model

A version is written into a hidden temporary folder and renamed into place, so a reader never
sees half a model; the newest version of each kind is the one served. `LoadedModels` is an
immutable snapshot: a reload builds a new one and swaps one reference, so requests in flight
finish on the models they started with.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from cartlift.errors import CartliftError, DataError
from cartlift.predict import load_model, train_store
from cartlift.recommend import Recommender
from cartlift.recommend._served import registry_versions
from cartlift.recommend._workflows import best_recommender, train_on_store
from cartlift.store import EventStore

__all__ = ["KINDS", "LoadedModels", "ModelRegistry", "abandonment_meta", "publish_all", "train_all"]

KINDS: Final = ("recommender", "popularity", "abandonment")


class ModelRegistry:
    """Versioned model artifacts under ``root``.

    Parameters
    ----------
    root : str or Path
        The registry folder (created when a version is published).
    keep : int
        Versions kept per kind; older ones are deleted after a publish.
    store : str, optional
        The store the registry belongs to (`cartlift.store.store_identity`): every version
        published records it, and a version that records another store is not loaded.
    """

    def __init__(self, root: str | Path, *, keep: int = 5, store: str | None = None) -> None:
        self.root = Path(root)
        self.keep = keep
        self.store = store

    def foreign(self, meta: dict[str, Any]) -> str | None:
        """Why a version with ``meta`` must not be served here (another store's), or None."""
        trained_on = meta.get("store")
        if self.store is None or trained_on is None or trained_on == self.store:
            return None
        return (
            f"trained on the store {trained_on!r}, not on this one ({self.store!r}); "
            "train this store's models with `cartlift train --all --db ...` or point --model-dir at its own registry"
        )

    def versions(self, kind: str) -> list[str]:
        """The versions of ``kind``, oldest first (the layout the outbox worker reads too)."""
        return registry_versions(self.root / kind)

    def latest(self, kind: str) -> tuple[str, Path] | None:
        """``(version, folder)`` of the newest version of ``kind``, or None."""
        names = self.versions(kind)
        return (names[-1], self.root / kind / names[-1]) if names else None

    def meta(self, kind: str, version: str) -> dict[str, Any]:
        """The ``meta.json`` of a version (empty when absent)."""
        file = self.root / kind / version / "meta.json"
        return json.loads(file.read_text()) if file.is_file() else {}

    def publish(self, kind: str, build: Callable[[Path], dict[str, Any]]) -> str:
        """Build a new version of ``kind`` with ``build(folder) -> meta`` and make it the latest.

        Returns the new version name.
        """
        if kind not in KINDS:
            raise DataError(f"Unknown model kind {kind!r}; kinds: {', '.join(KINDS)}.")
        folder = self.root / kind
        folder.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".building-", dir=folder))
        try:
            meta = build(tmp)
            meta = {"kind": kind, "trained_at": datetime.now(UTC).isoformat(timespec="seconds"), **meta}
            if self.store is not None:
                meta["store"] = self.store
            (tmp / "meta.json").write_text(json.dumps(meta, indent=1, default=str))
            while True:
                names = self.versions(kind)
                number = int(names[-1][1:]) + 1 if names else 1
                target = folder / f"v{number:04d}"
                try:
                    os.rename(tmp, target)  # atomic; fails if another publisher took the number
                    break
                except OSError:
                    if not target.exists():
                        raise
                    time.sleep(0.01)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        for old in self.versions(kind)[: -self.keep]:
            shutil.rmtree(folder / old, ignore_errors=True)
        return target.name


@dataclass(frozen=True)
class LoadedModels:
    """The models one request sees (an immutable snapshot; a reload makes a new one)."""

    recommender: Any = None
    popularity: Any = None
    abandonment: Any = None
    versions: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, registry: ModelRegistry) -> LoadedModels:
        """Load the newest version of every kind; a kind that fails to load is reported, not fatal."""
        loaded: dict[str, Any] = {}
        versions: dict[str, dict[str, Any]] = {}
        errors: dict[str, str] = {}
        for kind in KINDS:
            latest = registry.latest(kind)
            if latest is None:
                continue
            version, folder = latest
            meta = registry.meta(kind, version)
            if (why := registry.foreign(meta)) is not None:
                errors[kind] = f"{version}: {why}"
                continue
            try:
                if kind == "abandonment":
                    loaded[kind] = load_model(folder)[0]
                else:
                    loaded[kind] = Recommender.load(folder / "model.npz")
            except (CartliftError, OSError, ValueError, KeyError) as e:
                errors[kind] = f"{version}: {e}"
                continue
            versions[kind] = {
                "version": version,
                "name": meta.get("name", kind),
                "trained_at": meta.get("trained_at"),
                "quality": meta.get("quality", {}),
            }
        return cls(
            recommender=loaded.get("recommender"),
            popularity=loaded.get("popularity"),
            abandonment=loaded.get("abandonment"),
            versions=versions,
            errors=errors,
        )


def train_all(
    store: EventStore, registry: ModelRegistry, *, recommender: str = "best", abandonment_model: str = "auto"
) -> dict[str, dict[str, Any]]:
    """Fit every model the service serves on the store and publish a new version of each.

    ``abandonment_model`` names the abandonment model (`cartlift.predict.train_store`'s ``model``;
    ``auto`` picks it by cross-validation on the store's carts).

    ``recommender="best"`` serves the recommender that evaluates best on the store (NDCG@10 on a
    temporal split, `cartlift.recommend.best_recommender`); its leaderboard goes into the
    version's metadata. A model that cannot be trained on this store (too little data, a single
    outcome) is reported with its reason; the others are still published.

    Returns
    -------
    dict
        Kind -> ``{"version", "name", ...}`` or ``{"error": reason}``.
    """

    chosen: dict[str, Any] = {}
    if recommender == "best":
        try:
            recommender, board = best_recommender(store)
            chosen = {"chosen_by": {"metric": "NDCG@10", "leaderboard": board}}
        except (CartliftError, ValueError) as e:  # too little data to compare: the simplest one
            recommender, chosen = "itemknn", {"chosen_by": {"error": str(e)}}

    def recommender_builder(name: str, extra: dict[str, Any]) -> Callable[[Path], dict[str, Any]]:
        def build(folder: Path) -> dict[str, Any]:
            info = train_on_store(store, name, out=folder / "model.npz", store_id=registry.store)
            return {"name": name, **{k: v for k, v in info.items() if k != "path"}, **extra}

        return build

    def abandonment(folder: Path) -> dict[str, Any]:
        info = train_store(store, folder, model=abandonment_model)
        for warning in info.get("warnings", []):
            if warning["code"] == "constant_model":  # no model to serve: the version is not published
                raise DataError(f"{warning['message']} ({info['rows']:,} carts)")
        return abandonment_meta(info)

    return publish_all(
        registry,
        [
            ("recommender", recommender_builder(recommender, chosen)),
            ("popularity", recommender_builder("popularity", {})),
            ("abandonment", abandonment),
        ],
    )


def abandonment_meta(info: dict[str, Any]) -> dict[str, Any]:
    """The registry metadata of an abandonment model from what `cartlift.predict.train_store` returns."""
    quality = {k: info[k] for k in ("rows", "positive_rate") if k in info}
    return {"name": str(info.get("model", "lightgbm")), "quality": quality}


def publish_all(
    registry: ModelRegistry, jobs: list[tuple[str, Callable[[Path], dict[str, Any]]]]
) -> dict[str, dict[str, Any]]:
    """Publish a new version of each ``(kind, build)``; a build that fails on the data is reported
    with its reason (``{"error": ...}``) and the others are still published."""
    out: dict[str, dict[str, Any]] = {}
    for kind, build in jobs:
        try:
            version = registry.publish(kind, build)
        except (CartliftError, ValueError) as e:
            out[kind] = {"error": str(e)}
            continue
        out[kind] = {"version": version, **registry.meta(kind, version)}
    return out
