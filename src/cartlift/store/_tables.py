"""Every table of a store, declared once; the DDL of both dialects is generated from the declaration.

A declaration names the columns with DuckDB's types (the events package's data model for the
core tables), the key, and the secondary indexes. PostgreSQL gets the same columns with its own
spelling of the types (``DOUBLE`` -> ``DOUBLE PRECISION``, ``VARCHAR`` -> ``TEXT``).

Adding a table (say ``coupons``) is one entry in `TABLES`::

    COUPON_COLUMNS = {"code": "VARCHAR PRIMARY KEY", "user_id": "VARCHAR NOT NULL",
                      "value": "DOUBLE NOT NULL", "expires_at": "TIMESTAMP", "redeemed_at": "TIMESTAMP"}
    Table("coupons", COUPON_COLUMNS, indexes=(("user_id",),), personal="user_id", merge="(code) DO UPDATE")

and both backends create it (PostgreSQL at connect, DuckDB with ``EventStore.create_tables``),
erasure deletes its rows of a person (``personal``), and a working copy of a PostgreSQL store
merges it back as ``merge`` says.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

from cartlift.events import EVENT_COLUMNS, PRODUCT_COLUMNS
from cartlift.events._schema import LOAD_COLUMNS, QUARANTINE_COLUMNS

__all__ = [
    "ATTRIBUTION_COLUMNS",
    "CONSENT_COLUMNS",
    "CONTACT_QUARANTINE_COLUMNS",
    "CORE_TABLES",
    "COUPON_COLUMNS",
    "CUSTOMER_COLUMNS",
    "DECISION_COLUMNS",
    "DELIVER_KEY_COLUMNS",
    "HOLDOUT_ASSIGNMENT_COLUMNS",
    "HOLDOUT_PHASE_COLUMNS",
    "IDENTITY_COLUMNS",
    "MESSAGE_COLUMNS",
    "MESSAGE_EVENT_COLUMNS",
    "MODEL_COLUMNS",
    "MODEL_TABLE",
    "PACKAGE_TABLES",
    "TABLES",
    "Dialect",
    "Table",
    "table_ddl",
]

Dialect = Literal["duckdb", "postgres"]

_PG_TYPES: Final = {"VARCHAR": "TEXT", "DOUBLE": "DOUBLE PRECISION"}


@dataclass(frozen=True)
class Table:
    """One table of the store.

    Parameters
    ----------
    name : str
    columns : mapping
        Column -> DuckDB type with its constraints (``"VARCHAR NOT NULL"``, ``"DOUBLE"``,
        ``"VARCHAR PRIMARY KEY"``), in order.
    key : tuple of str
        A composite primary key (a single-column key may be written in ``columns`` instead).
    key_in_duckdb : bool
        False where DuckDB keeps the key unique without an index: the importers anti-join new
        event ids against the stored ones, which bulk-loads far faster than an ART index.
    indexes : tuple of column tuples
        Secondary indexes (PostgreSQL; DuckDB's column scans do without them).
    unique : tuple of column tuples
        Unique indexes (PostgreSQL, where several processes write at once).
    postgres_only : mapping
        Columns only the PostgreSQL table has (the quarantine's ``user_id``, which DuckDB reads
        from the raw JSON instead).
    personal : str, optional
        The column naming a person: erasure deletes the rows where it equals the user id.
    merge : str, optional
        How a working copy's rows merge into PostgreSQL: the ``ON CONFLICT`` clause after the
        words ``ON CONFLICT``; ``{all}`` stands for every non-key column taking the new value.
        None: the table is not merged back.
    in_copies : bool
        False for the service's own tables (keys, audit log), which working copies and slices
        of a PostgreSQL store leave out.
    added : tuple of str
        Columns of ``columns`` added after the table was first released: a store made before
        gains them (``ALTER TABLE ... ADD COLUMN IF NOT EXISTS``), so they must be nullable.
    """

    name: str
    columns: Mapping[str, str]
    key: tuple[str, ...] = ()
    key_in_duckdb: bool = True
    indexes: tuple[tuple[str, ...], ...] = ()
    unique: tuple[tuple[str, ...], ...] = ()
    postgres_only: Mapping[str, str] = field(default_factory=dict)
    personal: str | None = None
    merge: str | None = None
    in_copies: bool = True
    added: tuple[str, ...] = ()

    def ddl(self, dialect: Dialect = "duckdb") -> list[str]:
        """``CREATE TABLE IF NOT EXISTS`` and its indexes, in ``dialect``."""
        columns = dict(self.columns)
        if dialect == "postgres":
            columns = {c: _pg_type(t) for c, t in {**columns, **self.postgres_only}.items()}
        lines = [f"{c} {t}" for c, t in columns.items()]
        if self.key and (dialect == "postgres" or self.key_in_duckdb):
            if len(self.key) == 1 and "PRIMARY KEY" not in columns[self.key[0]]:
                lines = [f"{line} PRIMARY KEY" if line.split()[0] == self.key[0] else line for line in lines]
            else:
                lines.append(f"PRIMARY KEY ({', '.join(self.key)})")
        body = ",\n  ".join(lines)
        out = [f"CREATE TABLE IF NOT EXISTS {self.name} (\n  {body}\n)"]
        out += [f"ALTER TABLE {self.name} ADD COLUMN IF NOT EXISTS {c} {columns[c]}" for c in self.added]
        if dialect == "postgres":
            for kind, groups in (("", self.indexes), ("UNIQUE ", self.unique)):
                for cols in groups:
                    index = f"{self.name}_{'_'.join(cols)}{'_unique' if kind else ''}"
                    out.append(f"CREATE {kind}INDEX IF NOT EXISTS {index} ON {self.name} ({', '.join(cols)})")
        return out

    @property
    def key_columns(self) -> tuple[str, ...]:
        """The primary key's columns (declared in ``key`` or inline in ``columns``)."""
        return self.key or tuple(c for c, t in self.columns.items() if "PRIMARY KEY" in t)


def _pg_type(declared: str) -> str:
    word = declared.split()[0]
    return re.sub(rf"^{word}\b", _PG_TYPES.get(word, word), declared)


MODEL_TABLE: Final = "act_models"
"""Where the act package saves a trained policy."""

MODEL_COLUMNS: Final[dict[str, str]] = {
    "name": "VARCHAR PRIMARY KEY",
    "saved_at": "TIMESTAMP NOT NULL",
    "payload": "VARCHAR NOT NULL",
}
"""Columns of `MODEL_TABLE` (the policy as JSON text), the same on every store that keeps one."""

IDENTITY_COLUMNS: Final[dict[str, str]] = {
    "identity_id": "VARCHAR PRIMARY KEY",  # hash of the record: receiving it twice stores it once
    "user_id": "VARCHAR NOT NULL",  # the customer id (as events.user_id stores it)
    "anonymous_id": "VARCHAR",  # the anonymous id whose history becomes the customer's
    "email": "VARCHAR",
    "email_consent": "BOOLEAN",  # None: the source said nothing about consent
    "consent_source": "VARCHAR",  # where the consent came from, e.g. shopify:email_marketing_consent
    "consent_at": "TIMESTAMP",
    "source": "VARCHAR NOT NULL",  # tracker, segment, rudderstack, shopify
    "ts": "TIMESTAMP NOT NULL",  # when the source saw it (UTC)
    "received_at": "TIMESTAMP NOT NULL",
}
"""Columns of ``identities``: who an anonymous visitor or a webhook's customer is (the integrations' `Identity`)."""

# the deliver package's: contacts with consent, the outbox, coupons, clicks and unsubscribes
CUSTOMER_COLUMNS: Final[dict[str, str]] = {
    "user_id": "VARCHAR PRIMARY KEY",  # the same id as events.user_id
    "email": "VARCHAR",  # normalised by email-validator
    "phone": "VARCHAR",  # E.164
    "time_zone": "VARCHAR",  # IANA name, checked with zoneinfo
    "locale": "VARCHAR",
    "email_consent": "BOOLEAN NOT NULL",
    "email_consent_source": "VARCHAR",
    "email_consent_at": "TIMESTAMP",
    "sms_consent": "BOOLEAN NOT NULL",
    "sms_consent_source": "VARCHAR",
    "sms_consent_at": "TIMESTAMP",
    "unsubscribed_at": "TIMESTAMP",
    "updated_at": "TIMESTAMP NOT NULL",
    "load_id": "VARCHAR",
}
CONTACT_QUARANTINE_COLUMNS: Final[dict[str, str]] = {
    "load_id": "VARCHAR NOT NULL",
    "source": "VARCHAR NOT NULL",
    "row_number": "INTEGER",  # 1-based record, header excluded
    "user_id": "VARCHAR",
    "raw": "VARCHAR NOT NULL",  # the record as a JSON object
    "reason": "VARCHAR NOT NULL",
    "quarantined_at": "TIMESTAMP NOT NULL",
}
MESSAGE_COLUMNS: Final[dict[str, str]] = {
    "message_id": "VARCHAR PRIMARY KEY",  # also the e-mail's Message-ID local part: stable across retries
    "decision_id": "VARCHAR NOT NULL UNIQUE",  # one message per decision: scheduling twice is harmless
    "cart_id": "VARCHAR NOT NULL",
    "user_id": "VARCHAR NOT NULL",
    "action": "VARCHAR NOT NULL",
    "channel": "VARCHAR NOT NULL",  # email, sms
    "coupon_code": "VARCHAR",
    "decided_at": "TIMESTAMP NOT NULL",
    "created_at": "TIMESTAMP NOT NULL",
    "due_at": "TIMESTAMP NOT NULL",
    "status": "VARCHAR NOT NULL",  # scheduled, sending, sent, cancelled, dead
    "attempts": "INTEGER NOT NULL",
    "last_error": "VARCHAR",
    "deferrals": "INTEGER NOT NULL",
    "deferred_reason": "VARCHAR",
    "lease_until": "TIMESTAMP",
    "worker": "VARCHAR",
    "provider_id": "VARCHAR",
    "sent_at": "TIMESTAMP",
    "recipient": "VARCHAR",
}
COUPON_COLUMNS: Final[dict[str, str]] = {
    "code": "VARCHAR PRIMARY KEY",
    "user_id": "VARCHAR NOT NULL",
    "cart_id": "VARCHAR",
    "decision_id": "VARCHAR",
    "discount_share": "DOUBLE NOT NULL",
    "discount_amount": "DOUBLE NOT NULL",
    "created_at": "TIMESTAMP NOT NULL",
    "expires_at": "TIMESTAMP NOT NULL",
    "redeemed_at": "TIMESTAMP",
    "order_id": "VARCHAR",
}
MESSAGE_EVENT_COLUMNS: Final[dict[str, str]] = {
    "message_id": "VARCHAR NOT NULL",
    "user_id": "VARCHAR NOT NULL",
    "kind": "VARCHAR NOT NULL",  # click, unsubscribe
    "ts": "TIMESTAMP NOT NULL",
}
DELIVER_KEY_COLUMNS: Final[dict[str, str]] = {"name": "VARCHAR PRIMARY KEY", "secret": "VARCHAR NOT NULL"}


DECISION_COLUMNS: Final[dict[str, str]] = {
    "decision_id": "VARCHAR PRIMARY KEY",
    "ts": "TIMESTAMP NOT NULL",
    "user_id": "VARCHAR NOT NULL",
    "cart_id": "VARCHAR NOT NULL",
    "policy": "VARCHAR NOT NULL",
    "action": "VARCHAR NOT NULL",
    "channel": "VARCHAR",  # e-mail or SMS actually used ("none" for doing nothing)
    "propensity": "DOUBLE NOT NULL",  # probability the policy gave this action, in (0, 1]
    "expected_profit": "DOUBLE",
    "cart_value": "DOUBLE",
    "margin": "DOUBLE",
    "discount_value": "DOUBLE",  # money given away if the customer buys (coupon face value)
    "cost": "DOUBLE",  # sending cost, paid either way
    "coupon_code": "VARCHAR",
    "coupon_expires_at": "TIMESTAMP",
    "window_hours": "DOUBLE NOT NULL",
    "reason": "VARCHAR",
    "context": "VARCHAR",  # JSON object of the features the policy saw
    "run_id": "VARCHAR",
}
"""The decision log (the act package writes it, the service and the report read it)."""

ATTRIBUTION_COLUMNS: Final[dict[str, str]] = {
    "user_id": "VARCHAR NOT NULL",
    "order_key": "VARCHAR NOT NULL",  # the order's id (the definitions' order: order_id, else session@instant)
    "ordered_at": "TIMESTAMP NOT NULL",  # the order's first purchase event
    "revenue": "DOUBLE NOT NULL",  # the order's price x quantity
    "message_id": "VARCHAR NOT NULL",  # a message sent to the customer before the order
    "decision_id": "VARCHAR NOT NULL",  # the decision behind the message
    "cart_id": "VARCHAR NOT NULL",
    "action": "VARCHAR NOT NULL",
    "channel": "VARCHAR NOT NULL",
    "touch": "VARCHAR NOT NULL",  # click (within the click window) or view (sent within the view window)
    "touched_at": "TIMESTAMP NOT NULL",
    "credited": "BOOLEAN NOT NULL",  # the one touch the order is credited to (last click, else last view)
    "click_window_hours": "DOUBLE NOT NULL",
    "view_window_hours": "DOUBLE NOT NULL",
    "computed_at": "TIMESTAMP NOT NULL",
}
"""Purchases linked to the messages before them (the act package's `attribute` writes it)."""

IMPRESSION_COLUMNS: Final[dict[str, str]] = {
    "impression_id": "VARCHAR NOT NULL",  # one list shown (every item of it shares the id)
    "ts": "TIMESTAMP NOT NULL",  # when it was shown (UTC): the answer's time, or the message's sending
    "user_id": "VARCHAR",  # the customer it was shown to (stored form, as events.user_id)
    "session_id": "VARCHAR",  # the session or cart, when known (anonymous carts, messages)
    "context": "VARCHAR NOT NULL",  # home, product, cart, similar, message
    "product_id": "VARCHAR NOT NULL",  # the item shown
    "position": "INTEGER NOT NULL",  # 1 = first of the list
    "source": "VARCHAR NOT NULL",  # recommender, popularity, store-popularity, best-sellers
    "model": "VARCHAR",  # the model's name (itemknn, ranker ...), None for store-wide lists
    "model_version": "VARCHAR",  # the registry version served (v0003), None for store-wide lists
    "message_id": "VARCHAR",  # context message: the message that carried it
}
"""The recommendation impression log: every item a list showed (the service and the outbox write it)."""

REC_ATTRIBUTION_COLUMNS: Final[dict[str, str]] = {
    "user_id": "VARCHAR NOT NULL",
    "order_key": "VARCHAR NOT NULL",  # the order (as in ``attributions``)
    "ordered_at": "TIMESTAMP NOT NULL",
    "product_id": "VARCHAR NOT NULL",  # a product of the order that was recommended before it
    "revenue": "DOUBLE NOT NULL",  # that product's price x quantity in the order
    "impression_id": "VARCHAR NOT NULL",  # a list that showed it within the window
    "context": "VARCHAR NOT NULL",
    "position": "INTEGER NOT NULL",
    "source": "VARCHAR NOT NULL",
    "model": "VARCHAR",
    "model_version": "VARCHAR",
    "message_id": "VARCHAR",
    "touched_at": "TIMESTAMP NOT NULL",  # when the list was shown
    "credited": "BOOLEAN NOT NULL",  # the one impression the bought product is credited to (the last)
    "rec_window_hours": "DOUBLE NOT NULL",
    "computed_at": "TIMESTAMP NOT NULL",
}
"""Purchased products linked to the recommendations that showed them before (`attribute` writes it)."""

HOLDOUT_PHASE_COLUMNS: Final[dict[str, str]] = {
    "phase": "INTEGER PRIMARY KEY",
    "share": "DOUBLE NOT NULL",
    "salt": "VARCHAR NOT NULL",
    "started_at": "TIMESTAMP",
    "created_at": "TIMESTAMP NOT NULL",
}
HOLDOUT_ASSIGNMENT_COLUMNS: Final[dict[str, str]] = {
    "cart_id": "VARCHAR PRIMARY KEY",
    "user_id": "VARCHAR",
    "ts": "TIMESTAMP",
    "phase": "INTEGER NOT NULL",
    "share": "DOUBLE NOT NULL",
    "held_out": "BOOLEAN NOT NULL",
    "decision_id": "VARCHAR",
    "assigned_at": "TIMESTAMP NOT NULL",
}
"""The global holdout's phases and each decided cart's group (the act package's `cartlift.act.set_holdout`)."""

CONSENT_COLUMNS: Final[dict[str, str]] = {"user_id": "VARCHAR NOT NULL", "email": "BOOLEAN", "sms": "BOOLEAN"}
"""The ``consents`` table the act package reads (exported from the e-mail tool; absent rows: no consent)."""

_EXPERIMENT_COLUMNS: Final[dict[str, str]] = {
    "name": "VARCHAR PRIMARY KEY",
    "salt": "VARCHAR NOT NULL",
    "variants": "VARCHAR NOT NULL",
    "weights": "VARCHAR NOT NULL",
    "control": "VARCHAR NOT NULL",
    "coverage": "DOUBLE NOT NULL",
    "holdout": "DOUBLE NOT NULL",
    "targeting": "VARCHAR NOT NULL",
    "hash_version": "INTEGER NOT NULL",
    "phase": "INTEGER NOT NULL",
    "created_at": "TIMESTAMP NOT NULL",
    "updated_at": "TIMESTAMP NOT NULL",
}
_PHASE_COLUMNS: Final[dict[str, str]] = {
    "name": "VARCHAR NOT NULL",
    "phase": "INTEGER NOT NULL",
    "salt": "VARCHAR NOT NULL",
    "definition": "VARCHAR NOT NULL",
    "started_at": "TIMESTAMP NOT NULL",
}
_EXPOSURE_COLUMNS: Final[dict[str, str]] = {
    "experiment": "VARCHAR NOT NULL",
    "salt": "VARCHAR NOT NULL",
    "unit_id": "VARCHAR NOT NULL",
    "variant": "VARCHAR",
    "status": "VARCHAR NOT NULL",
    "first_exposed_at": "TIMESTAMP NOT NULL",
    "last_exposed_at": "TIMESTAMP NOT NULL",
}

# the same merge as the experiments package's log_exposures: earliest first, latest last exposure
_EXPOSURE_MERGE: Final = (
    "(experiment, salt, unit_id) DO UPDATE SET "
    "first_exposed_at = least(exposures.first_exposed_at, EXCLUDED.first_exposed_at), "
    "last_exposed_at = greatest(exposures.last_exposed_at, EXCLUDED.last_exposed_at)"
)

_DECLARED: Final = (
    # the data model's core tables
    Table(
        "events",
        EVENT_COLUMNS,
        key=("event_id",),
        key_in_duckdb=False,
        indexes=(("session_id",), ("user_id",)),
        personal="user_id",
    ),
    Table("products", PRODUCT_COLUMNS, merge="(product_id) DO UPDATE SET {all}"),
    Table(
        "quarantine",
        QUARANTINE_COLUMNS,
        key=("quarantine_id",),
        key_in_duckdb=False,
        postgres_only={"user_id": "VARCHAR"},
        merge="DO NOTHING",
    ),
    Table("loads", LOAD_COLUMNS, merge="DO NOTHING"),
    # the service's
    Table(
        "api_keys",
        {
            "key_hash": "VARCHAR PRIMARY KEY",
            "key_id": "VARCHAR NOT NULL",
            "scope": "VARCHAR NOT NULL",
            "rate_limit": "DOUBLE",
            "label": "VARCHAR",
            "created_at": "TIMESTAMP NOT NULL",
            "revoked_at": "TIMESTAMP",
            "expires_at": "TIMESTAMP",
            "origins": "VARCHAR",  # a track key's page origins, comma separated
        },
        in_copies=False,
        added=("expires_at", "origins"),
    ),
    # the deliver package's (it works on PostgreSQL directly, so working copies leave them out);
    # the outbox's indexes on PostgreSQL only: DuckDB scans columns fast and would pay for every
    # index on each status change
    Table("customers", CUSTOMER_COLUMNS, personal="user_id", in_copies=False),
    Table("contact_quarantine", CONTACT_QUARANTINE_COLUMNS, personal="user_id", in_copies=False),
    Table(
        "messages",
        MESSAGE_COLUMNS,
        indexes=(("status", "due_at"), ("user_id",)),
        personal="user_id",
        in_copies=False,
    ),
    Table("coupons", COUPON_COLUMNS, personal="user_id", in_copies=False),
    Table("message_events", MESSAGE_EVENT_COLUMNS, personal="user_id", in_copies=False),
    Table("deliver_keys", DELIVER_KEY_COLUMNS, in_copies=False),
    # the storefront integrations': who is who, and webhooks already received
    Table(
        "identities",
        IDENTITY_COLUMNS,
        indexes=(("user_id",), ("anonymous_id",)),
        personal="user_id",
        in_copies=False,
    ),
    Table(
        "webhook_receipts",
        {"receipt_id": "VARCHAR PRIMARY KEY", "topic": "VARCHAR", "received_at": "TIMESTAMP NOT NULL"},
        in_copies=False,
    ),
    Table(
        "audit_log",
        {
            "audit_id": "VARCHAR PRIMARY KEY",
            "ts": "TIMESTAMP NOT NULL",
            "action": "VARCHAR NOT NULL",
            "subject": "VARCHAR NOT NULL",
            "actor": "VARCHAR",
            "details": "VARCHAR NOT NULL",
        },
        in_copies=False,
    ),
    # the act package's
    Table("consents", CONSENT_COLUMNS, indexes=(("user_id",),), personal="user_id"),
    Table(
        "decisions",
        DECISION_COLUMNS,
        indexes=(("user_id",), ("ts",)),
        # one decision per cart, whichever process decides it (the service relies on it)
        unique=(("cart_id",),),
        personal="user_id",
        merge="DO NOTHING",
    ),
    Table(MODEL_TABLE, MODEL_COLUMNS, merge="(name) DO UPDATE SET {all}"),
    Table("holdout_phases", HOLDOUT_PHASE_COLUMNS, merge="DO NOTHING"),
    Table(
        "holdout_assignments",
        HOLDOUT_ASSIGNMENT_COLUMNS,
        indexes=(("ts",),),
        personal="user_id",
        merge="DO NOTHING",
    ),
    # rewritten whole by `cartlift attribution` on either backend (so working copies read it, never merge it)
    Table(
        "attributions",
        ATTRIBUTION_COLUMNS,
        key=("user_id", "order_key", "message_id"),
        indexes=(("decision_id",),),
        personal="user_id",
    ),
    # the service's and the outbox's impression log: large, so working copies leave it out (the
    # attribution SQL runs on PostgreSQL itself); erased with the person
    Table(
        "rec_impressions",
        IMPRESSION_COLUMNS,
        key=("impression_id", "position"),
        key_in_duckdb=False,
        indexes=(("user_id",), ("product_id", "ts")),
        personal="user_id",
        in_copies=False,
    ),
    Table(
        "rec_attributions",
        REC_ATTRIBUTION_COLUMNS,
        key=("user_id", "order_key", "product_id", "impression_id"),
        indexes=(("impression_id",),),
        personal="user_id",
    ),
    # the experiments package's
    Table("experiments", _EXPERIMENT_COLUMNS, merge="(name) DO UPDATE SET {all}"),
    Table("experiment_phases", _PHASE_COLUMNS, key=("name", "phase"), merge="DO NOTHING"),
    Table(
        "exposures",
        _EXPOSURE_COLUMNS,
        key=("experiment", "salt", "unit_id"),
        indexes=(("unit_id",),),
        personal="unit_id",
        merge=_EXPOSURE_MERGE,
    ),
)

TABLES: Final[dict[str, Table]] = {t.name: t for t in _DECLARED}
"""Every table of a store, by name, in creation order."""

CORE_TABLES: Final = ("events", "products", "quarantine", "loads")
"""The tables every DuckDB store has from its first open."""

PACKAGE_TABLES: Final = tuple(t.name for t in _DECLARED if t.in_copies and t.name not in CORE_TABLES)
"""Tables beyond the core ones that packages create when they first write (all exist on PostgreSQL):
what slices and working copies of a PostgreSQL store hold besides events and the catalog."""


def table_ddl(names: tuple[str, ...] | None = None, dialect: Dialect = "duckdb") -> list[str]:
    """The DDL of the tables ``names`` (default: all), in ``dialect``."""
    return [sql for name in (names or tuple(TABLES)) for sql in TABLES[name].ddl(dialect)]
