"""Every customer's true taste ranking of the catalog, to score recommenders against.

The score of product ``j`` for customer ``u`` is the log of the expected number of times ``u``
adds ``j`` to the cart per product page viewed, at the customer's average intent:

    score_uj = log theta_u[c_j]                                   (visit is about j's category)
             + log pop_j + a_uj - log sum_{i in c_j} pop_i exp(a_ui)  (j is viewed, given the category)
             + log sigmoid(a0 + intent_u + 0.7 a_uj + quality_j - beta_u lp_j)   (j is added)

with ``a_uj`` the dot product of their latent factors: exactly the model that drew the events,
without the per-session noise, so a perfect recommender would recover this order.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from cartlift.simulate._catalog import Catalog
from cartlift.simulate._customers import Customers

__all__ = ["taste_scores", "taste_table"]


def taste_scores(customers: Customers, catalog: Catalog, users: np.ndarray, a0: float) -> np.ndarray:
    """Scores (see the module docstring) of every product for ``users``, shape (len(users), n_products)."""
    # numpy's einsum beats a threaded BLAS call for an inner dimension this small
    aff = np.einsum("uk,kn->un", customers.factors[users], catalog.factors.T)
    view = aff + catalog.log_popularity.astype(np.float32)
    # per-category normaliser of the view probability; the logits are small, so exp cannot overflow
    log_norm = np.log(np.add.reduceat(np.exp(view), catalog.cat_start[:-1], axis=1))
    log_norm -= np.log(customers.cat_pref[users]).astype(np.float32)
    view -= np.repeat(log_norm, np.diff(catalog.cat_start), axis=1)
    # the cart-add logit, built in place in the affinity buffer (one pass less per step)
    aff *= np.float32(0.7)
    aff += (a0 + customers.intent[users, None]).astype(np.float32)
    aff += catalog.quality.astype(np.float32)
    aff -= customers.price_sensitivity[users, None].astype(np.float32) * catalog.log_price_ratio.astype(
        np.float32
    )
    # log sigmoid(x) = -log1p(exp(-x))
    np.negative(aff, out=aff)
    with np.errstate(over="ignore"):
        np.exp(aff, out=aff)
    np.log1p(aff, out=aff)
    view -= aff
    return np.asarray(view, dtype=np.float32)


def taste_table(customers: Customers, catalog: Catalog, a0: float, k: int, chunk: int = 2048) -> pa.Table:
    """``truth_user_taste``: each customer's top ``k`` products (user_id, product_id, rank, score).

    Rank 1 is the best; ``k`` is capped at the catalog size.
    """
    k = min(k, catalog.n_products)
    n = customers.n
    items = np.empty((n, k), dtype=np.int64)
    scores = np.empty((n, k), dtype=np.float32)
    for lo in range(0, n, chunk):
        users = np.arange(lo, min(lo + chunk, n))
        s = taste_scores(customers, catalog, users, a0)
        top = (
            np.argpartition(-s, k - 1, axis=1)[:, :k]
            if k < s.shape[1]
            else np.tile(np.arange(k), (len(users), 1))
        )
        top_s = np.take_along_axis(s, top, axis=1)
        order = np.argsort(-top_s, axis=1, kind="stable")
        items[users] = np.take_along_axis(top, order, axis=1)
        scores[users] = np.take_along_axis(top_s, order, axis=1)
    user_idx = np.repeat(np.arange(n), k)
    return pa.table(
        {
            "user_id": pa.DictionaryArray.from_arrays(
                pa.array(user_idx.astype(np.int32)), pa.array(customers.ids, pa.string())
            ).cast(pa.string()),
            "product_id": pa.DictionaryArray.from_arrays(
                pa.array(items.ravel().astype(np.int32)), pa.array(catalog.ids, pa.string())
            ).cast(pa.string()),
            "rank": pa.array(np.tile(np.arange(1, k + 1, dtype=np.int32), n)),
            "score": pa.array(scores.ravel().astype(np.float64)),
        }
    )
