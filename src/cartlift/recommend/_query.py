"""What the base class hands to a model (a :class:`Query`) and what it hands back to the caller
(:class:`Recommendations`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

__all__ = ["Query", "Recommendations"]


@dataclass(frozen=True)
class Recommendations:
    """The top k items of each query row, best first.

    Attributes
    ----------
    ids : ndarray of object, shape (n_rows, k)
        Item ids (str); None where a row has fewer than k candidates.
    scores : ndarray of float64, shape (n_rows, k)
        The model's scores (comparable within a row only); NaN where padded.
    indices : ndarray of int64, shape (n_rows, k)
        The items' column in the model; -1 where padded.
    """

    ids: np.ndarray
    scores: np.ndarray
    indices: np.ndarray

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    @property
    def counts(self) -> np.ndarray:
        """Items actually returned per row, shape (n_rows,)."""
        return np.asarray((self.indices >= 0).sum(axis=1))

    def to_lists(self) -> list[list[str]]:
        """One list of item ids per row, without padding."""
        return [[str(x) for x in row[row != None]] for row in self.ids]  # noqa: E711

    def to_frame(self, row_ids: Sequence[Any] | None = None) -> pd.DataFrame:
        """Long format: ``row, rank, item_id, score`` (rank starts at 1)."""
        n, k = self.ids.shape
        rows = np.repeat(np.asarray(row_ids if row_ids is not None else np.arange(n), dtype=object), k)
        frame = pd.DataFrame(
            {
                "row": rows,
                "rank": np.tile(np.arange(1, k + 1), n),
                "item_id": self.ids.ravel(),
                "score": self.scores.ravel(),
            }
        )
        return frame[self.indices.ravel() >= 0].reset_index(drop=True)


@dataclass(frozen=True)
class Query:
    """What a model sees when asked to score items for a batch of rows.

    Attributes
    ----------
    rows : ndarray of int64, shape (n,)
        The known user behind each row, or -1 (anonymous cart, cold user).
    history : csr_matrix, shape (n, n_items)
        Weights of the items each row interacted with (for an anonymous context: ones).
    sequences : list of ndarray of int
        Per row, the current session or cart in time order (oldest first), as item columns.
    exclude : csr_matrix, shape (n, n_items), optional
        Items that will be removed from each row's list (seen items, the cart).
    allowed : ndarray of bool, shape (n_items,) or (n, n_items), optional
        The business filter's verdict. Both are applied after scoring anyway; models that pick
        candidates themselves (the hybrid) use them so no candidate slot is wasted.
    """

    rows: np.ndarray
    history: sp.csr_matrix
    sequences: list[np.ndarray]
    exclude: sp.csr_matrix | None = None
    allowed: np.ndarray | None = None

    def mask(self, scores: np.ndarray) -> np.ndarray:
        """Set ``-inf`` on excluded and filtered items of ``scores`` (n, n_items), in place."""
        if self.exclude is not None and self.exclude.nnz:
            r, c = self.exclude.nonzero()
            scores[r, c] = -np.inf
        if self.allowed is not None:
            scores[~np.broadcast_to(self.allowed, scores.shape)] = -np.inf
        return scores
