"""Business filters: which items may be shown (in stock, in a category, not in the cart, not bought).

A filter answers one question: given the model's item ids and the rows being served, which items
are allowed? Filters combine with ``&`` and are applied after scoring, before the top k, so a
filtered item never takes a slot.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from cartlift.errors import DataError

if TYPE_CHECKING:
    from cartlift.store import EventStore

__all__ = ["AllOf", "ExcludeItems", "InCategory", "InStock", "ItemFilter"]


class ItemFilter:
    """Base class of the business filters.

    Subclasses implement :meth:`allowed`. ``f & g`` allows what both allow.
    """

    def allowed(self, item_ids: np.ndarray, row_ids: np.ndarray | None) -> np.ndarray:
        """Which items may be returned.

        Parameters
        ----------
        item_ids : ndarray of str, shape (n_items,)
            The model's items.
        row_ids : ndarray of str, shape (n_rows,), optional
            The users being served (None for anonymous contexts).

        Returns
        -------
        ndarray of bool, shape (n_items,) or (n_rows, n_items)
            True where the item may be shown.
        """
        raise NotImplementedError

    def __and__(self, other: ItemFilter) -> AllOf:
        return AllOf(self, other)


class AllOf(ItemFilter):
    """Items every given filter allows."""

    def __init__(self, *filters: ItemFilter) -> None:
        self.filters = filters

    def allowed(self, item_ids: np.ndarray, row_ids: np.ndarray | None) -> np.ndarray:
        out: np.ndarray = np.ones(len(item_ids), bool)
        for f in self.filters:
            out = out & f.allowed(item_ids, row_ids)
        return out


class InStock(ItemFilter):
    """Only items with stock: ``InStock({"p1": 3, "p2": 0})`` or ``InStock(["p1", "p7"])``.

    Parameters
    ----------
    stock : mapping of id to quantity, or iterable of ids in stock
        Items absent from a mapping, or with quantity <= 0, are out of stock.
    """

    def __init__(self, stock: Mapping[Any, float] | Iterable[Any]) -> None:
        if isinstance(stock, Mapping):
            self.ids = {str(k) for k, v in stock.items() if v is not None and v > 0}
        else:
            self.ids = {str(k) for k in stock}

    def allowed(self, item_ids: np.ndarray, row_ids: np.ndarray | None) -> np.ndarray:
        return np.isin(item_ids, np.array(sorted(self.ids), dtype=str))


class InCategory(ItemFilter):
    """Only items of the given categories, by the catalog.

    Parameters
    ----------
    categories : str or iterable of str
        Allowed categories (exact match).
    catalog : DataFrame
        Product attributes with a ``category`` column, indexed by product id (or with a
        ``product_id`` column). :meth:`from_store` reads the store's ``products``.
    """

    def __init__(self, categories: str | Iterable[str], catalog: pd.DataFrame) -> None:
        self.categories = {categories} if isinstance(categories, str) else set(categories)
        frame = catalog.set_index("product_id") if "product_id" in catalog.columns else catalog
        if "category" not in frame.columns:
            raise DataError(f"The catalog has no 'category' column (columns: {list(frame.columns)}).")
        self.ids = frame.index[frame["category"].isin(self.categories)].astype(str)

    @classmethod
    def from_store(cls, categories: str | Iterable[str], store: EventStore) -> InCategory:
        """Use the store's ``products`` table as the catalog."""
        return cls(categories, store.query("SELECT product_id, category FROM products"))

    def allowed(self, item_ids: np.ndarray, row_ids: np.ndarray | None) -> np.ndarray:
        return np.isin(item_ids, np.asarray(self.ids, dtype=str))


class ExcludeItems(ItemFilter):
    """Never show these items: the cart's content, or what each user bought.

    Parameters
    ----------
    items : iterable of ids, or mapping of row id to iterable of ids
        One list for every row, or a list per user (users not in the mapping exclude nothing).
    """

    def __init__(self, items: Iterable[Any] | Mapping[Any, Iterable[Any]]) -> None:
        if isinstance(items, Mapping):
            self.per_row: dict[str, set[str]] | None = {str(k): {str(i) for i in v} for k, v in items.items()}
            self.ids: set[str] = set()
        else:
            self.per_row = None
            self.ids = {str(i) for i in items}

    @classmethod
    def bought(cls, store: EventStore) -> ExcludeItems:
        """Exclude, for each user, every product they purchased (and did not return)."""
        rows = store.query(
            """SELECT user_id, product_id FROM events WHERE product_id IS NOT NULL
               GROUP BY 1, 2 HAVING count(*) FILTER (WHERE event_type = 'purchase')
                                   > count(*) FILTER (WHERE event_type = 'return')"""
        )
        per_user: dict[str, list[str]] = {}
        for user, product in zip(rows["user_id"], rows["product_id"], strict=True):
            per_user.setdefault(str(user), []).append(str(product))
        return cls(per_user)

    def allowed(self, item_ids: np.ndarray, row_ids: np.ndarray | None) -> np.ndarray:
        if self.per_row is None:
            return ~np.isin(item_ids, np.array(sorted(self.ids), dtype=str))
        n_rows = 1 if row_ids is None else len(row_ids)
        out = np.ones((n_rows, len(item_ids)), bool)
        if row_ids is None:
            return out
        index = pd.Index(item_ids)
        for r, rid in enumerate(row_ids):
            banned = self.per_row.get(str(rid))
            if banned:
                pos = index.get_indexer(list(banned))
                out[r, pos[pos >= 0]] = False
        return out
