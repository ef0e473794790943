"""Every part's sections, in report order: the one place that knows what the report holds."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

from cartlift.errors import CartliftError, CartliftWarning
from cartlift.report._analytics import analytics_sections
from cartlift.report._experiments import experiments_sections
from cartlift.report._prediction import prediction_sections
from cartlift.report._section import Section
from cartlift.store import EventStore

__all__ = ["collect_sections"]

Part = Callable[[Any], list[Section]]


def collect_sections(
    store: EventStore, *, unit: str = "session", parts: Sequence[tuple[str, Part]] | None = None
) -> list[Section]:
    """The sections of every part of the report for ``store``, in order.

    ``parts`` are (name, builder) pairs, default every part; ``unit`` (session or user) is passed
    to the analytics sections. A part that cannot be built
    for this store (a `CartliftError`: too little data, no experiment ...) becomes a section
    saying why, with a `CartliftWarning`, so one part does not cost the whole report; any other
    error is a bug and propagates.
    """
    chosen = parts or (
        ("analytics", lambda s: analytics_sections(s, unit=unit)),
        ("experiments", experiments_sections),
        ("abandonment prediction", prediction_sections),
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
