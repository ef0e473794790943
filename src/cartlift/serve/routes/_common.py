"""What every router documents: the error responses."""

from __future__ import annotations

from typing import Any

from cartlift.serve._schemas import ErrorPublic

__all__ = ["errors"]

_TEXT = {
    400: "Bad request",
    401: "Missing or unknown API key",
    403: "The key's scope does not allow this route",
    404: "Not found",
    409: "Conflict with the stored state",
    413: "Body or batch too large",
    422: "Invalid request",
    429: "Rate limit exceeded",
    501: "Not available on this backend",
    503: "Not ready",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for these error statuses, all with the JSON error body.

    400 is always among them: any route answers it for a body that is not JSON or a value the
    data layer refuses (`cartlift.errors.DataError`).
    """
    return {c: {"model": ErrorPublic, "description": _TEXT[c]} for c in sorted({400, *codes})}
