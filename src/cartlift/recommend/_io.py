"""Readers for external evaluation files: session-rec's yoochoose clicks and basket files."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd

from cartlift.errors import DataError, InvalidParameterError

__all__ = ["read_baskets", "read_yoochoose"]

_ID_WORDS = ("order", "basket", "transaction", "invoice", "member", "receipt", "ticket", "id")


def read_yoochoose(path: str | Path) -> pd.DataFrame:
    """Read a session-rec yoochoose file (tab-separated ``SessionId, ItemId, Time`` in epoch seconds).

    Returns
    -------
    DataFrame
        ``session_id, user_id`` (the session: clicks are anonymous), ``item_id`` (str), ``ts``
        (float epoch seconds) and ``event_type`` (``view``), in file order.
    """
    source = Path(path)
    try:
        frame = pd.read_csv(source, sep="\t", dtype={"SessionId": str, "ItemId": str, "Time": float})
    except (OSError, ValueError) as e:
        raise DataError(f"Cannot read {str(source)!r} as a yoochoose file: {e}") from e
    missing = {"SessionId", "ItemId", "Time"} - set(frame.columns)
    if missing:
        raise DataError(
            f"{str(source)!r} lacks {sorted(missing)}: a yoochoose file has the tab-separated header "
            f"SessionId, ItemId, Time (got {list(frame.columns)})."
        )
    return pd.DataFrame(
        {
            "session_id": frame["SessionId"],
            "user_id": frame["SessionId"],
            "item_id": frame["ItemId"],
            "ts": frame["Time"],
            "event_type": "view",
        }
    )


def read_baskets(path: str | Path, format: str = "auto") -> list[list[str]]:
    """Read baskets: one per line (``milk,bread,eggs``) or order/item rows.

    Parameters
    ----------
    path : str or Path
        Comma- or tab-separated text.
    format : {"auto", "lines", "rows"}
        ``lines``: each line is a basket. ``rows``: a header, then one item per row; every
        column but the last identifies the basket (``order_id,item`` or
        ``Member_number,Date,itemDescription``). ``auto`` picks ``rows`` when the first line
        looks like such a header (a column named like an order, basket, transaction, invoice,
        member or id) and every line has the same number of fields.

    Returns
    -------
    list of list of str
        Baskets in order of first appearance; items inside a basket are unique.
    """
    if format not in ("auto", "lines", "rows"):
        raise InvalidParameterError(f"format must be 'auto', 'lines' or 'rows'. Got {format!r} instead.")
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8-sig")
    except OSError as e:
        raise DataError(f"Cannot read the basket file {str(source)!r}: {e}") from e
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise DataError(f"The basket file {str(source)!r} is empty.")
    delimiter = "\t" if "\t" in lines[0] and "," not in lines[0] else ","
    rows = list(csv.reader(lines, delimiter=delimiter))
    if format == "auto":
        header = [h.strip().lower() for h in rows[0]]
        same_width = len({len(r) for r in rows}) == 1 and len(rows[0]) >= 2
        format = "rows" if same_width and any(w in h for h in header[:-1] for w in _ID_WORDS) else "lines"
    if format == "lines":
        baskets = [list(dict.fromkeys(x.strip() for x in r if x.strip())) for r in rows]
        return [b for b in baskets if b]
    body = rows[1:]
    if not body:
        raise DataError(f"{str(source)!r} has a header and no rows.")
    grouped: dict[tuple[str, ...], dict[str, None]] = {}
    for r in body:
        if len(r) < 2 or not r[-1].strip():
            continue
        grouped.setdefault(tuple(x.strip() for x in r[:-1]), {})[r[-1].strip()] = None
    return [list(items) for items in grouped.values()]
