"""What a simulated store looks like: the catalog's categories and every knob of the simulation.

All knobs live in one frozen :class:`SimulationConfig`, validated from one declared table
(``cartlift._params``), so a simulation is fully described by its config and its seed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime
from typing import Any, ClassVar, Final

from cartlift._params import Constraint, Interval, Options, validate_params
from cartlift.errors import InvalidParameterError

__all__ = [
    "ACTIONS",
    "ACTION_CHANNELS",
    "ACTION_DISCOUNTS",
    "DEFAULT_CATEGORIES",
    "RESPONSE_TYPES",
    "CategorySpec",
    "SimulationConfig",
]

RESPONSE_TYPES: Final = ("persuadable", "sure_thing", "lost_cause", "sleeping_dog")
"""How a customer reacts to being contacted about an abandoned cart.

``persuadable`` buys more often *because* of an action; ``sure_thing`` buys anyway;
``lost_cause`` does not buy whatever is done; ``sleeping_dog`` buys *less* when contacted.
"""

ACTIONS: Final = (
    "nothing",
    "reminder_email_1h",
    "reminder_email_24h",
    "reminder_sms_1h",
    "coupon_5",
    "coupon_10",
    "coupon_15",
    "limited_time_offer",
    "recommendation_block",
)
"""The actions a store can take on an abandoned cart, in the order of the truth table's columns."""

ACTION_DISCOUNTS: Final[dict[str, float]] = {
    "nothing": 0.0,
    "reminder_email_1h": 0.0,
    "reminder_email_24h": 0.0,
    "reminder_sms_1h": 0.0,
    "coupon_5": 0.05,
    "coupon_10": 0.10,
    "coupon_15": 0.15,
    "limited_time_offer": 0.10,
    "recommendation_block": 0.0,
}
"""Share of the cart value given away when the customer buys after the action."""

ACTION_CHANNELS: Final[dict[str, str]] = {
    "nothing": "none",
    "reminder_email_1h": "email",
    "reminder_email_24h": "email",
    "reminder_sms_1h": "sms",
    "coupon_5": "any",
    "coupon_10": "any",
    "coupon_15": "any",
    "limited_time_offer": "any",
    "recommendation_block": "any",
}
"""How each action reaches the customer: ``any`` is e-mail when allowed, else SMS.

A customer without consent for the channel never receives the message, so the action's
true effect on that customer is zero.
"""


@dataclass(frozen=True)
class CategorySpec:
    """One category of the catalog and the words its titles and descriptions are built from.

    Parameters
    ----------
    name : str
        The category as stored in ``products.category``.
    price_low, price_high : float
        Every price of the category lies in ``[price_low, price_high]`` (log-normal, truncated).
    margin_low, margin_high : float
        The gross margin ``(price - cost) / price`` is uniform in this range, within (0, 1).
    share : float
        Relative popularity of the category (the mean of customers' Dirichlet tastes).
    nouns, adjectives, features : tuple of str
        Title and description vocabulary. Adjectives also carry latent taste (customers who like
        one "Wireless" item tend to like another), so content recommenders find real signal.
    complements : tuple of str
        Categories browsed in the same session ("complete your cart" pairs).
    """

    name: str
    price_low: float
    price_high: float
    margin_low: float
    margin_high: float
    share: float
    nouns: tuple[str, ...]
    adjectives: tuple[str, ...]
    features: tuple[str, ...]
    complements: tuple[str, ...] = ()


def _cat(
    name: str,
    prices: tuple[float, float],
    margins: tuple[float, float],
    share: float,
    nouns: str,
    adjectives: str,
    features: str,
    complements: str = "",
) -> CategorySpec:
    def split(text: str) -> tuple[str, ...]:
        return tuple(w.strip() for w in text.split(",") if w.strip())

    return CategorySpec(
        name,
        prices[0],
        prices[1],
        margins[0],
        margins[1],
        share,
        split(nouns),
        split(adjectives),
        split(features),
        split(complements),
    )


