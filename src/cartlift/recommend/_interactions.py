"""Interactions: who touched which product, when, how strongly, as arrays and sparse matrices.

Every recommender is fitted on an :class:`Interactions`. It keeps the events (user, item,
session, time, weight) as parallel arrays and derives the matrices models need: user x item
weights, session x item sets, the time of each session and the ordered items of each session.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import pandas as pd
import scipy.sparse as sp

from cartlift.errors import DataError, InvalidParameterError

if TYPE_CHECKING:
    from cartlift.store import EventStore

__all__ = ["DEFAULT_EVENT_WEIGHTS", "Interactions"]

DEFAULT_EVENT_WEIGHTS: Final[dict[str, float]] = {"view": 1.0, "cart_add": 3.0, "purchase": 5.0}
"""Implicit-feedback strength of each event type (view < cart_add < purchase); others count 0."""

_SECONDS_PER_DAY: Final = 86_400.0


def _as_ids(values: Iterable[Any]) -> np.ndarray:
    """Ids as a NumPy unicode array (saved without pickle, compared as text)."""
    arr = np.asarray(list(values) if not isinstance(values, np.ndarray | pd.Series) else values)
    return arr.astype(str) if arr.size else np.array([], dtype="<U1")


def _epoch_seconds(ts: pd.Series) -> np.ndarray:
    """Seconds since the epoch from datetimes or numbers (yoochoose files carry epoch seconds)."""
    if pd.api.types.is_datetime64_any_dtype(ts):
        dt = pd.to_datetime(ts)
        if dt.dt.tz is not None:
            dt = dt.dt.tz_convert("UTC").dt.tz_localize(None)
        return (dt - pd.Timestamp(0)).dt.total_seconds().to_numpy(np.float64)
    if pd.api.types.is_numeric_dtype(ts):
        return ts.to_numpy(np.float64)
    return _epoch_seconds(pd.to_datetime(ts, utc=True))


@dataclass(frozen=True, eq=False)
class Interactions:
    """Events of users on items, with the matrices recommenders are fitted on.

    Parameters
    ----------
    user_ids, item_ids, session_ids : ndarray of str, shapes (n_users,), (n_items,), (n_sessions,)
        The external ids; row ``u`` of :attr:`matrix` is ``user_ids[u]``.
    user, item, session : ndarray of int32, shape (n_events,)
        Index of each event's user, item and session.
    ts : ndarray of float64, shape (n_events,)
        Time of each event in seconds since the epoch (UTC).
    weight : ndarray of float32, shape (n_events,)
        Strength of each event (event-type weight times time decay), all > 0.
    event_type : ndarray of str, shape (n_events,), optional
        The event type of each event (``purchase`` ...), when known.
    catalog : DataFrame, optional
        Product attributes (``title, description, category, brand``) indexed by item id, one row per
        entry of ``item_ids`` (missing products have NaN attributes).

    Notes
    -----
    Build one with :meth:`from_frame` or :meth:`from_store` rather than by hand.
    """

    user_ids: np.ndarray
    item_ids: np.ndarray
    session_ids: np.ndarray
    user: np.ndarray
    item: np.ndarray
    session: np.ndarray
    ts: np.ndarray
    weight: np.ndarray
    event_type: np.ndarray | None = None
    catalog: pd.DataFrame | None = None

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def from_frame(
        cls,
        events: pd.DataFrame,
        *,
        weights: Mapping[str, float] | None = None,
        half_life_days: float | None = None,
        now: float | pd.Timestamp | None = None,
        item_ids: Sequence[Any] | np.ndarray | None = None,
        catalog: pd.DataFrame | None = None,
    ) -> Interactions:
        """Build from a frame of events.

        Parameters
        ----------
        events : DataFrame
            Columns ``user_id``, ``item_id`` and ``ts`` (datetimes or epoch seconds); optional
            ``session_id`` (default: one session per user), ``event_type`` and ``weight``.
        weights : mapping of str to float, optional
            Weight of each event type when there is no ``weight`` column (default
            :data:`DEFAULT_EVENT_WEIGHTS`); types not listed weigh 0 and are dropped.
        half_life_days : float, optional
            Time decay: an event ``d`` days older than ``now`` weighs ``0.5 ** (d / half_life_days)``.
        now : float or Timestamp, optional
            Reference time of the decay (default: the latest event).
        item_ids : sequence, optional
            A fixed item universe (e.g. the whole catalog); events on other items are dropped.
        catalog : DataFrame, optional
            Product attributes, with a ``product_id`` or ``item_id`` column or indexed by id.
        """
        missing = [c for c in ("user_id", "item_id", "ts") if c not in events.columns]
        if missing:
            raise DataError(
                f"The events lack the column(s) {missing}; they need user_id, item_id and ts "
                f"(got {list(events.columns)})."
            )
        if half_life_days is not None and not half_life_days > 0:
            raise InvalidParameterError(
                f"half_life_days must be > 0 or None. Got {half_life_days!r} instead."
            )
        frame = events[events["item_id"].notna() & events["user_id"].notna()]
        ts = _epoch_seconds(frame["ts"])
        if "weight" in frame.columns:
            weight = frame["weight"].to_numpy(np.float64)
        elif "event_type" in frame.columns:
            table = dict(DEFAULT_EVENT_WEIGHTS if weights is None else weights)
            bad = {k: v for k, v in table.items() if not (np.isfinite(v) and v >= 0)}
            if bad:
                raise InvalidParameterError(f"Event weights must be finite and >= 0. Got {bad} instead.")
            weight = frame["event_type"].map(table).fillna(0.0).to_numpy(np.float64)
        else:
            weight = np.ones(len(frame))
        if half_life_days is not None and len(ts):
            ref = float(ts.max()) if now is None else float(_epoch_seconds(pd.Series([now]))[0])
            age_days = np.maximum(ref - ts, 0.0) / _SECONDS_PER_DAY
            weight = weight * np.exp2(-age_days / half_life_days)
        keep = weight > 0
        users_raw = frame["user_id"].astype(str).to_numpy()[keep]
        items_raw = frame["item_id"].astype(str).to_numpy()[keep]
        sessions_raw = (
            frame["session_id"].astype(str).to_numpy()[keep] if "session_id" in frame.columns else users_raw
        )
        event_type = (
            frame["event_type"].astype(str).to_numpy()[keep] if "event_type" in frame.columns else None
        )
        ts, weight = ts[keep], weight[keep]
        if item_ids is not None:
            universe = _as_ids(item_ids)
            item = pd.Index(universe).get_indexer(items_raw)
            known = item >= 0
            users_raw, sessions_raw, ts, weight, item = (
                users_raw[known],
                sessions_raw[known],
                ts[known],
                weight[known],
                item[known],
            )
            event_type = None if event_type is None else event_type[known]
        else:
            codes, uniques = pd.factorize(items_raw, sort=True)
            item, universe = codes, _as_ids(uniques)
        user, user_ids = pd.factorize(users_raw, sort=True)
        session, session_ids = pd.factorize(sessions_raw, sort=True)
        return cls(
            user_ids=_as_ids(user_ids),
            item_ids=universe,
            session_ids=_as_ids(session_ids),
            user=np.asarray(user, np.int32),
            item=np.asarray(item, np.int32),
            session=np.asarray(session, np.int32),
            ts=np.asarray(ts, np.float64),
            weight=np.asarray(weight, np.float32),
            event_type=None if event_type is None else _as_ids(event_type),
            catalog=_align_catalog(catalog, universe),
        )

    @classmethod
    def from_store(
        cls,
        store: EventStore,
        *,
        weights: Mapping[str, float] | None = None,
        half_life_days: float | None = None,
        until: pd.Timestamp | str | None = None,
        include_catalog: bool = True,
    ) -> Interactions:
        """Read the product events of the store's ``events`` table (and its ``products`` catalog).

        Parameters
        ----------
        store : EventStore
            The event store.
        weights, half_life_days
            As in :meth:`from_frame`.
        until : Timestamp or str, optional
            Only events strictly before this time (UTC).
        include_catalog : bool
            Put every catalog product in the item universe, so content-based and hybrid models
            can recommend products nobody has touched yet.
        """
        frame = events_frame(store, until=until)
        catalog = catalog_frame(store) if include_catalog else None
        ids = None
        if catalog is not None and len(catalog):
            ids = np.union1d(_as_ids(catalog.index), _as_ids(frame["item_id"].dropna().unique()))
        return cls.from_frame(
            frame, weights=weights, half_life_days=half_life_days, item_ids=ids, catalog=catalog
        )

    @classmethod
    def from_matrix(
        cls,
        matrix: sp.spmatrix | sp.sparray | np.ndarray,
        *,
        user_ids: Sequence[Any] | np.ndarray | None = None,
        item_ids: Sequence[Any] | np.ndarray | None = None,
    ) -> Interactions:
        """Wrap a user x item weight matrix (one event per stored entry, one session per user).

        Parameters
        ----------
        matrix : sparse or dense array, shape (n_users, n_items)
            Positive weights; zeros and negative entries are dropped.
        user_ids, item_ids : sequence, optional
            External ids (default: ``"0", "1", ...``).
        """
        m = sp.csr_matrix(matrix, dtype=np.float32)
        m.sum_duplicates()
        coo = m.tocoo()
        keep = coo.data > 0
        n_users, n_items = m.shape
        users = _as_ids(range(n_users) if user_ids is None else user_ids)
        items = _as_ids(range(n_items) if item_ids is None else item_ids)
        if len(users) != n_users or len(items) != n_items:
            raise DataError(
                f"{len(users)} user ids and {len(items)} item ids for a matrix of shape {m.shape}."
            )
        row = coo.row[keep].astype(np.int32)
        return cls(
            user_ids=users,
            item_ids=items,
            session_ids=users,
            user=row,
            item=coo.col[keep].astype(np.int32),
            session=row,
            ts=np.zeros(int(keep.sum())),
            weight=coo.data[keep].astype(np.float32),
        )

    # -- sizes ----------------------------------------------------------------------------------
    @property
    def n_users(self) -> int:
        """Number of users (rows of :attr:`matrix`)."""
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        """Number of items (columns of :attr:`matrix`)."""
        return len(self.item_ids)

    @property
    def n_sessions(self) -> int:
        """Number of sessions (rows of :attr:`session_matrix`)."""
        return len(self.session_ids)

    def __len__(self) -> int:
        return len(self.user)

    # -- derived matrices -----------------------------------------------------------------------
    @cached_property
    def matrix(self) -> sp.csr_matrix:
        """User x item weights, shape (n_users, n_items), float32: the sum over each pair's events."""
        return _csr(self.user, self.item, self.weight, (self.n_users, self.n_items))

    @cached_property
    def session_matrix(self) -> sp.csr_matrix:
        """Session x item sets, shape (n_sessions, n_items), float32 ones."""
        m = _csr(self.session, self.item, np.ones(len(self), np.float32), (self.n_sessions, self.n_items))
        m.data[:] = 1.0
        return m

    @cached_property
    def session_time(self) -> np.ndarray:
        """Time of the last event of each session, shape (n_sessions,), epoch seconds."""
        out = np.full(self.n_sessions, -np.inf)
        np.maximum.at(out, self.session, self.ts)
        return out

    @cached_property
    def session_user(self) -> np.ndarray:
        """User index of each session, shape (n_sessions,) (the user of its last event)."""
        out = np.full(self.n_sessions, -1, np.int64)
        order = np.argsort(self.ts, kind="stable")
        out[self.session[order]] = self.user[order]
        return out

    @cached_property
    def sequences(self) -> tuple[np.ndarray, np.ndarray]:
        """Items of each session in time order, each item once at its last position.

        Returns
        -------
        indptr : ndarray of int64, shape (n_sessions + 1,)
        items : ndarray of int32, shape (indptr[-1],)
            Session ``s`` is ``items[indptr[s]:indptr[s + 1]]``, oldest first.
        """
        order = np.lexsort((np.arange(len(self)), self.ts, self.session))
        s, i = self.session[order], self.item[order]
        # keep an item's last occurrence: the latest click is what the visitor was on most recently
        key = s.astype(np.int64) * max(self.n_items, 1) + i
        rev_first = np.unique(key[::-1], return_index=True)[1]
        keep = np.sort(len(key) - 1 - rev_first)
        s, i = s[keep], i[keep]
        indptr = np.zeros(self.n_sessions + 1, np.int64)
        np.cumsum(np.bincount(s, minlength=self.n_sessions), out=indptr[1:])
        return indptr, i.astype(np.int32)

    @cached_property
    def last_session(self) -> np.ndarray:
        """Index of each user's latest session, shape (n_users,) (-1 for none)."""
        out = np.full(self.n_users, -1, np.int64)
        order = np.lexsort((self.session, self.session_time[self.session]))
        out[self.user[order]] = self.session[order]
        return out

    def purchases(self) -> sp.csr_matrix:
        """User x item purchase indicator, shape (n_users, n_items) (empty without event types)."""
        if self.event_type is None:
            return sp.csr_matrix((self.n_users, self.n_items), dtype=np.float32)
        bought = self.event_type == "purchase"
        m = _csr(
            self.user[bought], self.item[bought], np.ones(int(bought.sum()), np.float32), self.matrix.shape
        )
        m.data[:] = 1.0
        return m

    def to_frame(self) -> pd.DataFrame:
        """The events as a frame with external ids (``user_id, item_id, session_id, ts, weight``)."""
        frame = pd.DataFrame(
            {
                "user_id": self.user_ids[self.user],
                "item_id": self.item_ids[self.item],
                "session_id": self.session_ids[self.session],
                "ts": self.ts,
                "weight": self.weight,
            }
        )
        if self.event_type is not None:
            frame["event_type"] = self.event_type
        return frame


