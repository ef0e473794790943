"""The cached recommendation lists and the route's shortcut: same answers as the models, fresh.

A user's list is computed once per model version (for 50 items) and sliced per request; the
common request shape skips FastAPI's parameter machinery. Both must be invisible to clients: every
answer equals what the loaded models give for exactly that ``k`` (computed here, in the test
process, from the registry's files), through the shortcut and through the general path alike,
and a reload serves the new models' answers at once.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from _serve_helpers import Running, check_error
from fastapi import APIRouter, Depends, FastAPI

from cartlift.errors import InvalidParameterError
from cartlift.serve import LoadedModels, ModelRegistry
from cartlift.serve._errors import ApiError, install_error_handlers
from cartlift.serve._rec_cache import ListCache, build_list, list_size
from cartlift.serve.routes import recommendations
from cartlift.serve.routes.recommendations import UserRecommendationsRoute, plain_k

ROUTE = "/v1/users/{user_id}/recommendations"


def fresh_answer(models: LoadedModels, user_id: str, k: int) -> dict[str, Any]:
    """What the models answer for exactly ``k``: the recommender, topped up by popularity."""

    def rows(recs: Any) -> list[tuple[str, float | None]]:
        return [
            (str(i), float(s) if math.isfinite(s) else None)
            for i, s in zip(recs.ids[0], recs.scores[0], strict=True)
            if i is not None
        ]

    items = [(i, s, "recommender") for i, s in rows(models.recommender.recommend([user_id], k))]
    if len(items) < k:
        have = {i for i, _, _ in items}
        extra = [
            (i, s, "popularity")
            for i, s in rows(models.popularity.recommend([user_id], k + len(have)))
            if i not in have
        ]
        items += extra[: k - len(items)]
    sources = list(dict.fromkeys(source for _, _, source in items))
    return {
        "user_id": user_id,
        "items": [{"item_id": i, "score": s} for i, s, _ in items],
        "sources": sources,
        "models": {kind: v["version"] for kind, v in models.versions.items() if kind in sources},
    }


def ask(running: Running, user_id: str, query: str) -> bytes:
    response = running.api("GET", f"/v1/users/{quote(user_id, safe='')}/recommendations{query}")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return response.content


def served_models(running: Running) -> LoadedModels:
    models = LoadedModels.load(ModelRegistry(running.folder / "models"))
    served = running.api("GET", "/readyz", key=None).json()["models"]
    assert {k: v["version"] for k, v in models.versions.items()} == {
        k: v["version"] for k, v in served.items()
    }
    return models


def request_count(running: Running) -> int:
    text = running.api("GET", "/metrics", key=None).text
    pattern = rf'cartlift_http_requests_total\{{method="GET",route="{re.escape(ROUTE)}",status="200"\}} (\d+)'
    found = re.search(pattern, text)
    return int(found.group(1)) if found else 0


# -- through a real server -----------------------------------------------------------------------


def test_cached_answers_equal_the_models_fresh_answers(running: Running) -> None:
    models = served_models(running)
    users = [f"u{i}" for i in range(0, 150, 7)] + ["never-seen", 'quote"back\\slash ü']
    # 10 computes 50 items; 3 and 50 are slices; 77 and 100 ask for more than was cached
    for user in users:
        for k in (10, 3, 77, 50, 100, 1):
            shortcut = ask(running, user, f"?k={k}")
            general = ask(running, user, f"?k={k}&context=home")  # FastAPI validates this one
            assert shortcut == general
            answer = json.loads(shortcut)
            assert answer == fresh_answer(models, user, k), (user, k)
            # the compact serialisation the route always answered with
            assert shortcut == json.dumps(answer, separators=(",", ":")).encode()
    # the default k is 10
    assert json.loads(ask(running, "u5", "")) == fresh_answer(models, "u5", 10)
    # a small catalog: some known users have fewer than 50 recommender items, so the popularity
    # top-up was checked above too
    assert any("popularity" in fresh_answer(models, u, 50)["sources"] for u in users if u.startswith("u"))


def test_shortcut_requests_are_counted_under_the_route_template(running: Running) -> None:
    before = request_count(running)
    for _ in range(5):
        ask(running, "u1", "?k=4")
    assert request_count(running) == before + 5


@pytest.mark.parametrize(
    ("query", "key", "status"),
    [
        ("?k=5", None, 401),  # the shortcut's request shape, refused before any work
        ("?k=5", "ingest", 403),
        ("", "slow", 429),  # the key allows 1 request per second: the second one is refused
        ("?k=0", "read", 422),  # not the shortcut's shape: FastAPI validates and refuses
        ("?k=101", "read", 422),
        ("?k=05", "read", 200),  # a leading zero: the general path, where pydantic reads 5
    ],
)
def test_errors_are_the_same_on_both_paths(
    running: Running, query: str, key: str | None, status: int
) -> None:
    token = running.keys[key] if key is not None else None
    path = f"/v1/users/u3/recommendations{query}"
    response = running.api("GET", path, key=token)
    if status == 429:
        response = running.api("GET", path, key=token)
    if status == 200:
        assert response.status_code == 200 and len(response.json()["items"]) == 5
        return
    error = check_error(response, status)
    # the same request shape through the general path gives the same error
    if status in (401, 403):
        general = running.api("GET", path + "&context=home", key=token)
        assert check_error(general, status) == error


def test_ids_over_the_length_limit_take_the_general_path(running: Running) -> None:
    read = running.keys["read"]
    check_error(running.api("GET", f"/v1/users/{'x' * 201}/recommendations", key=read), 422)
    assert running.api("GET", f"/v1/users/{'x' * 200}/recommendations", key=read).status_code == 200


def test_a_reload_serves_the_new_models_answers(running: Running) -> None:
    users = ["u2", "u9", "u40", "never-seen-either"]
    old = served_models(running)
    before = {u: ask(running, u, "?k=8") for u in users}  # now cached
    registry = ModelRegistry(running.folder / "models")
    popularity = registry.latest("popularity")
    assert popularity is not None

    def build(folder: Path) -> dict[str, Any]:
        # a different recommender: the popularity model under the recommender's kind
        shutil.copy(popularity[1] / "model.npz", folder / "model.npz")
        return {"name": "popularity"}

    version = registry.publish("recommender", build)
    # published but not loaded: the service still answers with the models it serves
    assert {u: ask(running, u, "?k=8") for u in users} == before
    reloaded = running.api("POST", "/v1/admin/reload")
    assert reloaded.status_code == 200 and reloaded.json()["models"]["recommender"]["version"] == version
    new = served_models(running)
    after = {u: json.loads(ask(running, u, "?k=8")) for u in users}
    for user in users:
        assert after[user] == fresh_answer(new, user, 8)
        assert after[user]["models"]["recommender"] == version
    # known users get other items than the item-kNN gave them
    known = [u for u in users if u.startswith("u")]
    assert any(
        [i["item_id"] for i in after[u]["items"]] != [i["item_id"] for i in fresh_answer(old, u, 8)["items"]]
        for u in known
    )


# -- the parts -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "k"),
    [
        (b"", 10),
        (b"k=1", 1),
        (b"k=10", 10),
        (b"k=100", 100),
        (b"k=101", None),
        (b"k=0", None),
        (b"k=010", None),
        (b"k=", None),
        (b"k=-1", None),
        (b"k=1e1", None),
        (b"k=%31", None),
        (b"K=5", None),
        (b"k=5&context=home", None),
        (b"context=home", None),
        (b"k=10000000000000000000", None),
    ],
)
def test_plain_k_takes_only_valid_lone_ks(query: bytes, k: int | None) -> None:
    assert plain_k(query) == k


def test_cached_list_serialises_as_the_dicts_did() -> None:
    rows: list[tuple[str, float | None, str]] = [
        ("p1", 0.5, "recommender"),
        ('p"2', 1e-300, "recommender"),
        ("p3", None, "popularity"),
        ("p4", float("nan"), "popularity"),
        ("pé", 7.0, "popularity"),
    ]
    versions = {"recommender": {"version": "v0003"}, "popularity": {"version": "v0001"}}
    cache = ListCache(LoadedModels(versions=versions), capacity=10)
    entry = build_list(rows, asked=50)
    assert list_size(entry) == 5
    for k in (1, 2, 3, 5, 9):
        top = rows[:k]
        sources = list(dict.fromkeys(s for _, _, s in top))
        expected = {
            "user_id": "ü",
            "items": [
                {"item_id": i, "score": s if s is not None and math.isfinite(s) else None} for i, s, _ in top
            ],
            "sources": sources,
            "models": {kind: versions[kind]["version"] for kind in versions if kind in sources},
        }
        assert cache.response("ü", entry, k) == json.dumps(expected, separators=(",", ":")).encode()
    empty = build_list([], asked=50)
    assert json.loads(cache.response("x", empty, 3)) == {
        "user_id": "x",
        "items": [],
        "sources": [],
        "models": {},
    }


def test_list_cache_drops_the_least_recently_used() -> None:
    cache = ListCache(LoadedModels(), capacity=2)
    lists = {u: build_list([(f"p-{u}", 1.0, "recommender")], asked=50) for u in "abc"}
    cache.put("a", lists["a"])
    cache.put("b", lists["b"])
    assert cache.get("a") == lists["a"]  # a is now the most recently used
    cache.put("c", lists["c"])
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (lists["a"], None, lists["c"])
    assert len(cache) == 2
    with pytest.raises(InvalidParameterError, match="'capacity' parameter of ListCache must be an int >= 1"):
        ListCache(LoadedModels(), capacity=0)


def _get_without_service(path: str, *extra: Any) -> httpx.Response:
    """GET ``path`` from an app with the recommendations route, extra dependencies, no service."""
    app = FastAPI()
    install_error_handlers(app)
    router = APIRouter(prefix="/v1")
    router.add_api_route(
        "/users/{user_id}/recommendations",
        recommendations.user_recommendations,
        methods=["GET"],
        route_class_override=UserRecommendationsRoute,
    )
    app.include_router(router, dependencies=[Depends(d) for d in extra])

    async def get() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://test") as client:
            return await client.get(path)

    return asyncio.run(get())


async def _refuse() -> None:
    """A dependency the shortcut does not know of: it must never be skipped."""
    raise ApiError(418, "Refused by a dependency the route was included with.")


@pytest.mark.parametrize("query", ["", "?k=5"])
def test_the_shortcut_runs_only_for_the_dependencies_it_replaces(query: str) -> None:
    path = f"/v1/users/u1/recommendations{query}"
    # the route as written: the shortcut's first check answers (no service is running)
    assert check_error(_get_without_service(path), 503)["code"] == "unavailable"
    # included with one more dependency: FastAPI's handler runs it first, the shortcut is off
    refused = check_error(_get_without_service(path, _refuse), 418)
    assert refused["message"].startswith("Refused by a dependency")
    # the real app includes the route with nothing added
    route = next(
        r for r in recommendations.router.routes if getattr(r, "path", "").endswith("/recommendations")
    )
    assert isinstance(route, UserRecommendationsRoute)
