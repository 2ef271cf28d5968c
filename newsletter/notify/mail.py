"""Mail to the clinic's staff: lead alerts, the daily lead digest, the director's weekly report.

One function, :func:`send_staff_mail`, sends one message to one person, once per ``key``
(``claims`` keeps the promise across processes). The transport follows the product's rule:
SendGrid when ``SENDGRID_API_KEY`` is set, otherwise an ``.eml`` file in
``<outbox_dir>/staff/`` (never a surprise send).

Inline images (charts in the weekly report) are PNG bytes referenced from the HTML as
``cid:<name>``. Gmail shows such an image only when it arrives as a MIME part with a
``Content-ID`` and ``inline`` disposition: SendGrid builds that part from an attachment with
``disposition: inline`` and ``content_id``; the outbox writes the same structure itself
(``multipart/related`` holding the HTML and its images, inside ``multipart/alternative``).
Data-URI images are no alternative: Gmail strips them.
"""

from __future__ import annotations

import base64
import http.client
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email import policy as email_policy
from email.headerregistry import Address
from email.message import EmailMessage, MIMEPart
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any
from urllib.error import URLError

from sqlalchemy import Engine

from newsletter.config import Settings
from newsletter.delivery.sendgrid import TRACKING_OFF, error_summary, guard_library_logging
from newsletter.files import write_bytes_atomically
from newsletter.notify import claims

log = logging.getLogger(__name__)

POLICY = email_policy.SMTP
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_IMAGE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_UNSAFE_FILE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
# Staff mail is read by staff: SendGrid's link rewriting and pixel would only add a third party.
_TRACKING_OFF = TRACKING_OFF


