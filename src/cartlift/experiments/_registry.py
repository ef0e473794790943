"""Experiments and exposures in the event store (tables ``experiments``, ``experiment_phases``, ``exposures``).

An experiment's definition is stored once; every process re-derives assignments from it with the
pure hash, and records *exposures* (the first and last time a unit actually saw its variant), which
is what the analysis counts. Changing the weights, variants or holdout of a running experiment is
refused: units would silently move between arms and earlier and later units would be mixed with
different allocations (Simpson's paradox; Kohavi, Tang and Xu 2020, *Trustworthy Online Controlled
Experiments*, ch. 21). Give a new salt instead: that starts a new phase, and the analysis reads only
the current phase's exposures.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final

import numpy as np
import pandas as pd

from cartlift.errors import DataError, InvalidParameterError, StoreError
from cartlift.experiments._design import (
    ASSIGNED,
    HOLDOUT,
    NOT_COVERED,
    NOT_TARGETED,
    Experiment,
    assign_units,
)
from cartlift.store import EventStore

__all__ = [
    "EXPERIMENT_TABLES",
    "expose_event_users",
    "list_experiments",
    "load_experiment",
    "log_exposures",
    "save_experiment",
]

EXPERIMENT_TABLES: Final = ("experiments", "experiment_phases", "exposures")
"""The experiment tables (declared in `cartlift.store.TABLES`, created on first write)."""

_FROZEN = ("variants", "weights", "control", "holdout", "hash_version")
"""What a running phase may not change (coverage and targeting may: ramp-ups keep assignments)."""


def _ensure_tables(store: EventStore) -> None:
    if store.read_only:
        raise StoreError(
            f"The store {str(store.path)!r} is open read-only; open it writable to change experiments."
        )
    store.create_tables(EXPERIMENT_TABLES)


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _row_to_experiment(row: Sequence[Any]) -> Experiment:
    name, salt, variants, weights, control, coverage, holdout, targeting, version = row[:9]
    return Experiment(
        name=name,
        variants=tuple(json.loads(variants)),
        weights=tuple(json.loads(weights)),
        salt=salt,
        coverage=float(coverage),
        holdout=float(holdout),
        targeting=json.loads(targeting),
        hash_version=int(version),
        control=control,
    )


_COLUMNS = "name, salt, variants, weights, control, coverage, holdout, targeting, hash_version, phase"


def load_experiment(store: EventStore, name: str) -> Experiment:
    """The stored definition of experiment ``name``."""
    if "experiments" not in store.tables():
        raise DataError(
            f"The store {str(store.path)!r} has no experiments yet; define one with save_experiment() "
            "or `cartlift experiment create`."
        )
    rows = store.con.execute(f"SELECT {_COLUMNS} FROM experiments WHERE name = ?", [name]).fetchall()
    if not rows:
        known = [r[0] for r in store.con.execute("SELECT name FROM experiments ORDER BY 1").fetchall()]
        raise DataError(
            f"No experiment named {name!r} in the store. Experiments: {', '.join(known) or 'none'}."
        )
    return _row_to_experiment(rows[0])


def save_experiment(store: EventStore, experiment: Experiment) -> int:
    """Store ``experiment`` and return its phase number.

    A new name starts phase 1. The same name with the same salt may change only the coverage and
    the targeting; changing variants, weights, control, holdout or hash version raises
    :class:`~cartlift.errors.InvalidParameterError` (it would bias the results). The same name with
    a new salt starts the next phase.
    """
    _ensure_tables(store)
    con = store.con
    now = _now()
    d = experiment.to_dict()
    values = [
        d["name"],
        d["salt"],
        json.dumps(d["variants"]),
        json.dumps(d["weights"]),
        d["control"],
        d["coverage"],
        d["holdout"],
        json.dumps(d["targeting"], sort_keys=True),
        d["hash_version"],
    ]
    rows = con.execute(f"SELECT {_COLUMNS} FROM experiments WHERE name = ?", [experiment.name]).fetchall()
    if not rows:
        con.execute(f"INSERT INTO experiments VALUES ({', '.join(['?'] * 12)})", [*values, 1, now, now])
        _record_phase(store, experiment, 1, now)
        return 1
    current, phase = _row_to_experiment(rows[0]), int(rows[0][9])
    if experiment.salt == current.salt:
        old, new = current.to_dict(), experiment.to_dict()
        changed = [k for k in _FROZEN if old[k] != new[k]]
        if changed:
            detail = "; ".join(f"{k}: {old[k]!r} -> {new[k]!r}" for k in changed)
            raise InvalidParameterError(
                f"Experiment {experiment.name!r} is running with salt {current.salt!r}; changing {detail} "
                "would move units between variants and mix allocations, which biases the results. "
                f"Keep the definition, or give a new salt (e.g. {experiment.name + '-' + str(phase + 1)!r}) "
                "to start a new phase whose analysis starts from zero."
            )
        con.execute(
            "UPDATE experiments SET coverage = ?, targeting = ?, updated_at = ? WHERE name = ?",
            [values[5], values[7], now, experiment.name],
        )
        return phase
    used = {
        r[0]
        for r in con.execute(
            "SELECT salt FROM experiment_phases WHERE name = ?", [experiment.name]
        ).fetchall()
    }
    if experiment.salt in used:
        raise InvalidParameterError(
            f"Salt {experiment.salt!r} was already used by an earlier phase of {experiment.name!r}; "
            "reusing it would bring back that phase's assignments. Choose a salt never used before."
        )
    con.execute(
        "UPDATE experiments SET salt = ?, variants = ?, weights = ?, control = ?, coverage = ?, holdout = ?, "
        "targeting = ?, hash_version = ?, phase = ?, updated_at = ? WHERE name = ?",
        [*values[1:], phase + 1, now, experiment.name],
    )
    _record_phase(store, experiment, phase + 1, now)
    return phase + 1


def _record_phase(store: EventStore, experiment: Experiment, phase: int, now: datetime) -> None:
    store.con.execute(
        "INSERT INTO experiment_phases VALUES (?, ?, ?, ?, ?)",
        [experiment.name, phase, experiment.salt, json.dumps(experiment.to_dict(), sort_keys=True), now],
    )


def list_experiments(store: EventStore) -> pd.DataFrame:
    """Every experiment with its phase, salt, variants and exposed units in the current phase."""
    if "experiments" not in store.tables():
        return pd.DataFrame(columns=["name", "phase", "salt", "variants", "weights", "exposed", "holdout"])
    has_exposures = "exposures" in store.tables()
    counts = (
        """LEFT JOIN (SELECT experiment, salt, count(*) FILTER (WHERE status = 'assigned') AS exposed,
                  count(*) FILTER (WHERE status = 'holdout') AS held FROM exposures GROUP BY 1, 2) x
           ON x.experiment = e.name AND x.salt = e.salt"""
        if has_exposures
        else ""
    )
    exposed = "coalesce(x.exposed, 0)" if has_exposures else "0"
    held = "coalesce(x.held, 0)" if has_exposures else "0"
    return store.query(
        f"""SELECT e.name, e.phase, e.salt, e.variants, e.weights, {exposed} AS exposed, {held} AS holdout
            FROM experiments e {counts} ORDER BY e.name"""
    )


def log_exposures(
    store: EventStore,
    name: str,
    unit_ids: Sequence[object] | np.ndarray | pd.Series,
    *,
    attributes: pd.DataFrame | None = None,
    at: datetime | Sequence[datetime] | pd.Series | None = None,
) -> dict[str, int]:
    """Assign ``unit_ids`` to experiment ``name`` and record their exposures.

    Units in a variant and in the holdout are recorded (the holdout with no variant); untargeted and
    uncovered units are only counted. Logging the same unit again keeps its earliest first exposure
    and latest last exposure, so replays are harmless.

    Returns
    -------
    dict
        ``{"assigned", "holdout", "not_targeted", "not_covered", "new"}`` unit counts.
    """
    experiment = load_experiment(store, name)
    _ensure_tables(store)
    frame = assign_units(experiment, unit_ids, attributes)
    n = len(frame)
    when = pd.Series([at or _now()] * n) if at is None or isinstance(at, datetime) else pd.Series(list(at))
    if len(when) != n:
        raise DataError(f"at has {len(when)} timestamps for {n} units; give one per unit or a single one.")
    frame["ts"] = pd.to_datetime(when.to_numpy(), utc=True).tz_convert(None)
    counts = frame["status"].value_counts()
    logged = frame[frame["status"].isin([ASSIGNED, HOLDOUT])]
    before = _exposure_count(store, experiment)
    store.con.register("_exposed", logged[["unit_id", "variant", "status", "ts"]])
    try:
        store.con.execute(
            """INSERT INTO exposures
               SELECT ?, ?, unit_id, any_value(variant), any_value(status), min(ts), max(ts)
               FROM _exposed GROUP BY unit_id
               ON CONFLICT (experiment, salt, unit_id) DO UPDATE SET
                 first_exposed_at = least(exposures.first_exposed_at, EXCLUDED.first_exposed_at),
                 last_exposed_at = greatest(exposures.last_exposed_at, EXCLUDED.last_exposed_at)""",
            [experiment.name, experiment.salt],
        )
    finally:
        store.con.unregister("_exposed")
    return {
        "assigned": int(counts.get(ASSIGNED, 0)),
        "holdout": int(counts.get(HOLDOUT, 0)),
        "not_targeted": int(counts.get(NOT_TARGETED, 0)),
        "not_covered": int(counts.get(NOT_COVERED, 0)),
        "new": _exposure_count(store, experiment) - before,
    }


def _exposure_count(store: EventStore, experiment: Experiment) -> int:
    return int(
        store.con.execute(
            "SELECT count(*) FROM exposures WHERE experiment = ? AND salt = ?",
            [experiment.name, experiment.salt],
        ).fetchall()[0][0]
    )


def expose_event_users(store: EventStore, name: str, *, since: datetime | None = None) -> dict[str, int]:
    """Treat every user of the ``events`` table as exposed at their first event (from ``since`` on).

    The users' first ``device`` and ``channel`` are passed as attributes, so targeting on them works.
    Meant for back-testing and demos on stored traffic; live traffic logs exposures as it happens.
    """
    where = "WHERE ts >= ?" if since is not None else ""
    users = store.query(
        f"""SELECT user_id, min(ts) AS first_ts, arg_min(device, ts) AS device, arg_min(channel, ts) AS channel
            FROM events {where} GROUP BY user_id ORDER BY user_id""",
        [since] if since is not None else None,
    )
    if users.empty:
        raise DataError("The events table has no users to expose; ingest events first.")
    return log_exposures(
        store, name, users["user_id"], attributes=users[["device", "channel"]], at=users["first_ts"]
    )
