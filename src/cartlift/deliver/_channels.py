"""Channels: how a rendered message leaves (SMTP, an ``.eml`` folder, an SMS provider, a signed webhook).

Each channel's ``send`` returns the provider's id for the message or raises `SendError`, marked
``transient`` (retry later: SMTP 4xx, HTTP 429/5xx, time-outs, refused connections) or not (the
message is dead: SMTP 5xx, HTTP 4xx, no address).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import smtplib
import ssl
import time
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import httpx

from cartlift.deliver._mime import OutgoingMail
from cartlift.deliver._render import Rendered
from cartlift.errors import InvalidParameterError

__all__ = [
    "Channel",
    "FolderChannel",
    "SendError",
    "SmtpChannel",
    "TwilioSms",
    "Webhook",
    "sign_webhook",
]


class SendError(Exception):
    """A send that failed; ``transient`` says whether trying again later may succeed."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


class Channel(Protocol):
    """What the worker needs of a channel."""

    def send(self, rendered: Rendered, mail: OutgoingMail | None) -> str:
        """Deliver one message; the provider's id for it."""

    def close(self) -> None:
        """Release connections."""


class SmtpChannel:
    """E-mail over SMTP: ``smtp://user:pass@host:587?starttls=true`` or ``smtps://user:pass@host:465``.

    One connection is kept open across messages and reopened after an error.
    """

    def __init__(self, url: str, *, timeout: float = 20.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise InvalidParameterError(
                "CARTLIFT_SMTP_URL must look like smtp://user:pass@host:587?starttls=true or smtps://user:pass@host:465."
            )
        query = {k: v[-1].lower() for k, v in parse_qs(parts.query).items()}
        self.host = parts.hostname
        self.implicit_tls = parts.scheme == "smtps"
        self.port = parts.port or (465 if self.implicit_tls else 25)
        self.starttls = query.get("starttls") in ("true", "1", "yes")
        self.user = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.timeout = timeout
        self._smtp: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        context = ssl.create_default_context()
        smtp: smtplib.SMTP
        if self.implicit_tls:
            smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            if self.starttls:
                smtp.starttls(context=context)
        if self.user:
            smtp.login(self.user, self.password or "")
        return smtp

    def send(self, rendered: Rendered, mail: OutgoingMail | None) -> str:
        """Send ``mail``; SMTP 4xx and lost connections are transient, 5xx permanent."""
        if mail is None or not rendered.to:
            raise SendError("no e-mail address", transient=False)
        try:
            if self._smtp is None:
                self._smtp = self._connect()
            # SMTPUTF8 only when an address needs it (RFC 6531); the bytes are 7-bit clean otherwise
            options = [] if (mail.sender + mail.to).isascii() else ["SMTPUTF8"]
            refused = self._smtp.sendmail(mail.sender, [mail.to], mail.data, mail_options=options)
        except smtplib.SMTPRecipientsRefused as e:
            code, text = next(iter(e.recipients.values()))
            raise SendError(
                f"SMTP {code} {text.decode(errors='replace')}", transient=400 <= code < 500
            ) from None
        except smtplib.SMTPResponseException as e:
            self.close()
            msg = (
                e.smtp_error.decode(errors="replace")
                if isinstance(e.smtp_error, bytes)
                else str(e.smtp_error)
            )
            raise SendError(f"SMTP {e.smtp_code} {msg}", transient=400 <= e.smtp_code < 500) from None
        except (smtplib.SMTPException, OSError) as e:
            self.close()
            raise SendError(f"SMTP connection: {type(e).__name__}: {e}", transient=True) from None
        if refused:
            raise SendError(f"SMTP refused {', '.join(refused)}", transient=False)
        return mail.message_id

    def close(self) -> None:
        """Say QUIT (or drop a broken connection)."""
        if self._smtp is not None:
            try:
                self._smtp.quit()
            except (smtplib.SMTPException, OSError):
                self._smtp.close()
            self._smtp = None


class FolderChannel:
    """Messages as files a person can open: ``<message id>.eml`` for e-mail, ``.sms.txt`` for SMS."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def send(self, rendered: Rendered, mail: OutgoingMail | None) -> str:
        """Write the message (atomically: a crash leaves no half file)."""
        if not rendered.to:
            raise SendError(f"no {'e-mail address' if mail is not None else 'phone number'}", transient=False)
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"{rendered.message_id}.eml" if mail is not None else f"{rendered.message_id}.sms.txt"
        body = mail.data if mail is not None else f"To: {rendered.to}\n\n{rendered.text}\n".encode()
        tmp = self.folder / f".{name}.tmp"
        tmp.write_bytes(body)
        tmp.replace(self.folder / name)
        return str(self.folder / name)

    def close(self) -> None:
        """Nothing to release."""


def _http_error(response: httpx.Response, what: str) -> SendError:
    transient = response.status_code == 429 or response.status_code >= 500
    return SendError(
        f"{what} answered HTTP {response.status_code}: {response.text[:200]}", transient=transient
    )


class TwilioSms:
    """SMS through Twilio's Messages API (``POST /2010-04-01/Accounts/{sid}/Messages.json``, form-encoded).

    ``twilio://ACCOUNT_SID:AUTH_TOKEN@api.twilio.com?from=+15005550006``; the request is sent over
    https, or http to 127.0.0.1/localhost (a local test server).
    """

    def __init__(self, url: str, *, timeout: float = 20.0) -> None:
        parts = urlsplit(url)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        if parts.scheme != "twilio" or not parts.username or not parts.password or "from" not in query:
            raise InvalidParameterError(
                "CARTLIFT_SMS_URL must look like twilio://ACCOUNT_SID:AUTH_TOKEN@api.twilio.com?from=+15005550006."
            )
        self.sid, token = unquote(parts.username), unquote(parts.password)
        self.sender = query["from"]
        local = parts.hostname in ("127.0.0.1", "localhost")
        base = f"{'http' if local else 'https'}://{parts.hostname}{f':{parts.port}' if parts.port else ''}"
        self.endpoint = f"{base}/2010-04-01/Accounts/{self.sid}/Messages.json"
        self.client = httpx.Client(auth=(self.sid, token), timeout=timeout)

    def send(self, rendered: Rendered, mail: OutgoingMail | None) -> str:
        """Post the text; Twilio's message ``sid`` is the provider id."""
        if not rendered.to:
            raise SendError("no phone number", transient=False)
        try:
            response = self.client.post(
                self.endpoint, data={"To": rendered.to, "From": self.sender, "Body": rendered.text}
            )
        except httpx.HTTPError as e:
            raise SendError(f"SMS provider: {type(e).__name__}: {e}", transient=True) from None
        if response.status_code >= 300:
            raise _http_error(response, "SMS provider")
        try:
            return str(response.json()["sid"])
        except (ValueError, KeyError):
            return response.headers.get("location", "")

    def close(self) -> None:
        """Close the HTTP client."""
        self.client.close()


def sign_webhook(secret: bytes, timestamp: str, body: bytes) -> str:
    """``v1=`` + hex HMAC-SHA256 of ``timestamp + "." + body`` (what a receiver recomputes to check a call)."""
    return "v1=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


class Webhook:
    """Every message as a signed JSON POST, for stores that send through their own e-mail tool.

    Headers ``X-Cartlift-Timestamp`` (Unix seconds) and ``X-Cartlift-Signature`` (`sign_webhook`);
    a receiver should refuse a timestamp older than a few minutes (replays). The body holds the
    channel, the recipient, the subject, both parts and the links; ``Idempotency-Key`` is the
    message id, the same on every retry.
    """

    def __init__(self, url: str, secret: str, *, timeout: float = 20.0) -> None:
        if not url.startswith(("https://", "http://")):
            raise InvalidParameterError(f"CARTLIFT_WEBHOOK_URL must be an http(s) URL. Got {url!r}.")
        if not secret:
            raise InvalidParameterError("A webhook needs CARTLIFT_WEBHOOK_SECRET to sign its calls.")
        self.url = url
        self.secret = secret.encode()
        self.client = httpx.Client(timeout=timeout)

    def send(self, rendered: Rendered, mail: OutgoingMail | None) -> str:
        """Post the message; the receiver's ``id`` (JSON) or the message id is the provider id."""
        payload: dict[str, Any] = {
            "message_id": rendered.message_id,
            "channel": rendered.channel,
            "to": rendered.to,
            "subject": rendered.subject,
            "text": rendered.text,
            "html": rendered.html,
            "restore_url": rendered.restore_url,
            "unsubscribe_url": rendered.unsubscribe_url,
        }
        body = json.dumps(payload).encode()
        stamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "X-Cartlift-Timestamp": stamp,
            "X-Cartlift-Signature": sign_webhook(self.secret, stamp, body),
            "Idempotency-Key": rendered.message_id,
        }
        try:
            response = self.client.post(self.url, content=body, headers=headers)
        except httpx.HTTPError as e:
            raise SendError(f"webhook: {type(e).__name__}: {e}", transient=True) from None
        if response.status_code >= 300:
            raise _http_error(response, "webhook")
        try:
            return str(response.json().get("id") or rendered.message_id)
        except ValueError:
            return rendered.message_id

    def close(self) -> None:
        """Close the HTTP client."""
        self.client.close()
