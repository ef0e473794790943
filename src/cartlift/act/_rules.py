"""Who may receive which action: consent, quiet hours, frequency caps, coupon budget and coupon rules.

`Rules` holds the store's constraints; a `Ledger` remembers what was already sent (messages per
customer, coupons per cart and customer, coupon money promised per day) and says, for one cart at
one moment, which actions are allowed and why the others are not. The ledger enforces every cap
*before* an action is taken, so caps hold whatever the policy asks for:

- frequency cap: a new message at send time ``t`` is allowed only when fewer than ``N`` messages
  lie within ``(t - 7 d, t + 7 d)``; then every 7-day window holds at most ``N`` messages, also
  with messages scheduled in the future (a 24 h reminder);
- coupon budget: the face value of the coupons issued on a (local) day, counted when issued (the
  worst case, every coupon redeemed), never exceeds ``coupon_budget_per_day``.
"""

from __future__ import annotations

import bisect
import hashlib
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from cartlift._params import Constraint, Interval, validate_params
from cartlift.act._actions import Action, ActionCatalog
from cartlift.errors import InvalidParameterError

__all__ = ["Ledger", "Rules"]

_WEEK = 7 * 86_400.0
_DAY = 86_400.0


def _hours(value: Any) -> bool:
    """None or a pair (start, end) of whole hours 0-23"""
    if value is None:
        return True
    return (
        isinstance(value, tuple)
        and len(value) == 2
        and all(isinstance(h, int) and not isinstance(h, bool) and 0 <= h <= 23 for h in value)
    )


def _channels(value: Any) -> bool:
    """a tuple of channel names out of 'email' and 'sms'"""
    return isinstance(value, tuple) and all(c in ("email", "sms") for c in value)