DEFAULT_CATEGORIES: Final[tuple[CategorySpec, ...]] = (
    _cat(
        "phones",
        (89.0, 1399.0),
        (0.08, 0.20),
        0.9,
        "Smartphone, Phone",
        "5G, Compact, Rugged, Foldable, Dual-SIM, Flagship",
        "a bright OLED display, a long-lasting battery, a triple-lens camera, fast wireless charging",
        "phone-accessories, headphones",
    ),
    _cat(
        "laptops",
        (279.0, 2999.0),
        (0.06, 0.18),
        0.6,
        "Laptop, Notebook, Ultrabook",
        "Lightweight, Gaming, Business, Convertible, Thin",
        "a backlit keyboard, a full-HD screen, a solid-state drive, all-day battery life",
        "phone-accessories",
    ),
    _cat(
        "headphones",
        (15.0, 449.0),
        (0.20, 0.45),
        0.8,
        "Headphones, Earbuds, Headset",
        "Wireless, Noise-Cancelling, Over-Ear, Sport, Studio",
        "deep bass, active noise cancelling, a built-in microphone, a foldable design",
        "phones",
    ),
    _cat(
        "phone-accessories",
        (4.0, 79.0),
        (0.40, 0.70),
        1.2,
        "Case, Charger, Cable, Screen Protector, Power Bank",
        "Slim, Fast-Charging, Braided, Magnetic, Shockproof",
        "a lifetime warranty, reinforced corners, USB-C on both ends, a travel pouch",
        "phones, laptops",
    ),
    _cat(
        "kitchen",
        (9.0, 399.0),
        (0.30, 0.55),
        1.0,
        "Blender, Kettle, Frying Pan, Knife Set, Coffee Maker",
        "Stainless, Non-Stick, Electric, Cordless, Professional",
        "dishwasher-safe parts, an auto shut-off, an ergonomic handle, a two-year guarantee",
        "home-decor",
    ),
    _cat(
        "home-decor",
        (7.0, 249.0),
        (0.40, 0.65),
        0.9,
        "Lamp, Cushion, Vase, Rug, Wall Clock",
        "Scandinavian, Vintage, Minimalist, Handmade, Boho",
        "natural materials, a timeless look, easy-care fabric, a hand-finished surface",
        "kitchen",
    ),
    _cat(
        "shoes",
        (24.0, 249.0),
        (0.35, 0.60),
        1.1,
        "Sneakers, Boots, Sandals, Running Shoes, Loafers",
        "Waterproof, Leather, Lightweight, Trail, Classic",
        "a cushioned sole, breathable mesh, a grippy outsole, a padded collar",
        "apparel, sports",
    ),
    _cat(
        "apparel",
        (8.0, 149.0),
        (0.45, 0.70),
        1.4,
        "T-Shirt, Jeans, Hoodie, Jacket, Dress",
        "Organic, Slim-Fit, Oversized, Vintage, Stretch",
        "soft cotton, reinforced seams, a relaxed fit, recycled fibres",
        "shoes, beauty",
    ),
    _cat(
        "beauty",
        (4.0, 89.0),
        (0.50, 0.75),
        1.0,
        "Moisturizer, Serum, Lipstick, Shampoo, Perfume",
        "Vegan, Hydrating, Fragrance-Free, Matte, Organic",
        "hyaluronic acid, a light texture, dermatologist-tested formula, a refillable bottle",
        "apparel",
    ),
    _cat(
        "sports",
        (9.0, 599.0),
        (0.30, 0.55),
        0.8,
        "Yoga Mat, Dumbbells, Bike Helmet, Tent, Backpack",
        "Foldable, Adjustable, Ultralight, Outdoor, Pro",
        "a non-slip surface, weather-proof fabric, adjustable straps, a carry bag",
        "shoes, apparel",
    ),
    _cat(
        "toys",
        (5.0, 149.0),
        (0.35, 0.60),
        0.7,
        "Building Set, Puzzle, Board Game, Plush Toy, Race Car",
        "Educational, Wooden, Remote-Control, Creative, Classic",
        "non-toxic paint, pieces for ages 6+, a storage box, rechargeable batteries",
        "books",
    ),
    _cat(
        "books",
        (5.0, 59.0),
        (0.25, 0.45),
        0.9,
        "Novel, Cookbook, Biography, Travel Guide, Comic",
        "Bestselling, Illustrated, Hardcover, Paperback, Award-Winning",
        "a foreword by the author, full-colour photographs, an index, a ribbon bookmark",
        "toys",
    ),
)


def _is_mix(value: Any, keys: tuple[str, ...]) -> bool:
    if not isinstance(value, Mapping) or set(value) != set(keys):
        return False
    shares = list(value.values())
    ok = all(isinstance(s, int | float) and not isinstance(s, bool) and s >= 0 for s in shares)
    return ok and math.isclose(sum(shares), 1.0, abs_tol=1e-9)


