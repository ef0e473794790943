"""Messages from templates: Jinja2 files a store can replace, rendered into an e-mail or an SMS text.

Templates (``subject.txt``, ``email.html``, ``email.txt``, ``sms.txt``) come from the store's own
folder first (``CARTLIFT_TEMPLATES``), then the built-in ones. HTML is autoescaped; an undefined
variable is an error (``StrictUndefined``), so a broken template fails the message with the reason
instead of sending a half-empty e-mail. Every e-mail has a plain-text part, a ``Message-ID`` made
from the outbox row's id (the same on every retry, so a receiver can drop a repeat), and RFC 8058
one-click unsubscribe (``List-Unsubscribe`` with an https/http URL and ``List-Unsubscribe-Post``).
"""

from __future__ import annotations

import email
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2

from cartlift.deliver import _repo
from cartlift.deliver._facts import Facts, gather, recommendations
from cartlift.deliver._links import make_token
from cartlift.deliver._mime import POLICY, OutgoingMail, mail_bytes, sender_parts
from cartlift.deliver._settings import DeliverSettings
from cartlift.deliver._tables import Db

__all__ = [
    "Rendered",
    "TemplateFailure",
    "build_email",
    "outgoing_mail",
    "render_message",
    "templates",
]


class TemplateFailure(Exception):
    """A template that cannot be rendered (the message goes to ``dead`` with this reason)."""


@dataclass(frozen=True)
class Rendered:
    """One message ready for a channel."""

    message_id: str
    channel: str
    to: str
    subject: str
    text: str
    html: str | None
    restore_url: str
    unsubscribe_url: str
    recommended: tuple[tuple[str, str], ...] = ()
    """``(product_id, source)`` of each product suggested, in order (the outbox logs them as shown)."""


def templates(folder: Path | None = None) -> jinja2.Environment:
    """The template environment: ``folder`` first (a store's own templates), then the built-in ones."""
    loaders: list[jinja2.BaseLoader] = []
    if folder is not None:
        loaders.append(jinja2.FileSystemLoader(str(folder)))
    loaders.append(jinja2.PackageLoader("cartlift.deliver", "templates"))
    return jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=False,
    )


def _money(value: float, currency: str = "") -> str:
    return f"{value:,.2f} {currency}".strip()


def _shop_name(settings: DeliverSettings) -> str:
    name, address = sender_parts(settings.mail_from)
    return name or address.split("@")[-1]


def render_message(
    db: Db,
    msg: dict[str, Any],
    *,
    settings: DeliverSettings,
    env: jinja2.Environment | None = None,
    facts: Facts | None = None,
) -> Rendered:
    """Render the outbox row ``msg`` with its customer, cart, recommendations, coupon and signed links.

    ``facts`` (`cartlift.deliver._facts.gather` for the worker's batch) are read now when not given.

    Raises
    ------
    TemplateFailure
        The template is missing, broken, or uses a value that is not there.
    """
    env = env if env is not None else templates(settings.templates)
    facts = facts if facts is not None else gather(db, [msg], now=msg.get("due_at") or _repo.utcnow())
    customer = facts.customers.get(str(msg["user_id"])) or {}
    base = settings.public_url.rstrip("/")
    restore = f"{base}/m/r/{make_token(facts.secret, 'restore', msg['message_id'])}"
    unsubscribe = f"{base}/m/u/{make_token(facts.secret, 'unsubscribe', msg['message_id'])}"
    items = [dict(i) for i in facts.carts.get(str(msg["cart_id"]), [])]
    recs = recommendations(items, facts, cart_id=str(msg["cart_id"])) if msg["channel"] == "email" else []
    for item in (*items, *recs):
        item["price_text"] = _money(item["price"] * item.get("quantity", 1), settings.currency)
        item["image_url"] = (
            settings.image_url.format(product_id=item["product_id"]) if settings.image_url else None
        )
    total = sum(i["price"] * i["quantity"] for i in items)
    coupon = None
    if msg.get("coupon_code"):
        state = facts.coupons.get(str(msg["coupon_code"])) or {}
        share = float(state.get("discount_share") or 0.0)
        amount = float(state.get("discount_amount") or 0.0)
        expires: datetime | None = state.get("expires_at")
        zone = ZoneInfo(customer["time_zone"]) if customer.get("time_zone") else ZoneInfo("UTC")
        local = expires.replace(tzinfo=ZoneInfo("UTC")).astimezone(zone) if expires else None
        coupon = {
            "code": msg["coupon_code"],
            "percent": f"{share:.0%}" if share else _money(amount, settings.currency),
            "expires": local.strftime("%d %b %Y, %H:%M %Z") if local else "",
        }
    context = {
        "shop_name": _shop_name(settings),
        "lang": (customer.get("locale") or "en").split("_")[0].split("-")[0],
        "items": items,
        "total_text": _money(total, settings.currency),
        "recommendations": recs,
        # which model the suggestions came from ("itemknn v0003"), or the best sellers when none is trained
        "recommendations_from": _suggested_by(recs, facts),
        "coupon": coupon,
        "restore_url": restore,
        "unsubscribe_url": unsubscribe,
        "customer": customer,
    }
    try:
        subject = " ".join(env.get_template("subject.txt").render(context).split())
        context["subject"] = subject
        if msg["channel"] == "sms":
            text, html = " ".join(env.get_template("sms.txt").render(context).split()), None
        else:
            text = env.get_template("email.txt").render(context)
            html = env.get_template("email.html").render(context)
    except jinja2.TemplateError as e:
        raise TemplateFailure(f"template failed to render: {type(e).__name__}: {e}") from None
    to = customer.get("phone") if msg["channel"] == "sms" else customer.get("email")
    return Rendered(
        str(msg["message_id"]), str(msg["channel"]), str(to or ""), subject, text, html, restore, unsubscribe,
        tuple((str(r["product_id"]), str(r["source"])) for r in recs),
    )  # fmt: skip


def _suggested_by(recs: list[dict[str, Any]], facts: Facts) -> str | None:
    """Where a message's suggestions came from, in words (None: it suggests nothing)."""
    if not recs:
        return None
    if recs[0]["source"] == "recommender" and facts.recommender is not None:
        return f"{facts.recommender['model']} {facts.recommender['version']}"
    why = (
        "no recommender is trained"
        if facts.recommender is None
        else "the recommender knows none of the cart's products"
    )
    return f"best sellers of the cart's categories ({why})"


def outgoing_mail(rendered: Rendered, *, settings: DeliverSettings, now: datetime) -> OutgoingMail:
    """The e-mail's envelope and bytes (`cartlift.deliver._mime`): plain text and HTML alternatives,
    stable Message-ID, RFC 8058 one-click unsubscribe headers."""
    return mail_bytes(
        mail_from=settings.mail_from,
        to=rendered.to,
        subject=rendered.subject,
        message_id=rendered.message_id,
        now=now,
        text=rendered.text,
        html=rendered.html,
        headers=(
            ("List-Unsubscribe", f"<{rendered.unsubscribe_url}>"),
            ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
        ),
    )


def build_email(rendered: Rendered, *, settings: DeliverSettings, now: datetime) -> EmailMessage:
    """`outgoing_mail` as an `EmailMessage` (what previews show and write as ``.eml``)."""
    data = outgoing_mail(rendered, settings=settings, now=now).data
    return email.message_from_bytes(data, _class=EmailMessage, policy=POLICY)
