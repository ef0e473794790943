"""Funnel steps, exclusions, windows and date bounds: parsing and the SQL predicates they become."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from cartlift.errors import InvalidParameterError
from cartlift.events import EVENT_TYPES

__all__ = [
    "Exclusion",
    "Step",
    "parse_bound",
    "parse_duration",
    "parse_exclusion",
    "parse_step",
    "parse_steps",
]

EVENT_FILTER_COLUMNS = ("product_id", "channel", "device", "order_id")
PRODUCT_FILTER_COLUMNS = ("category", "brand", "title")
FILTER_COLUMNS = EVENT_FILTER_COLUMNS + PRODUCT_FILTER_COLUMNS


def _lit(value: Any) -> str:
    return "'" + str(value).replace("'", "''") + "'"


@dataclass(frozen=True)
class Step:
    """One step of a funnel: events of some types, optionally restricted by column values.

    Parameters
    ----------
    event_types : str or tuple of str
        The event type(s) that complete this step (any of them).
    name : str, optional
        Shown in results; default the event types joined by ``|`` plus the filters.
    where : mapping of str to str or list of str
        Equality (or membership for a list) on event columns (product_id, channel, device,
        order_id) or catalog columns (category, brand, title), e.g.
        ``{"category": ["electronics.smartphone"]}``.

    Examples
    --------
    >>> Step("view", where={"brand": "apple"}).name
    'view[brand=apple]'
    """

    event_types: tuple[str, ...]
    name: str = ""
    where: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def __init__(
        self,
        event_types: str | Sequence[str],
        name: str | None = None,
        where: Mapping[str, str | Sequence[str]] | None = None,
    ) -> None:
        types = (event_types,) if isinstance(event_types, str) else tuple(event_types)
        if not types or not all(isinstance(t, str) and t for t in types):
            raise InvalidParameterError(
                f"A funnel step needs at least one event type (e.g. 'view'). Got {event_types!r} instead."
            )
        unknown = [t for t in types if t not in EVENT_TYPES]
        if unknown:
            raise InvalidParameterError(
                f"Unknown event type {unknown[0]!r} in a funnel step. Use one of {', '.join(EVENT_TYPES)}."
            )
        filters: dict[str, tuple[str, ...]] = {}
        for col, value in (where or {}).items():
            if col not in FILTER_COLUMNS:
                raise InvalidParameterError(
                    f"A funnel step cannot filter on {col!r}. Use one of {', '.join(FILTER_COLUMNS)}."
                )
            values = (value,) if isinstance(value, str) else tuple(str(v) for v in value)
            if not values:
                raise InvalidParameterError(f"The filter on {col!r} of a funnel step has no values.")
            filters[col] = values
        default = "|".join(types) + (
            "[" + ",".join(f"{c}={'|'.join(v)}" for c, v in filters.items()) + "]" if filters else ""
        )
        object.__setattr__(self, "event_types", types)
        object.__setattr__(self, "where", filters)
        object.__setattr__(self, "name", name or default)

    def __hash__(self) -> int:  # ``where`` is a dict, so hash its content
        return hash((self.event_types, tuple(sorted(self.where.items()))))

    @property
    def needs_products(self) -> bool:
        """True when the step filters on a catalog column (the events must be joined to products)."""
        return any(c in PRODUCT_FILTER_COLUMNS for c in self.where)

    def sql(self, events: str = "e", products: str = "p", quote: Callable[[str], str] = _lit) -> str:
        """The SQL predicate that is true on the events completing this step.

        ``quote`` writes a string literal (Spark SQL escapes quotes with a backslash, not by doubling).
        """
        types = ", ".join(quote(t) for t in self.event_types)
        parts = [f"{events}.event_type IN ({types})"]
        for col, values in self.where.items():
            alias = products if col in PRODUCT_FILTER_COLUMNS else events
            parts.append(f"{alias}.{col} IN ({', '.join(quote(v) for v in values)})")
        return "(" + " AND ".join(parts) + ")"


@dataclass(frozen=True)
class Exclusion:
    """Drop a unit from the funnel when it does ``step`` between two of its funnel steps.

    Parameters
    ----------
    step : Step or str
        The excluding event (e.g. ``"cart_remove"``).
    from_step, to_step : int
        1-based funnel steps; the unit is dropped when the excluding event happens after it
        reached ``from_step`` and before it reached ``to_step`` (or, if it never reached
        ``to_step``, before its conversion window closed). ``to_step=None`` means the last step.
    """

    step: Step
    from_step: int = 1
    to_step: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.step, str):
            object.__setattr__(self, "step", Step(self.step))
        if not isinstance(self.step, Step):
            raise InvalidParameterError(
                f"An exclusion's step must be a Step or an event type. Got {self.step!r} instead."
            )


def parse_step(text: str) -> Step:
    """A step from its command-line form: ``"cart_add"``, ``"view|cart_add"`` or ``"view:brand=apple"``.

    Several filters are separated by ``;`` and several values by ``|``:
    ``"purchase:category=electronics.smartphone|electronics.audio;brand=apple"``.
    """
    head, _, rest = text.partition(":")
    where: dict[str, list[str]] = {}
    if rest:
        for part in rest.split(";"):
            col, eq, values = part.partition("=")
            if not eq or not col.strip():
                raise InvalidParameterError(
                    f"Cannot read the step filter {part!r} in {text!r}: write column=value (e.g. brand=apple)."
                )
            where[col.strip()] = [v.strip() for v in values.split("|") if v.strip()]
    return Step([t.strip() for t in head.split("|") if t.strip()], where=where or None)


def parse_steps(values: Sequence[str]) -> list[Step]:
    """Steps from command-line values: each value is one step, or a comma-separated list of plain steps."""
    steps: list[Step] = []
    for value in values:
        parts = [value] if ":" in value else [v for v in value.split(",") if v.strip()]
        steps.extend(parse_step(p.strip()) for p in parts)
    return steps


def parse_exclusion(text: str) -> Exclusion:
    """An exclusion from its command-line form: ``"cart_remove"`` (between the first and last step) or
    ``"cart_remove@2-3"`` (between steps 2 and 3)."""
    head, at, span = text.rpartition("@")
    if not at:
        return Exclusion(parse_step(text))
    lo, dash, hi = span.partition("-")
    try:
        return Exclusion(parse_step(head), int(lo), int(hi) if dash else None)
    except ValueError:
        raise InvalidParameterError(
            f"Cannot read the exclusion {text!r}: write event@from-to with step numbers, e.g. cart_remove@2-3."
        ) from None


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|hour|hours|d|day|days|w|week|weeks)\s*$")
_UNIT_SECONDS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hour": 3600, "hours": 3600, "d": 86400}
_UNIT_SECONDS |= {"day": 86400, "days": 86400, "w": 604800, "week": 604800, "weeks": 604800}


def parse_duration(value: timedelta | str | float | None, what: str = "window") -> timedelta | None:
    """``"30m"``, ``"12h"``, ``"1d"``, ``"2w"``, a number of seconds, a timedelta, or None / ``"none"``."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "")):
        return None
    if isinstance(value, timedelta):
        out = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        out = timedelta(seconds=float(value))
    elif isinstance(value, str) and (m := _DURATION.match(value.lower())):
        out = timedelta(seconds=float(m.group(1)) * _UNIT_SECONDS[m.group(2)])
    else:
        raise InvalidParameterError(
            f"The {what} must be a duration such as '30m', '12h', '1d' or '2w' (or 'none'). Got {value!r} instead."
        )
    if out <= timedelta(0):
        raise InvalidParameterError(f"The {what} must be positive. Got {value!r} instead.")
    return out


def parse_bound(value: date | datetime | str | None, *, end: bool, what: str) -> datetime | None:
    """A start (inclusive) or end bound as a naive UTC datetime.

    A plain date as the *end* includes that whole day (``end=2019-10-07`` means up to
    2019-10-08 00:00 exclusive), so "from the 1st to the 7th" reads as people expect.
    """
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        try:
            parsed: date | datetime = (
                date.fromisoformat(text)
                if len(text) == 10
                else datetime.fromisoformat(text.replace("Z", "+00:00"))
            )
        except ValueError:
            raise InvalidParameterError(
                f"The {what} must be an ISO date or time such as 2019-10-01 or 2019-10-01T12:00. Got {value!r} instead."
            ) from None
        value = parsed
    if isinstance(value, datetime):
        # the store keeps naive UTC timestamps
        return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo is not None else value
    if isinstance(value, date):
        start = datetime(value.year, value.month, value.day)
        return start + timedelta(days=1) if end else start
    raise InvalidParameterError(
        f"The {what} must be a date, a datetime or an ISO string. Got {value!r} instead."
    )
