"""Reading the local outbox (``{outbox_dir}/campaign-{id}/{delivery_id}.eml``) for the demo viewer."""

from __future__ import annotations

import re
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import getaddresses
from pathlib import Path

from newsletter.web.common import mask_email

MAX_LISTED = 500
_HEAD = re.compile(r"<head\b[^>]*>", re.IGNORECASE)


@dataclass(frozen=True)
class OutboxMessage:
    delivery_id: int
    first_name: str
    masked_email: str
    subject: str


def campaign_dir(outbox_dir: str, campaign_id: int) -> Path:
    return Path(outbox_dir) / f"campaign-{campaign_id}"


def _parse(path: Path) -> EmailMessage:
    with path.open("rb") as handle:
        return BytesParser(policy=policy.default).parse(handle)  # type: ignore[return-value]


def _summary(delivery_id: int, message: EmailMessage) -> OutboxMessage:
    addresses = getaddresses([str(message.get("To", ""))])
    name, email = addresses[0] if addresses else ("", "")
    first = name.split()[0] if name.split() else ""
    return OutboxMessage(delivery_id, first, mask_email(email), str(message.get("Subject", "")))


def list_messages(outbox_dir: str, campaign_id: int) -> tuple[list[OutboxMessage], int]:
    """The first ``MAX_LISTED`` messages by delivery id, and how many files there are."""
    folder = campaign_dir(outbox_dir, campaign_id)
    ids = sorted(int(p.stem) for p in folder.glob("*.eml") if p.stem.isdigit()) if folder.is_dir() else []
    return [_summary(i, _parse(folder / f"{i}.eml")) for i in ids[:MAX_LISTED]], len(ids)


def read_message(outbox_dir: str, campaign_id: int, delivery_id: int) -> tuple[OutboxMessage, str] | None:
    """The message's summary and its HTML part, links opening in a new tab; ``None`` if absent."""
    path = campaign_dir(outbox_dir, campaign_id) / f"{delivery_id}.eml"
    if not path.is_file():
        return None
    message = _parse(path)
    body = message.get_body(preferencelist=("html",))
    html = body.get_content() if body is not None else "<p>(This message has no HTML part.)</p>"
    # Shown in a sandboxed iframe: a link must leave the frame, or sites that refuse framing fail.
    base = '<base target="_blank">'
    html, found = _HEAD.subn(lambda m: m.group(0) + base, html, count=1)
    return _summary(delivery_id, message), html if found else base + html
