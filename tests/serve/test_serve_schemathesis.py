"""Schemathesis generates requests from the OpenAPI document: no answer may be a 5xx, and every
answer must match the document (status codes, bodies, headers).

A second run is stateful only, on ``POST /v1/events`` and the routes its OpenAPI links lead to
(cart risk, decide, experiment assignment, erasure), so those get ids the service has stored; it
counts, from schemathesis' own event log, how many scenarios reached each with a 2xx answer.
(In the full run schemathesis starts scenarios from operations it judges likelier to create
resources, and the events route, whose ids it sees produced nowhere, is never a start.)"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from _serve_helpers import Server, copy_store

from cartlift.serve import create_key_in_store

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
        "negative_data_rejection",
        "missing_required_header",
        "unsupported_method",
        "allow_header_conformance",
        "ignored_auth",
        "object_level_authorization",
    ]
)
"""Every check of schemathesis but these: ``positive_data_acceptance`` (200 for an unknown but valid
value is right; refusing invalid data is what the schema's constraints cover),
``use_after_free`` and ``ensure_resource_availability`` (a generated id rarely exists: 404 is the
right, documented answer), ``max_response_time`` (`--checks all` adds a 10 s limit: a timed
assertion on a shared machine; speed is measured in ``benchmarks/``)."""

LINKED = {
    "risk": r"GET /v1/carts/[^/]+/risk",
    "decide": r"POST /v1/carts/[^/]+/decide",
    "assignment": r"GET /v1/experiments/[^/]+/assignment",
    "erasure": r"DELETE /v1/users/[^/]+",
}
"""The operations the links of ``POST /v1/events`` lead to."""


def _st() -> str:
    st = Path(sys.executable).with_name("st")
    if st.exists():
        return str(st)
    found = shutil.which("st")
    if found is None:
        pytest.skip("schemathesis is not installed (pip install schemathesis)")
    return found


def reached_by_scenario(ndjson: Path) -> tuple[int, Counter[str]]:
    """Stateful scenarios in a schemathesis NDJSON report, and how many reached each `LINKED` operation
    through a link (the id came from a previous answer) and got a 2xx answer."""
    scenarios, reached = 0, Counter[str]()
    for line in ndjson.read_text().splitlines():
        event = json.loads(line)
        finished = event.get("ScenarioFinished")
        if finished is None or finished["phase"] != "stateful":
            continue
        scenarios += 1
        recorder = finished["recorder"]
        here = set()
        for case_id, case in recorder["cases"].items():
            value = case["value"]
            response = (recorder["interactions"].get(case_id) or {}).get("response") or {}
            ok = 200 <= int(response.get("status_code") or 0) < 300
            for name, pattern in LINKED.items():
                if (
                    ok
                    and case["is_transition_applied"]
                    and re.fullmatch(pattern, f"{value['method']} {value['path']}")
                ):
                    here.add(name)
        reached.update(here)
    return scenarios, reached


@pytest.mark.slow
def test_no_server_errors_on_generated_requests(trained_store: Path, tmp_path: Path) -> None:
    st = _st()
    db = str(copy_store(trained_store, tmp_path))
    key = create_key_in_store(db, scope="admin", rate_limit=10_000)[0]
    with Server(db, tmp_path / "server.log") as server:
        result = subprocess.run(
            [
                st,
                "run",
                f"{server.url}/openapi.json",
                "--checks",
                CHECKS,
                "--header",
                f"Authorization: Bearer {key}",
                "--max-examples",
                "25",
                "--workers",
                "1",
                "--seed",
                "1",
                "--phases",
                "examples,coverage,fuzzing,stateful",
                "--exclude-path",
                "/v1/admin/train",  # retraining is slow, not fragile: the API test covers it
                "--request-timeout",
                "30",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=tmp_path,
        )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    # the report names how many cases ran; the issue asks for the number to be stated
    print(result.stdout[-1500:])


@pytest.mark.slow
def test_stateful_links_reach_risk_decide_assignment_and_erasure(trained_store: Path, tmp_path: Path) -> None:
    st = _st()
    db = str(copy_store(trained_store, tmp_path))
    key = create_key_in_store(db, scope="admin", rate_limit=10_000)[0]
    config = tmp_path / "schemathesis.toml"
    # longer scenarios than the default 6 steps, and the store's experiment as the assignment's name
    # (the links carry the unit; an experiment name is test data, as a client would have it)
    config.write_text(
        "[phases.stateful]\nmax-steps = 12\n\n"
        '[[operations]]\ninclude-operation-id = "assignment"\nparameters = { name = "banner" }\n'
    )
    report = tmp_path / "events.ndjson"
    # `_st_hooks` makes generated events storable (see there): the links then carry stored ids
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "_st_hooks", "PYTHONPATH": str(Path(__file__).parent)}
    operations = ["post_events_v1_events_post", "cart_risk", "decide", "assignment", "erase_user"]
    with Server(db, tmp_path / "server.log") as server:
        result = subprocess.run(
            [
                st,
                "--config-file",
                str(config),
                "run",
                f"{server.url}/openapi.json",
                "--checks",
                CHECKS,
                "--header",
                f"Authorization: Bearer {key}",
                "--phases",
                "stateful",
                "--mode",
                "positive",
                *(arg for op in operations for arg in ("--include-operation-id", op)),
                "--max-examples",
                "25",
                "--workers",
                "1",
                "--seed",
                "1",
                "--request-timeout",
                "30",
                "--report",
                "ndjson",
                "--report-ndjson-path",
                str(report),
            ],
            capture_output=True,
            text=True,
            timeout=900,
            cwd=tmp_path,
            env=env,
        )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "4 covered / 4 selected" in result.stdout, result.stdout[-3000:]  # every link followed
    scenarios, reached = reached_by_scenario(report)
    print(result.stdout[-1200:])
    print(f"{scenarios} stateful scenarios; reached with a 2xx answer through a link: {dict(reached)}")
    # each linked operation answered with real data in some scenario (decide refuses a cart that
    # was bought with a documented 404, so it is reached less often than the others)
    assert all(reached[name] >= 1 for name in LINKED), reached
