"""A simulated store in memory: its tables, its headline numbers, and how to write it out."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from cartlift.errors import DataError
from cartlift.simulate._catalog import Catalog
from cartlift.simulate._config import SimulationConfig
from cartlift.simulate._customers import Customers
from cartlift.simulate._taste import taste_table

if TYPE_CHECKING:
    from cartlift.store import EventStore

__all__ = ["SimulatedStore", "Stats"]

TASTE_TABLE = "truth_user_taste"
_DICTIONARY_COLUMNS = ["event_type", "product_id", "channel", "device"]
"""Columns worth Parquet's dictionary encoding: ids with one value per event or session are not,
and skipping them halves the time to write the events."""


def _write_events(events: pa.Table, path: Path) -> None:
    pq.write_table(events, path, use_dictionary=_DICTIONARY_COLUMNS)


@dataclass(frozen=True)
class Stats:
    """Headline numbers of a simulated store.

    ``cart_abandonment_rate`` is the share of sessions with a ``cart_add`` that have no
    ``purchase`` (as ``EventStore.summary`` computes it); ``conversion_rate`` the share of
    sessions with a purchase.
    """

    events_by_type: dict[str, int]
    sessions: int
    users: int
    products: int
    sessions_with_cart: int
    abandoned_carts: int
    cart_abandonment_rate: float
    conversion_rate: float

    @property
    def events(self) -> int:
        """All events."""
        return sum(self.events_by_type.values())

    def to_dict(self) -> dict[str, Any]:
        """The numbers as a plain dict (the ``cartlift simulate --json`` shape)."""
        return {"events": self.events, **asdict(self)}


@dataclass
class SimulatedStore:
    """The output of `simulate`: events, products and the truth behind them.

    Attributes
    ----------
    config : SimulationConfig
    run_id : str
        Identifies this simulation (same seed and config, same id).
    events : pyarrow.Table
        cartlift's event schema: event_id, ts (UTC), user_id, session_id, event_type, product_id,
        quantity, price, order_id, channel, device, properties. Id-like columns are
        dictionary-encoded strings.
    products : pyarrow.Table
        product_id, title, description, category, brand, price, cost.
    truth : dict of str to pyarrow.Table
        ``truth_run``, ``truth_users``, ``truth_products``, ``truth_sessions`` and
        ``truth_carts``; `truth_tables` adds ``truth_user_taste``.
    stats : Stats
    """

    config: SimulationConfig
    run_id: str
    events: pa.Table
    products: pa.Table
    truth: dict[str, pa.Table]
    stats: Stats
    _customers: Customers = field(repr=False)
    _catalog: Catalog = field(repr=False)
    _add_intercept: float = field(repr=False)

    def taste_ranking(self, k: int | None = None) -> pa.Table:
        """Each customer's top ``k`` products by true taste (``truth_user_taste``).

        Computed on demand (a matrix product over all customers and products) and cached.
        ``k`` defaults to ``config.taste_top_k``. Columns: user_id, product_id, rank (1 = best),
        score (see `cartlift.simulate` for its definition).
        """
        k = self.config.taste_top_k if k is None else k
        cached = self.truth.get(TASTE_TABLE)
        if cached is not None and cached.num_rows == self._customers.n * min(k, self._catalog.n_products):
            return cached
        table = taste_table(self._customers, self._catalog, self._add_intercept, k)
        if k == self.config.taste_top_k:
            self.truth[TASTE_TABLE] = table
        return table

    def truth_tables(self) -> dict[str, pa.Table]:
        """Every truth table, including the taste ranking."""
        self.taste_ranking()
        return dict(self.truth)

    def write_parquet(self, out_dir: str | Path) -> dict[str, Path]:
        """Write ``events.parquet``, ``products.parquet`` and ``truth_*.parquet`` to ``out_dir``.

        ``cartlift ingest DIR/events.parquet`` and ``cartlift ingest DIR/products.parquet``
        load them (the formats are detected).
        """
        target = Path(out_dir)
        target.mkdir(parents=True, exist_ok=True)
        paths = {"events": target / "events.parquet", "products": target / "products.parquet"}
        _write_events(self.events, paths["events"])
        pq.write_table(self.products, paths["products"])
        for name, table in self.truth_tables().items():
            paths[name] = target / f"{name}.parquet"
            pq.write_table(table, paths[name])
        return paths

    def check_dates(self, now: datetime | None = None) -> None:
        """Raise `DataError` when events lie more than a day after ``now``: a store rejects them."""
        now = now or datetime.now(UTC)
        last = pc.max(self.events.column("ts")).as_py()
        if last is not None and last > now + timedelta(days=1):
            raise DataError(
                f"The simulated events run until {last.isoformat()}, more than a day after now "
                f"({now.isoformat(timespec='seconds')}), and a store rejects them. Simulate fewer "
                "days or an earlier start (SimulationConfig.start)."
            )

    def write_to(
        self, store: EventStore, *, progress: Callable[[str, float], None] | None = None
    ) -> dict[str, Any]:
        """Load into ``store``: products, events (through the validated ingest path) and truth.

        Events go through ``store.ingest`` of a Parquet file in cartlift's own format, so they
        meet every check real data meets; loading the same simulation twice adds nothing. A
        store that already holds a *different* simulation is refused: two simulated stores
        would share user and session ids.

        Returns
        -------
        dict
            ``events`` and ``products``: the load results (accepted, duplicates, quarantined,
            reasons); ``truth``: rows written per truth table.
        """
        self.check_dates()
        if "truth_run" in store.tables():
            held = store.query("SELECT run_id FROM truth_run")["run_id"].tolist()
            if held and held != [self.run_id]:
                raise DataError(
                    f"The store {str(store.path)!r} already holds another simulation (run {held[0]}), "
                    f"not this one ({self.run_id}). Use a new --db for a new simulation."
                )
        report = progress or (lambda label, pct: None)
        products = store.ingest_products(self.products)
        with tempfile.TemporaryDirectory(prefix="cartlift-sim-") as tmp:
            # the file name is what the store's `loads` table records as the source
            path = Path(tmp) / f"simulated-{self.run_id}-events.parquet"
            report("writing events", 0.0)
            _write_events(self.events, path)
            report("writing events", 100.0)
            events = store.ingest(path, "cartlift", progress=progress)
        truth = {}
        for name, table in self.truth_tables().items():
            truth[name] = store.write_table(name, table)
        report("writing truth", 100.0)
        return {"events": events.to_dict(), "products": products.to_dict(), "truth": truth}
