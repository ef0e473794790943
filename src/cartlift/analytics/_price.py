"""Per-customer price sensitivity from behaviour: do they choose cheaper than what they browse?"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cartlift.errors import InvalidParameterError
from cartlift.store import EventStore

__all__ = ["price_sensitivity"]

_SQL = """
WITH ev AS (
    SELECT e.user_id, e.product_id, e.event_type, e.price, p.category
    FROM events e JOIN products p ON p.product_id = e.product_id
    WHERE e.event_type IN ('view', 'cart_add', 'purchase') AND e.price > 0 AND p.category IS NOT NULL
),
cat AS (SELECT category, median(price) AS median_price FROM ev WHERE event_type = 'view' GROUP BY 1),
pairs AS (
    -- one row per customer x product x kind: ten views of one product weigh as one
    SELECT ev.user_id, ev.product_id,
           CASE WHEN ev.event_type = 'view' THEN 'viewed' ELSE 'chosen' END AS kind,
           ln(avg(ev.price) / any_value(cat.median_price)) AS rel
    FROM ev JOIN cat ON cat.category = ev.category
    GROUP BY 1, 2, 3
)
SELECT user_id AS customer,
       count(*) FILTER (WHERE kind = 'viewed') AS viewed,
       avg(rel) FILTER (WHERE kind = 'viewed') AS viewed_log_rel_price,
       count(*) FILTER (WHERE kind = 'chosen') AS chosen,
       avg(rel) FILTER (WHERE kind = 'chosen') AS chosen_log_rel_price
FROM pairs GROUP BY user_id ORDER BY user_id
"""


def price_sensitivity(
    store: EventStore, *, min_viewed: int = 3, shrinkage: float = 3.0, threshold: float = 0.1
) -> pd.DataFrame:
    r"""How much cheaper (relative to their category) each customer's chosen products are than their browsed ones.

    Every price is put on a common scale by its category,
    :math:`\rho = \ln(\text{price} / \text{median viewed price of the category})`. For a customer,
    :math:`\bar\rho_V` is the mean over the distinct products they viewed and :math:`\bar\rho_C`
    over those they added to a cart or bought (:math:`n_C` of them). The sensitivity

    .. math:: s = \frac{n_C}{n_C + \kappa}\,(\bar\rho_V - \bar\rho_C)

    is positive for customers who pick cheaper than what they look at (price sensitive) and
    negative for those who pick dearer (premium seekers); the factor shrinks it towards 0 when
    few choices back it (:math:`\kappa` = ``shrinkage``, an empirical-Bayes style prior weight).
    :math:`e^{-s}` reads as "chooses items at about that fraction of the price they browse".

    Parameters
    ----------
    store : EventStore
    min_viewed : int
        Customers who viewed fewer distinct products get the label "not enough data".
    shrinkage : float
        Prior weight :math:`\kappa` in chosen products.
    threshold : float
        :math:`|s|` above which a customer is labelled price sensitive / premium seeking
        (0.1 is about 10 % cheaper or dearer).

    Returns
    -------
    pandas.DataFrame
        Indexed by customer: viewed, chosen, the two mean log relative prices, ``sensitivity``
        and ``label``.
    """
    if min_viewed < 1 or shrinkage < 0 or threshold < 0:
        raise InvalidParameterError(
            "price_sensitivity needs min_viewed >= 1, shrinkage >= 0 and threshold >= 0. "
            f"Got min_viewed={min_viewed}, shrinkage={shrinkage}, threshold={threshold}."
        )
    frame = store.con.execute(_SQL).df().set_index("customer")
    n_c = frame["chosen"].to_numpy(dtype=float)
    gap = (frame["viewed_log_rel_price"] - frame["chosen_log_rel_price"]).to_numpy(dtype=float)
    enough = (frame["viewed"].to_numpy() >= min_viewed) & (n_c > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        s = np.where(enough, n_c / (n_c + shrinkage) * gap, np.nan)
    frame["sensitivity"] = s
    frame["label"] = np.select(
        [~enough, s > threshold, s < -threshold],
        ["not enough data", "price sensitive", "premium seeker"],
        default="neutral",
    )
    return frame
