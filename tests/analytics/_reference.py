"""Brute-force funnels in plain Python: every entry tried, every step scanned. Slow, obvious, independent.

They share nothing with cartlift's SQL: they read a DataFrame of events and follow the definitions
word by word (PostHog's semantics: each unit counts once, with its attempt that got furthest).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import pandas as pd

RANK = {"view": 0, "cart_add": 1, "cart_remove": 2, "checkout": 3, "purchase": 4, "return": 5}


def _prepare(events: pd.DataFrame, unit: str) -> dict[str, list[tuple[int, datetime, str, str]]]:
    """unit -> its events as (order key, ts, event_type, event_id), in order."""
    col = "session_id" if unit == "session" else "user_id"
    out: dict[str, list[tuple[int, datetime, str, str]]] = {}
    for row in events.itertuples(index=False):
        ts = pd.Timestamp(row.ts).to_pydatetime()
        # time first, then the funnel order of the event type at equal times
        key = int(pd.Timestamp(row.ts).value // 1000) * 8 + RANK.get(row.event_type, 7)
        out.setdefault(getattr(row, col), []).append((key, ts, row.event_type, str(row.event_id)))
    for evs in out.values():
        evs.sort(key=lambda e: (e[0], e[3]))
    return out


def _in_range(ts: datetime, start: datetime | None, end: datetime | None) -> bool:
    return (start is None or ts >= start) and (end is None or ts < end)


def ordered_counts(
    events: pd.DataFrame,
    steps: Sequence[str],
    unit: str = "session",
    window: timedelta | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> list[int]:
    """Units reaching each step in order, any events allowed between steps."""
    best_levels = []
    for evs in _prepare(events, unit).values():
        best = 0
        for i, (k1, t1, typ, _) in enumerate(evs):
            if typ != steps[0] or not _in_range(t1, start, end):
                continue
            level, last_key = 1, k1
            for step in steps[1:]:
                found = None
                for k, t, typ2, _ in evs[i:]:
                    if typ2 == step and k > last_key:
                        found = (k, t)
                        break
                if found is None or (window is not None and found[1] - t1 > window):
                    break
                level, last_key = level + 1, found[0]
            best = max(best, level)
        if best:
            best_levels.append(best)
    return [sum(lv >= j for lv in best_levels) for j in range(1, len(steps) + 1)]


def strict_counts(
    events: pd.DataFrame, steps: Sequence[str], unit: str = "session", window: timedelta | None = None
) -> list[int]:
    """Units whose steps are consecutive events (nothing in between)."""
    best_levels = []
    for evs in _prepare(events, unit).values():
        best = 0
        for i, (_, t1, typ, _) in enumerate(evs):
            if typ != steps[0]:
                continue
            level = 1
            for j, step in enumerate(steps[1:], start=1):
                if i + j >= len(evs):
                    break
                _, t, typ2, _ = evs[i + j]
                if typ2 != step or (window is not None and t - t1 > window):
                    break
                level += 1
            best = max(best, level)
        if best:
            best_levels.append(best)
    return [sum(lv >= j for lv in best_levels) for j in range(1, len(steps) + 1)]


def unordered_counts(
    events: pd.DataFrame, steps: Sequence[str], unit: str = "session", window: timedelta | None = None
) -> list[int]:
    """Units doing any k of the steps, starting from any step event, within the window."""
    best_levels = []
    for evs in _prepare(events, unit).values():
        best = 0
        for k0, t0, typ, _ in evs:
            if typ not in steps:
                continue
            done = {
                typ2
                for k, t, typ2, _ in evs
                if typ2 in steps and k >= k0 and (window is None or t - t0 <= window)
            }
            best = max(best, len(done))
        if best:
            best_levels.append(best)
    return [sum(lv >= j for lv in best_levels) for j in range(1, len(steps) + 1)]
