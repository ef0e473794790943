"""``POST /v1/carts/{session_id}/decide``: the act package's saved policy decides, and logs it.

The act package owns the decision (`cartlift.act.decide_cart`: its profit policy under the
store's rules, the propensity of the chosen action, the ``decisions`` log); this module only runs
it on the store's writer and turns its refusals into HTTP answers.
"""

from __future__ import annotations

from typing import Any

from cartlift._jsonable import jsonable
from cartlift.errors import DataError
from cartlift.serve._errors import ApiError
from cartlift.serve._service import Service

__all__ = ["decide"]

POLICY = "profit"


async def decide(service: Service, *, session_id: str, log: bool = True) -> dict[str, Any]:
    """Choose the next best action for an abandoned cart with the saved policy and log it.

    A cart already decided gets its first decision back (one contact per cart).
    """
    from cartlift.act import MODEL_TABLE, decide_cart

    if not service.storage.supports_store_jobs:
        raise ApiError(
            501,
            f"The next best action reads the embedded DuckDB store; this service runs on {service.storage.kind}.",
        )
    await service.live_caught_up()

    def run(store: Any) -> dict[str, Any] | None:
        if MODEL_TABLE not in store.tables():
            return None
        saved = store.con.execute(f"SELECT count(*) FROM {MODEL_TABLE} WHERE name = ?", [POLICY]).fetchall()
        if not saved[0][0]:
            return None
        result: dict[str, Any] = decide_cart(store, session_id, name=POLICY, log=log)
        return result

    try:
        result = await service.storage.with_store(run)
    except DataError as e:
        raise ApiError(404, str(e)) from None
    if result is None:
        raise ApiError(
            409,
            "No next-best-action policy is trained for this store yet: train one with `cartlift act train` "
            "(it learns from logged decisions and their outcomes).",
        )
    return {"session_id": session_id, **jsonable(result)}
