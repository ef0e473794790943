"""Health, readiness and metrics (no key: probes and scrapers call them)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse

from cartlift.serve._deps import ServiceDep
from cartlift.serve._schemas import HealthPublic, ReadyPublic

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=HealthPublic, summary="Liveness")
async def healthz() -> dict[str, str]:
    """The process answers."""
    return {"status": "ok"}


@router.get(
    "/readyz", response_model=ReadyPublic, responses={503: {"model": ReadyPublic}}, summary="Readiness"
)
async def readyz(service: ServiceDep) -> JSONResponse:
    """200 when the store answers and the writer runs, else 503 with the failing check."""
    state = await service.readiness()
    return JSONResponse(state, status_code=200 if state["ready"] else 503)


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {}}}},
    summary="Prometheus metrics",
)
async def metrics(service: ServiceDep) -> PlainTextResponse:
    """Request counts, latency histograms, events ingested, model versions (Prometheus text format)."""
    if service.gather_metrics is not None:
        await service.gather_metrics()  # the intake front process's counts, up to this moment
    return PlainTextResponse(service.metrics_text(), media_type="text/plain; version=0.0.4; charset=utf-8")
