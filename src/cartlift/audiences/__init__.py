"""Audiences: one row per customer with segment, cluster, CLV, P(alive), price sensitivity,
abandonment risk and top recommendations, for a campaign or e-mail tool.

`build_audience` makes the rows (`COLUMNS` says what each column means); `Audience.write`
saves them as CSV or Parquet. E-mail addresses come from a contacts table when the store has
one, only for customers with a recorded e-mail consent; erased customers never appear.
"""

from cartlift.audiences._build import COLUMNS, Audience, build_audience
from cartlift.audiences._contacts import CONTACT_TABLES, contacts

__all__ = ["COLUMNS", "CONTACT_TABLES", "Audience", "build_audience", "contacts"]
