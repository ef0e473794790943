"""Contacts, coupons, and the links in messages (restore the cart, one-click unsubscribe).

The routes run the deliver package's functions on the store's writer thread (`_on_store`); the
outbox worker runs beside the service in its own thread (`start_worker`), on its own connection.
"""

from __future__ import annotations

import asyncio
import html
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Path
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool

from cartlift._jsonable import jsonable
from cartlift.deliver import (
    Db,
    DeliverSettings,
    Worker,
    click,
    connect_postgres,
    load_contacts,
    outbox_folder,
    unsubscribe_link,
    validate_coupon,
)
from cartlift.deliver._repo import create, customer, utcnow
from cartlift.serve._deps import IngestKey, ServiceDep
from cartlift.serve._errors import ApiError
from cartlift.serve._service import Service
from cartlift.serve.routes._common import errors

__all__ = ["router", "start_worker"]

router = APIRouter(tags=["deliver"])
T = TypeVar("T")
Token = Annotated[str, Path(min_length=3, max_length=200)]


async def _on_store(service: Service, fn: Callable[[Db], T]) -> T:
    """Run ``fn`` with the store as a `Db`, on the writer thread (DuckDB file or PostgreSQL)."""
    result: T = await service.storage.writer.call(lambda ctx: fn(Db(ctx.con)))
    return result


def _iso_text(value: Any) -> Any:
    # pydantic would read a number as seconds since 1970: a time is ISO 8601 text (or null) here
    if value is not None and not isinstance(value, str | datetime):
        raise ValueError("a time is ISO 8601 text, e.g. 2026-12-06T10:00:00Z")
    return value


Time = Annotated[datetime | None, BeforeValidator(_iso_text)]


class CustomerPut(BaseModel):
    """A customer's contact details and consents (``PUT /v1/customers/{id}`` replaces them)."""

    model_config = ConfigDict(extra="forbid")

    email: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=40, description="E.164, e.g. +4915112345678")
    time_zone: str | None = Field(default=None, max_length=64, description="IANA name, e.g. Europe/Berlin")
    locale: str | None = Field(default=None, max_length=35)
    email_consent: StrictBool = False
    email_consent_source: str | None = Field(default=None, max_length=200)
    email_consent_at: Time = None
    sms_consent: StrictBool = False
    sms_consent_source: str | None = Field(default=None, max_length=200)
    sms_consent_at: Time = None
    unsubscribed_at: Time = None


