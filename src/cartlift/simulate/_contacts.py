"""The simulated customers' contact records: addresses on the reserved ``example.com`` domain.

E-mail ``<user_id>@example.com`` (RFC 2606 reserves the domain: nothing sent there reaches anyone),
phone numbers in the North American range reserved for fiction (``+1 202 555 0100..0199``), a
time zone and locale drawn per customer, and the consents the simulation gave them.
"""

from __future__ import annotations

from typing import Any, Final

import pandas as pd

from cartlift._random import RandomState, check_random_state

__all__ = ["ZONES", "simulated_contacts"]

ZONES: Final = (
    ("Europe/London", "en_GB"),
    ("Europe/Berlin", "de_DE"),
    ("Europe/Paris", "fr_FR"),
    ("America/New_York", "en_US"),
    ("America/Los_Angeles", "en_US"),
    ("Asia/Tokyo", "ja_JP"),
    ("Australia/Sydney", "en_AU"),
)
"""Time zones (with a locale) the simulated customers live in, drawn uniformly."""


def simulated_contacts(users: pd.DataFrame, random_state: RandomState = None) -> list[dict[str, Any]]:
    """One contact record per simulated customer (``users``: ``user_id``, ``email_consent``, ``sms_consent``).

    Returns
    -------
    list of dict
        Records for `cartlift.deliver.load_contacts`; consent source ``simulation``.
    """
    rng = check_random_state(random_state)
    zone = rng.integers(len(ZONES), size=len(users))
    ids = users["user_id"].astype(str).to_numpy()
    email = users["email_consent"].to_numpy(dtype=bool)
    sms = users["sms_consent"].to_numpy(dtype=bool)
    return [
        {
            "user_id": uid,
            "email": f"{uid}@example.com",
            "phone": f"+1202555{100 + i % 100:04d}" if s else None,
            "time_zone": ZONES[z][0],
            "locale": ZONES[z][1],
            "email_consent": bool(e),
            "email_consent_source": "simulation" if e else None,
            "sms_consent": bool(s),
            "sms_consent_source": "simulation" if s else None,
        }
        for i, (uid, z, e, s) in enumerate(zip(ids, zone, email, sms, strict=True))
    ]
