"""Cart features incrementally: a small per-session state updated one event at a time.

The state holds running counts and integer sums (cents, microseconds) plus one short line per
product the session touched, which is all a live scorer needs to keep per open session. It gives
exactly the values of the batch SQL (``_batch.py``); ``tests/predict`` checks every feature of
every moment. Definitions: ``_spec.py``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

import pandas as pd

from cartlift.errors import DataError
from cartlift.predict._context import FIRST_VISIT, FeatureContext, ProductStats
from cartlift.predict._spec import EVENT_KINDS, FEATURE_NAMES

__all__ = ["SessionState"]

_EPOCH: Final = datetime(1970, 1, 1)
_US: Final = timedelta(microseconds=1)
_NAN: Final = math.nan
_NO_STATS: Final[ProductStats] = (0, 0, 0)


def _naive_utc(ts: Any) -> datetime:
    """A naive UTC datetime from a datetime, pandas Timestamp or ISO 8601 text."""
    if isinstance(ts, str):
        ts = pd.Timestamp(ts.replace("Z", "+00:00")).to_pydatetime()
    elif isinstance(ts, pd.Timestamp):
        ts = ts.to_pydatetime()
    if not isinstance(ts, datetime):
        raise DataError(f"An event's ts must be a datetime or ISO 8601 text. Got {ts!r} instead.")
    if ts.tzinfo is not None:
        ts = ts.astimezone(UTC).replace(tzinfo=None)
    return ts


def _text(value: Any) -> str | None:
    """Text of an optional field; None and NaN (pandas' missing value) are missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value)


class _Line:
    """One product of the session: its cart quantity, latest price and contribution to the totals."""

    __slots__ = ("carted", "contribution", "median", "net", "price_cents", "stats")

    def __init__(self, median: tuple[float, int] | None, stats: ProductStats, carted: bool) -> None:
        self.net = 0
        self.price_cents: int | None = None
        self.median = median
        self.stats = stats
        self.carted = carted
        # (items, qty, value, ratio numerator, ratio denominator, views, adds, buys, carted before)
        self.contribution: tuple[int, ...] = (0, 0, 0, 0, 0, 0, 0, 0, 0)


class SessionState:
    """The live cart features of one session, updated with each of its events.

    Parameters
    ----------
    context : FeatureContext, optional
        Where catalog medians, product snapshots and the customer's history come from (looked
        up once per product and once per session). Default: an empty context.

    Notes
    -----
    Feed the session's events in time order (ties in ``event_id`` order, as the store sorts
    them). Events are mappings with ``ts``, ``user_id``, ``session_id``, ``event_type`` and, as
    they apply, ``product_id``, ``quantity`` (default 1), ``price``, ``device``, ``channel``.

    Examples
    --------
    >>> from datetime import datetime
    >>> state = SessionState()
    >>> state.update({"ts": datetime(2026, 1, 5, 10, 0), "user_id": "u1", "session_id": "s1",
    ...               "event_type": "cart_add", "product_id": "p1", "price": 19.99})
    >>> state.features()["cart_value"]
    19.99
    """

    __slots__ = (
        "_carted",
        "_channel",
        "_context",
        "_counts",
        "_customer",
        "_day",
        "_device",
        "_first_add_us",
        "_first_us",
        "_gap_us",
        "_item",
        "_last_us",
        "_lines",
        "_max_gap_us",
        "_snapshot",
        "_totals",
        "_ts",
        "_vp_n",
        "_vp_sum",
        "session_id",
        "user_id",
    )

    def __init__(self, context: FeatureContext | None = None) -> None:
        self._context = context if context is not None else FeatureContext()
        self.session_id: str | None = None
        self.user_id: str | None = None
        # views, cart adds, cart removes, checkouts, purchases, other, events, distinct products
        self._counts = [0, 0, 0, 0, 0, 0, 0, 0]
        self._totals = [0, 0, 0, 0, 0, 0, 0, 0, 0]
        self._carted: frozenset[str] = frozenset()
        self._lines: dict[str, _Line] = {}
        self._first_us = 0
        self._last_us = 0
        self._max_gap_us = 0
        self._gap_us = 0
        self._first_add_us: int | None = None
        self._vp_sum = 0
        self._vp_n = 0
        self._device: str | None = None
        self._channel: str | None = None
        self._customer: tuple[float, ...] = FIRST_VISIT
        self._day: date | None = None
        self._snapshot: dict[str, ProductStats] = {}
        self._ts: datetime | None = None
        # the current event's price, price ratio, product views and conversion
        self._item: tuple[float, float, float, float] = (_NAN, _NAN, _NAN, _NAN)

    @property
    def n_events(self) -> int:
        """Events seen so far."""
        return self._counts[6]

    @property
    def cart_open(self) -> bool:
        """True when the cart holds at least one item."""
        return self._totals[0] > 0

    def update(self, event: Mapping[str, Any]) -> None:
        """Take the session's next event into the state."""
        ts = _naive_utc(event["ts"])
        us = (ts - _EPOCH) // _US
        kind = EVENT_KINDS.get(event["event_type"], 5)
        counts = self._counts
        if counts[6] == 0:
            self.session_id = str(event["session_id"])
            self.user_id = str(event["user_id"])
            self._first_us = self._last_us = us
            self._day = ts.date()
            self._snapshot = self._context.products(self._day)
            self._customer, self._carted = self._context.customer(self.user_id, ts)
        elif us < self._last_us:
            raise DataError(
                f"Events of session {self.session_id!r} must come in time order: got one at {ts} "
                f"after one at {self._ts}. Sort the session's events by (ts, event_id)."
            )
        counts[6] += 1
        counts[kind] += 1
        gap = us - self._last_us
        if gap > self._max_gap_us:
            self._max_gap_us = gap
        self._gap_us = gap
        self._last_us = us
        self._ts = ts
        if kind == 1 and self._first_add_us is None:
            self._first_add_us = us
        device, channel = _text(event.get("device")), _text(event.get("channel"))
        if device is not None:
            self._device = device
        if channel is not None:
            self._channel = channel
        price = event.get("price")
        if price is not None and not (isinstance(price, float) and math.isnan(price)):
            price = float(price)
            cents: int | None = math.floor(price * 100 + 0.5)
        else:
            price = cents = None
        if kind == 0 and cents is not None:
            self._vp_sum += cents
            self._vp_n += 1
        product = _text(event.get("product_id"))
        if product is None:
            self._item = (_NAN if price is None else price, _NAN, _NAN, _NAN)
            return
        line = self._lines.get(product)
        if line is None:
            line = _Line(
                self._context.median(product), self._snapshot.get(product, _NO_STATS), product in self._carted
            )
            self._lines[product] = line
            counts[7] += 1
        if cents is not None:
            line.price_cents = cents
        if kind == 4:  # a purchase empties the product's line
            line.net = 0
        elif kind == 1:
            line.net += int(event.get("quantity") or 1)
        elif kind == 2:
            line.net -= int(event.get("quantity") or 1)
        self._recount(line)
        views, _, buys = line.stats
        ratio = _NAN if price is None or line.median is None else price / line.median[0]
        self._item = (
            _NAN if price is None else price,
            ratio,
            float(views),
            buys / views if views > 0 else _NAN,
        )

    def _recount(self, line: _Line) -> None:
        """Replace the line's old contribution to the cart totals by its new one."""
        qty = line.net if line.net > 0 else 0
        held = 1 if qty > 0 else 0
        price = line.price_cents
        known = price is not None and line.median is not None and line.median[1] > 0
        views, adds, buys = line.stats
        new = (
            held,
            qty,
            qty * (price or 0),
            qty * price if known and price is not None else 0,
            qty * line.median[1] if known and line.median is not None else 0,
            held * views,
            held * adds,
            held * buys,
            1 if held and line.carted else 0,
        )
        totals = self._totals
        for i, (a, b) in enumerate(zip(new, line.contribution, strict=True)):
            totals[i] += a - b
        line.contribution = new

    def values(self) -> list[Any]:
        """The features now, in `FEATURE_NAMES` order (floats, or text/None for device and channel)."""
        if self._ts is None:
            raise DataError("The session has no events yet: call update() with its first event.")
        c, t = self._counts, self._totals
        n = c[6]
        us = self._last_us
        span = us - self._first_us
        items = t[0]
        return [
            float(n),
            float(c[0]),
            float(c[1]),
            float(c[2]),
            float(c[3]),
            float(c[4]),
            float(c[7]),
            c[1] / c[0] if c[0] > 0 else _NAN,
            float(items),
            float(t[1]),
            t[2] / 100,
            float(t[8]),
            t[3] / t[4] if t[4] > 0 else _NAN,
            self._vp_sum / (self._vp_n * 100) if self._vp_n > 0 else _NAN,
            self._item[0],
            self._item[1],
            span / 1_000_000,
            self._gap_us / 1_000_000,
            self._max_gap_us / 1_000_000,
            span / ((n - 1) * 1_000_000) if n > 1 else 0.0,
            _NAN if self._first_add_us is None else (us - self._first_add_us) / 1_000_000,
            float(self._ts.hour),
            float(self._ts.weekday()),
            self._device,
            self._channel,
            *self._customer,
            self._item[2],
            self._item[3],
            t[5] / items if items > 0 else _NAN,
            t[7] / t[5] if t[5] > 0 else _NAN,
            t[7] / t[6] if t[6] > 0 else _NAN,
        ]

    def features(self) -> dict[str, Any]:
        """The features now, by name."""
        return dict(zip(FEATURE_NAMES, self.values(), strict=True))
