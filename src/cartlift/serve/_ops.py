"""Experiments, decisions and the dashboard's numbers: keyword-only coroutines on the service.

Each calls the package that owns the capability (experiments, act) through the service's
storage; nothing here decides anything by itself.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from cartlift._jsonable import jsonable
from cartlift.errors import DataError
from cartlift.serve._errors import ApiError
from cartlift.serve._service import Service

__all__ = ["dashboard", "experiment_assignment", "experiment_results"]

_DEFINITION_SECONDS = 10.0
_definitions: dict[tuple[int, str], tuple[float, Any]] = {}


def _need_store(service: Service) -> None:
    if not service.storage.supports_store_jobs:
        raise ApiError(
            501,
            f"Experiments are kept in the embedded DuckDB store; this service runs on {service.storage.kind}.",
        )


async def _definition(service: Service, name: str) -> Any:
    from cartlift.experiments import load_experiment

    key = (id(service), name)
    hit = _definitions.get(key)
    if hit is not None and time.monotonic() - hit[0] < _DEFINITION_SECONDS:
        return hit[1]
    try:
        experiment = await service.storage.with_store(lambda store: load_experiment(store, name))
    except DataError as e:
        raise ApiError(404, str(e)) from None
    _definitions[key] = (time.monotonic(), experiment)
    return experiment


async def experiment_assignment(
    service: Service, *, name: str, unit: str, attributes: dict[str, Any] | None = None, log: bool = True
) -> dict[str, Any]:
    """The variant of ``unit`` in experiment ``name`` (a pure hash), recording the exposure.

    The unit id is pseudonymised like user ids, so exposures join the stored events.
    """
    from cartlift.experiments import assign, log_exposures

    _need_store(service)
    experiment = await _definition(service, name)
    unit_id = service.user(unit)
    result = assign(experiment, unit_id, attributes)
    if log and result.status in ("assigned", "holdout"):
        await service.storage.with_store(lambda store: log_exposures(store, name, [unit_id]))
    return {
        "experiment": name,
        "unit": unit,
        "variant": result.variant,
        "status": result.status,
        "bucket": result.bucket,
        "salt": experiment.salt,
        "logged": bool(log and result.status in ("assigned", "holdout")),
    }


async def experiment_results(service: Service, *, name: str, metric: str = "purchased") -> dict[str, Any]:
    """The analysis of ``metric`` for experiment ``name`` (frequentist, SRM check, corrections)."""
    from cartlift.experiments import STORE_METRICS, analyze_store

    _need_store(service)
    if metric not in STORE_METRICS:
        raise ApiError(422, f"Unknown metric {metric!r}; metrics: {', '.join(STORE_METRICS)}.")
    await _definition(service, name)
    try:
        result = await service.storage.with_store(lambda store: analyze_store(store, name, metric))
    except DataError as e:
        raise ApiError(409, f"Experiment {name!r} cannot be analysed yet: {e}") from None
    return {"experiment": name, **jsonable(result.to_dict())}


async def _experiments_overview(service: Service) -> list[dict[str, Any]]:
    from cartlift.experiments import list_experiments

    if not service.storage.supports_store_jobs:
        return []
    frame = await service.storage.with_store(list_experiments)
    out: list[dict[str, Any]] = []
    for name in frame["name"].tolist() if len(frame) else []:
        try:
            res = await experiment_results(service, name=str(name))
        except ApiError as e:
            out.append({"experiment": str(name), "variants": [], "note": e.message})
            continue
        out.append(
            {
                "experiment": str(name),
                "srm_p_value": res.get("srm_p_value"),
                "variants": [
                    {k: v.get(k) for k in ("name", "n", "mean", "lift", "p_value", "is_control")}
                    for v in res.get("variants", [])
                ],
            }
        )
    return out


async def dashboard(service: Service) -> dict[str, Any]:
    """Everything the dashboard draws, in one document (the page polls it)."""
    overview = await service.storage.overview()
    return jsonable(
        {
            **overview,
            "carts_at_risk": await service.carts_at_risk(limit=20),
            "live_sessions": len(service.live) if service.live is not None else 0,
            "experiments": await _experiments_overview(service),
            "models": service.models.versions,
            "model_errors": service.models.errors,
            "generated_at": datetime.now().astimezone().isoformat(timespec="seconds"),
        }
    )
