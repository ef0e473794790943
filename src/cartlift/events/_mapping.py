"""Column mappings: load a file whose columns and event names are the store's own words, not ours.

A store's export rarely uses cartlift's column names (``Event Time`` for ``ts``, ``Customer``
for ``user_id``) or event names (``add_to_cart`` for ``cart_add``). A `ColumnMapping` says which
source column fills each canonical column, which source event name means which event type, and
which canonical columns hold one constant value (an order export has no event type column: every
row is a ``purchase``). `ColumnMapping.to_format` turns it into an ordinary `Format`, so a mapped
file goes through the same validation, id rule and quarantine as every other source.

The same mapping is given on the command line (``--map ts="Event Time",user_id=Customer
--event-type add_to_cart=cart_add``) or in a TOML file (``--mapping shop.toml``)::

    time_format = "%d/%m/%Y %H:%M"   # optional, before the tables: strptime format of the time

    [columns]            # canonical column = source column
    ts = "Event Time"
    user_id = "Customer"

    [event_types]        # source event name = canonical event type
    add_to_cart = "cart_add"

    [constants]          # canonical column = the value of every row
    event_type = "purchase"
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from cartlift.errors import DataError, InvalidParameterError
from cartlift.events._formats import Format, quote_ident
from cartlift.events._schema import EVENT_TYPES

__all__ = ["MAPPABLE_COLUMNS", "ColumnMapping", "merge", "parse_pairs", "read_mapping"]

MAPPABLE_COLUMNS: Final = (
    "event_id",
    "ts",
    "user_id",
    "session_id",
    "event_type",
    "product_id",
    "quantity",
    "price",
    "order_id",
    "channel",
    "device",
    "properties",
    "title",
    "category",
    "brand",
)
"""The canonical columns a mapping may fill (the event columns and the product attributes)."""

_REQUIRED: Final = ("ts", "user_id", "event_type")

_TIME_SQL: Final = (
    "coalesce(try_cast({c} AS TIMESTAMPTZ) AT TIME ZONE 'UTC',"
    " try_cast(replace(replace({c}, 'T', ' '), 'Z', '') AS TIMESTAMP),"
    # seconds or milliseconds since the epoch, as exports from analytics tools carry them
    " CASE WHEN try_cast({c} AS DOUBLE) > 1e11 THEN to_timestamp(try_cast({c} AS DOUBLE) / 1000)::TIMESTAMP"
    " ELSE to_timestamp(try_cast({c} AS DOUBLE))::TIMESTAMP END)"
)


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


@dataclass(frozen=True)
class ColumnMapping:
    """How a source's columns and event names map onto the event model.

    Parameters
    ----------
    columns : mapping of str to str
        Canonical column -> source column. Canonical columns not given are read from a source
        column of their own name when the file has one.
    event_types : mapping of str to str
        Source event name (matched case-insensitively, trimmed) -> canonical event type. Names not
        given pass through, so a source that already says ``view`` needs no entry for it.
    constants : mapping of str to str
        Canonical column -> a value every row gets (``event_type = "purchase"`` for an order export).
    time_format : str, optional
        A strptime format for the time column, when it is neither ISO 8601 nor epoch seconds.
    name : str
        Recorded as the load's format (``mapped`` or ``mapped:FILE``).
    """

    columns: Mapping[str, str] = field(default_factory=dict)
    event_types: Mapping[str, str] = field(default_factory=dict)
    constants: Mapping[str, str] = field(default_factory=dict)
    time_format: str | None = None
    name: str = "mapped"

    def __post_init__(self) -> None:
        for where, names in (("--map", self.columns), ("[constants]", self.constants)):
            unknown = [c for c in names if c not in MAPPABLE_COLUMNS]
            if unknown:
                raise InvalidParameterError(
                    f"{where} names unknown column(s) {', '.join(map(repr, unknown))}; "
                    f"the columns a mapping can fill are: {', '.join(MAPPABLE_COLUMNS)}."
                )
        both = sorted(set(self.columns) & set(self.constants))
        if both:
            raise InvalidParameterError(
                f"{', '.join(both)} is given both a source column and a constant; keep one of them."
            )
        wrong = {k: v for k, v in self.event_types.items() if v not in EVENT_TYPES}
        if wrong:
            raise InvalidParameterError(
                f"--event-type maps onto unknown type(s) {', '.join(map(repr, wrong.values()))}; "
                f"the event types are: {', '.join(EVENT_TYPES)}."
            )

    def source_column(self, canonical: str) -> str:
        """The source column read for ``canonical`` (its own name when not mapped)."""
        return self.columns.get(canonical, canonical)

    def to_format(self, header: Sequence[str]) -> Format:
        """The `Format` that reads a source with this ``header`` through the mapping.

        Canonical columns neither mapped nor constant are read from a column of their own name
        when ``header`` has one; ``ts``, ``user_id`` and ``event_type`` must come from somewhere,
        or a `DataError` says how to give them. A mapped column missing from the file is refused
        by the loader, naming it.
        """
        present = set(header)
        select: dict[str, str] = {}
        raw: list[str] = []
        optional: list[str] = []
        for canonical in MAPPABLE_COLUMNS:
            if canonical in self.constants:
                select[canonical] = _lit(str(self.constants[canonical]))
                continue
            source = self.source_column(canonical)
            mapped = canonical in self.columns
            if not mapped and source not in present:
                if canonical in _REQUIRED:
                    raise DataError(
                        f"The source has no {canonical!r} column and the mapping gives none: add "
                        f"--map {canonical}=COLUMN (one of: {', '.join(header[:12])}), or a constant in a "
                        f'--mapping file ([constants] {canonical} = "...").'
                    )
                continue
            if source not in raw:
                raw.append(source)
            if not mapped and canonical not in _REQUIRED:
                optional.append(source)
            select[canonical] = self._expression(canonical, quote_ident(source))
        return Format(
            name=self.name,
            columns=tuple(raw),
            select=select,
            event_map={k.strip().lower(): v for k, v in self.event_types.items()},
            optional_columns=tuple(optional),
        )

    def _expression(self, canonical: str, column: str) -> str:
        """SQL building one canonical column from its (text) source column."""
        if canonical == "ts":
            if self.time_format:
                return f"try_strptime({column}, {_lit(self.time_format)})"
            return _TIME_SQL.format(c=column)
        if canonical in ("event_id", "session_id", "order_id", "channel", "device", "properties"):
            return f"nullif(trim({column}), '')"
        if canonical in ("title", "category", "brand"):
            return f"nullif(trim({column}), '')"
        if canonical == "price":
            # exports often put a currency sign first ("$12.50", "€ 12.50"); a thousands separator
            # stays, and is refused as unparseable, since "1,299" means 1.299 in half the world
            return f"nullif(regexp_replace(trim({column}), '^[^0-9.+-]+', ''), '')"
        return column


def parse_pairs(pairs: Sequence[str], option: str) -> dict[str, str]:
    """``["a=b,c=d", "e=f"]`` -> ``{"a": "b", "c": "d", "e": "f"}`` (quotes around values are removed).

    A source column name that holds a comma is written in a ``--mapping`` file instead.
    """
    out: dict[str, str] = {}
    for chunk in pairs:
        for pair in chunk.split(","):
            if not pair.strip():
                continue
            key, sep, value = pair.partition("=")
            if not sep or not key.strip() or not value.strip():
                raise InvalidParameterError(
                    f"{option} takes NAME=VALUE pairs separated by commas; got {pair.strip()!r}."
                )
            out[key.strip()] = value.strip().strip("'\"")
    return out


def read_mapping(path: str | Path) -> ColumnMapping:
    """The `ColumnMapping` of a TOML mapping file (see the module docstring for its shape)."""
    source = Path(path)
    try:
        data: dict[str, Any] = tomllib.loads(source.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidParameterError(f"No such mapping file: {str(source)!r}.") from None
    except tomllib.TOMLDecodeError as e:
        raise InvalidParameterError(f"The mapping file {str(source)!r} is not valid TOML: {e}.") from None
    known = {"columns", "event_types", "constants", "time_format"}
    extra = sorted(set(data) - known)
    if extra:
        raise InvalidParameterError(
            f"The mapping file {str(source)!r} has unknown key(s) {', '.join(extra)}; "
            f"it may hold: {', '.join(sorted(known))}."
        )
    tables = {}
    for name in ("columns", "event_types", "constants"):
        table = data.get(name, {})
        if isinstance(table, dict) and "time_format" in table:
            # TOML puts a key written after a [table] into that table
            raise InvalidParameterError(
                f"time_format in {str(source)!r} is inside [{name}]; write it above the first [table]."
            )
        if not isinstance(table, dict) or not all(isinstance(v, str | int | float) for v in table.values()):
            raise InvalidParameterError(
                f'[{name}] in {str(source)!r} must be a table of NAME = "VALUE" entries.'
            )
        tables[name] = {str(k): str(v) for k, v in table.items()}
    time_format = data.get("time_format")
    if time_format is not None and not isinstance(time_format, str):
        raise InvalidParameterError(
            f'time_format in {str(source)!r} must be a string, e.g. "%d/%m/%Y %H:%M".'
        )
    return ColumnMapping(
        columns=tables["columns"],
        event_types=tables["event_types"],
        constants=tables["constants"],
        time_format=time_format,
        name=f"mapped:{source.name}",
    )


def merge(
    base: ColumnMapping | None, columns: Mapping[str, str], event_types: Mapping[str, str]
) -> ColumnMapping:
    """``base`` (from a file) with command-line ``--map`` and ``--event-type`` pairs on top."""
    if base is None:
        return ColumnMapping(columns=dict(columns), event_types=dict(event_types))
    return ColumnMapping(
        columns={**base.columns, **columns},
        event_types={**base.event_types, **event_types},
        constants={k: v for k, v in base.constants.items() if k not in columns},
        time_format=base.time_format,
        name=base.name,
    )
