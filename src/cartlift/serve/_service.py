"""The service object: what the routes call, as keyword-only coroutines.

It wires the parts together and holds no business logic of its own: storage (`cartlift.store`),
live session state (`_live`, the predict package's `SessionState`), models from the registry
(recommend and predict packages), experiments (the experiments package), limits and metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import math
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cartlift.errors import CartliftError, DataError, InvalidParameterError
from cartlift.predict import LiveScorer, SessionState
from cartlift.serve._erasure import ErasedUsers, audit_secret
from cartlift.serve._errors import ApiError
from cartlift.serve._event_body import prepare_records
from cartlift.serve._intake import Intake
from cartlift.serve._key_gate import KeyGate
from cartlift.serve._keys import ApiKey, new_key, pseudonymise, track_origins
from cartlift.serve._live import LiveSessions, feature_context, open_sessions
from cartlift.serve._metrics import Metrics
from cartlift.serve._rec_cache import ListCache, build_list, list_items
from cartlift.serve._registry import LoadedModels, ModelRegistry, train_all
from cartlift.serve._settings import ServeSettings
from cartlift.store import (
    EventStore,
    ImpressionLog,
    IngestOutcome,
    Shown,
    Storage,
    now_utc,
    open_storage,
    snapshot_duckdb,
    snapshot_postgres,
    store_identity,
)

__all__ = ["Service"]

log = logging.getLogger("cartlift.serve")

_REPLAY_SESSIONS = 2_000
"""Sessions rebuilt from the store when the service starts (the dashboard's carts at risk)."""
_CACHED_K = 50
"""Lists are computed for this many items once per user and model version, and sliced to ``k``."""
_CACHE_SIZE = 100_000
"""Users whose lists are kept (about 2 kB each at 50 items: 200 MB at most)."""


def _load_warm(registry: ModelRegistry) -> LoadedModels:
    """The newest models, each run once on the serving paths before it is swapped in.

    A model's first call loads its compiled (numba) kernels and builds its id look-ups: some
    50,000 long-lived objects. Made here, before `Service.reload_models` freezes the collector's
    long-lived set, they join it; made by the first request instead, every later full collection
    walks them (20-50 ms each, every second or two under load: measured as the p99 latency).
    """
    models = LoadedModels.load(registry)
    for kind in ("recommender", "popularity"):
        model = getattr(models, kind)
        if model is None:
            continue
        try:
            model.recommend(model.user_ids_[:1].tolist(), _CACHED_K)
            if kind == "recommender":
                first = model.item_ids_[:1].tolist()
                model.recommend_for_items(first, 10)
                model.similar_items(first, 10)
        except (CartliftError, ValueError, IndexError) as e:  # the request that needs it says why
            log.warning("warming up the %s model failed: %s", kind, e)
    return models


@dataclass(frozen=True)
class _Scoring:
    """The abandonment model bound to the live context (rebuilt with each model version)."""

    scorer: LiveScorer | None
    version: str | None


class Service:
    """One running service: storage, live sessions, models, limits, metrics.

    Parameters
    ----------
    settings : ServeSettings
        The validated settings.
    """

    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.storage: Storage = open_storage(settings.db, max_batch_events=settings.writer_batch_events)
        self.intake = Intake(self.storage)
        # every list shown goes to rec_impressions about once a second, off the request path
        self.impressions = ImpressionLog(self.storage.write_impressions, enabled=settings.log_impressions)
        self.registry = ModelRegistry(settings.registry_dir(), store=store_identity(settings.db))
        self.models = LoadedModels()
        self._scoring = _Scoring(None, None)
        self.live: LiveSessions | None = None
        self.keys = KeyGate(lambda digest: self.storage.find_key(key_hash=digest), settings, self.metrics)
        self._stop_watching: Callable[[], None] = lambda: None
        self.intake_front: Callable[[], dict[str, float]] | None = None
        """The gauges of the intake front process, when the service runs with one (`_split`)."""
        self.gather_metrics: Callable[[], Awaitable[None]] | None = None
        """Awaited before ``/metrics`` answers: takes in the intake front process's counts (`_split`)."""
        self._popular: list[tuple[str, float]] = []
        self._secret = settings.pseudonymise_key.get_secret_value() if settings.pseudonymise_key else None
        self.erased = ErasedUsers(audit_secret(settings))
        self._training = asyncio.Lock()
        self._lists = ListCache(self.models, _CACHE_SIZE)
        self.started = False

    # -- life cycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        """Open the store, the live state and the models; raises when the store cannot be opened."""
        s = self.settings
        await asyncio.to_thread(self.storage.start)
        self.impressions.start()
        loop = asyncio.get_running_loop()

        def heard(trusted: bool) -> None:  # on the store's watching thread
            with contextlib.suppress(RuntimeError):  # the loop has closed: the service is gone
                loop.call_soon_threadsafe(self.keys.changed, trusted)

        # trusted once the watch listens (PostgreSQL); until then every request looks its key up
        self.keys.trusted = not self.storage.supports_key_watch
        self._stop_watching = self.storage.watch_keys(heard)
        for subject, at in await self.storage.erased_subjects():
            self.erased.add(subject, at)
        context = await feature_context(self.storage)
        # every customer's history, before any event is stored (then the writer keeps it current)
        await asyncio.to_thread(context.customer_history)
        self.live = open_sessions(
            context,
            redis_url=s.redis,
            prefix=s.redis_prefix,
            capacity=s.live_sessions,
            ttl_seconds=s.session_ttl_seconds,
        )
        # the writer hands each committed group's rows to the live sessions before it answers the
        # group's requests: off the request path, once per group, and a client reads its own writes
        self.storage.on_stored = self._stored
        self.storage.on_users_changed = context.forget
        # the carts open before a restart: the most recent sessions now, any other on its first request
        recent = await self.storage.recent_session_events(
            sessions=min(s.live_sessions, _REPLAY_SESSIONS), within_seconds=s.session_ttl_seconds
        )
        if recent:
            await asyncio.to_thread(self.live.record, recent)
        await self.reload_models()
        self.started = True

    async def stop(self) -> None:
        """Commit what is queued and close everything."""
        self.started = False
        await asyncio.to_thread(self._stop_watching)
        await asyncio.to_thread(self.impressions.close)  # the last lists, before the writer stops
        await asyncio.to_thread(self.storage.close)
        if self.live is not None:
            self.live.close()
        self.keys.close()

    # -- keys and limits ------------------------------------------------------------------------
    async def authenticate(self, *, token: str | None, scope: str) -> ApiKey:
        """The key behind a bearer token, checked for ``scope`` and its rate limit (`KeyGate`)."""
        return await self.keys.authenticate(token=token, scope=scope)

    async def create_key(
        self,
        *,
        scope: str,
        rate_limit: float | None,
        label: str | None,
        expires_at: datetime | None = None,
        origins: Sequence[str] = (),
    ) -> tuple[str, ApiKey]:
        """A new API key (the secret is shown once); a ``track`` key needs the origins it may be used from."""
        try:
            allowed = track_origins(scope, origins)
        except InvalidParameterError as e:
            raise ApiError(422, str(e)) from None
        key, key_id, key_hash = new_key()
        created = await self.storage.create_key(
            key_hash=key_hash,
            key_id=key_id,
            scope=scope,
            rate_limit=rate_limit,
            label=label,
            expires_at=expires_at,
            origins=allowed,
        )
        return key, ApiKey(key_id, scope, rate_limit, created, label, expires_at, allowed)

    async def revoke_key(self, *, key_id: str) -> int:
        """Revoke the keys with public id ``key_id``; they stop working at once in this process."""
        n = await self.storage.revoke_key(key_id=key_id)
        if not n:
            raise ApiError(404, f"No active key with id {key_id!r}; see GET /v1/admin/keys.")
        self.keys.changed()
        return n

    def user(self, user_id: str) -> str:
        """The stored form of a user id (pseudonymised when configured)."""
        return pseudonymise(user_id, self._secret)

    # -- events ---------------------------------------------------------------------------------
    def _stored(self, rows: list[dict[str, Any]]) -> None:
        """A committed group's new rows (on the writer's thread): the customer history, then the sessions."""
        assert self.live is not None
        with self.live.lock:  # the context's connection serves one thread at a time
            self.live.context.take(rows)
            self.live.record(rows)

    async def ingest_events(self, *, events: list[dict[str, Any]]) -> IngestOutcome:
        """Store a batch (validated by the events package) once it is durable; live sessions take in what was new.

        ``events`` are records of cartlift's schema (``properties`` a mapping or None); the list and
        its records are taken over (changed in place).
        """
        prepare_records(events, max_events=self.settings.max_batch_events, secret=self._secret)
        outcome = await self.storage.ingest(records=events)
        self.metrics.count_events(
            accepted=outcome.accepted, duplicates=outcome.duplicates, rejected=outcome.rejected
        )
        return outcome

    # -- recommendations ------------------------------------------------------------------------
    def _items(self, recs: Any) -> list[dict[str, Any]]:
        ids, scores = recs.ids[0], recs.scores[0]
        return [
            {"item_id": str(i), "score": float(s) if math.isfinite(s) else None}
            for i, s in zip(ids, scores, strict=True)
            if i is not None
        ]

    async def _fallback(self, k: int, exclude: set[str]) -> list[dict[str, Any]]:
        if not self._popular:
            self._popular = await self.storage.popular_items(limit=500)
        # the score is the item's number of distinct users: a number like every model's score
        return [{"item_id": i, "score": n} for i, n in self._popular if i not in exclude][:k]

    async def _user_list(self, models: LoadedModels, uid: str, k: int) -> list[tuple[str, float | None, str]]:
        """(item, score, source) for a user: the recommender, topped up by popularity for cold users."""
        items: list[tuple[str, float | None, str]] = []
        if any(self.erased.masked(uid, v.get("trained_at")) for v in models.versions.values()):
            # erased after these models were trained: nothing personal until the next training
            return [(i["item_id"], i["score"], "store-popularity") for i in await self._fallback(k, set())]
        if models.recommender is not None:
            items = [
                (i["item_id"], i["score"], "recommender")
                for i in self._items(models.recommender.recommend([uid], k))
            ]
        if len(items) < k:
            have = {i[0] for i in items}
            if models.popularity is not None:
                extra = self._items(models.popularity.recommend([uid], k + len(have)))
                source = "popularity"
            else:
                extra = await self._fallback(k + len(have), have)
                source = "store-popularity"
            items += [(i["item_id"], i["score"], source) for i in extra if i["item_id"] not in have][
                : k - len(items)
            ]
        return items

    async def recommend_user_json(self, *, user_id: str, k: int, context: str = "home") -> bytes:
        """`recommend_user` as the JSON body of the response, from the cache of serialised lists.

        Lists depend only on the model versions (models learn at training, not per event), so each
        user's list is computed once per version for `_CACHED_K` items (``k`` when larger) and its
        top ``k`` sliced per request; the recommender ranks ties by item, so a top ``k`` is the
        first ``k`` of a longer list, and equals what the models answer for ``k`` (Gorse's cache).
        """
        uid = self.user(user_id)
        cache = self._lists  # one snapshot: its models compute what goes into it
        entry = cache.get(uid)
        if entry is None or k > entry[3]:
            asked = max(k, _CACHED_K)
            entry = build_list(await self._user_list(cache.models, uid, asked), asked=asked)
            cache.put(uid, entry)
        # logged as it is: the item ids are read out of the cached list on the writer's thread
        shown = entry
        self.impressions.add(
            Shown(
                now_utc(), uid, None, context, lambda: list_items(shown, k), shown[2], cache.models.versions
            )
        )
        return cache.response(user_id, entry, k)

    async def recommend_user(self, *, user_id: str, k: int) -> dict[str, Any]:
        """Top ``k`` items for a user; unknown users get the most popular items.

        Returns ``{"user_id", "items": [{"item_id", "score"}], "sources", "models"}``.
        """
        answer: dict[str, Any] = json.loads(await self.recommend_user_json(user_id=user_id, k=k))
        return answer

    async def recommend_cart(
        self, *, items: list[str], k: int, user_id: str | None = None, session_id: str | None = None
    ) -> dict[str, Any]:
        """Complete-your-cart: ``k`` items for a cart's contents (anonymous sessions too).

        The list is logged as shown to ``user_id`` (stored form) and ``session_id`` when given.
        """
        models = self.models
        used = []
        out: list[dict[str, Any]] = []
        if models.recommender is not None and items:
            out = self._items(models.recommender.recommend_for_items(items, k))
            used.append("recommender")
        if len(out) < k:
            have = {i["item_id"] for i in out} | set(items)
            first = len(out)
            extra = await self._fallback(k + len(have), have)
            out += extra[: k - len(out)]
            used.append("store-popularity")
        firsts = [("recommender", 0)] if "recommender" in used else []
        if "store-popularity" in used:
            firsts.append(("store-popularity", first))
        self._log_shown(out, firsts, "cart", user_id=user_id, session_id=session_id)
        return {"cart": items, "items": out, "sources": used, "models": self._versions(used)}

    def _log_shown(
        self,
        out: list[dict[str, Any]],
        firsts: list[tuple[str, int]],
        context: str,
        *,
        user_id: str | None,
        session_id: str | None = None,
    ) -> None:
        """Log a list answered as a dict (the cart and similar-item routes)."""
        uid = self.user(user_id) if user_id is not None else None
        ids = [str(i["item_id"]) for i in out]
        self.impressions.add(Shown(time.time(), uid, session_id, context, ids, firsts, self.models.versions))

    async def similar_items(self, *, item_id: str, k: int, user_id: str | None = None) -> dict[str, Any]:
        """The ``k`` items most similar to ``item_id``; 404 when no model knows the item.

        Logged as shown in context ``product`` to ``user_id`` when given, else ``similar``.
        """
        model = self.models.recommender
        if model is None:
            raise ApiError(503, "No recommender is loaded yet; train one with `cartlift train --all`.")
        recs = model.similar_items([item_id], k)
        if recs.counts[0] == 0 and item_id not in set(model.item_ids_.tolist()):
            raise ApiError(
                404, f"The recommender does not know item {item_id!r}; it learns items at training."
            )
        found = self._items(recs)
        context = "similar" if user_id is None else "product"
        self._log_shown(found, [("recommender", 0)], context, user_id=user_id)
        return {
            "item_id": item_id,
            "items": found,
            "sources": ["recommender"],
            "models": self._versions(["recommender"]),
        }

    def _versions(self, kinds: list[str]) -> dict[str, str]:
        return {k: v["version"] for k, v in self.models.versions.items() if k in kinds}

    # -- live carts -----------------------------------------------------------------------------
    def _risk_of(self, state: SessionState) -> dict[str, Any]:
        features = state.features()
        scorer = self._scoring.scorer
        p = scorer.score_values(state.values()) if scorer is not None and state.cart_open else None
        return {
            "session_id": state.session_id,
            "user_id": state.user_id,
            "events": state.n_events,
            "cart_open": state.cart_open,
            "cart_value": features["cart_value"],
            "cart_items": features["cart_items"],
            "p_abandon": p,
            "model_version": self._scoring.version if p is not None else None,
        }

    async def cart_risk(self, *, session_id: str) -> dict[str, Any]:
        """Live abandonment probability of a session's cart, from features updated by every event."""
        live = self.live
        assert live is not None
        risk = await asyncio.to_thread(live.evaluate, session_id, self._risk_of)
        if risk is None and (stored := await self.storage.session_events(session_id=session_id)):
            # a session this process has not seen (a restart, another worker): rebuilt from the store
            await asyncio.to_thread(live.record, stored)
            risk = await asyncio.to_thread(live.evaluate, session_id, self._risk_of)
        if risk is None:
            raise ApiError(404, f"No live session {session_id!r}: post its events to /v1/events first.")
        if risk["p_abandon"] is None and risk["cart_open"] and self._scoring.scorer is None:
            risk["note"] = "no abandonment model loaded; train one with `cartlift train --all`"
        return risk

    async def carts_at_risk(self, *, limit: int = 20) -> list[dict[str, Any]]:
        """The most recently active open carts with their risk, riskiest first."""
        live = self.live
        assert live is not None
        rows = await asyncio.to_thread(live.open_carts, self._risk_of, limit=limit)
        return sorted(rows, key=lambda r: -(r["p_abandon"] if r["p_abandon"] is not None else -1.0))

    # -- models ---------------------------------------------------------------------------------
    async def reload_models(self) -> dict[str, Any]:
        """Load the newest version of each model and swap them in (requests in flight keep theirs)."""
        models = await asyncio.to_thread(_load_warm, self.registry)
        scorer = None
        if models.abandonment is not None and self.live is not None:
            try:
                scorer = LiveScorer(models.abandonment, self.live.context)
            except DataError as e:
                models.errors["abandonment"] = str(e)
        version = models.versions.get("abandonment", {}).get("version") if scorer is not None else None
        self.models = models
        self._lists = ListCache(models, _CACHE_SIZE)
        self._scoring = _Scoring(scorer, version)
        self._popular = []
        # the models (and what their warm-up made) are long-lived objects: keep them out of the
        # collector's full passes, which otherwise walk them again and again and stall requests (the
        # tail of the latency); unfreeze first, so what the previous models leave in cycles can
        # still be collected
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        return {"models": models.versions, "errors": models.errors}

    async def train_now(self) -> dict[str, Any]:
        """Retrain every model on a snapshot of the store, publish new versions and swap them in."""
        if self._training.locked():
            raise ApiError(409, "A training is already running; wait for it to finish.")
        async with self._training:
            with tempfile.TemporaryDirectory(prefix="cartlift-train-") as tmp:
                path = Path(tmp) / "snapshot.duckdb"
                if self.storage.supports_store_jobs:
                    await self.storage.with_store(lambda store: snapshot_duckdb(store, path))
                else:
                    await asyncio.to_thread(snapshot_postgres, self.settings.db, path)

                def run() -> dict[str, Any]:
                    with EventStore(path, read_only=True) as store:
                        return train_all(store, self.registry, recommender=self.settings.recommender)

                trained = await asyncio.to_thread(run)
            return {"trained": trained, **await self.reload_models()}

    # -- erasure --------------------------------------------------------------------------------
    async def erase_user(self, *, user_id: str, actor: str | None) -> dict[str, Any]:
        """Delete a user's events, decisions, exposures and live sessions, with an audit record."""
        uid = self.user(user_id)
        # lists shown and not yet written: never written after the erasure (waits for a flush under way)
        await asyncio.to_thread(self.impressions.forget, uid)
        subject = self.erased.subject(uid)
        counts = await self.storage.erase_user(user_id=uid, actor=actor, subject=subject)
        if counts is not None:
            self.erased.add(subject, now_utc())
        live_sessions = await asyncio.to_thread(self.live.forget_user, uid) if self.live is not None else 0
        # any list may hold the store's popular items, which the erasure changes: a new cache (not
        # a cleared one), so a list still being computed from the old ones is not kept
        self._popular = []
        self._lists = ListCache(self.models, _CACHE_SIZE)
        if counts is None and not live_sessions:
            raise ApiError(404, f"The store holds nothing of user {user_id!r}.")
        return {"user_id": user_id, "erased": {**(counts or {}), "live_sessions": live_sessions}}

    # -- health ---------------------------------------------------------------------------------
    async def readiness(self) -> dict[str, Any]:
        """Whether the store answers, the writer runs, and which models are loaded."""
        checks: dict[str, Any] = {"writer": self.storage.writer.alive, "started": self.started}
        try:
            checks["store"] = await asyncio.wait_for(self.storage.ping(), timeout=5)
        except (TimeoutError, CartliftError, OSError, RuntimeError) as e:
            log.warning("readiness: store check failed: %s", e)
            checks["store"] = False
        ready = all(bool(v) for v in checks.values())
        return {
            "ready": ready,
            "checks": checks,
            "backlog": self.storage.writer.backlog,
            "models": self.models.versions,
        }

    def metrics_text(self) -> str:
        """The Prometheus exposition text."""
        gauges = {
            "cartlift_live_sessions": float(len(self.live)) if self.live is not None else 0.0,
            "cartlift_writer_backlog": float(self.storage.writer.backlog),
            "cartlift_impressions_pending": float(self.impressions.pending),
            "cartlift_uptime_seconds": round(time.time() - self.metrics.started, 3),
        }
        if self.intake_front is not None:
            gauges.update(self.intake_front())
        return self.metrics.render(models=self.models.versions, gauges=gauges)