def _response_mix(value: Any) -> bool:
    """a mapping of persuadable, sure_thing, lost_cause and sleeping_dog to shares >= 0 summing to 1"""
    return _is_mix(value, RESPONSE_TYPES)


def _device_mix(value: Any) -> bool:
    """a mapping of mobile, desktop and tablet to shares >= 0 summing to 1"""
    return _is_mix(value, DEVICES)


def _utc_datetime(value: Any) -> bool:
    """a timezone-aware datetime"""
    return isinstance(value, datetime) and value.tzinfo is not None


def _categories(value: Any) -> bool:
    """a non-empty tuple of CategorySpec with distinct names, 1 <= price_low < price_high, 0 < margin_low <= margin_high < 1, share > 0 and known complements"""
    if not isinstance(value, tuple) or not value or not all(isinstance(c, CategorySpec) for c in value):
        return False
    names = {c.name for c in value}
    return len(names) == len(value) and all(
        1.0 <= c.price_low < c.price_high
        and 0.0 < c.margin_low <= c.margin_high < 1.0
        and c.share > 0
        and c.nouns
        and c.adjectives
        and c.features
        and set(c.complements) <= names - {c.name}
        for c in value
    )


DEVICES: Final = ("mobile", "desktop", "tablet")
CHANNELS: Final = ("direct", "organic_search", "paid_search", "social", "email", "referral")


