"""Experiments, decisions and the dashboard's numbers: keyword-only coroutines on the service.

Each calls the package that owns the capability (experiments, act) through the service's
storage; nothing here decides anything by itself. On the DuckDB store the package functions run
on the store; on PostgreSQL on a slice of it (`cartlift.store.fill`): the experiment
definitions for an assignment, whose exposure is merged back into PostgreSQL's ``exposures``;
the definitions, the current phase's exposures and the exposed units' events since exposure for
the results. Those results copy every exposed unit's later events, so on PostgreSQL they are
kept for `_RESULTS_SECONDS` (the dashboard polls them). The program's impact reads every cart and
its customer's history, so on PostgreSQL its slice holds the events, the catalog, the consents,
the decisions and the holdout's tables, and the answer is kept for `_IMPACT_SECONDS`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from cartlift._jsonable import jsonable
from cartlift.errors import DataError, InvalidParameterError
from cartlift.experiments import (
    STORE_METRICS,
    analyze_store,
    assign,
    list_experiments,
    load_experiment,
    log_exposures,
)
from cartlift.guardrails import Guardrail, too_few
from cartlift.serve._errors import ApiError
from cartlift.serve._overview import overview as store_overview
from cartlift.serve._service import Service
from cartlift.store import EventStore, PostgresStorage, fill, fill_experiments, fill_outcomes, write_back

__all__ = [
    "attribution",
    "dashboard",
    "experiment_assignment",
    "experiment_results",
    "program_impact",
]

T = TypeVar("T")

_DEFINITION_SECONDS = 10.0
_RESULTS_SECONDS = 10.0
_definitions: dict[tuple[int, str], tuple[float, Any]] = {}
_results: dict[tuple[int, str, str], tuple[float, dict[str, Any]]] = {}
_IMPACT_SECONDS = 30.0
_IMPACT_TABLES = ("events", "products", "consents", "decisions", "holdout_phases", "holdout_assignments")
_impacts: dict[tuple[int, str | None, str | None, int | None], tuple[float, dict[str, Any]]] = {}


async def _on_store(service: Service, fn: Callable[[Any], T], *, outcomes: str | None = None) -> T:
    """``fn(store)`` with an `EventStore` holding what the experiments package reads.

    On PostgreSQL: a slice with the experiment definitions and, for ``outcomes=NAME``, that
    experiment's exposures and outcome events; exposures ``fn`` logs are merged back.
    """
    storage = service.storage
    if storage.supports_store_jobs:
        result: T = await storage.with_store(fn)
        return result
    if not isinstance(storage, PostgresStorage):
        raise ApiError(501, f"Experiments do not run on a {storage.kind} store.")

    def job(pg: Any, store: EventStore) -> T:
        fill_experiments(pg, store)
        if outcomes is not None:
            fill_outcomes(pg, store, outcomes)
        value = fn(store)
        if outcomes is None:
            write_back(pg, store, "exposures")
        return value

    return await storage.with_slice(job)


async def _definition(service: Service, name: str) -> Any:
    key = (id(service), name)
    hit = _definitions.get(key)
    if hit is not None and time.monotonic() - hit[0] < _DEFINITION_SECONDS:
        return hit[1]
    try:
        experiment = await _on_store(service, lambda store: load_experiment(store, name))
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
    experiment = await _definition(service, name)
    unit_id = service.user(unit)
    result = assign(experiment, unit_id, attributes)
    if log and result.status in ("assigned", "holdout"):
        try:
            await _on_store(service, lambda store: log_exposures(store, name, [unit_id]))
        except DataError as e:  # the experiment was removed since its definition was cached
            raise ApiError(404, str(e)) from None
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
    if metric not in STORE_METRICS:
        raise ApiError(422, f"Unknown metric {metric!r}; metrics: {', '.join(STORE_METRICS)}.")
    await _definition(service, name)
    cached = not service.storage.supports_store_jobs
    key = (id(service), name, metric)
    hit = _results.get(key)
    if cached and hit is not None and time.monotonic() - hit[0] < _RESULTS_SECONDS:
        return hit[1]
    try:
        result = await _on_store(service, lambda store: analyze_store(store, name, metric), outcomes=name)
    except DataError as e:
        raise ApiError(409, f"Experiment {name!r} cannot be analysed yet: {e}") from None
    answer = {"experiment": name, **jsonable(result.to_dict())}
    if cached:
        _results[key] = (time.monotonic(), answer)
    return answer


async def _experiments_overview(service: Service) -> list[dict[str, Any]]:
    try:
        frame = await _on_store(service, list_experiments)
    except ApiError:
        return []
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
                    {
                        **{
                            k: v.get(k)
                            for k in (
                                "name",
                                "n",
                                "mean",
                                "lift",
                                "ci_low",
                                "ci_high",
                                "p_value",
                                "is_control",
                            )
                        },
                        "verdict": _verdict(v),
                    }
                    for v in res.get("variants", [])
                ],
            }
        )
    return out


MIN_TRAINING_CARTS = 500
"""Fewer carts than this make an abandonment model's probabilities too noisy to act on."""


