"""Customer segments in one call: RFM segments, behavioural clusters and price sensitivity."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd

from cartlift._random import RandomState
from cartlift.analytics._clusters import CustomerClusters, customer_features
from cartlift.analytics._clv import clv_from_summary, summary_from_store
from cartlift.analytics._price import price_sensitivity
from cartlift.analytics._rfm import RFMResult, rfm
from cartlift.analytics._segment_words import describe_segments
from cartlift.errors import ConvergenceError, DataError
from cartlift.store import EventStore

__all__ = ["SegmentsResult", "segments"]


def _plain(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Records with NaN as None, for JSON."""
    return [
        {str(k): v for k, v in row.items()}
        for row in frame.astype(object).where(frame.notna(), None).to_dict("records")
    ]


@dataclass(frozen=True)
class SegmentsResult:
    """RFM (None when the store has no purchases), clusters (None with too few customers) and price sensitivity.

    ``profiles`` and ``descriptions`` describe the clusters with the store's money: per segment
    its revenue share, the mean predicted CLV of its buyers, its buying cadence and whether it is
    price-sensitive (`describe_segments`); empty when there are no clusters.
    """

    rfm: RFMResult | None
    clusters: CustomerClusters | None
    price: pd.DataFrame = field(repr=False)
    notes: tuple[str, ...] = ()
    profiles: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    descriptions: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The ``cartlift segments --json`` document."""
        clusters = None
        if self.clusters is not None:
            c = self.clusters
            clusters = {
                "k": c.k_,
                "method": c.method_,
                "setting": c.setting_,
                "silhouette": c.silhouette_,
                "silhouette_by_k": dict(c.silhouette_scores_),
                "stability": _stability(c.stability_),
                "noise": c.noise_ is not None,
                "methods": [
                    {
                        "method": m,
                        **{k: v for k, v in r.items() if k != "stability"},
                        "stability": _stability(r["stability"]),
                    }
                    for m, r in c.comparison_.items()
                ],
                "clusters": [
                    {**row, "description": text}
                    for row, text in zip(_plain(self.profiles), self.descriptions, strict=True)
                ],
            }
        labels = self.price["label"].value_counts()
        return {
            "rfm": None if self.rfm is None else self.rfm.to_dict(),
            "clusters": clusters,
            "price_sensitivity": {str(k): int(v) for k, v in labels.items()},
            "notes": list(self.notes),
        }


def _stability(value: tuple[float, float, float] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    return {"mean_ari": value[0], "interval": [value[1], value[2]]}


def _span_days(store: EventStore) -> float:
    first, last = store.con.execute("SELECT min(ts), max(ts) FROM events").fetchall()[0]
    return max((last - first).total_seconds() / 86400, 1.0)


def segments(
    store: EventStore,
    *,
    as_of: date | datetime | str | None = None,
    method: str = "auto",
    k_min: int = 2,
    k_max: int = 8,
    n_boot: int = 10,
    random_state: RandomState = 0,
    include_anonymous: bool = False,
    progress: Callable[[str, float], None] | None = None,
) -> SegmentsResult:
    """RFM segments, behavioural clusters and price sensitivity of the store's customers.

    The clusters are `CustomerClusters` with ``method`` (``auto``: k-means, HDBSCAN and a SOM
    compared by silhouette and bootstrap stability), each described against the rest with its
    revenue share, CLV (BG/NBD x Gamma-Gamma over 52 weeks, as in the audiences), buying cadence
    and price sensitivity. Parts that the data cannot support are None, with a note saying why
    (a store of views only has no RFM or CLV; a handful of customers cannot be clustered); misuse
    still raises. Anonymous buyers (``anonymous:<invoice>``) are not RFM customers unless
    ``include_anonymous``. ``progress(label, percent)`` follows the clustering.
    """
    notes = []
    try:
        rfm_result: RFMResult | None = rfm(store, as_of=as_of, include_anonymous=include_anonymous)
    except DataError as e:
        rfm_result = None
        notes.append(f"no RFM segments: {e}")
    price = price_sensitivity(store)
    features = customer_features(store)
    try:
        clusters: CustomerClusters | None = CustomerClusters(
            method=method, k_min=k_min, k_max=k_max, n_boot=n_boot, random_state=random_state
        ).fit(features, progress)
    except DataError as e:
        clusters = None
        notes.append(f"no clusters: {e}")
    if clusters is None:
        return SegmentsResult(rfm_result, None, price, tuple(notes))
    try:
        clv: pd.Series | None = clv_from_summary(
            summary_from_store(store, time_unit="weeks", include_anonymous=include_anonymous),
            time_unit="weeks",
        ).customers["clv"]
    except (DataError, ConvergenceError, KeyError) as e:  # KeyError: orders without spend, no CLV column
        clv = None
        notes.append(f"no CLV per segment: {e}")
    known = price["label"] != "not enough data"
    sensitive = (price["label"] == "price sensitive").where(known, np.nan)
    profiles, words = describe_segments(
        features[clusters.features_],
        clusters.transform(features),
        clusters.labels_,
        noise=clusters.noise_,
        span_days=_span_days(store),
        price_sensitive=sensitive,
        clv=clv,
    )
    return SegmentsResult(rfm_result, clusters, price, tuple(notes), profiles, tuple(words))
