"""`cartlift contacts ...` and `cartlift deliver ...`: contacts and consent, the outbox, previews."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from cartlift.cli._common import DbOption, JsonOption, console, emit_json, guarded, out
from cartlift.store import EventStore


def demo_step(store: EventStore, out_dir: Path) -> dict[str, Any]:
    """The demo's deliver step: every abandoned cart decided (holdout first), sent as files, answered.

    See `cartlift.deliver.run_demo`.
    """
    from cartlift.deliver import run_demo

    # the messages suggest the served recommender's products when `cartlift train --all` made one
    return run_demo(store, out_dir, models=_registry(str(store.path)))


def _registry(db: str | None) -> Path:
    """The model registry `cartlift serve` would load for the store ``db`` (the outbox reads its recommender)."""
    from cartlift.serve import ServeSettings
    from cartlift.store import parse_store_url

    return ServeSettings(db=parse_store_url(db).url).registry_dir()


def _store_id(db: str | None) -> str:
    from cartlift.store import parse_store_url, store_identity

    return store_identity(parse_store_url(db).url)


def _settings() -> Any:
    from pydantic import ValidationError

    from cartlift.deliver import DeliverSettings
    from cartlift.errors import DataError

    try:
        return DeliverSettings()
    except ValidationError as e:
        first = e.errors()[0]
        raise DataError(f"CARTLIFT_{str(first['loc'][0]).upper()}: {first['msg']}") from None


def register(app: typer.Typer) -> None:
    """Add `cartlift contacts ...` and `cartlift deliver ...` to ``app``."""
    contacts = typer.Typer(
        help="Customers' e-mail, phone, time zone and consent per channel.", no_args_is_help=True
    )
    deliver = typer.Typer(
        help="The outbox: send decided messages by e-mail (SMTP or .eml files), SMS or a signed webhook.",
        no_args_is_help=True,
    )
    app.add_typer(contacts, name="contacts")
    app.add_typer(deliver, name="deliver")

    @contacts.command("load")
    @guarded
    def load(
        file: Annotated[Path, typer.Argument(help="CSV, TSV, Parquet or JSON lines, one customer per row.")],
        region: Annotated[
            str | None, typer.Option(help="Country (e.g. DE) for phone numbers written without +.")
        ] = None,
        db: DbOption = None,
        json: JsonOption = False,
    ) -> None:
        """Load contacts and consents: user_id (or customer_id), email, phone, time_zone, locale,
        email_consent, sms_consent (yes/no), their _source and _at, unsubscribed_at.

        Invalid e-mail or phone, unknown time zone, consent without an address: quarantined with
        the reason. Loading the same file twice changes nothing. --json prints {"accepted",
        "duplicates", "quarantined", "reasons"}.
        """
        from cartlift.deliver import load_contacts, open_db, read_contacts

        records = read_contacts(file)
        with open_db(db) as store:
            result = load_contacts(store, records, source=str(file), region=region).to_dict()
        if json:
            emit_json(result)
            return
        out.print(
            f"{result['accepted']:,} contacts stored, {result['duplicates']:,} unchanged, "
            f"{result['quarantined']:,} quarantined"
        )
        for reason, n in result["reasons"].items():
            out.print(f"  {n:,} x {reason}")

    @deliver.command("run")
    @guarded
    def run(
        once: Annotated[bool, typer.Option("--once", help="Send what is due now, then stop.")] = False,
        interval: Annotated[
            float, typer.Option(help="Seconds between passes (without --once).", min=0.1)
        ] = 5.0,
        db: DbOption = None,
        json: JsonOption = False,
    ) -> None:
        """Schedule new decisions and send every due message; retry, defer, cancel as the rules say.

        E-mail goes over CARTLIFT_SMTP_URL (smtp://user:pass@host:587?starttls=true or smtps://...),
        or as .eml files into outbox/ beside the store when it is not set; SMS over CARTLIFT_SMS_URL
        (twilio://SID:TOKEN@api.twilio.com?from=+1...); everything to CARTLIFT_WEBHOOK_URL when set.
        --json prints {"sent", "failed", "cancelled", "deferred", "dead", "scheduled"}.
        """
        from cartlift.deliver import RunResult, Worker, open_db, outbox_folder

        settings = _settings()
        with open_db(db) as store:
            worker = Worker(
                store,
                settings,
                outbox_dir=outbox_folder(db, settings),
                models=_registry(db),
                store_id=_store_id(db),
            )
            try:
                if once:
                    result = worker.run_once()
                else:
                    stop = threading.Event()
                    signal.signal(signal.SIGTERM, lambda *_: stop.set())
                    console.print("sending due messages; Ctrl-C stops")
                    result = RunResult()
                    try:
                        result = worker.run_forever(stop, interval=interval)
                    except KeyboardInterrupt:
                        stop.set()
            finally:
                worker.close()
        doc = result.to_dict()
        if json:
            emit_json(doc)
            return
        out.print(", ".join(f"{k} {v:,}" for k, v in doc.items()))

    @deliver.command("status")
    @guarded
    def status(db: DbOption = None, json: JsonOption = False) -> None:
        """Messages per status, how many were deferred (and why), clicks, and the next due time."""
        from cartlift.deliver import open_db
        from cartlift.deliver._repo import status_counts

        with open_db(db) as store:
            result = status_counts(store)
        if json:
            emit_json(result)
            return
        table = Table("status", "messages")
        for name, n in sorted(result["by_status"].items()):
            table.add_row(name, f"{n:,}")
        out.print(table)
        out.print(
            f"deferred at least once: {result['deferred']:,}; clicked: {result['clicked']:,}; next due: {result['next_due']}"
        )

    @deliver.command("preview")
    @guarded
    def preview(
        cart: Annotated[str, typer.Option("--cart", help="The cart's id (its session id).")],
        eml: Annotated[
            Path | None, typer.Option("--eml", help="Also write the whole e-mail to this .eml file.")
        ] = None,
        html: Annotated[
            Path | None, typer.Option("--html", help="Also write the HTML part to this file.")
        ] = None,
        db: DbOption = None,
        json: JsonOption = False,
    ) -> None:
        """Render the message of one cart (its outbox row, its decision, or a reminder) without sending it."""
        from cartlift.deliver import build_email, open_db, render_message
        from cartlift.deliver._facts import gather
        from cartlift.deliver._repo import cart_message, utcnow
        from cartlift.errors import DataError
        from cartlift.recommend import served_recommender

        settings = _settings()
        with open_db(db) as store:
            msg = cart_message(store, cart_id=cart)
            if msg is None:
                raise DataError(f"No cart {cart!r} in the store's events.")
            # the products the worker would suggest: the served recommender's, else best sellers
            served = served_recommender(_registry(db), store=_store_id(db))
            facts = gather(store, [msg], now=msg.get("due_at") or utcnow(), recommender=served)
            rendered = render_message(store, msg, settings=settings, facts=facts)
        mail = build_email(rendered, settings=settings, now=utcnow()) if rendered.html is not None else None
        if eml is not None and mail is not None:
            eml.write_bytes(mail.as_bytes())
        if html is not None and rendered.html is not None:
            html.write_text(rendered.html)
        headers: dict[str, str] = {k: str(v) for k, v in mail.items()} if mail is not None else {}
        doc = {"channel": rendered.channel, "to": rendered.to, "subject": rendered.subject, "text": rendered.text,
               "headers": headers}  # fmt: skip
        if json:
            emit_json(doc)
            return
        for key, value in headers.items():
            out.print(f"[bold]{key}:[/] {value}", highlight=False, soft_wrap=True)
        out.print("")
        out.print(rendered.text, highlight=False, markup=False, soft_wrap=True)