def model_guardrails(versions: dict[str, dict[str, Any]], errors: dict[str, str]) -> list[Guardrail]:
    """The dashboard's warnings: models that are not served (and why), models trained on too little."""
    out = [
        Guardrail("model_not_served", f"The {kind} model is not served: {why}")
        for kind, why in errors.items()
    ]
    rows = versions.get("abandonment", {}).get("quality", {}).get("rows")
    if isinstance(rows, int) and (
        few := too_few(rows, MIN_TRAINING_CARTS, "carts trained the abandonment model")
    ):
        out.append(few)
    return out


def _verdict(variant: dict[str, Any], alpha: float = 0.05) -> str:
    """One word-group for a variant: better, worse, or no clear difference (adjusted p-value at ``alpha``)."""
    if variant.get("is_control"):
        return "control"
    p = variant.get("p_value_adjusted", variant.get("p_value"))
    lift = variant.get("lift")
    if p is None or lift is None:
        return "not enough data yet"
    if p < alpha:
        return "better than the control" if lift > 0 else "worse than the control"
    return "no clear difference yet"


async def program_impact(
    service: Service, *, start: str | None = None, end: str | None = None, phase: int | None = None
) -> dict[str, Any]:
    """`cartlift.act.impact`: the program's incremental profit against the global holdout."""
    from cartlift.act import impact

    storage = service.storage
    key = (id(service), start, end, phase)
    hit = _impacts.get(key)
    if not storage.supports_store_jobs and hit is not None and time.monotonic() - hit[0] < _IMPACT_SECONDS:
        return hit[1]

    def run(store: EventStore) -> dict[str, Any]:
        return impact(store, start=start, end=end, phase=phase)

    def on_slice(pg: Any, store: EventStore) -> dict[str, Any]:
        for table in _IMPACT_TABLES:
            fill(pg, store, table)
        return run(store)

    try:
        if storage.supports_store_jobs:
            doc = await storage.with_store(run)
        elif isinstance(storage, PostgresStorage):
            doc = await storage.with_slice(on_slice)
        else:
            raise ApiError(501, f"The impact is not computed on a {storage.kind} store.")
    except DataError as e:
        raise ApiError(422, str(e)) from None
    answer = dict(jsonable(doc))
    if not storage.supports_store_jobs:
        _impacts[key] = (time.monotonic(), answer)
    return answer


async def attribution(
    service: Service, *, click: str | None = None, view: str | None = None, rec: str | None = None
) -> dict[str, Any] | None:
    """`cartlift.act.attribution_summary`, linked live on either backend (None: no outbox yet)."""
    from cartlift.act import AttributionWindows, attribution_summary

    try:
        windows = AttributionWindows.resolve(click, view, rec)
    except InvalidParameterError as e:
        raise ApiError(422, str(e)) from None
    storage = service.storage

    def job(ctx: Any) -> dict[str, Any] | None:
        if isinstance(ctx, EventStore):
            return attribution_summary(ctx, windows)
        return attribution_summary(lambda sql: storage._rows(ctx, sql), windows)

    result: dict[str, Any] | None = await storage.writer.call(job)
    return None if result is None else dict(jsonable(result))


async def _impact_panel(service: Service) -> dict[str, Any]:
    try:
        return await program_impact(service)
    except ApiError as e:
        return {"note": e.message}


async def dashboard(service: Service) -> dict[str, Any]:
    """Everything the dashboard draws, in one document (the page polls it)."""
    overview = await store_overview(service.storage)
    risk = await service.carts_at_risk(limit=20)
    actions = await service.storage.decided_actions([r["session_id"] for r in risk])
    return jsonable(
        {
            **overview,
            "carts_at_risk": [{**r, "action": actions.get(str(r["session_id"]))} for r in risk],
            "live_sessions": len(service.live) if service.live is not None else 0,
            "experiments": await _experiments_overview(service),
            "impact": await _impact_panel(service),
            "attribution": await attribution(service),
            "models": service.models.versions,
            "model_errors": service.models.errors,
            "warnings": [
                w.to_dict() for w in model_guardrails(service.models.versions, service.models.errors)
            ],
            "generated_at": datetime.now().astimezone().isoformat(timespec="seconds"),
        }
    )
