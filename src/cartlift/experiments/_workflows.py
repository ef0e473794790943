"""Analyses from where the data live: a file of units, or an experiment in the store."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import duckdb
import numpy as np

from cartlift.errors import DataError, InvalidParameterError
from cartlift.experiments._analysis import AnalysisConfig, ExperimentResult, analyze
from cartlift.experiments._registry import load_experiment, log_exposures
from cartlift.experiments._sql import (
    FUNNEL_STEPS,
    MetricStats,
    _file_source,
    _ident,
    funnel_from_store,
    stats_from_file,
    stats_from_store,
)
from cartlift.experiments._statistics import JointStats, SampleStats
from cartlift.store import EventStore

__all__ = ["analyze_file", "analyze_funnel", "analyze_store", "expose_file"]


def analyze_file(
    path: str | Path,
    *,
    variant: str,
    metric: str,
    control: str | None = None,
    covariate: str | None = None,
    denominator: str | None = None,
    config: AnalysisConfig | None = None,
) -> ExperimentResult:
    """Analyse a CSV / Parquet / JSON-lines file with one row per unit.

    The sufficient statistics are aggregated by DuckDB reading the file in place; only the
    bootstrap method reads unit values into memory.

    Examples
    --------
    >>> result = analyze_file("cookie_cats.csv", variant="version", metric="retention_7",
    ...                       control="gate_30")  # doctest: +SKIP
    """
    config = config or AnalysisConfig()
    data = stats_from_file(path, variant=variant, metric=metric, covariate=covariate, denominator=denominator)
    values = None
    if config.method == "bootstrap":
        with duckdb.connect() as con:
            rows = con.execute(
                f"SELECT CAST({_ident(variant)} AS VARCHAR), list(CAST({_ident(metric)} AS DOUBLE)) "
                f"FROM {_file_source(path)} GROUP BY 1"
            ).fetchall()
        values = {name: np.asarray(vals, dtype=float) for name, vals in rows}
    return analyze(data, control=control, config=config, values=values)


def analyze_store(
    store: EventStore,
    experiment: str,
    metric: str = "purchased",
    *,
    covariate: str | None = None,
    config: AnalysisConfig | None = None,
    window_days: float | None = None,
) -> ExperimentResult:
    """Analyse a store metric of ``experiment`` (its control and weights come from its definition)."""
    config = config or AnalysisConfig()
    if config.method == "bootstrap":
        raise InvalidParameterError(
            "The bootstrap reads unit files; on the store use the frequentist, Bayesian or sequential method."
        )
    exp = load_experiment(store, experiment)
    data = _with_every_variant(
        stats_from_store(store, experiment, metric, covariate=covariate, window_days=window_days),
        exp.variants,
    )
    return analyze(data, control=exp.control, config=config, expected_shares=exp.expected_shares)


def _with_every_variant(data: MetricStats, variants: tuple[str, ...] | Sequence[str]) -> MetricStats:
    """Add a zero-unit entry for each variant nobody was exposed to, so the SRM check sees the gap."""
    missing = [v for v in variants if v not in data.stats]
    if not missing:
        return data
    sample = next(iter(data.stats.values()))
    empty: SampleStats | JointStats = (
        type(sample)(0, 0.0, 0.0, 0.0, 0.0, 0.0)
        if isinstance(sample, JointStats)
        else SampleStats(0, 0.0, 0.0)
    )
    return MetricStats(data.metric, {**data.stats, **dict.fromkeys(missing, empty)}, data.binary)


def analyze_funnel(
    store: EventStore,
    experiment: str,
    *,
    steps: tuple[str, ...] = FUNNEL_STEPS,
    config: AnalysisConfig | None = None,
    window_days: float | None = None,
) -> dict[str, ExperimentResult]:
    """Each funnel step's conversion over all exposed units, analysed like any binary metric."""
    exp = load_experiment(store, experiment)
    per_step = funnel_from_store(store, experiment, steps=steps, window_days=window_days)
    out: dict[str, ExperimentResult] = {}
    for step, data in per_step.items():
        full = _with_every_variant(data, exp.variants)
        out[step] = analyze(full, control=exp.control, config=config, expected_shares=exp.expected_shares)
    return out


def expose_file(
    store: EventStore, experiment: str, path: str | Path, *, unit_column: str = "user_id"
) -> dict[str, int]:
    """Assign and log the units of a CSV / Parquet file; its other columns are the targeting attributes."""
    with duckdb.connect() as con:
        frame = con.execute(f"SELECT * FROM {_file_source(path)}").df()
    if unit_column not in frame.columns:
        raise DataError(
            f"No column {unit_column!r} in {str(path)!r}. Columns: {', '.join(map(str, frame.columns))}."
        )
    attributes = frame.drop(columns=[unit_column])
    return log_exposures(
        store, experiment, frame[unit_column], attributes=attributes if len(attributes.columns) else None
    )
