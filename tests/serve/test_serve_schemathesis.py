"""Schemathesis generates requests from the OpenAPI document: no answer may be a 5xx, and every
answer must match the document (status codes, bodies, headers). The stateful phase follows the
links of ``POST /v1/events``, so risk, decisions, assignments and erasure get ids that exist."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from _serve_helpers import Server, copy_store

from cartlift.serve import create_key_in_store


@pytest.mark.slow
def test_no_server_errors_on_generated_requests(trained_store: Path, tmp_path: Path) -> None:
    st = Path(sys.executable).with_name("st")
    if not st.exists() and shutil.which("st") is None:
        pytest.skip("schemathesis is not installed (pip install schemathesis)")
    db = str(copy_store(trained_store, tmp_path))
    key = create_key_in_store(db, scope="admin", rate_limit=10_000)[0]
    with Server(db, tmp_path / "server.log") as server:
        result = subprocess.run(
            [
                str(st if st.exists() else shutil.which("st")),
                "run",
                f"{server.url}/openapi.json",
                "--checks",
                "all",
                # a generated id rarely exists: 404 is the right answer (and documented) then;
                # 200 for an unknown-but-valid field value is also right (positive-data check is
                # about refusing invalid data, which the schema's own constraints cover)
                "--exclude-checks",
                "positive_data_acceptance,use_after_free,ensure_resource_availability",
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
