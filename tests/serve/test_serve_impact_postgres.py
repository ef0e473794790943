"""The program's impact and attribution through the service on PostgreSQL give the DuckDB store's
answers (`cartlift impact` and `cartlift attribution` on the same data), on a simulated store whose
carts were decided, sent and answered. Runs against the real PostgreSQL on 127.0.0.1:5432 and
skips, saying why, without it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from _serve_helpers import Api, Server, copy_to_postgres, pg_schema
from typer.testing import CliRunner

from cartlift.act import current_holdout
from cartlift.cli import app
from cartlift.cli._simulate import demo_step as simulate_step
from cartlift.deliver import run_demo
from cartlift.serve import create_key_in_store
from cartlift.store import EventStore

_TABLES = (
    "events", "products", "consents", "decisions", "holdout_phases", "holdout_assignments",
    "messages", "message_events", "rec_impressions",  # the e-mails' suggestions, logged by the outbox
)  # fmt: skip


def _cli(*args: str) -> dict[str, Any]:
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.stdout))


def _close(a: Any, b: Any) -> None:
    if isinstance(a, dict):
        assert set(a) == set(b)
        for k in a:
            _close(a[k], b[k])
    elif isinstance(a, list):
        assert len(a) == len(b)
        for x, y in zip(sorted(a, key=repr), sorted(b, key=repr), strict=True):
            _close(x, y)
    elif isinstance(a, float):
        assert a == pytest.approx(b, rel=1e-9, abs=1e-9)
    else:
        assert a == b


def test_impact_and_attribution_on_postgresql_equal_the_duckdb_store(tmp_path: Path) -> None:
    duck = tmp_path / "store.duckdb"
    with EventStore(duck) as store:
        simulate_step(store, tmp_path, users=2000, days=14, seed=2)
        current_holdout(store)  # phase 1 recorded, as any decision records it
        run_demo(store, tmp_path, days=4.0, seed=2)
    impact = _cli("impact", "--db", str(duck))
    attribution = _cli("attribution", "--db", str(duck))
    assert impact["carts"]["treated"] > 0 and impact["by_segment"]
    assert attribution["messages"]["sent"] > 0
    with pg_schema() as url:
        copy_to_postgres(duck, url, _TABLES)
        key = create_key_in_store(url, scope="admin")[0]
        with Server(url, tmp_path / "server.log") as server:
            api = Api(server, key)
            try:
                served = api("GET", "/v1/impact")
                linked = api("GET", "/v1/attribution")
                board = api("GET", "/v1/dashboard").json()
                bad = api("GET", "/v1/attribution", params={"click_window": "soon"})
            finally:
                api.close()
        pg_cli = _cli("impact", "--db", url)
    assert served.status_code == 200, served.text
    _close(served.json(), impact)
    _close(pg_cli, impact)
    assert linked.status_code == 200, linked.text
    _close(linked.json(), attribution)
    _close(board["attribution"], attribution)
    _close(board["impact"]["incremental_profit"], impact["incremental_profit"])
    assert bad.status_code == 422 and "A window is a number with a unit" in bad.text
