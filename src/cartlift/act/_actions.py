"""The catalog of next-best actions for an abandoned cart: what each costs, how it reaches the customer.

An action's economics enter the profit of a cart ``i`` as

    profit_i(a) = P(buy | a, x_i) * (margin_i - discount_a(value_i)) - cost_a,

where ``margin_i = value_i - cost of goods_i`` and ``discount_a(v) = share_a * v + min(amount_a, v)``
is given away only when the customer buys; ``cost_a`` (sending the message) is paid either way.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Final

import numpy as np

from cartlift._params import Constraint, Interval, Options, validate_params
from cartlift.errors import InvalidParameterError

__all__ = ["CHANNELS", "DEFAULT_ACTIONS", "KINDS", "Action", "ActionCatalog"]

CHANNELS: Final = ("none", "email", "sms", "any")
"""How an action reaches the customer; ``any`` is e-mail when the customer allows it, else SMS."""

KINDS: Final = ("nothing", "reminder", "coupon", "offer", "recommendation")
"""What an action is; ``coupon`` and ``offer`` give money away and fall under the coupon rules."""


@dataclass(frozen=True)
class Action:
    """One thing the store can do about an abandoned cart.

    Parameters
    ----------
    name : str
        Identifier, e.g. ``"coupon_10"`` (the simulator's `cartlift.simulate.ACTIONS` use the same names).
    kind : {"nothing", "reminder", "coupon", "offer", "recommendation"}
    channel : {"none", "email", "sms", "any"}
        ``any``: e-mail when the customer consented to it, else SMS.
    delay_hours : float
        When the message goes out after the cart was abandoned (quiet hours apply to that moment).
    discount_share : float
        Share of the cart value given away when the customer buys (0.10 for a 10 % coupon).
    discount_amount : float
        Fixed amount given away when the customer buys (capped at the cart value).
    email_cost, sms_cost : float
        What sending costs on each channel, paid whether the customer buys or not.
    """

    name: str
    kind: str = "reminder"
    channel: str = "email"
    delay_hours: float = 1.0
    discount_share: float = 0.0
    discount_amount: float = 0.0
    email_cost: float = 0.002
    sms_cost: float = 0.04

    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {
        "name": [str],
        "kind": [Options(KINDS)],
        "channel": [Options(CHANNELS)],
        "delay_hours": [Interval(float, 0, 24 * 30)],
        "discount_share": [Interval(float, 0, 1, closed="left")],
        "discount_amount": [Interval(float, 0, None)],
        "email_cost": [Interval(float, 0, None)],
        "sms_cost": [Interval(float, 0, None)],
    }

    def __post_init__(self) -> None:
        validate_params(self)
        if not self.name or not self.name.replace("_", "").isalnum():
            raise InvalidParameterError(
                f"The 'name' parameter of Action must be letters, digits and underscores. Got {self.name!r} instead."
            )
        gives = self.discount_share > 0 or self.discount_amount > 0
        if gives and self.kind not in ("coupon", "offer"):
            raise InvalidParameterError(
                f"Action {self.name!r} gives a discount but is of kind {self.kind!r}; use kind 'coupon' or 'offer'."
            )
        if (self.kind == "nothing") != (self.channel == "none"):
            raise InvalidParameterError(
                f"Action {self.name!r}: kind 'nothing' goes with channel 'none' and only with it. "
                f"Got kind {self.kind!r} and channel {self.channel!r}."
            )

    @property
    def is_coupon(self) -> bool:
        """Whether the action gives money away (coupon rules and the coupon budget apply)."""
        return self.kind in ("coupon", "offer")

    @property
    def is_message(self) -> bool:
        """Whether the action sends something (consent, quiet hours and frequency caps apply)."""
        return self.channel != "none"

    def discount(self, value: np.ndarray | float) -> np.ndarray:
        """Money given away on carts of ``value`` when the customer buys: ``share * v + min(amount, v)``."""
        v = np.asarray(value, dtype=float)
        return np.asarray(self.discount_share * v + np.minimum(self.discount_amount, v))

    def channel_for(self, email: np.ndarray | bool, sms: np.ndarray | bool) -> np.ndarray:
        """The channel actually used for customers with these consents ("" when none allows it)."""
        em = np.asarray(email, dtype=bool)
        sm = np.asarray(sms, dtype=bool)
        if self.channel == "none":
            return np.full(np.broadcast(em, sm).shape, "none", dtype=object)
        if self.channel == "email":
            return np.where(em, "email", "")
        if self.channel == "sms":
            return np.where(sm, "sms", "")
        return np.where(em, "email", np.where(sm, "sms", ""))

    def channel_of(self, email: bool, sms: bool) -> str:
        """`channel_for` of one customer, in plain Python (the live path)."""
        if self.channel == "none":
            return "none"
        if self.channel == "email":
            return "email" if email else ""
        if self.channel == "sms":
            return "sms" if sms else ""
        return "email" if email else ("sms" if sms else "")

    def cost(self, email: np.ndarray | bool, sms: np.ndarray | bool) -> np.ndarray:
        """Sending cost for customers with these consents (0 when the message cannot be sent)."""
        used = self.channel_for(email, sms)
        return np.where(used == "email", self.email_cost, np.where(used == "sms", self.sms_cost, 0.0))


def _default_actions() -> tuple[Action, ...]:
    # names, channels and discounts match the simulator's ACTIONS, so its truth can score them
    return (
        Action("nothing", kind="nothing", channel="none", delay_hours=0.0),
        Action("reminder_email_1h", kind="reminder", channel="email", delay_hours=1.0),
        Action("reminder_email_24h", kind="reminder", channel="email", delay_hours=24.0),
        Action("reminder_sms_1h", kind="reminder", channel="sms", delay_hours=1.0),
        Action("coupon_5", kind="coupon", channel="any", delay_hours=1.0, discount_share=0.05),
        Action("coupon_10", kind="coupon", channel="any", delay_hours=1.0, discount_share=0.10),
        Action("coupon_15", kind="coupon", channel="any", delay_hours=1.0, discount_share=0.15),
        Action("limited_time_offer", kind="offer", channel="any", delay_hours=1.0, discount_share=0.10),
        Action("recommendation_block", kind="recommendation", channel="any", delay_hours=1.0),
    )


DEFAULT_ACTIONS: Final[tuple[Action, ...]] = _default_actions()
"""The default catalog: nothing, three reminders, 5/10/15 % coupons, a limited-time offer, a
recommendation block. E-mail costs 0.002 and SMS 0.04 per message (typical bulk prices)."""


class ActionCatalog(Sequence[Action]):
    """An ordered set of actions; the first one must be the do-nothing action (the control arm).

    Parameters
    ----------
    actions : iterable of Action, optional
        Default `DEFAULT_ACTIONS`. A fixed-amount coupon is ``Action("coupon_5_off", kind="coupon",
        channel="any", discount_amount=5.0)``.
    """

    def __init__(self, actions: Iterable[Action] | None = None) -> None:
        items = tuple(DEFAULT_ACTIONS if actions is None else actions)
        if not items or not all(isinstance(a, Action) for a in items):
            raise InvalidParameterError("An ActionCatalog needs at least one Action (and only Actions).")
        names = [a.name for a in items]
        if len(set(names)) != len(names):
            dupes = sorted({n for n in names if names.count(n) > 1})
            raise InvalidParameterError(f"Action names must be unique; repeated: {', '.join(dupes)}.")
        if items[0].kind != "nothing":
            raise InvalidParameterError(
                f"The first action of a catalog must be the do-nothing action (the control). Got {items[0].name!r}."
            )
        self._actions = items
        self._index = {a.name: i for i, a in enumerate(items)}
        # per-action constants as arrays: discounts and costs of many carts in a few NumPy operations
        self._share = np.array([a.discount_share for a in items])
        self._amount = np.array([a.discount_amount for a in items])
        self._email_cost = np.array([a.email_cost for a in items])
        self._sms_cost = np.array([a.sms_cost for a in items])
        self._channel = np.array([a.channel for a in items])

    def __len__(self) -> int:
        return len(self._actions)

    def __getitem__(self, i: Any) -> Any:
        return self._actions[i]

    def __iter__(self) -> Iterator[Action]:
        return iter(self._actions)

    def __repr__(self) -> str:
        return f"ActionCatalog({', '.join(self.names)})"

    @property
    def names(self) -> list[str]:
        """Action names in catalog order."""
        return [a.name for a in self._actions]

    def index(self, name: Any, start: int = 0, stop: int | None = None) -> int:
        """Position of the action called ``name``; unknown names raise with the list of known ones."""
        try:
            return self._index[name]
        except KeyError:
            raise InvalidParameterError(
                f"Unknown action {name!r}. Use one of: {', '.join(self.names)}."
            ) from None

    def indices(self, names: Iterable[Any]) -> np.ndarray:
        """Positions of many action names (unknown names raise)."""
        return np.array([self.index(n) for n in np.asarray(list(names), dtype=object)], dtype=np.int64)

    def get(self, name: str) -> Action:
        """The action called ``name``."""
        return self._actions[self.index(name)]

    def discounts(self, value: np.ndarray) -> np.ndarray:
        """Money given away per cart and action if bought, shape (n_carts, n_actions)."""
        v = np.asarray(value, dtype=float).reshape(-1, 1)
        return np.asarray(self._share * v + np.minimum(self._amount, v))

    def costs(self, email: np.ndarray, sms: np.ndarray) -> np.ndarray:
        """Sending cost per cart and action, shape (n_carts, n_actions)."""
        used = self._used(email, sms)
        return np.where(used == 1, self._email_cost, np.where(used == 2, self._sms_cost, 0.0))

    def reachable(self, email: np.ndarray, sms: np.ndarray) -> np.ndarray:
        """Whether each action can reach each customer given their consents, shape (n_carts, n_actions)."""
        used = self._used(email, sms)
        return np.asarray((used > 0) | (self._channel == "none"))

    def _used(self, email: np.ndarray, sms: np.ndarray) -> np.ndarray:
        """Channel used per cart and action: 0 none, 1 e-mail, 2 SMS, shape (n_carts, n_actions)."""
        em = np.asarray(email, dtype=bool).reshape(-1, 1)
        sm = np.asarray(sms, dtype=bool).reshape(-1, 1)
        ch = self._channel
        by_email = (ch == "email") | (ch == "any")
        by_sms = (ch == "sms") | ((ch == "any") & ~em)
        return np.where(by_email & em, 1, np.where(by_sms & sm, 2, 0))

    def expected_profit(
        self,
        p_buy: np.ndarray,
        value: np.ndarray,
        margin: np.ndarray,
        email: np.ndarray,
        sms: np.ndarray,
    ) -> np.ndarray:
        """``P(buy | a) * (margin - discount_a) - cost_a`` per cart and action, shape (n_carts, n_actions).

        Parameters
        ----------
        p_buy : ndarray, shape (n_carts, n_actions)
            Probability that the cart is bought within the outcome window under each action.
        value, margin : ndarray, shape (n_carts,)
            Cart value and gross margin (value minus cost of goods).
        email, sms : ndarray of bool, shape (n_carts,)
            Consents; an action that cannot reach the customer costs nothing.
        """
        p = np.asarray(p_buy, dtype=float)
        m = np.asarray(margin, dtype=float)[:, None]
        return np.asarray(p * (m - self.discounts(value)) - self.costs(email, sms))

    def to_dicts(self) -> list[dict[str, Any]]:
        """The catalog as plain dicts (for JSON and the model file)."""
        return [
            {
                "name": a.name,
                "kind": a.kind,
                "channel": a.channel,
                "delay_hours": a.delay_hours,
                "discount_share": a.discount_share,
                "discount_amount": a.discount_amount,
                "email_cost": a.email_cost,
                "sms_cost": a.sms_cost,
            }
            for a in self._actions
        ]

    @classmethod
    def from_dicts(cls, rows: Iterable[dict[str, Any]]) -> ActionCatalog:
        """The inverse of `to_dicts`."""
        return cls(Action(**row) for row in rows)
