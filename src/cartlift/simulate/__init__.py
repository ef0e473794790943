"""A simulated store with known ground truth: the embedded demo data and the yardstick of every model.

`simulate` draws a catalog, customers with latent tastes, price sensitivity, purchase intent,
forgetfulness and consent, and their sessions over ``n_days`` (view -> cart_add / cart_remove ->
checkout -> purchase or abandonment). Next to the events it returns the truth behind them:

- ``truth_sessions``: the true P(purchase) of every session at its last cart event;
- ``truth_carts``: for every abandoned cart, the true P(purchase within the window) under each
  of `ACTIONS` (potential outcomes), the customer's response type and consent;
- ``truth_user_taste``: every customer's true taste ranking of the catalog;
- ``truth_users``, ``truth_products``, ``truth_run``: the latents and the config.

`draw_outcomes` draws what happens to carts under chosen actions; `potential_outcomes` and
`true_uplift` read the truth for scoring uplift models and policies.
"""

from cartlift.simulate._config import (
    ACTION_CHANNELS,
    ACTION_DISCOUNTS,
    ACTIONS,
    DEFAULT_CATEGORIES,
    RESPONSE_TYPES,
    CategorySpec,
    SimulationConfig,
)
from cartlift.simulate._contacts import ZONES, simulated_contacts
from cartlift.simulate._outcomes import draw_outcomes, potential_outcomes, true_uplift
from cartlift.simulate._result import SimulatedStore, Stats
from cartlift.simulate._run import simulate_to
from cartlift.simulate._simulate import simulate

__all__ = [
    "ACTIONS",
    "ACTION_CHANNELS",
    "ACTION_DISCOUNTS",
    "DEFAULT_CATEGORIES",
    "RESPONSE_TYPES",
    "ZONES",
    "CategorySpec",
    "SimulatedStore",
    "SimulationConfig",
    "Stats",
    "draw_outcomes",
    "potential_outcomes",
    "simulate",
    "simulate_to",
    "simulated_contacts",
    "true_uplift",
]
