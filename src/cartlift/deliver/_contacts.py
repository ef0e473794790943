"""Contacts and consent: one check of a customer record, used by the file loader and the API.

A record is accepted when its id is there, its e-mail address passes `email_validator` (syntax
only: no network at load time), its phone number parses with `phonenumbers` into a valid
number (stored in E.164), its time zone is a known IANA name (`zoneinfo`), its consents are
yes/no values, and a consent comes with the address it covers. Anything else is quarantined with
the reason, never dropped. Loading the same file twice changes nothing: a record equal to the
stored one counts as a duplicate.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd
import phonenumbers
from email_validator import EmailNotValidError, validate_email

from cartlift.deliver import _repo
from cartlift.deliver._tables import Db
from cartlift.errors import DataError

__all__ = ["CONTACT_FIELDS", "ContactLoad", "check_contact", "load_contacts", "read_contacts"]

CONTACT_FIELDS: Final = (
    "user_id",
    "email",
    "phone",
    "time_zone",
    "locale",
    "email_consent",
    "email_consent_source",
    "email_consent_at",
    "sms_consent",
    "sms_consent_source",
    "sms_consent_at",
    "unsubscribed_at",
)
"""What a contact record may hold (``customer_id`` is read as ``user_id``)."""

_TRUE: Final = {"true", "1", "yes", "y", "t"}
_FALSE: Final = {"false", "0", "no", "n", "f", ""}


class ContactError(ValueError):
    """A contact record that cannot be stored; the message is the quarantine reason."""


def _text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    text = str(value).strip()
    return text or None


def _flag(record: Mapping[str, Any], name: str) -> bool:
    value = record.get(name)
    if isinstance(value, bool):
        return value
    text = (_text(value) or "").lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ContactError(f"{name} must be yes/no (true/false, 1/0); got {value!r}")


def _time(record: Mapping[str, Any], name: str) -> datetime | None:
    text = _text(record.get(name))
    if text is None:
        return None
    try:
        ts = pd.Timestamp(text)
    except ValueError:
        raise ContactError(f"{name} is not a date and time: {text!r}") from None
    ts = ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo is not None else ts
    return ts.to_pydatetime()


def check_contact(record: Mapping[str, Any], *, region: str | None = None, now: datetime) -> dict[str, Any]:
    """One customer record, checked and normalised; raises `ContactError` with the reason.

    Parameters
    ----------
    record : mapping
        Fields of `CONTACT_FIELDS` (``customer_id`` is accepted for ``user_id``).
    region : str, optional
        Two-letter country whose numbering plan reads phone numbers written without ``+``.
    now : datetime
        When the record is stored (naive UTC); consent times default to it.

    Returns
    -------
    dict
        The ``customers`` row: e-mail as normalised by email-validator, phone in E.164.
    """
    unknown = set(record) - set(CONTACT_FIELDS) - {"customer_id"}
    if unknown:
        raise ContactError(f"unknown field(s) {', '.join(sorted(map(str, unknown)))}")
    user = _text(record.get("user_id", record.get("customer_id")))
    if user is None:
        raise ContactError("missing customer id (user_id or customer_id)")
    email = _text(record.get("email"))
    if email is not None:
        try:
            email = validate_email(email, check_deliverability=False).normalized
        except EmailNotValidError as e:
            raise ContactError(f"invalid e-mail address {email!r}: {e}") from None
    phone = _text(record.get("phone"))
    if phone is not None:
        try:
            number = phonenumbers.parse(phone, region)
        except phonenumbers.NumberParseException as e:
            raise ContactError(f"invalid phone number {phone!r}: {e}") from None
        if not phonenumbers.is_valid_number(number):
            raise ContactError(f"invalid phone number {phone!r}: not a valid number")
        phone = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    zone = _text(record.get("time_zone"))
    if zone is not None:
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ContactError(
                f"unknown time zone {zone!r} (use an IANA name such as Europe/Berlin)"
            ) from None
    row: dict[str, Any] = {
        "user_id": user,
        "email": email,
        "phone": phone,
        "time_zone": zone,
        "locale": _text(record.get("locale")),
        "unsubscribed_at": _time(record, "unsubscribed_at"),
    }
    for channel, address in (("email", email), ("sms", phone)):
        given = _flag(record, f"{channel}_consent")
        if given and address is None:
            raise ContactError(
                f"{channel} consent without {'an e-mail address' if channel == 'email' else 'a phone number'}"
            )
        row[f"{channel}_consent"] = given
        row[f"{channel}_consent_source"] = _text(record.get(f"{channel}_consent_source"))
        # a consent without its time gets the load's time in `load_contacts` (or keeps the stored one)
        row[f"{channel}_consent_at"] = _time(record, f"{channel}_consent_at")
    return row


def read_contacts(path: str | Path) -> list[dict[str, Any]]:
    """The records of a CSV, TSV, Parquet or JSON-lines file (every value as read, text kept as text)."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"No file at {str(p)!r}.")
    suffix = p.suffix.lower()
    try:
        if suffix == ".parquet":
            frame = pd.read_parquet(p)
        elif suffix in (".jsonl", ".ndjson", ".json"):
            frame = pd.read_json(p, lines=True, dtype=False)
        elif suffix in (".csv", ".tsv", ".txt"):
            frame = pd.read_csv(p, sep="\t" if suffix == ".tsv" else ",", dtype=str, keep_default_na=False)
        else:
            raise DataError(f"Cannot read {p.name!r}: contacts come as .csv, .tsv, .parquet or .jsonl.")
    except (ValueError, OSError) as e:
        raise DataError(f"Cannot read {p.name!r}: {e}") from None
    frame = frame.astype(object).where(frame.notna(), None)
    return [{str(k): v for k, v in r.items()} for r in frame.to_dict(orient="records")]


