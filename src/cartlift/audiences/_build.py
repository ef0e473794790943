"""One row per customer for a campaign tool: who they are, which segment, what they are worth.

The columns come from the packages that own them: RFM segments and k-means clusters
(`cartlift.analytics`), BG/NBD + Gamma-Gamma CLV and P(alive), price sensitivity, the
abandonment risk of the customer's latest unbought cart (`cartlift.predict`) and the top
recommended products (`cartlift.recommend`). A part the data cannot support (no purchases: no
RFM or CLV) leaves its columns empty and says why in ``notes``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd

from cartlift.analytics import (
    SEGMENTS,
    CustomerClusters,
    clv_from_summary,
    customer_features,
    price_sensitivity,
    rfm,
    summary_from_store,
)
from cartlift.audiences._contacts import contacts, erased_subjects, subject_of
from cartlift.errors import CartliftError, DataError
from cartlift.predict import FEATURE_NAMES, cart_features, load_model, make_model
from cartlift.recommend import load_or_train
from cartlift.store import EventStore

__all__ = ["COLUMNS", "Audience", "build_audience"]

COLUMNS: Final[dict[str, str]] = {
    "customer_id": "the store's user id",
    "email": "address, only with a recorded e-mail consent (else empty)",
    "email_consent": "true / false; empty when no contacts table is known",
    "rfm_segment": "RFM segment name (empty for customers who never bought)",
    "cluster": "behavioural k-means cluster number (1 = the largest)",
    "cluster_description": "what sets the cluster apart, in words",
    "predicted_clv": "BG/NBD x Gamma-Gamma value over the next 52 weeks",
    "p_alive": "probability the customer is still active (BG/NBD)",
    "price_sensitivity": "> 0 picks cheaper than browsed, < 0 dearer (log scale)",
    "price_label": "price sensitive, premium seeking, neutral or not enough data",
    "abandonment_risk": "P(abandoned) of the latest unbought cart (empty: no open cart)",
    "open_cart_value": "value of that cart",
    "top_products": "top recommended product ids, best first, separated by ';'",
}
"""The audience columns, in order, with their meaning (the README lists the same)."""


@dataclass(frozen=True)
class Audience:
    """The rows of an audience and how they were made."""

    name: str
    rows: pd.DataFrame = field(repr=False)
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """``name, customers, columns, notes, rows`` (rows as records; NaN as None)."""
        frame = self.rows.astype(object).where(self.rows.notna(), None)
        return {
            "name": self.name,
            "customers": len(self.rows),
            "columns": list(COLUMNS),
            "notes": list(self.notes),
            "rows": frame.to_dict("records"),
        }

    def write(self, out: str | Path, fmt: str = "csv") -> Path:
        """Write the rows as ``csv`` or ``parquet``; returns the path."""
        if fmt not in ("csv", "parquet"):
            raise DataError(f"Unknown audience format {fmt!r}: use csv or parquet.")
        target = Path(out)
        target.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "csv":
            self.rows.to_csv(target, index=False)
        else:
            self.rows.to_parquet(target, index=False)
        return target


def _quiet(fn: Any, notes: list[str], what: str) -> Any:
    """``fn()``, or None with a note when the data cannot support it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn()
    except CartliftError as e:
        notes.append(f"no {what}: {e}")
        return None


def _clv(store: EventStore) -> pd.DataFrame:
    result = clv_from_summary(summary_from_store(store, time_unit="weeks"), time_unit="weeks")
    return result.customers


def _open_carts(store: EventStore, model_dir: str | Path | None, notes: list[str]) -> pd.DataFrame:
    """Each customer's latest cart that was not bought, with the model's P(abandoned)."""
    frame = cart_features(store, moments="last_cart_event")
    if frame.empty:
        return pd.DataFrame(columns=["abandonment_risk", "open_cart_value"])
    model = None
    if model_dir is not None and (Path(model_dir) / "model.json").is_file():
        model, meta = load_model(model_dir)
        if meta.get("features") != "cart":
            raise DataError(f"The model in {str(model_dir)!r} was not trained on cart features.")
    elif frame["abandoned"].nunique() == 2:
        notes.append(
            "abandonment risk from a LightGBM fitted now (save one with `cartlift abandonment train`)"
        )
        model = make_model("lightgbm").fit(frame[list(FEATURE_NAMES)], frame["abandoned"].to_numpy(float))
    open_carts = frame[frame["abandoned"] == 1].sort_values("ts").groupby("user_id").tail(1)
    out = pd.DataFrame(index=pd.Index(open_carts["user_id"].astype(str), name="customer"))
    out["open_cart_value"] = open_carts["cart_value"].to_numpy(float)
    if model is None:
        out["abandonment_risk"] = np.nan
    else:
        out["abandonment_risk"] = model.predict_proba(open_carts[list(FEATURE_NAMES)])[:, 1]
    return out


def _recommendations(
    store: EventStore, ids: list[str], top: int, recommender: str, path: str | Path | None
) -> list[str]:
    model = load_or_train(store, recommender, path)
    lists = model.recommend(ids, k=top).to_lists()
    # a customer the model knows nothing useful about (one view of a product nobody else touched)
    # gets the store's most popular products rather than an empty cell
    empty = [i for i, row in zip(ids, lists, strict=True) if not row]
    if empty:
        fallback = dict(
            zip(
                empty,
                load_or_train(store, "popularity", None).recommend(empty, k=top).to_lists(),
                strict=True,
            )
        )
        lists = [row or fallback[i] for i, row in zip(ids, lists, strict=True)]
    return [";".join(row) for row in lists]


