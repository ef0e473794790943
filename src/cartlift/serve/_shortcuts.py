"""Answering the hottest requests in front of the framework's layers, with the framework's answers.

Under load, FastAPI's layers around a route (routing, dependency resolution, a dozen middleware
frames on the way in and out) cost the event loop more than the route's own work on the two
hottest requests, a posted event batch and a user's cached recommendations. `answer_directly`
runs a route's own steps for such a request and gives it what the stack would have: an error
goes through the app's own exception handlers (the same status, body and headers) and the request
is counted in the metrics under its route template, as `MetricsMiddleware` counts it.

`cartlift.serve._app` decides which requests come here: only those nothing else would wrap (no
CORS middleware, no dependency overrides, no root path).
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from starlette.types import Receive, Scope, Send

__all__ = ["answer_directly"]


async def answer_directly(
    app: FastAPI,
    scope: Scope,
    receive: Receive,
    send: Send,
    *,
    route: str,
    respond: Callable[[Request], Awaitable[Response]],
) -> None:
    """Send ``respond(request)``'s response, or the app's answer to what it raised; count it under ``route``."""
    start = time.perf_counter()
    status = 500
    scope["app"] = app  # as Starlette sets it: `request.app` is how the routes find the service
    request = Request(scope, receive)
    try:
        try:
            response = await respond(request)
        except Exception as exc:
            response = await _handled(app, request, exc)
        status = response.status_code
        await response(scope, receive, send)
    finally:
        service = getattr(app.state, "service", None)
        if service is not None:
            service.metrics.observe(scope["method"], route, status, time.perf_counter() - start)


async def _handled(app: FastAPI, request: Request, exc: Exception) -> Response:
    """The response of the app's handler for ``exc`` (every exception has one: `install_error_handlers`)."""
    for cls in type(exc).__mro__:
        handler = app.exception_handlers.get(cls)
        if handler is not None:
            response = handler(request, exc)
            return await response if inspect.isawaitable(response) else response
    raise exc
