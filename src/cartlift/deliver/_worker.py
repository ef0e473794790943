"""The outbox worker: schedule new decisions, then send what is due, one state change per message.

Each message goes ``scheduled -> sending (claimed, with a lease) -> sent | scheduled (retry or
deferral) | cancelled | dead``. Before sending, a message is cancelled when its cart was bought or
emptied or its customer's consent is gone; held back (deferred, never dropped) by quiet hours in
the customer's zone, the per-customer frequency cap and the store's daily budget; then rendered
and handed to its channel. A transient failure is retried with exponential backoff
(``backoff * 2**(attempts-1)``) until ``max_attempts``; a permanent one, or the last attempt, makes
the message ``dead`` with its reason.

Exactly-once as far as the store can see: a message is marked ``sent`` right after its channel
accepted it. A worker killed between the two (the window is one message per worker) leaves it
``sending``; after the lease (at once on DuckDB, where only one process writes) it is sent again
with the same ``Message-ID``, which receivers use to drop the repeat.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cartlift.deliver import _repo
from cartlift.deliver._channels import Channel, FolderChannel, SendError, SmtpChannel, TwilioSms, Webhook
from cartlift.deliver._facts import Facts, cancel_reason, gather
from cartlift.deliver._render import TemplateFailure, build_email, render_message, templates
from cartlift.deliver._schedule import after_quiet_hours, schedule
from cartlift.deliver._settings import DeliverSettings
from cartlift.deliver._tables import Db

__all__ = ["RunResult", "Worker", "outbox_folder"]

_log = logging.getLogger(__name__)


@dataclass
class RunResult:
    """What one pass of the worker did (``failed``: attempts that will be retried; ``too_late`` and
    ``held_out``: decisions stored as cancelled when scheduled, see `schedule`)."""

    sent: int = 0
    failed: int = 0
    cancelled: int = 0
    deferred: int = 0
    dead: int = 0
    scheduled: int = 0
    too_late: int = 0
    held_out: int = 0

    def add(self, other: RunResult) -> None:
        """Add another pass's counts."""
        for k, v in asdict(other).items():
            setattr(self, k, getattr(self, k) + v)

    def to_dict(self) -> dict[str, int]:
        """``{"sent", "failed", "cancelled", "deferred", "dead", "scheduled", "too_late", "held_out"}``."""
        return asdict(self)


