"""The outbox worker: schedule new decisions, then send what is due, batch by batch.

Each message goes ``scheduled -> sending (claimed, with a lease) -> sent | scheduled (retry or
deferral) | cancelled | dead``. Before sending, a message is cancelled when its cart was bought or
emptied or its customer's consent is gone; held back (deferred, never dropped) by quiet hours in
the customer's zone, the per-customer frequency cap and the store's daily budget; then rendered
and handed to its channel (one SMTP connection for the whole run). A transient failure is
retried with exponential backoff (``backoff * 2**(attempts-1)``) until ``max_attempts``; a
permanent one, or the last attempt, makes the message ``dead`` with its reason.

The states of a claimed batch are committed together, in the transaction that claims the next
batch (and at least every ``commit_seconds`` on a slow relay): one commit per message cost more
than sending it. The price is the crash window: a worker killed after sending and before that
commit leaves its batch ``sending``; after the lease (at once on DuckDB, where only one process
writes) those messages are sent again, at most ``batch`` messages (default 200) and at most
``commit_seconds`` of sending per kill, with the same ``Message-ID``, which receivers use to drop
the repeat (most mailbox providers do; a webhook receiver gets the same ``Idempotency-Key``).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cartlift.deliver import _repo
from cartlift.deliver._channels import Channel, FolderChannel, SendError, SmtpChannel, TwilioSms, Webhook
from cartlift.deliver._facts import Facts, cancel_reason, gather
from cartlift.deliver._render import TemplateFailure, outgoing_mail, render_message, templates
from cartlift.deliver._schedule import after_quiet_hours, schedule
from cartlift.deliver._settings import DeliverSettings
from cartlift.deliver._tables import Db
from cartlift.errors import CartliftError
from cartlift.recommend import ServedRecommender, served_recommender
from cartlift.recommend._served import SERVED_KIND, registry_versions
from cartlift.store import IMPRESSION_COLUMNS, Shown

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
    models : Path or ServedRecommender, optional
        The service's model registry (its newest recommender suggests the products of each
        e-mail, re-read when a new version is published), or a fitted recommender; None, or a
        registry without one: the best sellers of the cart's categories.
    store_id : str, optional
        The store's identity: a registry version trained on another store is not used.
    """

    def __init__(
        self,
        db: Db,
        settings: DeliverSettings,
        *,
        outbox_dir: Path,
        single_process: bool | None = None,
        models: Path | ServedRecommender | None = None,
        store_id: str | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.outbox_dir = Path(outbox_dir)
        self.name = f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"
        self.single_process = (not db.postgres) if single_process is None else single_process
        self.env = templates(settings.templates)
        self._channels: dict[str, Channel] = {}
        self._started = False
        self.models = models
        self.store_id = store_id
        self._served: ServedRecommender | None = models if isinstance(models, ServedRecommender) else None
        # the products each sent e-mail suggested, written with the batch's outcomes (rec_impressions)
        self._shown: list[tuple[Any, ...]] = []
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

    def recommender(self) -> ServedRecommender | None:
        """The recommender whose products the messages suggest: the registry's newest, loaded once per version."""
        if not isinstance(self.models, Path):
            return self._served
        versions = registry_versions(self.models / SERVED_KIND)
        if not versions:
            self._served = None
        elif self._served is None or self._served.version != versions[-1]:
            try:
                self._served = served_recommender(self.models, store=self.store_id)
            except (CartliftError, OSError, ValueError, KeyError) as e:  # a broken version: best sellers
                _log.warning(
                    "cannot load the recommender %s: %s; messages suggest best sellers", versions[-1], e
                )
                self._served = None
        return self._served

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
        if not (self.single_process and self._started):  # on DuckDB only this process claims: once is enough
            _repo.release_stale(self.db, now=now, everything=self.single_process)
        self._started = True
        best: dict[str | None, list[dict[str, Any]]] | None = None
        served: ServedRecommender | None = None
        secret = b""
        outcomes: list[dict[str, Any]] = []
        try:
            while True:
                # one transaction: the outcomes of the last batch, the claim of the next
                claimed = self._commit(outcomes, claim_at=now)
                if not claimed:
                    return result
                if best is None:  # read once per pass, and only when something is due
                    best, secret = _repo.best_sellers(self.db, k=6), _repo.secret(self.db)
                    served = self.recommender()
                facts = gather(self.db, claimed, now=now, best=best, secret=secret, recommender=served)
                hold = _Caps.read(self.db, self.settings, claimed, now)
                committed = time.monotonic()
                for msg in claimed:
                    outcomes.append(self._handle(msg, now, result, facts, hold))
                    if time.monotonic() - committed >= self.settings.commit_seconds:
                        self._commit(outcomes)  # a slow relay: bound the crash window in time too
                        committed = time.monotonic()
        finally:
            if outcomes:  # an error mid-batch: what went out is still recorded
                self._commit(outcomes)

    def _commit(
        self, outcomes: list[dict[str, Any]], claim_at: datetime | None = None
    ) -> list[dict[str, Any]]:
        """Record ``outcomes`` (then empty it) and, with ``claim_at``, claim the next batch, in one transaction."""
        with self.db.transaction():
            _repo.record_outcomes(self.db, outcomes, worker=self.name)
            self.db.insert("rec_impressions", list(IMPRESSION_COLUMNS), self._shown)
            claimed = (
                _repo.claim_due(
                    self.db,
                    now=claim_at,
                    limit=self.settings.batch,
                    worker=self.name,
                    lease_until=claim_at + timedelta(seconds=self.settings.lease_seconds),
                )
                if claim_at is not None
                else []
            )
        outcomes.clear()
        self._shown.clear()
        return claimed

    def _handle(
        self, msg: dict[str, Any], now: datetime, result: RunResult, facts: Facts, caps: _Caps
    ) -> dict[str, Any]:
        """Cancel, defer, send (or fail) one claimed message; its outcome (`_repo.OUTCOME_COLUMNS`)."""
        s, mid = self.settings, str(msg["message_id"])
        why = cancel_reason(msg, facts)
        if why is not None:
            result.cancelled += 1
            return _outcome(mid, "cancelled", last_error=why, attempts=0)
        later, reason = caps.hold(msg, now, facts.customers.get(str(msg["user_id"])) or {})
        if later is not None:
            result.deferred += 1
            return _outcome(mid, "scheduled", attempts=0, deferrals=1, deferred_reason=reason, due_at=later)
        try:
            rendered = render_message(self.db, msg, settings=s, env=self.env, facts=facts)
            mail = outgoing_mail(rendered, settings=s, now=now) if msg["channel"] == "email" else None
            provider_id = self.channel(str(msg["channel"])).send(rendered, mail)
        except TemplateFailure as e:
            result.dead += 1
            return _outcome(mid, "dead", last_error=str(e))
        except SendError as e:
            attempts = int(msg["attempts"]) + 1
            if e.transient and attempts < s.max_attempts:
                result.failed += 1
                wait = timedelta(seconds=s.backoff_seconds * 2 ** (attempts - 1))
                return _outcome(mid, "scheduled", last_error=str(e), due_at=now + wait)
            result.dead += 1
            final = str(e) if not e.transient else f"{e} (gave up after {attempts} attempts)"
            return _outcome(mid, "dead", last_error=final)
        caps.sent(str(msg["user_id"]), now)
        result.sent += 1
        self._log_shown(msg, rendered.recommended, now, facts)
        return _outcome(mid, "sent", provider_id=provider_id, recipient=rendered.to, sent_at=now)

    def _log_shown(
        self, msg: dict[str, Any], recommended: tuple[tuple[str, str], ...], now: datetime, facts: Facts
    ) -> None:
        """Keep the products a sent message suggested, as one list shown at its sending."""
        if not recommended:
            return
        # where each source's run of products starts (a list is one source today: model or best sellers)
        firsts = [(s, n) for n, (_, s) in enumerate(recommended) if n == 0 or recommended[n - 1][1] != s]
        served = facts.recommender
        models = (
            {} if served is None else {"recommender": {"name": served["model"], "version": served["version"]}}
        )
        shown = Shown(
            now, str(msg["user_id"]), str(msg["cart_id"]), "message", [p for p, _ in recommended], firsts,
            models, message_id=str(msg["message_id"]), impression_id=str(msg["message_id"]),
        )  # fmt: skip
        self._shown.extend(shown.rows())

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


def _outcome(
    message_id: str, status: str, *, attempts: int = 1, deferrals: int = 0, **values: Any
) -> dict[str, Any]:
    """A row of `_repo.OUTCOME_COLUMNS`: counters to add, values to set (None keeps the old one)."""
    row = dict.fromkeys(_repo.OUTCOME_COLUMNS)
    row.update(message_id=message_id, status=status, attempts=attempts, deferrals=deferrals, **values)
    return row


@dataclass
class _Caps:
    """The frequency cap and the daily budget for one claimed batch: read once, counted on as messages go.

    Sends of this batch count at once, before their state is committed. Several workers on one
    PostgreSQL outbox each count their own batch on top of what was committed when they claimed
    it, so together they can overshoot a cap by what they send concurrently.
    """

    settings: DeliverSettings
    recent: dict[str, list[datetime]] = field(default_factory=dict)
    today: int = 0

    @classmethod
    def read(cls, db: Db, settings: DeliverSettings, msgs: list[dict[str, Any]], now: datetime) -> _Caps:
        """What was sent in the last 7 days by the batch's customers, and today store-wide."""
        caps = cls(settings)
        if settings.max_per_week is not None:
            users = sorted({str(m["user_id"]) for m in msgs})
            caps.recent = _repo.recent_sends(db, user_ids=users, since=now - timedelta(days=7))
        if settings.daily_budget is not None:
            caps.today = _repo.count_sent_since(db, since=_day(now))
        return caps

    def sent(self, user_id: str, now: datetime) -> None:
        """Count a message that just went out."""
        self.recent.setdefault(user_id, []).append(now)
        self.today += 1

    def hold(
        self, msg: dict[str, Any], now: datetime, customer: dict[str, Any]
    ) -> tuple[datetime | None, str]:
        """The next allowed moment when quiet hours, the frequency cap or the budget hold a message back."""
        s = self.settings
        wake = after_quiet_hours(now, customer.get("time_zone"), s.quiet_hours)
        if wake > now:
            return wake, "quiet hours"
        if s.max_per_week is not None:
            recent = [t for t in self.recent.get(str(msg["user_id"]), []) if t >= now - timedelta(days=7)]
            if len(recent) >= s.max_per_week:
                free = recent[len(recent) - s.max_per_week] + timedelta(days=7)
                return max(
                    free, now + timedelta(minutes=1)
                ), f"frequency cap: {len(recent)} messages in 7 days"
        if s.daily_budget is not None and self.today >= s.daily_budget:
            return _day(now) + timedelta(days=1), f"daily budget of {s.daily_budget} messages reached"
        return None, ""


def _day(now: datetime) -> datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def outbox_folder(db_path: str | Path | None, settings: DeliverSettings) -> Path:
    """Where files go: ``CARTLIFT_OUTBOX_DIR``, or ``outbox/`` beside a DuckDB store."""
    if settings.outbox_dir is not None:
        return settings.outbox_dir
    if db_path is None or str(db_path).startswith(("postgres://", "postgresql://")):
        return Path("outbox")
    return Path(db_path).resolve().parent / "outbox"
