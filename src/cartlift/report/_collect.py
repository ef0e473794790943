"""Every part's sections, in report order: the one place that knows what the report holds."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cartlift.errors import CartliftError, CartliftWarning
from cartlift.report._analytics import analytics_sections
from cartlift.report._experiments import experiments_sections
from cartlift.report._loop import (
    attribution_section,
    delivery_section,
    impact_section,
    next_best_action_section,
    recommendations_section,
    summary_section,
)
from cartlift.report._prediction import evaluation_sections, prediction_sections
from cartlift.report._section import Section
from cartlift.store import EventStore

__all__ = ["collect_sections"]

Part = Callable[[Any], list[Section]]


def _prediction(store: EventStore, artifacts: Path | None) -> list[Section]:
    # the demo's evaluation (written beside the store) when there is one, else evaluate now
    hits = sorted(artifacts.rglob("abandonment-evaluation.json")) if artifacts is not None else []
    return evaluation_sections(json.loads(hits[0].read_text())) if hits else prediction_sections(store)


def collect_sections(
    store: EventStore,
    *,
    unit: str = "session",
    parts: Sequence[tuple[str, Part]] | None = None,
    artifacts: str | Path | None = None,
) -> list[Section]:
    """The sections of every part of the report for ``store``, in order: the summary, funnel and
    customers, recommendations, abandonment prediction, next best action, delivery, attribution,
    impact against the holdout, experiments.

    ``parts`` are (name, builder) pairs, default every part; ``unit`` (session or user) is passed
    to the analytics sections; ``artifacts`` is a folder where the demo's steps wrote their results
    (recommendation leaderboard, abandonment evaluation, policy simulation). A part that cannot be built
    for this store (a `CartliftError`: too little data, no experiment ...) becomes a section
    saying why, with a `CartliftWarning`, so one part does not cost the whole report; any other
    error is a bug and propagates.
    """
    folder = None if artifacts is None else Path(artifacts)
    chosen = parts or (
        ("summary", lambda s: [summary_section(s, artifacts=folder)]),
        ("analytics", lambda s: analytics_sections(s, unit=unit)),
        ("recommendations", lambda s: [recommendations_section(s, artifacts=folder)]),
        ("abandonment prediction", lambda s: _prediction(s, folder)),
        ("next best action", lambda s: [next_best_action_section(s, artifacts=folder)]),
        ("delivery", lambda s: [delivery_section(s)]),
        ("attribution", lambda s: [attribution_section(s)]),
        ("impact", lambda s: [impact_section(s)]),
        ("experiments", experiments_sections),
    )
    sections: list[Section] = []
    for name, part in chosen:
        try:
            sections.extend(part(store))
        except CartliftError as e:
            warnings.warn(
                f"The {name} part of the report could not be built: {e}", CartliftWarning, stacklevel=2
            )
            sections.append(Section(f"{name} (not available)", notes=[str(e)]))
    return sections