class CouponCheck(BaseModel):
    """A coupon code a checkout wants to honour; ``redeem`` uses it up."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=1, max_length=64)
    user_id: str = Field(min_length=1, max_length=200)
    redeem: StrictBool = False
    order_id: str | None = Field(default=None, max_length=200)


@router.put(
    "/v1/customers/{user_id}", responses=errors(401, 403, 422, 429), summary="Store a customer's contacts"
)
async def put_customer(
    user_id: Annotated[str, Path(min_length=1, max_length=200)],
    body: CustomerPut,
    service: ServiceDep,
    key: IngestKey,
) -> dict[str, Any]:
    """Store e-mail, phone (E.164), time zone, locale and consents; an invalid record answers 422 and is quarantined."""
    record = {"user_id": user_id, **body.model_dump()}

    def store(db: Db) -> dict[str, Any]:
        loaded = load_contacts(db, [record], source="api")
        return {"load": loaded.to_dict(), "customer": customer(db, user_id)}

    done = await _on_store(service, store)
    if done["load"]["quarantined"]:
        reason = next(iter(done["load"]["reasons"]), "invalid record")
        raise ApiError(422, f"The customer record was refused ({reason}); it is kept in contact_quarantine.")
    return {
        "user_id": user_id,
        "changed": bool(done["load"]["accepted"]),
        "customer": jsonable(done["customer"]),
    }


@router.post("/v1/coupons/validate", responses=errors(401, 403, 422, 429), summary="Check or redeem a coupon")
async def coupons_validate(body: CouponCheck, service: ServiceDep, key: IngestKey) -> dict[str, Any]:
    """Valid, or refused with the reason: ``unknown``, ``expired``, ``used``, ``other_customer``.

    With ``redeem`` the code is used up; of two concurrent redemptions exactly one succeeds.
    """
    now = utcnow()
    result = await _on_store(
        service,
        lambda db: validate_coupon(
            db, code=body.code, user_id=body.user_id, now=now, redeem=body.redeem, order_id=body.order_id
        ),
    )
    return dict(jsonable(result))


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><meta name='viewport' "
        "content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)}</title></head><body style='font-family:system-ui,sans-serif;"
        f"max-width:32rem;margin:4rem auto;padding:0 1rem;color:#1f2937'><h1 style='font-size:1.4rem'>"
        f"{html.escape(title)}</h1>{body}</body></html>",
        status_code=status,
    )


_BAD_LINK = "This link is not valid any more. If you copied it, check that it is complete."


@router.get("/m/r/{token}", include_in_schema=False)
async def restore(token: Token, service: ServiceDep) -> Any:
    """A restore link: count the click, then send the customer to their cart in the shop."""
    now = utcnow()
    got = await _on_store(service, lambda db: click(db, token, now=now))
    if got is None:
        return _page("Link not found", f"<p>{_BAD_LINK}</p>", 404)
    target = DeliverSettings().store_url.format(cart_id=got["cart_id"])
    return RedirectResponse(target, status_code=303)


@router.get("/m/u/{token}", include_in_schema=False)
async def unsubscribe_page(token: Token, service: ServiceDep) -> HTMLResponse:
    """The footer link: a page with one button (a GET never unsubscribes: mail scanners follow links)."""
    got = await _on_store(service, lambda db: unsubscribe_link(db, token, now=utcnow(), confirm=False))
    if got is None:
        return _page("Link not found", f"<p>{_BAD_LINK}</p>", 404)
    if got["unsubscribed"]:
        return _page("You are unsubscribed", "<p>You will not get these messages any more.</p>")
    return _page(
        "Unsubscribe",
        "<p>Stop all messages about your cart and offers from us?</p>"
        f"<form method='post' action='/m/u/{html.escape(token)}'><button type='submit' "
        "style='font-size:1rem;padding:.6rem 1.2rem'>Unsubscribe</button></form>",
    )


@router.post("/m/u/{token}", include_in_schema=False)
async def unsubscribe(token: Token, service: ServiceDep) -> HTMLResponse:
    """RFC 8058 one-click (``List-Unsubscribe=One-Click``) and the page's button: withdraw every consent."""
    got = await _on_store(service, lambda db: unsubscribe_link(db, token, now=utcnow(), confirm=True))
    if got is None:
        return _page("Link not found", f"<p>{_BAD_LINK}</p>", 404)
    return _page("You are unsubscribed", "<p>You will not get these messages any more.</p>")


async def start_worker(service: Service) -> Callable[[], None]:
    """Run the outbox worker in a thread beside the service; returns the function that stops it.

    Off with ``CARTLIFT_DELIVER_IN_SERVE=false``. On DuckDB the worker uses a cursor of the
    service's own database (one process writes the file), holding the storage's `write_lock`
    while it writes, so its transactions and the writer's never overlap; on PostgreSQL its own connection.
    """
    settings = DeliverSettings()
    await _on_store(service, create)  # the routes rely on the tables
    if not settings.deliver_in_serve:
        return lambda: None
    if service.settings.store.is_postgres:
        db = await asyncio.to_thread(connect_postgres, service.settings.db)
    else:
        cursor = await service.storage.writer.call(lambda ctx: ctx.con.cursor())
        db = Db(cursor, lock=service.storage.write_lock)
    # the e-mails suggest the products of the recommender this service serves (its registry's newest)
    worker = await asyncio.to_thread(
        Worker, db, settings, outbox_dir=outbox_folder(service.settings.db, settings),
        models=service.registry.root, store_id=service.registry.store,
    )  # fmt: skip
    stop = threading.Event()
    thread = threading.Thread(
        target=worker.run_forever, args=(stop,), kwargs={"interval": settings.worker_interval},
        name="cartlift-deliver", daemon=True,
    )  # fmt: skip
    thread.start()

    def halt() -> None:
        stop.set()
        thread.join(timeout=30)
        worker.close()
        db.con.close()

    return halt
