"""Reading the body of ``POST /v1/events``: msgspec on the way in, the pydantic schema as the contract.

A batch is decoded straight from the request's bytes into msgspec Structs, which check the same
shape as `EventBatchCreate` (field names, JSON types, lengths) several times faster than FastAPI's
JSON-then-pydantic path (FIELD-NOTES: 0.84x against 0.50x of a bare endpoint). A body msgspec
refuses goes the old way, so a malformed request gets exactly the errors it got before (and a
``NaN`` inside ``properties``, which Python's JSON reader accepts, still reaches the events
package, which refuses that one event with its reason).
"""

from __future__ import annotations

import email.message
import functools
import json
from typing import Annotated, Any

import msgspec
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from cartlift.serve._errors import ApiError
from cartlift.serve._keys import pseudonymise
from cartlift.serve._schemas import EventBatchCreate

__all__ = ["EVENTS_REQUEST_BODY", "prepare_records", "read_events"]

_Id = Annotated[str, msgspec.Meta(max_length=200)]
_Short = Annotated[str, msgspec.Meta(max_length=100)]
# strict as the schema's Number: a boolean stays one, and the events package refuses it per event
_Number = int | float | str | bool


class _Event(msgspec.Struct, forbid_unknown_fields=True):
    ts: Annotated[str, msgspec.Meta(max_length=64)]
    user_id: _Id | None
    event_type: Annotated[str, msgspec.Meta(max_length=32)]
    event_id: _Id | None = None
    session_id: _Id | None = None
    product_id: _Id | None = None
    quantity: _Number | None = None
    price: _Number | None = None
    order_id: _Id | None = None
    channel: _Short | None = None
    device: _Short | None = None
    properties: dict[str, Any] | None = None


class _Batch(msgspec.Struct, forbid_unknown_fields=True):
    events: Annotated[list[_Event], msgspec.Meta(min_length=1)]


_DECODER = msgspec.json.Decoder(_Batch)

EVENTS_REQUEST_BODY = {
    "required": True,
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/EventBatchCreate"}}},
}
"""The request body as the OpenAPI document states it (the app adds `EventBatchCreate`'s schema)."""


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return True
    return _is_json_type(content_type)


@functools.lru_cache(maxsize=64)
def _is_json_type(content_type: str) -> bool:
    # parsed by the e-mail package as FastAPI does (5 us); clients send few spellings, so each once
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


def read_events(body: bytes, content_type: str | None) -> list[dict[str, Any]]:
    """The events of a request body as records, or `RequestValidationError` as FastAPI would raise it."""
    if body and _is_json(content_type):
        try:
            batch = _DECODER.decode(body)
        except (msgspec.ValidationError, msgspec.DecodeError):
            pass
        else:
            return [msgspec.structs.asdict(e) for e in batch.events]
    return _read_slowly(body, content_type)


def _read_slowly(body: bytes, content_type: str | None) -> list[dict[str, Any]]:
    """FastAPI's own way (``json.loads``, then the pydantic model), for the bodies msgspec refuses."""
    if not body:
        raise RequestValidationError(
            [{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}]
        )
    obj: Any = body
    if _is_json(content_type):
        try:
            obj = json.loads(body)
        except ValueError as e:  # not JSON, or not UTF-8 text
            pos = e.pos if isinstance(e, json.JSONDecodeError) else 0
            raise RequestValidationError(
                [
                    {
                        "type": "json_invalid",
                        "loc": ("body", pos),
                        "msg": "JSON decode error",
                        "input": {},
                        "ctx": {"error": str(e)},
                    }
                ]
            ) from e
    try:
        batch = EventBatchCreate.model_validate(obj)
    except ValidationError as e:
        raise RequestValidationError(
            [{**err, "loc": ("body", *err["loc"])} for err in e.errors(include_url=False)]
        ) from e
    return [e.model_dump() for e in batch.events]


def prepare_records(events: list[dict[str, Any]], *, max_events: int, secret: str | None) -> None:
    """Make a posted batch's records what the store takes, in place: at most ``max_events`` (else
    413, nothing stored), ``properties`` as JSON text, user ids pseudonymised under ``secret``."""
    if len(events) > max_events:
        raise ApiError(
            413,
            f"A batch holds at most {max_events:,} events; got {len(events):,}. Split it; nothing was stored.",
        )
    for record in events:
        if record.get("properties") is not None:
            record["properties"] = json.dumps(record["properties"], sort_keys=True)
        if secret is not None and isinstance(record.get("user_id"), str):
            record["user_id"] = pseudonymise(record["user_id"], secret)
