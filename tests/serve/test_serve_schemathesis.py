"""Schemathesis generates requests from the OpenAPI document: no answer may be a 5xx."""

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
                "not_a_server_error",
                "--header",
                f"Authorization: Bearer {key}",
                "--max-examples",
                "25",
                "--workers",
                "1",
                "--seed",
                "1",
                "--phases",
                "examples,coverage,fuzzing",
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