@dataclass
class ContactLoad:
    """What a load did: every record is accepted, a duplicate, or quarantined with its reason."""

    accepted: int = 0
    duplicates: int = 0
    quarantined: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    load_id: str = ""

    def to_dict(self) -> dict[str, Any]:
        """``{"accepted", "duplicates", "quarantined", "reasons"}`` (reasons: count per reason)."""
        return {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "quarantined": self.quarantined,
            "reasons": dict(self.reasons.most_common()),
            "load_id": self.load_id,
        }


def _short(reason: str) -> str:
    """The reason without the record's own value, so reasons group in the summary."""
    return reason.split(" '")[0].split(" (")[0].split(":")[0]


def load_contacts(
    db: Db, records: Iterable[Mapping[str, Any]], *, source: str, region: str | None = None
) -> ContactLoad:
    """Check and store customer records in one transaction (a failure stores nothing).

    Parameters
    ----------
    db : Db
    records : iterable of mappings
        Contact records (see `check_contact`).
    source : str
        Where they came from (file name, ``api``), kept with quarantined records.
    region : str, optional
        Country for phone numbers without ``+``.
    """
    now = _repo.utcnow()
    result = ContactLoad(load_id=_repo.new_id())
    rows: dict[str, dict[str, Any]] = {}
    rejects: list[tuple[int, str | None, str, str]] = []
    for n, record in enumerate(records, start=1):
        try:
            row = check_contact(record, region=region, now=now)
        except ContactError as e:
            raw = json.dumps({str(k): _jsonable(v) for k, v in record.items()}, sort_keys=True)
            user = _text(record.get("user_id", record.get("customer_id")))
            rejects.append((n, user, raw, str(e)))
            continue
        earlier = rows.get(row["user_id"])
        if earlier is not None and not _repo.same_contact(earlier, row):
            raw = json.dumps({str(k): _jsonable(v) for k, v in record.items()}, sort_keys=True)
            rejects.append(
                (n, row["user_id"], raw, "a second, different record for the same customer id in this load")
            )
            continue
        if earlier is not None:
            result.duplicates += 1
            continue
        rows[row["user_id"]] = row
    with db.transaction():
        _repo.create(db)
        stored = _repo.customers_by_id(db, list(rows))
        for uid, row in rows.items():
            _consent_times(row, stored.get(uid), now)
        new = [r for uid, r in rows.items() if uid not in stored or not _repo.same_contact(stored[uid], r)]
        result.duplicates += len(rows) - len(new)
        result.accepted = len(new)
        _repo.upsert_customers(db, new, now=now, load_id=result.load_id)
        _repo.quarantine_contacts(db, rejects, source=source, load_id=result.load_id, now=now)
    result.quarantined = len(rejects)
    result.reasons.update(_short(r[3]) for r in rejects)
    return result


def _consent_times(row: dict[str, Any], stored: dict[str, Any] | None, now: datetime) -> None:
    """A consent given without its time keeps the stored time of the same consent, else gets ``now``."""
    for channel in ("email", "sms"):
        at = f"{channel}_consent_at"
        if row[f"{channel}_consent"] and row[at] is None:
            same = stored is not None and stored[f"{channel}_consent"]
            row[at] = stored[at] if same and stored is not None else now


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return None if pd.isna(value) else value
    return str(value)