@dataclass(frozen=True)
class Rules:
    """The constraints every policy runs under.

    Parameters
    ----------
    require_consent : bool
        Send on a channel only to customers who consented to it (an action whose channel the
        customer refused is not allowed).
    quiet_hours : tuple of int or None
        ``(start, end)`` local hours in which no message on ``quiet_channels`` may go out
        (``(21, 8)``: from 21:00 to 08:00). The moment that counts is the send time (decision
        time plus the action's delay).
    quiet_channels : tuple of str
        Channels quiet hours apply to (default SMS only, as in most SMS regulations).
    utc_offset_hours : float
        The store's local time minus UTC, for quiet hours and the budget's day.
    max_messages_per_week : int or None
        At most this many messages per customer in any 7 days (None: no cap).
    coupon_budget_per_day : float or None
        Face value of coupons that may be issued per local day (None: no budget).
    min_cart_value_for_coupon : float
        Coupons and offers only for carts worth at least this much.
    one_coupon_per_cart : bool
        A cart that already received a coupon gets no second one.
    one_active_coupon_per_customer : bool
        No new coupon while the customer holds one that has not expired.
    coupon_ttl_hours : float
        A coupon code expires this long after it is issued.
    """

    require_consent: bool = True
    quiet_hours: tuple[int, int] | None = (21, 8)
    quiet_channels: tuple[str, ...] = ("sms",)
    utc_offset_hours: float = 0.0
    max_messages_per_week: int | None = 3
    coupon_budget_per_day: float | None = None
    min_cart_value_for_coupon: float = 20.0
    one_coupon_per_cart: bool = True
    one_active_coupon_per_customer: bool = True
    coupon_ttl_hours: float = 72.0

    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {
        "require_consent": [bool],
        "quiet_hours": [_hours],
        "quiet_channels": [_channels],
        "utc_offset_hours": [Interval(float, -14, 14)],
        "max_messages_per_week": [None, Interval(int, 0, None)],
        "coupon_budget_per_day": [None, Interval(float, 0, None)],
        "min_cart_value_for_coupon": [Interval(float, 0, None)],
        "one_coupon_per_cart": [bool],
        "one_active_coupon_per_customer": [bool],
        "coupon_ttl_hours": [Interval(float, 0, None, closed="neither")],
    }

    def __post_init__(self) -> None:
        validate_params(self)

    def in_quiet_hours(self, send_ts: float) -> bool:
        """Whether a send time (epoch seconds, UTC) falls in the quiet hours."""
        if self.quiet_hours is None:
            return False
        start, end = self.quiet_hours
        hour = int(((send_ts / 3600.0) + self.utc_offset_hours) % 24)
        return (start <= hour < end) if start <= end else (hour >= start or hour < end)

    def local_day(self, ts: float) -> int:
        """The local day number of an epoch-seconds time (the coupon budget's day)."""
        return int((ts + self.utc_offset_hours * 3600.0) // _DAY)

    def to_dict(self) -> dict[str, Any]:
        """The rules as a plain dict (JSON)."""
        return {
            "require_consent": self.require_consent,
            "quiet_hours": None if self.quiet_hours is None else list(self.quiet_hours),
            "quiet_channels": list(self.quiet_channels),
            "utc_offset_hours": self.utc_offset_hours,
            "max_messages_per_week": self.max_messages_per_week,
            "coupon_budget_per_day": self.coupon_budget_per_day,
            "min_cart_value_for_coupon": self.min_cart_value_for_coupon,
            "one_coupon_per_cart": self.one_coupon_per_cart,
            "one_active_coupon_per_customer": self.one_active_coupon_per_customer,
            "coupon_ttl_hours": self.coupon_ttl_hours,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Rules:
        """The inverse of `to_dict`."""
        d = dict(data)
        if d.get("quiet_hours") is not None:
            d["quiet_hours"] = tuple(d["quiet_hours"])
        if "quiet_channels" in d:
            d["quiet_channels"] = tuple(d["quiet_channels"])
        return cls(**d)


@dataclass
class Ledger:
    """What was already sent and promised, so the rules can be checked for the next cart.

    Build an empty one for a fresh run, or `Ledger.from_decisions` to continue from a store's
    ``decisions`` table. `allowed` says which actions one cart may receive now; `record` books a
    taken action.
    """

    rules: Rules = field(default_factory=Rules)
    messages: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    coupon_spend: dict[int, float] = field(default_factory=lambda: defaultdict(float))
    coupon_carts: set[str] = field(default_factory=set)
    coupon_expiry: dict[str, float] = field(default_factory=dict)
    codes: set[str] = field(default_factory=set)

    def allowed(
        self,
        catalog: ActionCatalog,
        *,
        ts: float,
        user_id: str,
        cart_id: str,
        value: float,
        email: bool,
        sms: bool,
    ) -> list[str]:
        """For each action of ``catalog``, ``""`` when allowed, else the reason it is not.

        Parameters
        ----------
        ts : float
            Decision time, epoch seconds (UTC).
        user_id, cart_id : str
        value : float
            Cart value (for the coupon minimum and the budget).
        email, sms : bool
            The customer's consents.
        """
        return [self._why_not(a, ts, user_id, cart_id, value, email, sms) for a in catalog]

    def _why_not(
        self, action: Action, ts: float, user: str, cart: str, value: float, email: bool, sms: bool
    ) -> str:
        r = self.rules
        if action.is_message:
            used = action.channel_of(email, sms) if r.require_consent else _any_channel(action)
            if not used:
                return f"no {action.channel.replace('any', 'e-mail or SMS')} consent"
            send = ts + action.delay_hours * 3600.0
            if used in r.quiet_channels and r.in_quiet_hours(send):
                return f"quiet hours for {used}"
            cap = r.max_messages_per_week
            if cap is not None:
                sent = self.messages.get(user, [])
                near = bisect.bisect_left(sent, send + _WEEK) - bisect.bisect_right(sent, send - _WEEK)
                if near >= cap:
                    return f"frequency cap ({cap} messages a week)"
        if action.is_coupon:
            if value < r.min_cart_value_for_coupon:
                return f"cart below {r.min_cart_value_for_coupon:g} for a coupon"
            if r.one_coupon_per_cart and cart in self.coupon_carts:
                return "cart already has a coupon"
            if r.one_active_coupon_per_customer and self.coupon_expiry.get(user, -np.inf) > ts:
                return "customer holds an unexpired coupon"
            if r.coupon_budget_per_day is not None:
                face = float(action.discount(value))
                spent = self.coupon_spend.get(r.local_day(ts), 0.0)
                if spent + face > r.coupon_budget_per_day + 1e-9:
                    return f"daily coupon budget ({r.coupon_budget_per_day:g}) would be exceeded"
        return ""

    def record(
        self,
        action: Action,
        *,
        ts: float,
        user_id: str,
        cart_id: str,
        value: float,
        decision_id: str,
        email: bool = True,
        sms: bool = True,
    ) -> tuple[str | None, float | None]:
        """Book a taken action; returns the coupon code and its expiry (epoch s) when one was issued."""
        r = self.rules
        if action.is_message:
            send = ts + action.delay_hours * 3600.0
            bisect.insort(self.messages[user_id], send)
        if not action.is_coupon:
            return None, None
        self.coupon_carts.add(cart_id)
        expires = ts + r.coupon_ttl_hours * 3600.0
        self.coupon_expiry[user_id] = max(expires, self.coupon_expiry.get(user_id, -np.inf))
        self.coupon_spend[r.local_day(ts)] += float(action.discount(value))
        return self._new_code(decision_id, user_id), expires

    def _new_code(self, decision_id: str, user_id: str) -> str:
        # a code derived from the decision and the customer: unique per customer and unguessable
        # without the decision id; the counter resolves the (astronomically rare) collision
        salt = 0
        while True:
            digest = hashlib.blake2b(f"{decision_id}|{user_id}|{salt}".encode(), digest_size=8).hexdigest()
            code = "CL-" + digest[:12].upper()
            if code not in self.codes:
                self.codes.add(code)
                return code
            salt += 1

    @classmethod
    def from_decisions(cls, decisions: pd.DataFrame, rules: Rules, catalog: ActionCatalog) -> Ledger:
        """Rebuild the ledger from a ``decisions`` table (columns ts, user_id, cart_id, action, coupon_code,
        coupon_expires_at, discount_value); actions not in ``catalog`` are skipped."""
        ledger = cls(rules=rules)
        if decisions.empty:
            return ledger
        ts = _epoch_seconds(decisions["ts"])
        expiry = _epoch_seconds(decisions["coupon_expires_at"]) if "coupon_expires_at" in decisions else None
        known = set(catalog.names)
        actions = decisions["action"].astype(str).to_numpy()
        users = decisions["user_id"].astype(str).to_numpy()
        carts = decisions["cart_id"].astype(str).to_numpy()
        channels = decisions["channel"].fillna("").astype(str).to_numpy() if "channel" in decisions else None
        codes = decisions["coupon_code"].to_numpy(dtype=object) if "coupon_code" in decisions else None
        faces = (
            decisions["discount_value"].fillna(0.0).to_numpy(dtype=float)
            if "discount_value" in decisions
            else None
        )
        for i in range(len(decisions)):
            if actions[i] not in known:
                continue
            action = catalog.get(actions[i])
            # a message counts when it went out on a channel (a refused channel sends nothing)
            if action.is_message and (channels is None or channels[i] not in ("", "none")):
                bisect.insort(ledger.messages[users[i]], ts[i] + action.delay_hours * 3600.0)
            if action.is_coupon and codes is not None and isinstance(codes[i], str) and codes[i]:
                ledger.coupon_carts.add(carts[i])
                ledger.codes.add(codes[i])
                if expiry is not None and np.isfinite(expiry[i]):
                    ledger.coupon_expiry[users[i]] = max(
                        expiry[i], ledger.coupon_expiry.get(users[i], -np.inf)
                    )
                ledger.coupon_spend[rules.local_day(ts[i])] += 0.0 if faces is None else float(faces[i])
        return ledger


def _any_channel(action: Action) -> str:
    return "email" if action.channel in ("email", "any") else "sms"


def _epoch_seconds(values: pd.Series | Iterable[Any]) -> np.ndarray:
    """Epoch seconds of naive-UTC or aware timestamps."""
    s = pd.to_datetime(pd.Series(values), utc=True)
    return np.asarray((s - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy(), dtype=float)


def check_rules(rules: Any) -> Rules:
    """``rules`` or the default `Rules`; anything else raises."""
    if rules is None:
        return Rules()
    if not isinstance(rules, Rules):
        raise InvalidParameterError(f"rules must be a Rules or None. Got {type(rules).__name__} instead.")
    return rules