def _csr(rows: np.ndarray, cols: np.ndarray, data: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    m = sp.csr_matrix((np.asarray(data, np.float32), (rows, cols)), shape=shape)
    m.sum_duplicates()
    m.sort_indices()
    return m


def _align_catalog(catalog: pd.DataFrame | None, item_ids: np.ndarray) -> pd.DataFrame | None:
    if catalog is None:
        return None
    frame = catalog.copy()
    for key in ("product_id", "item_id"):
        if key in frame.columns:
            frame = frame.set_index(key)
            break
    frame.index = frame.index.astype(str)
    frame = frame[~frame.index.duplicated(keep="last")]
    return frame.reindex(pd.Index(item_ids, dtype=object))


def events_frame(store: EventStore, *, until: pd.Timestamp | str | None = None) -> pd.DataFrame:
    """Product events of the store as ``user_id, item_id, session_id, ts, event_type``, oldest first."""
    sql = (
        "SELECT user_id, product_id AS item_id, session_id, ts, event_type FROM events"
        " WHERE product_id IS NOT NULL"
    )
    params: list[Any] = []
    if until is not None:
        sql += " AND ts < ?"
        params.append(pd.Timestamp(until).to_pydatetime())
    return store.query(sql + " ORDER BY ts, event_id", params)


def catalog_frame(store: EventStore) -> pd.DataFrame:
    """The store's products (``title, description, category, brand``) indexed by product id."""
    frame = store.query("SELECT product_id, title, description, category, brand FROM products")
    return frame.set_index("product_id")
