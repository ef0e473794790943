"""`cartlift simulate`: a synthetic store with known ground truth, loaded into the store and/or Parquet."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from cartlift.cli._common import DbOption, JsonOption, emit_json, fail, guarded, open_store, out, progress_bar
from cartlift.store import EventStore

if TYPE_CHECKING:
    from cartlift.store import EventStore

DEMO_USERS = 5_000
"""Customers of the demo store (about 120k events, simulated and loaded in seconds)."""
DEMO_DAYS = 30
DEMO_SEED = 42
DEMO_LIFETIME_DAYS = 60.0
"""The demo's customers drop out (1 / mean drop-out rate, in days): its CLV needs drop-out to fit."""


def demo_step(
    store: EventStore,
    out_dir: Path,
    *,
    users: int = DEMO_USERS,
    days: int = DEMO_DAYS,
    seed: int = DEMO_SEED,
    progress: Callable[[str, float], None] | None = None,
) -> dict[str, Any]:
    """The demo's first step: simulate a store, load it into ``store``, write its Parquet files.

    Files go to ``out_dir / "simulated"`` (events, products and every truth_* table). Returns the
    same document as ``cartlift simulate --json``.
    """
    from cartlift.simulate import simulate_to

    result = simulate_to(
        store,
        Path(out_dir) / "simulated",
        random_state=seed,
        progress=progress,
        n_users=users,
        n_days=days,
        mean_lifetime_days=DEMO_LIFETIME_DAYS,
    )
    _load_contacts(store, result, seed)
    return result


def _load_contacts(store: EventStore, result: dict[str, Any], seed: int) -> None:
    """Load the simulated customers' contacts and consents (example.com addresses) into a DuckDB store."""
    from cartlift.deliver import Db, load_contacts
    from cartlift.simulate import simulated_contacts
    from cartlift.store import EventStore

    if not isinstance(store, EventStore) or "truth_users" not in store.tables():
        return
    users = store.query("SELECT user_id, email_consent, sms_consent FROM truth_users ORDER BY user_id")
    loaded = load_contacts(Db(store.con), simulated_contacts(users, seed), source="simulation")
    result.setdefault("loaded", {})["contacts"] = loaded.to_dict()


def _parse_start(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise fail(f"--start must be a date like 2026-01-01. Got {value!r} instead.") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _print(result: dict[str, Any]) -> None:
    table = Table("measure", "value", title="simulated store", show_header=False)
    for kind, n in result["events_by_type"].items():
        table.add_row(f"{kind} events", f"{n:,}")
    for key in ("events", "sessions", "users", "products"):
        table.add_row(key, f"{result[key]:,}")
    table.add_row("cart abandonment rate", f"{result['cart_abandonment_rate']:.3f}")
    table.add_row("conversion rate", f"{result['conversion_rate']:.4f}")
    if "loaded" in result:
        ev = result["loaded"]["events"]
        table.add_row(
            f"loaded into {result['db']}",
            f"{ev['accepted']:,} accepted, {ev['duplicates']:,} duplicates, {ev['quarantined']:,} quarantined",
        )
    for name, path in result.get("paths", {}).items():
        table.add_row(f"wrote {name}", path)
    table.add_row("seconds", f"{result['seconds']:.1f}")
    out.print(table)


def register(app: typer.Typer) -> None:
    """Add `cartlift simulate` to ``app``."""

    @app.command()
    @guarded
    def simulate(
        users: Annotated[int, typer.Option("--users", "-u", help="Customers to simulate.")] = DEMO_USERS,
        days: Annotated[int, typer.Option("--days", "-d", help="Days of traffic.")] = DEMO_DAYS,
        seed: Annotated[int, typer.Option("--seed", "-s", help="Random seed: same seed, same store.")] = 0,
        start: Annotated[
            str | None,
            typer.Option(help="First day in UTC, e.g. 2026-01-01 (the default); the last day must be past."),
        ] = None,
        out_dir: Annotated[
            Path | None,
            typer.Option(
                "--out", "-o", help="Also write events, products and truth_* tables as Parquet here."
            ),
        ] = None,
        locale: Annotated[
            str,
            typer.Option(
                help="Language of the catalog's titles, descriptions, brands and categories: en or zh "
                "(the same products and latent attributes in both)."
            ),
        ] = "en",
        load: Annotated[bool, typer.Option("--load/--no-load", help="Load into the store (--db).")] = True,
        db: DbOption = None,
        json: JsonOption = False,
    ) -> None:
        """Simulate a store with known ground truth and load it (events, products, truth_* tables).

        Customers have latent tastes, price sensitivity, intent, forgetfulness and consent; their
        sessions walk view -> cart -> checkout -> purchase or abandonment. The truth (true purchase
        probabilities, reactions to each cart-recovery action, taste rankings) goes to tables named
        truth_*, never into events. --json prints counts, rates, paths and seconds.
        """
        from cartlift.simulate import simulate_to

        if not load and out_dir is None:
            raise fail("Nothing to do with --no-load and no --out: pass --out DIR, or drop --no-load.")
        overrides: dict[str, Any] = {"n_users": users, "n_days": days, "locale": locale}
        first = _parse_start(start)
        if first is not None:
            overrides["start"] = first
        with open_store(db) if load else nullcontext() as store:
            if json:
                result = simulate_to(store, out_dir, random_state=seed, **overrides)
            else:
                with progress_bar() as bar:
                    result = simulate_to(store, out_dir, random_state=seed, progress=bar, **overrides)
            if store is not None:
                _load_contacts(store, result, seed)
        if json:
            emit_json(result)
        else:
            _print(result)
