"""Hostile files and a busy store: every row accounted for, every failure one line and exit 2."""

from __future__ import annotations

import codecs
import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from cartlift.cli import app
from cartlift.store import EventStore

runner = CliRunner()
HEADER = "event_id,ts,user_id,session_id,event_type,product_id,quantity,price,order_id"


def rows(n: int, start: int = 0, *, bad_every: int = 0) -> list[str]:
    """``n`` cartlift-format rows; with ``bad_every`` every k-th has an unreadable time (quarantined)."""
    out = []
    for i in range(start, start + n):
        ts = "not a time" if bad_every and i % bad_every == 0 else f"2026-03-01 10:{i % 60:02d}:00"
        out.append(f"e{i},{ts},u{i % 7},s{i % 7},cart_add,p{i % 5},1,9.5,")
    return out


def accounted(result: dict[str, int]) -> bool:
    return result["accepted"] + result["duplicates"] + result["quarantined"] == result["rows_read"]


def ingest(path: Path, db: Path, *extra: str) -> tuple[int, str, str]:
    r = runner.invoke(app, ["ingest", str(path), "--db", str(db), *extra])
    return r.exit_code, r.stdout, r.stderr


def test_mixed_line_ends_load_and_every_row_is_accounted(tmp_path: Path) -> None:
    body = rows(40, bad_every=10)
    text = HEADER + "\r\n" + "".join(line + ("\r\n" if i % 2 else "\n") for i, line in enumerate(body))
    path = tmp_path / "mixed.csv"
    path.write_bytes(text.encode())
    code, out, err = ingest(path, tmp_path / "s.duckdb", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert (result["rows_read"], result["accepted"], result["quarantined"]) == (40, 36, 4)
    assert accounted(result) and "DuckDB" not in err


@pytest.mark.parametrize(
    ("name", "encode"),
    [
        ("events.csv.gz", lambda text: gzip.compress(text.encode())),
        ("events.csv", lambda text: text.encode("utf-16")),  # with its byte-order mark
        ("events.csv", lambda text: text.encode("utf-16-le")),  # without one
        ("events.csv", lambda text: codecs.BOM_UTF8 + text.encode()),
    ],
    ids=["gzip", "utf-16", "utf-16-le-no-bom", "utf-8-bom"],
)
def test_gzip_and_utf16_files_are_read(tmp_path: Path, name: str, encode: object) -> None:
    path = tmp_path / name
    path.write_bytes(encode("\n".join([HEADER, *rows(25)]) + "\n"))  # type: ignore[operator]
    code, out, err = ingest(path, tmp_path / "s.duckdb", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert (result["accepted"], result["quarantined"], result["format"]) == (25, 0, "cartlift")
    assert result["source"] == str(path)  # the user's file, not the private copy
    with EventStore(tmp_path / "s.duckdb", read_only=True) as store:
        assert store.query("SELECT min(user_id) AS u FROM events")["u"][0] == "u0"


def test_undecodable_utf16_is_refused_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.csv"
    path.write_bytes(codecs.BOM_UTF16_LE + (HEADER + "\n").encode("utf-16-le") + b"\x00\xd8\x41\x00")
    code, _, err = ingest(path, tmp_path / "s.duckdb")
    assert code == 2
    assert "not valid utf-16" in err and "UTF-8" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_a_file_growing_during_the_load_is_read_as_it_was(tmp_path: Path) -> None:
    """Rows appended while the load runs (valid and invalid) are neither counted nor half-stored."""
    path = tmp_path / "growing.csv"
    path.write_text("\n".join([HEADER, *rows(300)]) + "\n")
    grown = False

    def append(label: str, percent: float) -> None:
        nonlocal grown
        if not grown:  # the first progress report comes between the check and the commit
            grown = True
            with path.open("a") as f:
                f.write("\n".join(rows(200, start=300, bad_every=3)) + "\n")

    with EventStore(tmp_path / "s.duckdb") as store:
        result = store.ingest(path, progress=append).to_dict()
        stored = store.count("events"), store.count("quarantine")
    assert grown and accounted(result)
    assert (result["rows_read"], result["accepted"], result["duplicates"]) == (300, 300, 0)
    assert stored == (300, 0)


@pytest.mark.parametrize("target", ["folder", "missing.csv"])
def test_a_folder_or_missing_path_is_one_line_and_creates_no_store(tmp_path: Path, target: str) -> None:
    path = tmp_path / target
    if target == "folder":
        path.mkdir()
    db = tmp_path / "new.duckdb"
    code, out, err = ingest(path, db)
    assert code == 2 and "Traceback" not in err + out
    assert len(err.strip().splitlines()) == 1 and str(path) in err
    assert not db.exists()


def test_the_quarantine_hint_runs_as_written(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("\n".join([HEADER, *rows(10, bad_every=2)]) + "\n")
    db = tmp_path / "my store.duckdb"
    code, _, err = ingest(path, db)
    assert code == 0
    hint = next(line for line in err.splitlines() if "See them with:" in line)
    command = hint.split("See them with: cartlift ", 1)[1]
    import shlex

    r = runner.invoke(app, [*shlex.split(command), "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["total"] == 5


def test_the_zero_control_hint_names_the_cli_flag(tmp_path: Path) -> None:
    path = tmp_path / "test.csv"
    path.write_text("variant,converted\n" + "control,0\n" * 50 + "b,1\nb,0\n" * 25)
    r = runner.invoke(
        app, ["experiment", "analyze", str(path), "--variant", "variant", "--metric", "converted"]
    )
    assert r.exit_code == 0
    assert "`--absolute` on the command line" in " ".join((r.stdout + r.stderr).split())


@pytest.fixture
def held_store(tmp_path: Path) -> object:
    """A DuckDB store held open for writing by another process (as `cartlift serve` holds it)."""
    db = tmp_path / "held.duckdb"
    with EventStore(db):
        pass
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, time; c = duckdb.connect({str(db)!r}); print('ok', flush=True); time.sleep(120)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "ok"
    yield db, holder.pid
    holder.kill()
    holder.wait()


@pytest.mark.parametrize("command", [["summary"], ["report", "--out", "r.html"], ["serve"]])
def test_a_store_another_process_holds_is_one_line_saying_what_to_do(
    held_store: tuple[Path, int], command: list[str], tmp_path: Path
) -> None:
    db, pid = held_store
    r = runner.invoke(app, [*command, "--db", str(db)])
    assert r.exit_code == 2 and "Traceback" not in r.output and "serving" not in r.output
    err = r.stderr.strip()
    assert len(err.splitlines()) == 1, err
    assert f"process {pid}" in err and "stop that process" in err


def test_sigint_during_a_load_is_one_line_and_leaves_the_store_as_it_was(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    small = tmp_path / "small.csv"
    small.write_text("\n".join([HEADER, *rows(10)]) + "\n")
    assert ingest(small, db)[0] == 0
    big = tmp_path / "big.csv"
    with big.open("w") as f:
        f.write(HEADER + "\n")
        for start in range(0, 1_500_000, 100_000):
            f.write("\n".join(rows(100_000, start=start)) + "\n")
    cli = [sys.executable, "-c", "from cartlift.cli import main; main()"]
    proc = subprocess.Popen(
        [*cli, "ingest", str(big), "--db", str(db), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "CARTLIFT_THREADS": "1", "TMPDIR": str(tmp_path)},
        # Ctrl-C as at a terminal: a test run started in the background (``cmd &``) ignores SIGINT,
        # and a child inherits that, so the signal was lost in any phase of the load that did not catch it itself
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    # the load has begun once its private copy of the file exists (imports can be slow on a busy machine)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob("cartlift-load-*")) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    # both streams in the message: what tells a signal that came too late from one that was lost
    assert proc.returncode == 130, f"exit {proc.returncode}; stdout: {out[-2000:]!r}; stderr: {err[-2000:]!r}"
    assert "Traceback" not in err and "interrupted" in err and "transaction is aborted" not in err
    con = duckdb.connect(str(db), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM events").fetchall()[0][0] == 10
    finally:
        con.close()
