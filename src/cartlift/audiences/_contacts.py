"""Every read of the store that audiences make beyond the packages' own functions, in one place.

Contacts (e-mail address and consent) live in a table another part of cartlift fills; its name
and columns are looked up here, so the rest of this package does not know how they are stored.
A customer's address is given only with a recorded e-mail consent and no unsubscribe; a
customer without a contacts row gets empty columns. Erased customers are found by the audit
log's hashed subject (the erasure deletes their rows; this catches any that came back).
"""

from __future__ import annotations

import hashlib
from typing import Final

import pandas as pd

from cartlift.store import EventStore, audit_subject

__all__ = ["CONTACT_TABLES", "contacts", "erased_subjects", "subject_of"]

CONTACT_TABLES: Final = ("contacts", "customers")
"""Tables that may hold addresses, looked up by name in this order."""
_ID_COLUMNS: Final = ("user_id", "customer_id", "customer")
_CONSENT_COLUMNS: Final = ("email_consent", "consent_email")


def _columns(store: EventStore, table: str) -> list[str]:
    rows = store.con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'main' AND table_name = ?",
        [table],
    ).fetchall()
    return [str(r[0]) for r in rows]


def contacts(store: EventStore) -> pd.DataFrame:
    """``user_id, email, email_consent`` per known customer; the address only where it may be used.

    The consent is the contacts table's own e-mail consent column when it has one, else the
    ``consents`` table's ``email`` flag; no consent found means no consent. A customer who
    unsubscribed (``unsubscribed_at`` set) has no consent.
    """
    empty = pd.DataFrame(
        {
            "user_id": pd.Series(dtype=str),
            "email": pd.Series(dtype=str),
            "email_consent": pd.Series(dtype=bool),
        }
    )
    tables = set(store.tables())
    for table in CONTACT_TABLES:
        if table not in tables:
            continue
        cols = _columns(store, table)
        key = next((c for c in _ID_COLUMNS if c in cols), None)
        if key is None or "email" not in cols:
            continue
        own = next((c for c in _CONSENT_COLUMNS if c in cols), None)
        if own is not None:
            consent = f"coalesce(CAST(c.{own} AS BOOLEAN), false)"
            join = ""
        elif "consents" in tables:
            consent = "coalesce(k.email, false)"
            join = "LEFT JOIN (SELECT user_id, bool_or(email) AS email FROM consents GROUP BY 1) k ON k.user_id = c.{key}"
        else:
            consent = "false"
            join = ""
        if "unsubscribed_at" in cols:
            consent = f"({consent} AND c.unsubscribed_at IS NULL)"
        frame = store.query(
            f"SELECT CAST(c.{key} AS VARCHAR) AS user_id, any_value(c.email) AS email, "
            f"bool_or({consent}) AS email_consent FROM {table} c {join.format(key=key)} GROUP BY 1"
        )
        frame["email"] = frame["email"].where(frame["email_consent"], None)
        return frame
    return empty


def subject_of(user_id: str, audit_key: str | None = None) -> set[str]:
    """How the audit log may name an erased customer: the service's keyed hash under ``audit_key``
    (`cartlift.store.audit_subject`) and the plain SHA-256 that stores written before it hold."""
    names = {"sha256:" + hashlib.sha256(user_id.encode()).hexdigest()}
    if audit_key is not None:
        names.add(audit_subject(user_id, audit_key))
    return names


def erased_subjects(store: EventStore) -> set[str]:
    """The hashed ids of every customer the audit log says was erased."""
    if "audit_log" not in set(store.tables()):
        return set()
    cols = _columns(store, "audit_log")
    if not {"action", "subject"} <= set(cols):
        return set()
    rows = store.con.execute("SELECT DISTINCT subject FROM audit_log WHERE action = 'erase_user'").fetchall()
    return {str(r[0]) for r in rows}
