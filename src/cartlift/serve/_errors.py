"""One JSON error body for every failure: ``{"error": {"status", "code", "message", "details"?}}``.

Clients get what was wrong and what to do; never a stack trace, a file path or an SQL text. The
full exception goes to the server log only.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from cartlift.errors import CartliftError, DataError, InvalidParameterError, NotFittedError

__all__ = ["ApiError", "error_body", "install_error_handlers", "without_paths"]

log = logging.getLogger("cartlift.serve")

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "rate_limited",
    500: "internal_error",
    501: "not_implemented",
    503: "unavailable",
}


class ApiError(Exception):
    """An error meant for the client: status, a stable code and a message saying what to do.

    Parameters
    ----------
    status : int
        The HTTP status.
    message : str
        What was wrong and what to do about it.
    code : str, optional
        A stable machine-readable code (default from the status).
    headers : mapping, optional
        Extra response headers (``WWW-Authenticate``, ``Retry-After``).
    details : list, optional
        Per-item problems (field errors).
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
        details: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code or _CODES.get(status, "error")
        self.headers = dict(headers or {})
        self.details = list(details) if details is not None else None

    def __reduce__(self) -> tuple[Any, ...]:
        # keyword-only arguments: rebuilt whole when it crosses to the intake front process (`_channel`)
        return _api_error, (self.status, self.message, self.code, self.headers, self.details)


def _api_error(
    status: int,
    message: str,
    code: str,
    headers: dict[str, str],
    details: list[Mapping[str, Any]] | None,
) -> ApiError:
    return ApiError(status, message, code=code, headers=headers, details=details)


def error_body(
    status: int, message: str, code: str | None = None, details: Sequence[Mapping[str, Any]] | None = None
) -> dict[str, Any]:
    """The JSON document of an error response."""
    error: dict[str, Any] = {
        "status": status,
        "code": code or _CODES.get(status, "error"),
        "message": message,
    }
    if details is not None:
        error["details"] = list(details)
    return {"error": error}


# a quoted absolute path ending in a file name with an extension, or any .duckdb file; URL paths
# of the API itself (no extension) stay
_PATH = re.compile(r""" ?(['"])(?:(?:[A-Za-z]:)?[/\\][^'"]*\.[A-Za-z0-9]{1,10}|[^'"]*\.duckdb)\1""")


def without_paths(message: str) -> str:
    """``message`` without quoted file paths (the store's location is nobody's business but the operator's).

    >>> without_paths("The store '/srv/shop.duckdb' has no experiments yet.")
    'The store has no experiments yet.'
    """
    return _PATH.sub("", message)


def _response(status: int, message: str, code: str | None = None, **kw: Any) -> JSONResponse:
    details = kw.pop("details", None)
    return JSONResponse(error_body(status, without_paths(message), code, details), status_code=status, **kw)


def _field_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    """Pydantic's errors without the echoed input or documentation URLs (they can be large or leak)."""
    out = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ())]
        out.append({"loc": loc, "message": str(err.get("msg", "invalid")), "type": str(err.get("type", ""))})
    return out


def install_error_handlers(app: FastAPI) -> None:
    """Make every error of ``app`` answer with the JSON error body."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return _response(exc.status, exc.message, exc.code, headers=exc.headers, details=exc.details)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        status = exc.status_code
        message = (
            exc.detail
            if isinstance(exc.detail, str) and exc.detail != HTTPStatus(status).phrase
            else {
                404: f"No route {request.url.path!r}; see /docs for the API.",
                405: f"{request.method} is not allowed on {request.url.path!r}; see /docs.",
            }.get(status, HTTPStatus(status).phrase)
        )
        headers = dict(getattr(exc, "headers", None) or {})
        if status == 405:  # every method of every route on this path, not only the first route's
            methods = {
                m
                for m in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
                if any(
                    r.matches({**request.scope, "method": m})[0] == Match.FULL
                    for r in request.app.router.routes
                )
            }
            if methods:
                headers["Allow"] = ", ".join(sorted(methods))
        return _response(status, str(message), headers=headers or None)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = _field_errors(exc)
        if any(d["type"] == "json_invalid" for d in details):
            return _response(400, "The body is not valid JSON; nothing was stored.", details=details)
        first = details[0] if details else {"loc": [], "message": "invalid request"}
        where = ".".join(first["loc"])
        return _response(
            422,
            f"The request is invalid at {where or 'the body'}: {first['message']}. Nothing was stored.",
            details=details,
        )

    @app.exception_handler(CartliftError)
    async def _domain(request: Request, exc: CartliftError) -> JSONResponse:
        if isinstance(exc, DataError | InvalidParameterError):
            return _response(400, str(exc))
        if isinstance(exc, NotFittedError):
            return _response(503, "The model is not ready; train one with `cartlift train --all`.")
        log.exception("cartlift error on %s %s", request.method, request.url.path)
        return _response(503, "The store is not available right now; retry later.")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _response(500, "Internal error; it has been logged. Retry later or contact the operator.")