class StaffMailError(Exception):
    """The message was not sent. Its notification is marked ``failed`` (a later call with the
    same key retries) or, when the request left but no answer came, ``ambiguous`` (never
    retried: it may have been delivered). ``retryable`` says which."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class StaffMessage:
    key: str
    to: str
    subject: str
    html: str
    text: str
    from_email: str
    from_name: str | None = None
    images: Mapping[str, bytes] = field(default_factory=dict)


def _check(message: StaffMessage, kind: str) -> None:
    """Programming mistakes, refused before anything is claimed or sent."""
    if not message.key or len(message.key) > 200:
        raise ValueError("a notification key must be 1 to 200 characters")
    if not kind or len(kind) > 30:
        raise ValueError("a notification kind must be 1 to 30 characters")
    if not message.to or "@" not in message.to or any(c in message.to for c in "\r\n,;"):
        raise ValueError("staff mail goes to exactly one address")
    if not message.subject.strip() or "\n" in message.subject or "\r" in message.subject:
        raise ValueError("the subject must be one non-empty line")
    if not message.text.strip() and not message.html.strip():
        raise ValueError("staff mail needs a text or an HTML part")
    for name, data in message.images.items():
        if not _IMAGE_NAME.match(name):
            raise ValueError(f"image name {name!r}: letters, digits, '.', '_' and '-' only")
        if not isinstance(data, bytes) or not data.startswith(PNG_SIGNATURE):
            raise ValueError(f"image {name!r} is not PNG data")
        if f"cid:{name}" not in message.html:
            raise ValueError(f"image {name!r} is not referenced in the HTML as cid:{name}")


# --- the message, both forms -------------------------------------------------------------------


def _address(name: str | None, email: str) -> Address:
    local, _, domain = email.strip().rpartition("@")
    if not domain.isascii():
        domain = domain.encode("idna").decode("ascii")
    return Address(display_name=name or "", username=local, domain=domain)


def build_mime(message: StaffMessage, *, date: datetime | None = None) -> EmailMessage:
    """The complete RFC 5322 message: ``multipart/alternative`` of the text and the HTML; with
    images, the HTML becomes ``multipart/related`` (HTML first, then each image with its
    ``Content-ID``), the structure Gmail and every desktop client resolve ``cid:`` links in."""
    msg = EmailMessage(policy=POLICY)
    msg["Subject"] = message.subject
    msg["From"] = _address(message.from_name, message.from_email)
    msg["To"] = _address(None, message.to)
    msg["Date"] = format_datetime(date or datetime.now(timezone.utc))
    msg["Message-ID"] = make_msgid(domain=message.from_email.rpartition("@")[2] or None)
    msg["MIME-Version"] = "1.0"
    msg["X-Newsletter-Notification"] = message.key
    msg.make_alternative()
    alternative: MIMEPart = msg  # typeshed's attach() takes only the parent's own class; any MIMEPart is valid
    text = MIMEPart(policy=POLICY)
    text.set_content(message.text or " ", subtype="plain", charset="utf-8", cte="quoted-printable")
    alternative.attach(text)
    html = MIMEPart(policy=POLICY)
    html.set_content(message.html or "<p></p>", subtype="html", charset="utf-8", cte="quoted-printable")
    if message.images:
        related = MIMEPart(policy=POLICY)
        related.make_related()
        related.attach(html)
        for name, data in message.images.items():
            image = MIMEPart(policy=POLICY)
            image.set_content(
                data, maintype="image", subtype="png", disposition="inline", filename=f"{name}.png", cid=f"<{name}>"
            )
            related.attach(image)
        alternative.attach(related)
    else:
        alternative.attach(html)
    return msg


def build_sendgrid_body(message: StaffMessage, *, sandbox: bool = False) -> dict[str, Any]:
    """The ``POST /v3/mail/send`` body: one personalization, text then HTML (SendGrid's order),
    each image an ``inline`` attachment whose ``content_id`` the HTML names as ``cid:<name>``."""
    content = [{"type": t, "value": v} for t, v in (("text/plain", message.text), ("text/html", message.html)) if v]
    sender: dict[str, str] = {"email": message.from_email}
    if message.from_name:
        sender["name"] = message.from_name
    body: dict[str, Any] = {
        "personalizations": [{"to": [{"email": message.to}]}],
        "from": sender,
        "subject": message.subject,
        "content": content,
        "categories": ["staff"],
        "mail_settings": {"sandbox_mode": {"enable": bool(sandbox)}},
        "tracking_settings": {k: dict(v) for k, v in _TRACKING_OFF.items()},
    }
    if message.images:
        body["attachments"] = [
            {
                "content": base64.b64encode(data).decode("ascii"),
                "type": "image/png",
                "filename": f"{name}.png",
                "disposition": "inline",
                "content_id": name,
            }
            for name, data in message.images.items()
        ]
    return body


# --- transports --------------------------------------------------------------------------------


def send_via_sendgrid(settings: Settings, message: StaffMessage) -> str:
    """Post the message; returns SendGrid's message id (or "sandbox"). Raises
    :class:`StaffMailError`; ``retryable`` is False only when the request may have been taken."""
    from python_http_client.exceptions import HTTPError
    from sendgrid import SendGridAPIClient

    guard_library_logging()
    client = SendGridAPIClient(settings.sendgrid_api_key, host=settings.sendgrid_host.rstrip("/"))
    body = build_sendgrid_body(message, sandbox=settings.sendgrid_sandbox)
    try:
        response = client.client.mail.send.post(request_body=body, timeout=settings.sendgrid_timeout)
    except HTTPError as error:  # an answer outside 2xx: SendGrid did not take it
        detail = error_summary(error.body)
        raise StaffMailError(
            f"SendGrid answered {error.status_code}{': ' + detail if detail else ''}", retryable=True
        ) from None
    except URLError as error:  # failed while connecting or writing: nothing reached SendGrid
        raise StaffMailError(f"SendGrid unreachable: {error.reason}", retryable=True) from None
    except (TimeoutError, ConnectionError, http.client.HTTPException, OSError) as error:
        raise StaffMailError(
            f"no answer from SendGrid after the request was sent: {type(error).__name__}", retryable=False
        ) from None
    status = response.status_code
    if status == 202:
        return (response.headers.get("X-Message-Id") if response.headers is not None else None) or ""
    if status == 200 and settings.sendgrid_sandbox:
        return "sandbox"
    raise StaffMailError(f"unexpected answer {status} from SendGrid", retryable=False)


def outbox_path(settings: Settings, key: str) -> Path:
    """Where the outbox transport writes ``key``: ``<outbox_dir>/staff/<key, file-name safe>.eml``.
    Keys carry ids and dates only (``lead-alert:42``), never an address."""
    safe = _UNSAFE_FILE_CHARS.sub("-", key).strip(".-") or "notification"
    return Path(settings.outbox_dir) / "staff" / f"{safe}.eml"


def write_to_outbox(settings: Settings, message: StaffMessage) -> str:
    """Write the whole message atomically (temporary file, then rename); returns its Message-ID."""
    mime = build_mime(message)
    path = outbox_path(settings, message.key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomically(path, mime.as_bytes())
    except OSError as error:
        raise StaffMailError(f"outbox {path.parent} not writable: {error.strerror or error}", retryable=True) from None
    return str(mime["Message-ID"])


# --- the face ----------------------------------------------------------------------------------


def send_staff_mail(
    engine: Engine,
    settings: Settings,
    *,
    key: str,
    kind: str,
    to: str,
    subject: str,
    html: str,
    text: str,
    images: Mapping[str, bytes] | None = None,
) -> bool:
    """Send one message to one staff address, at most once per ``key``.

    Returns True when this call sent it, False when the key was already sent, is being sent by
    another process, or was left ambiguous. Raises :class:`StaffMailError` when this call's
    send failed: the key is then ``failed`` and the next call retries it (or ``ambiguous``,
    when the request left without an answer, and it is not retried). Raises ``ValueError``
    for a malformed message (nothing claimed). The API key never reaches a log or an error.
    """
    message = StaffMessage(
        key=key,
        to=to.strip(),
        subject=subject,
        html=html,
        text=text,
        from_email=settings.from_email,
        from_name=settings.from_name,
        images=dict(images or {}),
    )
    _check(message, kind)
    if not claims.claim(engine, key=key, kind=kind, to=message.to):
        return False
    try:
        if settings.sendgrid_api_key:
            message_id = send_via_sendgrid(settings, message)
        else:
            message_id = write_to_outbox(settings, message)
    except StaffMailError as error:
        claims.finish(engine, key, claims.FAILED if error.retryable else claims.AMBIGUOUS, str(error))
        log.warning("staff mail %s (%s) not sent: %s", key, kind, error)
        raise
    except Exception as error:  # a bug or an unforeseen failure: retry later rather than lose it
        claims.finish(engine, key, claims.FAILED, f"{type(error).__name__}: {error}")
        raise StaffMailError(f"staff mail {key} not sent: {type(error).__name__}", retryable=True) from error
    claims.finish(engine, key, claims.SENT, message_id)
    log.info("staff mail %s (%s) sent", key, kind)
    return True
