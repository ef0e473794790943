"""``POST /v1/carts/{session_id}/decide``: the act package's policy decides, and logs it.

The act package owns the decision (`cartlift.act.decide_cart`: its profit policy under the
store's rules, the propensity of the chosen action, the ``decisions`` log); this module only runs
it and turns its refusals into HTTP answers. A store without a trained policy decides with the
act package's randomised default policy (`cartlift.act.DefaultPolicy`).

- On the DuckDB store it runs on the store itself, on the writer thread: one process, one writer,
  so a cart decided once is found by every later request.
- On PostgreSQL it runs on a slice (`cartlift.store.fill_cart`: the cart's and its
  customer's sessions, the catalog rows involved, consents, the decisions the rules consult and
  the saved policy) and the logged decision is written back with ``ON CONFLICT DO NOTHING``
  against the unique index on ``decisions (cart_id)``. When another process logged a decision for
  the cart first, nothing is written and the decision is made again on a fresh slice, which now
  holds the other process's decision: the act package then answers with it
  (``already_decided``), so every process gives the cart's one decision.
"""

from __future__ import annotations

from typing import Any

from cartlift._jsonable import jsonable
from cartlift.act import decide_cart
from cartlift.errors import DataError, StoreError
from cartlift.serve._errors import ApiError
from cartlift.serve._service import Service
from cartlift.store import EventStore, PostgresStorage, clear, fill_cart, write_back

__all__ = ["decide"]

POLICY = "profit"


def _decide_on(store: EventStore, session_id: str, log: bool) -> dict[str, Any]:
    """`decide_cart`: the saved policy, or the default policy on a store that has none yet."""
    result: dict[str, Any] = decide_cart(store, session_id, name=POLICY, log=log)
    return result


def _decide_on_postgres(pg: Any, store: EventStore, session_id: str, log: bool) -> dict[str, Any]:
    """Decide on a slice of the PostgreSQL store and store the logged decision there (see the module doc)."""
    for _ in range(2):
        fill_cart(pg, store, session_id, POLICY)
        result = _decide_on(store, session_id, log)
        if not result["logged"]:
            return result
        if write_back(pg, store, "decisions", "decision_id = ?", [result["decision_id"]]):
            return result
        clear(store)  # another process decided this cart first: its decision is the answer
    raise StoreError(
        f"The decision for cart {session_id!r} could neither be stored nor read back; try again."
    )


async def decide(service: Service, *, session_id: str, log: bool = True) -> dict[str, Any]:
    """Choose the next best action for an abandoned cart with the saved policy and log it.

    A cart already decided gets its first decision back (one contact per cart), whichever
    service process decided it.
    """
    storage = service.storage
    try:
        if isinstance(storage, PostgresStorage):
            result = await storage.with_slice(
                lambda pg, store: _decide_on_postgres(pg, store, session_id, log)
            )
        elif storage.supports_store_jobs:
            result = await storage.with_store(lambda store: _decide_on(store, session_id, log))
        else:
            raise ApiError(501, f"The next best action does not run on a {storage.kind} store.")
    except DataError as e:
        raise ApiError(404, str(e)) from None
    return {"session_id": session_id, **jsonable(result)}
