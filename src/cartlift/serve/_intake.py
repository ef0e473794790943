"""The data layer of the ways in that are more than an event batch: identities, webhook receipts, carts.

Its tables are declared with every other in `cartlift.store` (the service creates them when it
opens the store) and every query runs on the storage's single writer thread, like the rest of the
service's SQL, so a DuckDB file keeps one writer.

- ``identities`` (`cartlift.store.IDENTITY_COLUMNS`): a customer id, the
  anonymous id it joins, e-mail and marketing consent. Storing one whose anonymous id differs
  from its customer id moves the anonymous history to the customer (``events.user_id``), in the
  same transaction: the store then treats that history as the customer's.
- ``webhook_receipts``: one row per delivered webhook id, so a redelivery is answered at once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from cartlift.integrations import Identity
from cartlift.store import Storage

__all__ = ["Intake"]

T = TypeVar("T")


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Intake:
    """Identities, webhook receipts and cart contents on a service's `Storage`."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    async def _run(self, fn: Callable[[Any], T]) -> T:
        return await self.storage.run(fn)

    # -- webhooks -------------------------------------------------------------------------------
    async def seen_webhook(self, *, source: str, webhook_id: str) -> bool:
        """True when this webhook id was stored before."""
        sql = "SELECT 1 FROM webhook_receipts WHERE receipt_id = ?"
        return bool(await self._run(lambda ctx: self.storage.rows(ctx, sql, [f"{source}:{webhook_id}"])))

    async def record_webhook(self, *, source: str, webhook_id: str, topic: str | None) -> None:
        """Remember a webhook id once its content is stored."""
        sql = "INSERT INTO webhook_receipts VALUES (?, ?, ?) ON CONFLICT DO NOTHING"
        await self._run(lambda ctx: self.storage.rows(ctx, sql, [f"{source}:{webhook_id}", topic, _now()]))

    # -- identities -----------------------------------------------------------------------------
    def _store(self, ctx: Any, identities: Sequence[Identity], user: Callable[[str], str]) -> dict[str, int]:
        stored = moved = 0
        changed: list[str] = []
        s = self.storage
        with s.transaction(ctx):
            for ident in identities:
                uid = user(ident.user_id)
                anon = user(ident.anonymous_id) if ident.anonymous_id else None
                before = int(
                    s.rows(ctx, "SELECT count(*) FROM identities WHERE identity_id = ?", [ident.identity_id])[
                        0
                    ][0]
                )
                s.rows(
                    ctx,
                    "INSERT INTO identities VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    [
                        ident.identity_id,
                        uid,
                        anon,
                        ident.email,
                        ident.email_consent,
                        ident.consent_source,
                        ident.consent_at,
                        ident.source,
                        ident.ts,
                        _now(),
                    ],
                )
                stored += 1 - before
                if anon is not None and anon != uid:
                    moved += int(s.rows(ctx, "SELECT count(*) FROM events WHERE user_id = ?", [anon])[0][0])
                    s.rows(ctx, "UPDATE events SET user_id = ? WHERE user_id = ?", [uid, anon])
                    changed += [anon, uid]
        s.users_changed(changed)
        return {"identities": stored, "events_joined": moved}

    async def store_identities(
        self, *, identities: Sequence[Identity], user: Callable[[str], str]
    ) -> dict[str, int]:
        """Store identities (each once) and join anonymous histories to their customers.

        Parameters
        ----------
        identities : sequence of Identity
            What a payload named.
        user : callable
            The stored form of a user id (the service's pseudonymisation).

        Returns
        -------
        dict
            ``{"identities": new rows, "events_joined": events moved from anonymous ids}``.
        """
        if not identities:
            return {"identities": 0, "events_joined": 0}
        return await self._run(lambda ctx: self._store(ctx, identities, user))

    def _rejoin(self, ctx: Any, anonymous_ids: Sequence[str]) -> int:
        marks = ", ".join("?" for _ in anonymous_ids)
        joined = self.storage.rows(
            ctx,
            f"SELECT anonymous_id, max(user_id) FROM identities WHERE anonymous_id IN ({marks}) GROUP BY 1",
            list(anonymous_ids),
        )
        moved = 0
        with self.storage.transaction(ctx):
            for anon, uid in joined:
                moved += int(
                    self.storage.rows(ctx, "SELECT count(*) FROM events WHERE user_id = ?", [anon])[0][0]
                )
                self.storage.rows(ctx, "UPDATE events SET user_id = ? WHERE user_id = ?", [uid, anon])
        self.storage.users_changed([str(u) for pair in joined for u in pair])
        return moved

    async def rejoin(self, *, anonymous_ids: Sequence[str]) -> int:
        """Move the events of anonymous ids already joined to a customer to that customer; returns how many."""
        if not anonymous_ids:
            return 0
        return await self._run(lambda ctx: self._rejoin(ctx, anonymous_ids))

    # -- carts ----------------------------------------------------------------------------------
    async def cart_lines(self, *, session_id: str) -> list[dict[str, Any]]:
        """What a session's cart holds now: products added minus removed (with the highest price seen)."""
        sql = """SELECT product_id,
                        sum(CASE WHEN event_type = 'cart_add' THEN quantity ELSE -quantity END) AS quantity,
                        max(price) AS price
                 FROM events WHERE session_id = ? AND event_type IN ('cart_add', 'cart_remove')
                       AND product_id IS NOT NULL
                 GROUP BY product_id
                 HAVING sum(CASE WHEN event_type = 'cart_add' THEN quantity ELSE -quantity END) > 0
                 ORDER BY product_id"""
        rows = await self._run(lambda ctx: self.storage.rows(ctx, sql, [session_id]))
        return [
            {"product_id": str(p), "quantity": int(q), "price": None if price is None else float(price)}
            for p, q, price in rows
        ]