def build_audience(
    store: EventStore,
    *,
    segment: str | None = None,
    min_clv: float | None = None,
    top: int = 5,
    model_dir: str | Path | None = None,
    recommender: str = "itemknn",
    recommender_path: str | Path | None = None,
    random_state: int = 0,
    audit_key: str | None = None,
) -> Audience:
    """Every customer of the store (or those in ``segment`` with CLV >= ``min_clv``), one row each.

    Parameters
    ----------
    store : EventStore
    segment : str, optional
        An RFM segment name (e.g. "Champions") or a cluster ("cluster 2"), case-insensitive.
    min_clv : float, optional
        Keep customers whose predicted CLV is at least this.
    top : int
        Recommended products per customer.
    model_dir : path, optional
        A saved abandonment model (`cartlift abandonment train`); without one a LightGBM is fitted.
    recommender, recommender_path : str, path
        The recommender (a `cartlift.recommend.MODELS` name) and where it is saved; fitted now if absent.
    random_state : int
        Seeds the clustering.
    audit_key : str, optional
        The service's audit secret (`cartlift.serve.audit_secret`): erasures are recorded under a
        keyed hash of the id, so without it only erasures recorded before keyed hashes are seen.

    Returns
    -------
    Audience
        ``rows`` with `COLUMNS`; customers the audit log says were erased never appear.
    """
    _check_segment_name(segment)
    notes: list[str] = []
    features = customer_features(store)
    ids = [str(i) for i in features.index]
    rows = pd.DataFrame(index=pd.Index(ids, name="customer"))
    found = contacts(store)
    if found.empty and not any(t in store.tables() for t in ("contacts", "customers")):
        notes.append("no contacts table in the store: e-mail and consent are empty")
        rows["email"], rows["email_consent"] = None, None
    else:
        known = found.set_index("user_id")
        rows["email"] = known["email"].reindex(ids)
        rows["email_consent"] = known["email_consent"].reindex(ids).fillna(False).astype(bool)
    scored = _quiet(lambda: rfm(store), notes, "RFM segments")
    rows["rfm_segment"] = (
        None if scored is None else scored.customers.set_index("customer")["segment"].reindex(ids)
    )
    clusters = _quiet(lambda: CustomerClusters(random_state=random_state).fit(features), notes, "clusters")
    if clusters is None:
        rows["cluster"], rows["cluster_description"] = None, None
    else:
        rows["cluster"] = clusters.labels_ + 1
        rows["cluster_description"] = [clusters.descriptions_[i] for i in clusters.labels_]
    value = _quiet(lambda: _clv(store), notes, "CLV")
    for col, src in (("predicted_clv", "clv"), ("p_alive", "p_alive")):
        rows[col] = np.nan if value is None or src not in value else value[src].reindex(ids).to_numpy(float)
    price = price_sensitivity(store)
    rows["price_sensitivity"] = price["sensitivity"].reindex(ids).to_numpy(float)
    rows["price_label"] = price["label"].reindex(ids)
    carts = _open_carts(store, model_dir, notes)
    rows["abandonment_risk"] = carts["abandonment_risk"].reindex(ids).to_numpy(float)
    rows["open_cart_value"] = carts["open_cart_value"].reindex(ids).to_numpy(float)
    rows = rows.reset_index().rename(columns={"customer": "customer_id"})
    erased = erased_subjects(store)
    if erased:
        rows = rows[[not (subject_of(c, audit_key) & erased) for c in rows["customer_id"]]]
    rows = _select(rows, segment, min_clv)
    rows["top_products"] = (
        _recommendations(store, rows["customer_id"].tolist(), top, recommender, recommender_path)
        if len(rows)
        else []
    )
    name = segment or "all"
    return Audience(name, rows[list(COLUMNS)].reset_index(drop=True), tuple(notes))


def _check_segment_name(segment: str | None) -> None:
    """Refuse a name no store can have before fitting anything (a build takes seconds to minutes).

    Whether ``cluster N`` exists depends on the fitted clustering, so `_select` checks that later.
    """
    if segment is None:
        return
    wanted = segment.strip().lower()
    words = wanted.split()
    is_cluster = len(words) == 2 and words[0] == "cluster" and words[1].isdigit()
    if wanted != "all" and not is_cluster and wanted not in {s.lower() for s in SEGMENTS}:
        raise DataError(
            f"No segment {segment!r}. Segments: an RFM segment ({', '.join(SEGMENTS)}), 'cluster N', or all."
        )


def _select(rows: pd.DataFrame, segment: str | None, min_clv: float | None) -> pd.DataFrame:
    if segment is not None:
        wanted = segment.strip().lower()
        rfm_match = rows["rfm_segment"].astype(str).str.lower() == wanted
        cluster_names = "cluster " + rows["cluster"].astype(str)
        known = set(rows["rfm_segment"].dropna().astype(str)) | set(cluster_names[rows["cluster"].notna()])
        if wanted != "all":
            mask = rfm_match | (cluster_names.str.lower() == wanted)
            if not mask.any() and wanted not in {k.lower() for k in known}:
                raise DataError(
                    f"No segment {segment!r}. Segments: {', '.join(sorted(known)) or '(none)'}, or all."
                )
            rows = rows[mask]
    if min_clv is not None:
        rows = rows[rows["predicted_clv"].fillna(-np.inf) >= min_clv]
    return rows
