"""Delivery: messages per second from the outbox to a local SMTP server, against a bare smtplib loop.

1. Builds a DuckDB shop with N abandoned carts, their contacts and one e-mail decision each.
2. Reference: the same N messages (rendered and built as ``EmailMessage`` beforehand, so the
   reference pays nothing for templates or the store) sent by a plain ``smtplib.SMTP.send_message``
   loop over one connection to an aiosmtpd server on 127.0.0.1. Also shown, not the goal's
   reference: the same messages as bytes flattened beforehand, sent with ``sendmail`` (the floor:
   nothing but the SMTP exchange).
3. cartlift: ``Worker.run_once`` on the store: schedule the decisions, claim the due messages,
   check each for cancellation and caps, render its templates, write its bytes, send it over one
   SMTP connection to the same server, and commit the states batch by batch (``--batch``).
4. Scheduling: the time to turn 100,000 logged decisions into due outbox rows (``schedule``).

Prints messages/s and the ratio cartlift / smtplib (goal >= 0.8). Run once:

    .venv/bin/python benchmarks/deliver.py              # 2,000 messages, 100k scheduled
    .venv/bin/python benchmarks/deliver.py --messages 500 --schedule 20000
    .venv/bin/python benchmarks/deliver.py --postgres postgresql://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import smtplib
import socket
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiosmtpd.controller import Controller

from cartlift.act import create_decision_tables, set_holdout
from cartlift.deliver import Db, DeliverSettings, Worker, build_email, load_contacts, render_message, schedule
from cartlift.deliver._repo import create
from cartlift.store import EventStore


class Count:
    """An SMTP sink that only counts."""

    def __init__(self) -> None:
        self.n = 0

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        self.n += 1
        return "250 OK"


def shop(path: Path, n: int, now: datetime) -> None:
    """N carts (one product each), N contacts with e-mail consent, N e-mail decisions due now."""
    with EventStore(path) as store:
        store.ingest_records(
            [{"event_id": f"e{i}", "ts": (now - timedelta(hours=3)).isoformat() + "Z", "user_id": f"u{i}",
              "session_id": f"s{i}", "event_type": "cart_add", "product_id": f"p{i % 50}", "price": 20.0,
              "quantity": 1} for i in range(n)],
            source="bench",
        )  # fmt: skip
        store.ingest_products([{"product_id": f"p{k}", "title": f"Product {k}", "category": f"c{k % 5}",
                                "price": 20.0, "cost": 8.0} for k in range(50)])  # fmt: skip
        load_contacts(Db(store.con), [{"user_id": f"u{i}", "email": f"u{i}@example.com", "time_zone": "UTC",
                                       "email_consent": True} for i in range(n)], source="bench")  # fmt: skip
        create_decision_tables(store)
        set_holdout(store, 0.0)  # every cart gets its message: both sides send the same N
        store.con.execute(
            "INSERT INTO decisions (decision_id, ts, user_id, cart_id, policy, action, channel, propensity, window_hours) "
            "SELECT 'd' || i, ?, 'u' || i, 's' || i, 'default', 'reminder_email_1h', 'email', 0.35, 168 "
            "FROM range(?) t(i)",
            [now - timedelta(hours=2), n],
        )


def _on_postgres(
    url: str, source: Path, settings: DeliverSettings, now: datetime, tmp: Path
) -> tuple[float, int]:
    """The worker's time and messages sent on a PostgreSQL copy of the shop (before its messages were sent).

    The copy has no holdout phases, so the default one holds out about 10 % of the carts there.
    """
    import duckdb

    from cartlift.deliver import connect_postgres
    from cartlift.store._postgres import connect

    schema = f"bench_deliver_{int(time.time())}"
    target = f"{url}{'&' if '?' in url else '?'}schema={schema}"
    connect(target).close()
    pg = connect_postgres(target)
    try:
        create(pg)
        src = duckdb.connect(str(source), read_only=True)
        for table in ("events", "products", "decisions", "customers", "consents"):
            cur = src.execute(f"SELECT * FROM {table}")
            pg.insert(table, [d[0] for d in cur.description], cur.fetchall())
        src.close()
        worker = Worker(pg, settings, outbox_dir=tmp / "outbox-pg")
        t0 = time.perf_counter()
        result = worker.run_once(now)
        took = time.perf_counter() - t0
        worker.close()
        assert result.sent > 0, result
        return took, result.sent
    finally:
        pg.execute(f'DROP SCHEMA "{schema}" CASCADE')
        pg.con.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2_000)
    parser.add_argument("--schedule", type=int, default=100_000)
    parser.add_argument(
        "--batch",
        type=int,
        default=None,
        help="Messages claimed and committed together [default: the setting's].",
    )
    parser.add_argument(
        "--postgres",
        default=None,
        help="Also run the worker on this PostgreSQL store (a schema is created and dropped).",
    )
    args = parser.parse_args()
    sink = Count()
    with socket.socket() as probe:  # a free port (aiosmtpd cannot be told to pick one)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    url = f"smtp://127.0.0.1:{controller.port}"
    now = datetime.now(UTC).replace(tzinfo=None)
    extra = {"batch": args.batch} if args.batch else {}
    settings = DeliverSettings(smtp_url=url, quiet_hours=None, max_per_week=3, **extra)
    with tempfile.TemporaryDirectory() as tmp:
        ref_db, our_db = Path(tmp) / "ref.duckdb", Path(tmp) / "ours.duckdb"
        shop(ref_db, args.messages, now)
        shop(our_db, args.messages, now)
        # the reference's messages: rendered beforehand from a scheduled copy of the store
        with EventStore(ref_db) as store:
            db = Db(store.con)
            create(db)
            schedule(db, settings=settings, now=now)
            rows = store.con.execute("SELECT * FROM messages").df().to_dict(orient="records")
            mails = [
                build_email(render_message(db, r, settings=settings), settings=settings, now=now)
                for r in rows
            ]
        t0 = time.perf_counter()
        with smtplib.SMTP("127.0.0.1", controller.port) as smtp:
            for mail in mails:
                smtp.send_message(mail)
        ref_s = time.perf_counter() - t0
        flat = [(str(m["From"]), [str(m["To"])], m.as_bytes()) for m in mails]
        t0 = time.perf_counter()
        with smtplib.SMTP("127.0.0.1", controller.port) as smtp:
            for sender, to, data in flat:
                smtp.sendmail(sender, to, data)
        floor_s = time.perf_counter() - t0
        received = sink.n
        with EventStore(our_db) as store:
            worker = Worker(Db(store.con), settings, outbox_dir=Path(tmp) / "outbox")
            t0 = time.perf_counter()
            result = worker.run_once(now)
            ours_s = time.perf_counter() - t0
            worker.close()
        assert result.sent == args.messages and sink.n - received == args.messages, result
        pg = _on_postgres(args.postgres, our_db, settings, now, Path(tmp)) if args.postgres else None
        big = Path(tmp) / "big.duckdb"
        with EventStore(big) as store:
            create_decision_tables(store)
            store.con.execute(
                "INSERT INTO decisions (decision_id, ts, user_id, cart_id, policy, action, channel, propensity, window_hours) "
                "SELECT 'd' || i, ?, 'u' || (i % 20000), 's' || i, 'default', 'reminder_email_1h', 'email', 0.35, 168 "
                "FROM range(?) t(i)",
                [now - timedelta(minutes=30), args.schedule],
            )
            db = Db(store.con)
            create(db)
            t0 = time.perf_counter()
            planned = schedule(db, settings=DeliverSettings(quiet_hours=(21, 8)), now=now)
            sched_s = time.perf_counter() - t0
            assert planned["scheduled"] + planned["held_out"] == args.schedule, planned
    controller.stop()
    ref_rate, our_rate, floor_rate = args.messages / ref_s, args.messages / ours_s, args.messages / floor_s
    print(f"{args.messages:,} messages to a local aiosmtpd server (one connection each):")
    print(
        f"  smtplib send_message loop    {ref_rate:8.0f} msg/s  ({ref_s:.2f} s; EmailMessage built beforehand)"
    )
    print(
        f"  smtplib sendmail of bytes    {floor_rate:8.0f} msg/s  ({floor_s:.2f} s; flattened beforehand: the floor)"
    )
    print(
        f"  cartlift outbox worker       {our_rate:8.0f} msg/s  ({ours_s:.2f} s; schedule, claim, checks, render, send, state;"
        f" batch {settings.batch})"
    )
    print(f"  ratio cartlift / smtplib     {our_rate / ref_rate:8.2f}x  (goal >= 0.8)")
    if pg is not None:
        pg_s, pg_sent = pg
        pg_rate = pg_sent / pg_s
        print(f"  cartlift worker on PostgreSQL {pg_rate:7.0f} msg/s  ({pg_sent:,} sent in {pg_s:.2f} s)")
        print(f"  ratio PostgreSQL / smtplib   {pg_rate / ref_rate:8.2f}x")
    print(
        f"scheduling {args.schedule:,} due messages (quiet hours on, {planned['held_out']:,} held out): "
        f"{sched_s:.2f} s ({args.schedule / sched_s:,.0f} /s)"
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
