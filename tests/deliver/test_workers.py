"""Several workers on one outbox never send a message twice; a worker killed with -9 loses nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
from _deliver_helpers import CLI, SmtpServer, copy_to_postgres, make_shop, message_ids

from cartlift.act import Holdout
from cartlift.deliver import connect_postgres
from cartlift.store import EventStore

PG = "postgresql://postgres@127.0.0.1:5432/test"


def worker(db: str, smtp: SmtpServer, *extra: str, batch: int = 10) -> subprocess.Popen[str]:
    env = {**os.environ, "CARTLIFT_SMTP_URL": smtp.url, "CARTLIFT_QUIET_HOURS": "", "CARTLIFT_MAX_PER_WEEK": "",
           "CARTLIFT_BATCH": str(batch)}  # fmt: skip
    return subprocess.Popen(
        [str(CLI), "deliver", "run", "--once", "--db", db, "--json", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip


def test_two_worker_processes_share_one_postgres_outbox(tmp_path: Path, smtp: SmtpServer) -> None:
    carts = 400
    shop = make_shop(tmp_path / "shop.duckdb", carts=carts)
    # a PostgreSQL store decides on slices without the holdout's phases: the default phase holds out
    held = {f"s{i}" for i, h in enumerate(Holdout().assign([f"s{i}" for i in range(carts)])) if h}
    n = carts - len(held)
    assert 0 < len(held) < carts / 5
    schema = f"workers_{os.getpid()}_{int(time.time())}"
    url = f"{PG}?schema={schema}"
    try:
        copy_to_postgres(shop, url)
    except Exception as e:  # pragma: no cover - the machines run PostgreSQL
        pytest.skip(f"no PostgreSQL: {e}")
    smtp.sink.delay = 0.004  # a relay that takes a few ms per message, so both workers are busy at once
    try:
        procs = [worker(url, smtp), worker(url, smtp)]
        docs = []
        for p in procs:
            out, err = p.communicate(timeout=300)
            assert p.returncode == 0, err
            docs.append(json.loads(out))
        ids = message_ids(smtp.sink)
        assert len(ids) == n and len(set(ids)) == n  # every message once
        assert sum(d["sent"] for d in docs) == n and all(d["sent"] > 0 for d in docs), docs
        pg = connect_postgres(url)
        by_worker = dict(
            pg.rows("SELECT worker, count(*) FROM messages WHERE status = 'sent' GROUP BY worker")
        )
        assert len(by_worker) == 2 and sum(by_worker.values()) == n
        assert set(ids) == {r[0] for r in pg.rows("SELECT message_id FROM messages WHERE status = 'sent'")}
        cancelled = pg.rows("SELECT cart_id, last_error FROM messages WHERE status = 'cancelled'")
        assert {c for c, _ in cancelled} == held and all(e.startswith("held out") for _, e in cancelled)
    finally:
        pg = connect_postgres(PG)
        pg.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        pg.con.close()


@pytest.mark.slow
def test_kill_9_while_sending_1000_messages_loses_none_and_repeats_at_most_a_batch_per_kill(
    tmp_path: Path, smtp: SmtpServer
) -> None:
    n, batch = 1000, 10
    shop = make_shop(tmp_path / "shop.duckdb", carts=n)
    smtp.sink.delay = 0.003
    kills = 0
    for stop_at in (250, 600):
        proc = worker(str(shop), smtp, batch=batch)
        while len(smtp.sink.received) < stop_at and proc.poll() is None:
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        kills += 1
    final = worker(str(shop), smtp, batch=batch)
    _, err = final.communicate(timeout=600)
    assert final.returncode == 0, err
    ids = message_ids(smtp.sink)
    repeats = Counter(ids)
    assert len(repeats) == n  # every message delivered
    extra = len(ids) - n
    # the window: the states of a claimed batch are committed together, so a kill repeats at most
    # the messages of its batch sent before it (same Message-ID: receivers drop them)
    assert extra <= kills * batch, f"{extra} repeats after {kills} kills"
    with EventStore(shop) as store:
        rows = dict(store.con.execute("SELECT message_id, status FROM messages").fetchall())
    assert set(rows.values()) == {"sent"} and set(rows) == set(repeats)