class Worker:
    """Sends the outbox of one store.

    Parameters
    ----------
    db : Db
        The store (DuckDB or PostgreSQL).
    settings : DeliverSettings
    outbox_dir : Path
        Where messages go as files when no SMTP / SMS provider / webhook is set.
    single_process : bool
        True on DuckDB (one writing process): claims left ``sending`` by a dead worker are
        released at start; on PostgreSQL only claims whose lease ran out are.
    """

    def __init__(
        self, db: Db, settings: DeliverSettings, *, outbox_dir: Path, single_process: bool | None = None
    ) -> None:
        self.db = db
        self.settings = settings
        self.outbox_dir = Path(outbox_dir)
        self.name = f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"
        self.single_process = (not db.postgres) if single_process is None else single_process
        self.env = templates(settings.templates)
        self._channels: dict[str, Channel] = {}
        self._started = False
        _repo.create(db)

    # -- channels ----------------------------------------------------------------------------------
    def channel(self, name: str) -> Channel:
        """The channel of ``name`` (email, sms), made at first use from the settings."""
        if name not in self._channels:
            s = self.settings
            timeout = s.send_timeout
            chosen: Channel
            if s.webhook_url:
                secret = s.webhook_secret.get_secret_value() if s.webhook_secret else ""
                chosen = Webhook(s.webhook_url, secret, timeout=timeout)
            elif name == "email" and s.smtp_url is not None:
                chosen = SmtpChannel(s.smtp_url.get_secret_value(), timeout=timeout)
            elif name == "sms" and s.sms_url is not None:
                chosen = TwilioSms(s.sms_url.get_secret_value(), timeout=timeout)
            else:
                chosen = FolderChannel(self.outbox_dir)
            self._channels[name] = chosen
        return self._channels[name]

    def close(self) -> None:
        """Close every channel's connection."""
        for ch in self._channels.values():
            ch.close()
        self._channels.clear()

    # -- one pass ----------------------------------------------------------------------------------
    def run_once(self, now: datetime | None = None) -> RunResult:
        """Schedule new decisions, then handle every message due at ``now`` (default: the clock)."""
        now = now if now is not None else _repo.utcnow()
        result = RunResult()
        planned = schedule(self.db, settings=self.settings, now=now)
        result.scheduled, result.too_late = planned["scheduled"], planned["too_late"]
        result.held_out = planned["held_out"]
        _repo.release_stale(self.db, now=now, everything=self.single_process and not self._started)
        self._started = True
        best: dict[str | None, list[dict[str, Any]]] | None = None
        secret = b""
        while True:
            claimed = _repo.claim_due(
                self.db,
                now=now,
                limit=self.settings.batch,
                worker=self.name,
                lease_until=now + timedelta(seconds=self.settings.lease_seconds),
            )
            if not claimed:
                return result
            if best is None:
                best, secret = _repo.best_sellers(self.db, k=6), _repo.secret(self.db)
            facts = gather(self.db, claimed, now=now, best=best, secret=secret)
            for msg in claimed:
                self._handle(msg, now, result, facts)

    def _handle(self, msg: dict[str, Any], now: datetime, result: RunResult, facts: Facts) -> None:
        db, s, mid = self.db, self.settings, str(msg["message_id"])
        why = cancel_reason(msg, facts)
        if why is not None:
            _repo.finish(db, mid, status="cancelled", now=now, error=why)
            result.cancelled += 1
            return
        later, reason = self._hold(msg, now, facts.customers.get(str(msg["user_id"])) or {})
        if later is not None:
            _repo.defer(db, mid, reason=reason, due_at=later)
            result.deferred += 1
            return
        try:
            rendered = render_message(db, msg, settings=s, env=self.env, facts=facts)
            mail = build_email(rendered, settings=s, now=now) if msg["channel"] == "email" else None
            provider_id = self.channel(str(msg["channel"])).send(rendered, mail)
        except TemplateFailure as e:
            _repo.finish(db, mid, status="dead", now=now, error=str(e))
            result.dead += 1
            return
        except SendError as e:
            attempts = int(msg["attempts"]) + 1
            if e.transient and attempts < s.max_attempts:
                wait = timedelta(seconds=s.backoff_seconds * 2 ** (attempts - 1))
                _repo.retry(db, mid, error=str(e), due_at=now + wait)
                result.failed += 1
            else:
                final = str(e) if not e.transient else f"{e} (gave up after {attempts} attempts)"
                _repo.finish(db, mid, status="dead", now=now, error=final)
                result.dead += 1
            return
        _repo.finish(db, mid, status="sent", now=now, provider_id=provider_id, recipient=rendered.to)
        result.sent += 1

    def _hold(
        self, msg: dict[str, Any], now: datetime, customer: dict[str, Any]
    ) -> tuple[datetime | None, str]:
        """The next allowed moment when quiet hours, the frequency cap or the budget hold a message back."""
        s = self.settings
        wake = after_quiet_hours(now, customer.get("time_zone"), s.quiet_hours)
        if wake > now:
            return wake, "quiet hours"
        if s.max_per_week is not None:
            recent = _repo.sent_since(self.db, since=now - timedelta(days=7), user_id=str(msg["user_id"]))
            if len(recent) >= s.max_per_week:
                free = recent[len(recent) - s.max_per_week] + timedelta(days=7)
                return max(
                    free, now + timedelta(minutes=1)
                ), f"frequency cap: {len(recent)} messages in 7 days"
        if s.daily_budget is not None:
            day = now.replace(hour=0, minute=0, second=0, microsecond=0)
            if len(_repo.sent_since(self.db, since=day)) >= s.daily_budget:
                return day + timedelta(days=1), f"daily budget of {s.daily_budget} messages reached"
        return None, ""

    # -- a long-running worker -------------------------------------------------------------------------
    def run_forever(self, stop: threading.Event, *, interval: float = 5.0) -> RunResult:
        """Pass after pass until ``stop`` is set (``cartlift deliver run`` and the service)."""
        total = RunResult()
        while not stop.is_set():
            try:
                total.add(self.run_once())
            except Exception:  # a lost connection or a locked row: log it, try again next pass
                _log.exception("outbox pass failed; retrying in %.0f s", interval)
            stop.wait(interval)
        return total


def outbox_folder(db_path: str | Path | None, settings: DeliverSettings) -> Path:
    """Where files go: ``CARTLIFT_OUTBOX_DIR``, or ``outbox/`` beside a DuckDB store."""
    if settings.outbox_dir is not None:
        return settings.outbox_dir
    if db_path is None or str(db_path).startswith(("postgres://", "postgresql://")):
        return Path("outbox")
    return Path(db_path).resolve().parent / "outbox"
