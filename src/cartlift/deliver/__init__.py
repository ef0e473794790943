"""Deliver: the decision becomes a message that reaches the customer.

- Contacts and consent: `load_contacts` / `check_contact` (e-mail checked with email-validator,
  phone in E.164 with phonenumbers, time zone with zoneinfo; rejects quarantined with the reason).
- The outbox: `schedule` (one ``messages`` row per decision that contacts the customer, due after
  the action's delay and outside quiet hours in the customer's zone) and the `Worker` that sends
  what is due, retries with backoff, cancels what is no longer wanted and defers what caps and
  budgets hold back.
- Channels: `SmtpChannel` (``CARTLIFT_SMTP_URL``), `FolderChannel` (``.eml`` files, the default),
  `TwilioSms` (Twilio's Messages API), `Webhook` (signed with HMAC-SHA256).
- Messages: Jinja2 templates (`templates`, `render_message`, `build_email`) with the cart, a
  coupon, signed restore and one-click unsubscribe links (`make_token`, `read_token`).
- Coming back: `click`, `unsubscribe_link`, `validate_coupon`.
- Storage: the tables `DELIVER_TABLES` (declared in `cartlift.store`), every statement in ``_repo``,
  over the `Db` adapter.
"""

from cartlift.deliver._channels import (
    Channel,
    FolderChannel,
    SendError,
    SmtpChannel,
    TwilioSms,
    Webhook,
    sign_webhook,
)
from cartlift.deliver._contacts import (
    CONTACT_FIELDS,
    ContactLoad,
    check_contact,
    load_contacts,
    read_contacts,
)
from cartlift.deliver._demo import run_demo
from cartlift.deliver._inbound import click, unsubscribe_link, validate_coupon
from cartlift.deliver._links import make_token, read_token
from cartlift.deliver._open import open_db
from cartlift.deliver._render import Rendered, TemplateFailure, build_email, render_message, templates
from cartlift.deliver._schedule import after_quiet_hours, schedule
from cartlift.deliver._settings import DeliverSettings
from cartlift.deliver._tables import DELIVER_TABLES, Db, connect_postgres, create_tables
from cartlift.deliver._worker import RunResult, Worker, outbox_folder

__all__ = [
    "CONTACT_FIELDS",
    "DELIVER_TABLES",
    "Channel",
    "ContactLoad",
    "Db",
    "DeliverSettings",
    "FolderChannel",
    "Rendered",
    "RunResult",
    "SendError",
    "SmtpChannel",
    "TemplateFailure",
    "TwilioSms",
    "Webhook",
    "Worker",
    "after_quiet_hours",
    "build_email",
    "check_contact",
    "click",
    "connect_postgres",
    "create_tables",
    "load_contacts",
    "make_token",
    "open_db",
    "outbox_folder",
    "read_contacts",
    "read_token",
    "render_message",
    "run_demo",
    "schedule",
    "sign_webhook",
    "templates",
    "unsubscribe_link",
    "validate_coupon",
]