@dataclass(frozen=True)
class SimulationConfig:
    """Every knob of the simulated store; defaults give realistic marginals.

    Parameters
    ----------
    n_users : int
        Customers; each has at least one session.
    n_days : int
        Days of organic traffic from ``start``. Recovery visits of carts abandoned near the end
        may fall up to ``outcome_window_days`` later.
    start : datetime
        The first moment of the simulation (timezone-aware). The default lies in the past,
        because a store rejects events more than a day in the future.
    n_products : int
        Products in the catalog (at least one per category).
    brands_per_category : int
        Brands per category; a brand has a price premium and a latent taste direction.
    categories : tuple of CategorySpec
        The catalog's categories (``DEFAULT_CATEGORIES``: 12 of a general store).
    n_factors : int
        Dimension of the latent taste vectors of customers and products.
    taste_concentration : float
        Dirichlet concentration of category tastes: small values give customers who stick to
        few categories.
    sessions_per_day : float
        Mean visits per customer per active day (gamma-distributed across customers).
    views_per_session : float
        Mean product views in a session's main category (geometric, at least 1).
    complement_rate : float
        Probability that a session also browses a complementary category.
    cart_abandonment_rate : float
        Target share of sessions with a ``cart_add`` and no ``purchase`` (as
        ``EventStore.summary`` measures it). Intercepts are calibrated to hit it in expectation.
    conversion_rate : float
        Target share of sessions that end with a purchase. Must be below
        ``1 - cart_abandonment_rate``.
    checkout_completion : float
        P(purchase | checkout) of an average session; the rest abandon at checkout.
    returning_share : float
        Share of customers who already bought before ``start`` (they are "returning" from
        their first session on); the others arrive during the simulation.
    email_consent_rate, sms_consent_rate : float
        Share of customers who may be contacted by e-mail / SMS.
    device_mix : mapping
        Share of customers whose main device is mobile, desktop, tablet.
    response_mix : mapping
        Share of persuadables, sure things, lost causes and sleeping dogs.
    outcome_window_days : float
        An abandoned cart counts as recovered when it is bought within this many days.
    mean_lifetime_days : float
        One over the customers' mean drop-out rate: a customer with the mean rate keeps visiting
        this many days on average after arriving (or after ``start`` for an existing customer),
        then never again. ``inf`` (the default, so stores simulated before drop-out existed stay
        the same): nobody drops out. The demo uses 60.
    dropout_shape : float
        Shape of the gamma distribution of drop-out rates across customers (small: very
        unequal lifetimes).
    spend_spread : float
        Standard deviation across customers of a spend shift ``s``: a viewed product is added
        with ``s (0.5 + lp)`` more log-odds (``lp`` its log price relative to its category's
        median), so a customer with a high shift puts more and dearer products in the cart and
        spends more per order, the spend heterogeneity CLV's spend model describes (at 0.8 the
        customers' mean cart value runs from 91 to 194 USD across the shift's quartiles on the
        demo's store). 0 (the default, so a seed gives the store it gave before): customers
        differ in spend only through their price sensitivity.
    taste_top_k : int
        Products per customer in the ``truth_user_taste`` table.
    locale : {"en", "zh"}
        Language of the catalog's titles, descriptions, brands and categories. The products and
        their latent attributes are the same in both: only the words differ.
    """

    n_users: int = 5_000
    n_days: int = 30
    start: datetime = datetime(2026, 1, 1, tzinfo=UTC)
    n_products: int = 2_000
    brands_per_category: int = 8
    categories: tuple[CategorySpec, ...] = DEFAULT_CATEGORIES
    n_factors: int = 8
    taste_concentration: float = 0.5
    sessions_per_day: float = 0.15
    views_per_session: float = 5.0
    complement_rate: float = 0.25
    cart_abandonment_rate: float = 0.70
    conversion_rate: float = 0.03
    checkout_completion: float = 0.75
    returning_share: float = 0.4
    email_consent_rate: float = 0.6
    sms_consent_rate: float = 0.25
    device_mix: Mapping[str, float] = field(
        default_factory=lambda: {"mobile": 0.6, "desktop": 0.32, "tablet": 0.08}
    )
    response_mix: Mapping[str, float] = field(
        default_factory=lambda: {
            "persuadable": 0.30,
            "sure_thing": 0.15,
            "lost_cause": 0.45,
            "sleeping_dog": 0.10,
        }
    )
    outcome_window_days: float = 7.0
    mean_lifetime_days: float = float("inf")
    dropout_shape: float = 1.0
    spend_spread: float = 0.0
    taste_top_k: int = 20
    locale: str = "en"

    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {
        "n_users": [Interval(int, 1, None)],
        "n_days": [Interval(int, 1, 3650)],
        "start": [_utc_datetime],
        "n_products": [Interval(int, 1, 1_000_000)],
        "brands_per_category": [Interval(int, 1, 1000)],
        "categories": [_categories],
        "n_factors": [Interval(int, 1, 64)],
        "taste_concentration": [Interval(float, 0, None, closed="neither")],
        "sessions_per_day": [Interval(float, 0, 24, closed="neither")],
        "views_per_session": [Interval(float, 1, 40)],
        "complement_rate": [Interval(float, 0, 1)],
        "cart_abandonment_rate": [Interval(float, 0, 1, closed="neither")],
        "conversion_rate": [Interval(float, 0, 1, closed="neither")],
        "checkout_completion": [Interval(float, 0, 1, closed="neither")],
        "returning_share": [Interval(float, 0, 1)],
        "email_consent_rate": [Interval(float, 0, 1)],
        "sms_consent_rate": [Interval(float, 0, 1)],
        "device_mix": [_device_mix],
        "response_mix": [_response_mix],
        "outcome_window_days": [Interval(float, 0.25, 365)],
        "mean_lifetime_days": [Interval(float, 0, None, closed="neither")],
        "dropout_shape": [Interval(float, 0, 100, closed="right")],
        "spend_spread": [Interval(float, 0, 5)],
        "taste_top_k": [Interval(int, 1, None)],
        "locale": [Options(("en", "zh"))],
    }

    def validate(self) -> None:
        """Raise `InvalidParameterError` for the first bad knob, naming it and the value given."""
        validate_params(self)
        if self.n_products < len(self.categories):
            raise InvalidParameterError(
                f"The 'n_products' parameter of SimulationConfig must be at least the number of "
                f"categories ({len(self.categories)}). Got {self.n_products} instead."
            )
        if self.conversion_rate >= 1.0 - self.cart_abandonment_rate:
            raise InvalidParameterError(
                "The 'conversion_rate' parameter of SimulationConfig must be below "
                f"1 - cart_abandonment_rate = {1.0 - self.cart_abandonment_rate:.4g} (only sessions "
                f"with a cart can convert). Got {self.conversion_rate!r} instead."
            )

    def to_json(self) -> str:
        """The config as JSON text (stored with the truth, so a store says how it was made)."""
        data = asdict(self)
        data["start"] = self.start.isoformat()
        return json.dumps(data, sort_keys=True)

    def with_overrides(self, **overrides: Any) -> SimulationConfig:
        """A copy with some knobs changed; unknown names raise with the list of known ones."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise InvalidParameterError(
                f"Unknown simulation parameter(s) {', '.join(unknown)}. Known: {', '.join(sorted(known))}."
            )
        return replace(self, **overrides)
