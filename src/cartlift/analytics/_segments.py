"""Customer segments in one call: RFM segments, behavioural clusters and price sensitivity."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import pandas as pd

from cartlift._random import RandomState
from cartlift.analytics._clusters import CustomerClusters, customer_features
from cartlift.analytics._price import price_sensitivity
from cartlift.analytics._rfm import RFMResult, rfm
from cartlift.errors import DataError
from cartlift.store import EventStore

__all__ = ["SegmentsResult", "segments"]


@dataclass(frozen=True)
class SegmentsResult:
    """RFM (None when the store has no purchases), clusters (None with too few customers) and price sensitivity."""

    rfm: RFMResult | None
    clusters: CustomerClusters | None
    price: pd.DataFrame = field(repr=False)
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The ``cartlift segments --json`` document."""
        clusters = None
        if self.clusters is not None:
            c = self.clusters
            profiles = c.profiles_.astype(object).where(c.profiles_.notna(), None)
            clusters = {
                "k": c.k_,
                "silhouette": c.silhouette_scores_[c.k_],
                "silhouette_by_k": {str(k): v for k, v in c.silhouette_scores_.items()},
                "clusters": [
                    {**row, "description": text}
                    for row, text in zip(profiles.to_dict("records"), c.descriptions_, strict=True)
                ],
            }
        labels = self.price["label"].value_counts()
        return {
            "rfm": None if self.rfm is None else self.rfm.to_dict(),
            "clusters": clusters,
            "price_sensitivity": {str(k): int(v) for k, v in labels.items()},
            "notes": list(self.notes),
        }


def segments(
    store: EventStore,
    *,
    as_of: date | datetime | str | None = None,
    k_min: int = 2,
    k_max: int = 8,
    random_state: RandomState = 0,
    include_anonymous: bool = False,
) -> SegmentsResult:
    """RFM segments, k-means clusters (k by silhouette) and price sensitivity of the store's customers.

    Parts that the data cannot support are None, with a note saying why (a store of views only
    has no RFM; a handful of customers cannot be clustered); misuse still raises. Anonymous
    buyers (``anonymous:<invoice>``) are not RFM customers unless ``include_anonymous``.
    """
    notes = []
    try:
        rfm_result: RFMResult | None = rfm(store, as_of=as_of, include_anonymous=include_anonymous)
    except DataError as e:
        rfm_result = None
        notes.append(f"no RFM segments: {e}")
    try:
        clusters: CustomerClusters | None = CustomerClusters(
            k_min=k_min, k_max=k_max, random_state=random_state
        ).fit(customer_features(store))
    except DataError as e:
        clusters = None
        notes.append(f"no clusters: {e}")
    return SegmentsResult(rfm_result, clusters, price_sensitivity(store), tuple(notes))
