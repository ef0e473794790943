"""The dashboard (``/``), its data (``/v1/dashboard``), the program's impact (``/v1/impact``), the
attribution of orders to messages (``/v1/attribution``), and the static files it and ``/docs`` need.

plotly.js comes from the installed plotly package and Swagger UI from fastapi-offline, so
nothing is fetched from a CDN at run time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

from cartlift.serve._deps import AdminKey, ServiceDep
from cartlift.serve._errors import ApiError
from cartlift.serve._ops import attribution as attribution_summary
from cartlift.serve._ops import dashboard as dashboard_data
from cartlift.serve._ops import program_impact
from cartlift.serve._page import DASHBOARD_HTML
from cartlift.serve.routes._common import errors

router = APIRouter(tags=["dashboard"])

_CACHE = {"Cache-Control": "public, max-age=86400"}
_DOC_FILES = ("swagger-ui-bundle.js", "swagger-ui.css", "favicon.png")


def _plotly_js() -> Path:
    import plotly

    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def _docs_dir() -> Path | None:
    try:
        import fastapi_offline
    except ImportError:
        return None
    return Path(fastapi_offline.__file__).parent / "static"


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def page() -> HTMLResponse:
    """The live dashboard (it asks for an admin key and reads ``/v1/dashboard``)."""
    return HTMLResponse(DASHBOARD_HTML)


@router.get("/static/plotly.min.js", include_in_schema=False)
async def plotly_js() -> FileResponse:
    """plotly.js from the installed plotly package."""
    return FileResponse(_plotly_js(), media_type="text/javascript", headers=_CACHE)


@router.get("/static/docs/{name}", include_in_schema=False)
async def docs_static(name: Annotated[str, PathParam()]) -> FileResponse:
    """Swagger UI's files, bundled by fastapi-offline."""
    folder = _docs_dir()
    if folder is None or name not in _DOC_FILES:
        raise ApiError(404, f"No static file {name!r}.")
    return FileResponse(folder / name, headers=_CACHE)


@router.get("/docs", include_in_schema=False)
async def docs(request: Request) -> HTMLResponse:
    """Swagger UI for the OpenAPI document, served offline."""
    root = request.scope.get("root_path", "")
    return get_swagger_ui_html(
        openapi_url=f"{root}/openapi.json",
        title="cartlift API",
        swagger_js_url=f"{root}/static/docs/swagger-ui-bundle.js",
        swagger_css_url=f"{root}/static/docs/swagger-ui.css",
        swagger_favicon_url=f"{root}/static/docs/favicon.png",
    )


@router.get("/v1/dashboard", responses=errors(401, 403, 429), tags=["dashboard"], summary="Dashboard data")
async def dashboard(service: ServiceDep, key: AdminKey) -> dict[str, object]:
    """Funnel, abandonment rate and value, carts at risk, decisions, experiments, model versions."""
    return await dashboard_data(service)


@router.get(
    "/v1/attribution", responses=errors(401, 403, 422, 429), tags=["dashboard"], summary="Attribution"
)
async def attribution(
    service: ServiceDep,
    key: AdminKey,
    click_window: Annotated[
        str | None,
        Query(max_length=20, description="Click-through window, e.g. 7d or 48h (default: the setting)."),
    ] = None,
    view_window: Annotated[
        str | None,
        Query(max_length=20, description="View-through window, e.g. 1d, 0 for none (default: the setting)."),
    ] = None,
    rec_window: Annotated[
        str | None,
        Query(
            max_length=20,
            description="Recommendation window: a purchase this long after a list showed the product, e.g. 24h "
            "(default: the setting).",
        ),
    ] = None,
) -> dict[str, object]:
    """Orders credited to the messages clicked or sent before them, by action and channel, and products
    bought after a recommendation showed them (what
    ``cartlift attribution --json`` prints; linked live, nothing is written). ``{"attribution": null}``
    when the store has no outbox yet."""
    doc = await attribution_summary(service, click=click_window, view=view_window, rec=rec_window)
    return {"attribution": None} if doc is None else doc


@router.get(
    "/v1/impact", responses=errors(401, 403, 422, 429, 501), tags=["dashboard"], summary="Program impact"
)
async def impact(
    service: ServiceDep,
    key: AdminKey,
    start: Annotated[
        str | None,
        Query(alias="from", max_length=40, description="Carts abandoned from this date or time (UTC)."),
    ] = None,
    end: Annotated[
        str | None,
        Query(alias="to", max_length=40, description="Carts abandoned up to this date (included)."),
    ] = None,
    phase: Annotated[
        int | None, Query(ge=1, le=1_000_000, description="Holdout phase (default: current).")
    ] = None,
) -> dict[str, object]:
    """Incremental conversion, revenue and profit of the program against the global holdout, with
    95 % intervals, by action and by segment (what ``cartlift impact --json`` prints), on either backend."""
    return await program_impact(service, start=start, end=end, phase=phase)
