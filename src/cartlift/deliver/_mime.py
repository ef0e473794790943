"""An e-mail's bytes, written directly: the worker's way to spend almost nothing per message on MIME.

Building an `email.message.EmailMessage` and flattening it costs a few milliseconds per e-mail
(every header is parsed into an object, then folded back), more than the SMTP exchange with a
local relay. Every e-mail of the outbox has one shape (a few headers, a ``multipart/alternative``
of a plain-text and an HTML part), so it is written directly: a header that is plain ASCII is
written as it is; any other goes through the ``email`` package's own folding (RFC 2047 encoded
words); a part that is ASCII with lines under 998 octets is ``7bit``, any other
``quoted-printable`` (safe through any relay, 8BITMIME or not). Lines end in CRLF, as SMTP sends
them. `cartlift.deliver.build_email` parses these bytes back into an `EmailMessage` (previews,
tests); the tests check that the parse gives back every header and both parts.
"""

from __future__ import annotations

import email.policy
import quopri
import secrets
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime, parseaddr
from functools import lru_cache
from zoneinfo import ZoneInfo

__all__ = ["POLICY", "OutgoingMail", "mail_bytes", "sender_parts"]

POLICY = email.policy.SMTP.clone(max_line_length=998)
"""CRLF line ends; long URLs in List-Unsubscribe stay on one line (at the default 78 columns the
``email`` package would turn the header into RFC 2047 encoded words, which clients do not read as a URL)."""

_CRLF = b"\r\n"
_UTC = ZoneInfo("UTC")


@dataclass(frozen=True)
class OutgoingMail:
    """What a channel needs to send one e-mail: the envelope and the whole message's bytes (CRLF)."""

    sender: str
    to: str
    message_id: str
    data: bytes


@lru_cache(maxsize=16)
def sender_parts(mail_from: str) -> tuple[str, str]:
    """``(display name, address)`` of the From setting (parsed once, not per message)."""
    return parseaddr(mail_from)


@lru_cache(maxsize=64)
def _folded(name: str, value: str) -> bytes:
    """A header the ``email`` package folds and encodes (non-ASCII text, or too long for one line)."""
    return POLICY.header_factory(name, value).fold(policy=POLICY).encode("ascii")


def _header(name: str, value: str) -> bytes:
    if value.isascii() and "\r" not in value and "\n" not in value and len(name) + len(value) < 990:
        return f"{name}: {value}".encode("ascii") + _CRLF
    return _folded(name, value)


def _part(subtype: str, body: str) -> tuple[bytes, bytes]:
    """The part's headers and its encoded body (CRLF line ends, ending in CRLF)."""
    lines = body.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    raw = "\n".join(lines) + "\n"
    if raw.isascii() and max(map(len, lines), default=0) <= 998:
        cte, encoded = "7bit", raw.encode("ascii")
    else:
        cte, encoded = "quoted-printable", quopri.encodestring(raw.encode("utf-8"))
    head = f'Content-Type: text/{subtype}; charset="utf-8"\r\nContent-Transfer-Encoding: {cte}\r\n\r\n'
    return head.encode("ascii"), encoded.replace(b"\n", _CRLF)


def mail_bytes(
    *,
    mail_from: str,
    to: str,
    subject: str,
    message_id: str,
    now: datetime,
    text: str,
    html: str | None,
    headers: tuple[tuple[str, str], ...] = (),
) -> OutgoingMail:
    """One e-mail: From, To, Subject, Message-ID ``<message_id@domain of From>``, Date (``now``, naive
    UTC), the extra ``headers``, then the text part alone or text and HTML as alternatives."""
    address = sender_parts(mail_from)[1]
    domain = address.split("@")[-1] or "cartlift.invalid"
    mid = f"<{message_id}@{domain}>"
    out = [
        _header("From", mail_from),
        _header("To", to),
        _header("Subject", subject),
        _header("Message-ID", mid),
        _header("Date", format_datetime(now.replace(tzinfo=_UTC))),
        *(_header(k, v) for k, v in headers),
        b"MIME-Version: 1.0\r\n",
    ]
    text_head, text_body = _part("plain", text)
    if html is None:
        data = b"".join([*out, text_head, text_body])
        return OutgoingMail(address, to, mid, data)
    html_head, html_body = _part("html", html)
    boundary = f"=_{message_id}".encode("ascii")
    while (
        b"--" + boundary in text_body or b"--" + boundary in html_body
    ):  # never, but a boundary must not occur
        boundary = f"=_{secrets.token_hex(16)}".encode("ascii")
    dash = b"--" + boundary
    data = b"".join(
        [
            *out,
            b'Content-Type: multipart/alternative; boundary="' + boundary + b'"\r\n\r\n',
            dash + _CRLF, text_head, text_body,
            # the CRLF before a boundary belongs to the boundary (RFC 2046 5.1.1), not to the part
            _CRLF + dash + _CRLF, html_head, html_body,
            _CRLF + dash + b"--" + _CRLF,
        ]
    )  # fmt: skip
    return OutgoingMail(address, to, mid, data)
