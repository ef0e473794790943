"""The public building blocks of the report: a `Table` and a `Section`.

Every part of cartlift (analytics, experiments, recommendations, abandonment prediction ...)
contributes to the one HTML report by returning a list of `Section` objects; `write_report`
turns any list of sections into one self-contained file. A section knows nothing about HTML:
it holds plotly figures, pandas tables and plain-text notes, so it can be tested on its own.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from cartlift.errors import InvalidParameterError

__all__ = ["Section", "Table"]

_SLUG = re.compile(r"[^a-z0-9]+")


def slugify(text: str) -> str:
    """A lowercase anchor id made of letters, digits and dashes (``"RFM segments"`` -> ``"rfm-segments"``)."""
    return _SLUG.sub("-", text.lower()).strip("-") or "section"


@dataclass(frozen=True, eq=False)
class Table:
    """A table shown beside the charts of a section.

    Parameters
    ----------
    frame : pandas.DataFrame
        The rows to show (the index is not shown: put what matters in a column).
    title : str
        A short heading above the table.
    caption : str
        One sentence under the table saying how to read it.
    formats : mapping of str to str
        Python format specs per column, e.g. ``{"rate": ".1%", "value": ",.2f"}``; other floats
        are shown with 4 significant digits and integers with thousands separators.
    max_rows : int
        At most this many rows are shown; a note says how many were left out.
    """

    frame: pd.DataFrame
    title: str = ""
    caption: str = ""
    formats: Mapping[str, str] = field(default_factory=dict)
    max_rows: int = 50

    def __post_init__(self) -> None:
        if not isinstance(self.frame, pd.DataFrame):
            raise InvalidParameterError(
                f"Table.frame must be a pandas DataFrame. Got {type(self.frame).__name__} instead."
            )
        if self.max_rows < 1:
            raise InvalidParameterError(f"Table.max_rows must be >= 1. Got {self.max_rows!r} instead.")
        object.__setattr__(self, "formats", dict(self.formats))


@dataclass(frozen=True, eq=False)
class Section:
    """One titled part of the report: charts with their tables beside them, and notes.

    Parameters
    ----------
    title : str
        The heading (also the entry in the report's table of contents).
    figures : iterable of plotly.graph_objects.Figure
        Interactive charts, drawn in order.
    tables : iterable of Table or pandas.DataFrame
        The numbers behind the charts (a DataFrame is wrapped in a `Table` without a title).
    notes : iterable of str
        Plain-text paragraphs: definitions, caveats, what to do next. Text is escaped, never
        interpreted as HTML.
    warnings : iterable of str
        What the data cannot support (`cartlift.guardrails` messages), shown above everything
        else in the section so that no number is read without them.
    anchor : str, optional
        The id used in links to this section; default derived from the title.

    Examples
    --------
    >>> import pandas as pd
    >>> s = Section("Orders", tables=[pd.DataFrame({"day": ["mon"], "orders": [3]})], notes=["UTC days."])
    >>> s.anchor, len(s.tables)
    ('orders', 1)
    """

    title: str
    figures: tuple[Any, ...] = ()
    tables: tuple[Table, ...] = ()
    notes: tuple[str, ...] = ()
    anchor: str = ""
    warnings: tuple[str, ...] = ()

    def __init__(
        self,
        title: str,
        figures: Iterable[Any] = (),
        tables: Iterable[Table | pd.DataFrame] = (),
        notes: Iterable[str] | str = (),
        anchor: str | None = None,
        warnings: Iterable[str] = (),
    ) -> None:
        if not isinstance(title, str) or not title.strip():
            raise InvalidParameterError(f"A Section needs a non-empty title. Got {title!r} instead.")
        figs = tuple(figures)
        for fig in figs:
            if not hasattr(fig, "to_plotly_json"):
                raise InvalidParameterError(
                    f"Section {title!r}: figures must be plotly Figures. Got {type(fig).__name__} instead."
                )
        wrapped = tuple(t if isinstance(t, Table) else Table(t) for t in tables)
        object.__setattr__(self, "title", title)
        object.__setattr__(self, "figures", figs)
        object.__setattr__(self, "tables", wrapped)
        object.__setattr__(self, "notes", (notes,) if isinstance(notes, str) else tuple(notes))
        object.__setattr__(self, "anchor", slugify(anchor or title))
        object.__setattr__(self, "warnings", tuple(warnings))
