"""The worker's e-mail bytes, read back by the standard library's parser: every header and both parts as given."""

from __future__ import annotations

from datetime import datetime
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default

import pytest

from cartlift.deliver._mime import mail_bytes

CASES = [
    (
        "Shop <shop@example.com>",
        "Your cart",
        "Hello,\n\nline two\n.a line starting with a dot\n",
        "<p>Hi &amp; bye</p>",
    ),
    (
        "Müller & Söhne <laden@example.de>",
        "Grüße – 10 % Rabatt, nur heute 🛒",
        "Preis: 9,99 €\nTschüss\n",
        "<p>€</p>",
    ),
    ("Shop <shop@example.com>", "x" * 300, ("word " * 400).strip() + "\n", "<p>" + "a" * 2000 + "</p>"),
    ("Shop <shop@example.com>", "Ends without newline", "no newline at the end", None),
    (
        "Shop <shop@example.com>",
        "Trailing spaces",
        "a line with trailing spaces   \nnext\r\nwindows line\r\n",
        "<b>x</b>\n",
    ),
]


@pytest.mark.parametrize(("sender", "subject", "text", "html"), CASES)
def test_the_parser_reads_back_what_was_written(
    sender: str, subject: str, text: str, html: str | None
) -> None:
    headers = (("List-Unsubscribe", "<https://shop.example.com/m/u/" + "t" * 120 + ">"),
               ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"))  # fmt: skip
    out = mail_bytes(mail_from=sender, to="ann@example.com", subject=subject, message_id="abc123",
                     now=datetime(2026, 3, 1, 12, 30), text=text, html=html, headers=headers)  # fmt: skip
    assert b"\r\n" in out.data and b"\n" not in out.data.replace(b"\r\n", b"")  # CRLF only
    assert max(len(line) for line in out.data.split(b"\r\n")) <= 998
    assert out.data.isascii()  # 7bit or quoted-printable: any relay takes it
    mail = message_from_bytes(out.data, _class=EmailMessage, policy=default)
    assert mail["Subject"] == subject and mail["To"] == "ann@example.com" and mail["From"] == sender
    domain = sender.rsplit("@", 1)[1].rstrip(">")
    assert mail["Message-ID"] == f"<abc123@{domain}>" == out.message_id
    assert out.sender == sender.rsplit("<", 1)[1].rstrip(">")
    assert mail["List-Unsubscribe"] == headers[0][1] and mail["List-Unsubscribe-Post"] == headers[1][1]
    assert mail["Date"].datetime.isoformat() == "2026-03-01T12:30:00+00:00"
    assert not mail.defects
    want_text = text.replace("\r\n", "\n").rstrip("\n") + "\n"
    plain = mail.get_body(("plain",))
    assert plain is not None and plain.get_content().replace("\r\n", "\n") == want_text
    if html is None:
        assert not mail.is_multipart()
        return
    assert mail.get_content_type() == "multipart/alternative"
    rich = mail.get_body(("html",))
    assert rich is not None and rich.get_content().replace("\r\n", "\n") == html.rstrip("\n") + "\n"
