"""Each user's recommendation list, computed once per model snapshot and kept as JSON bytes.

Gorse's approach: a user's list depends only on the served model versions (the models learn at
training, not from each posted event), so it is computed on the first request after a version
is loaded and then served from memory. A list is kept already serialised, with the offsets
where each item ends, so a request for the top ``k`` is one slice and one join, with no
pydantic model, dict or ``json.dumps`` of the items.

A cache belongs to one `LoadedModels` snapshot: a reload swaps in a new, empty cache with the
new models, so a request still computing on the old models writes into the old cache, which
nobody reads any more, and a stale list can never be served.
"""

from __future__ import annotations

import json
import math
import re
import struct
from collections import OrderedDict
from collections.abc import Sequence
from typing import TypeAlias

from cartlift.errors import InvalidParameterError
from cartlift.serve._registry import LoadedModels

__all__ = ["ListCache", "UserList", "build_list", "list_items", "list_size"]

UserList: TypeAlias = tuple[bytes, bytes, tuple[tuple[str, int], ...], int]
"""``(items, ends, firsts, asked)``: the items' JSON objects joined by commas; where each ends in
``items`` (little-endian uint32s); each source with the position of its first item; how many items
were asked of the models. A plain tuple of bytes, strings and ints on purpose: CPython stops
tracking such tuples in the garbage collector, so the collector's full passes (which stall
requests: the tail of the latency) walk one dict for 100,000 cached lists, where lists of
``(item, score, source)`` tuples were 5 million objects; and the offsets as bytes take 4 bytes an
item instead of 36 for a tuple of ints."""

_END = struct.Struct("<I")


def build_list(items: Sequence[tuple[str, float | None, str]], *, asked: int) -> UserList:
    """Serialise ``(item_id, score, source)`` rows, best first, once.

    Each item is written exactly as ``json.dumps({"item_id": i, "score": s}, separators=(",", ":"))``
    writes it (a non-finite score as ``null``), so the bytes equal what serialising the dict per
    request gave.
    """
    parts: list[bytes] = []
    ends: list[int] = []
    firsts: dict[str, int] = {}
    size = 0
    for position, (item_id, score, source) in enumerate(items):
        value = score if score is not None and math.isfinite(score) else None
        part = json.dumps({"item_id": item_id, "score": value}, separators=(",", ":")).encode()
        size += len(part) + (1 if parts else 0)
        parts.append(part)
        ends.append(size)
        firsts.setdefault(source, position)
    return b",".join(parts), struct.pack(f"<{len(ends)}I", *ends), tuple(firsts.items()), asked


def list_size(entry: UserList) -> int:
    """How many items a cached list holds."""
    return len(entry[1]) // _END.size


_PLAIN_ID = re.compile(rb'\{"item_id":"([^"\\]*)"')


def list_items(entry: UserList, k: int) -> list[str]:
    """The ids of the first ``k`` items of a cached list (read back from its JSON, off the request path).

    Ids without an escaped character (nearly all) are cut out of the bytes (several times quicker
    than decoding the JSON); a list holding one is decoded.
    """
    items, ends, _, _ = entry
    n = min(k, len(ends) // _END.size)
    end = _END.unpack_from(ends, (n - 1) * _END.size)[0] if n else 0
    part = items[:end]
    if b"\\" not in part:
        found = _PLAIN_ID.findall(part)
        if len(found) == n:
            return b"\x00".join(found).decode().split("\x00")  # one decode for the list
    return [str(i["item_id"]) for i in json.loads(b"[" + part + b"]")]


class ListCache:
    """Users' lists of one model snapshot, at most ``capacity``, least recently used out first.

    Parameters
    ----------
    models : LoadedModels
        The snapshot every list in this cache was computed with.
    capacity : int
        Most lists kept (each about 40 bytes per item).
    """

    def __init__(self, models: LoadedModels, capacity: int) -> None:
        if capacity < 1:
            raise InvalidParameterError(
                f"The 'capacity' parameter of ListCache must be an int >= 1. Got {capacity!r} instead."
            )
        self.models = models
        self.capacity = capacity
        self._lists: OrderedDict[str, UserList] = OrderedDict()
        # the end of a response for each combination of sources: few, so built once each
        self._tails: dict[tuple[str, ...], bytes] = {}

    def __len__(self) -> int:
        return len(self._lists)

    def get(self, uid: str) -> UserList | None:
        """The cached list of a (stored-form) user id, marked as recently used."""
        entry = self._lists.get(uid)
        if entry is not None:
            self._lists.move_to_end(uid)
        return entry

    def put(self, uid: str, entry: UserList) -> None:
        """Keep a list, dropping the least recently used one when full."""
        self._lists[uid] = entry
        self._lists.move_to_end(uid)
        if len(self._lists) > self.capacity:
            self._lists.popitem(last=False)

    def clear(self) -> None:
        """Forget every list (they are recomputed on their next request)."""
        self._lists.clear()

    def response(self, user_id: str, entry: UserList, k: int) -> bytes:
        """The JSON body for the top ``k`` of ``entry``: ``{"user_id", "items", "sources", "models"}``.

        ``sources`` names the sources of the items shown, in order of first appearance, and
        ``models`` the version of each of them that is a served model kind.
        """
        items, ends, firsts, _ = entry
        n = min(k, len(ends) // _END.size)
        sources = tuple(source for source, first in firsts if first < n)
        tail = self._tails.get(sources)
        if tail is None:
            versions = self.models.versions
            models = {kind: v["version"] for kind, v in versions.items() if kind in sources}
            tail = (
                b'],"sources":'
                + json.dumps(list(sources), separators=(",", ":")).encode()
                + b',"models":'
                + json.dumps(models, separators=(",", ":")).encode()
                + b"}"
            )
            self._tails[sources] = tail
        head = b'{"user_id":' + json.dumps(user_id).encode() + b',"items":['
        end = _END.unpack_from(ends, (n - 1) * _END.size)[0] if n else 0
        return b"".join((head, items[:end], tail))
