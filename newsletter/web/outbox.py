"""Reading the local outbox (``{outbox_dir}/campaign-{id}/{delivery_id}.eml``) for the demo viewer:
one page of messages at a time (a campaign of 300 was one 20,000-pixel page). Whether each was
opened and clicked, by a person or only by machines, is tracking's (``tracking.engagement``)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import getaddresses
from pathlib import Path

from newsletter.web.common import mask_email

PER_PAGE = 50
MAX_ID = 2**63  # the store's ids are BIGINT
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
        return BytesParser(policy=policy.default).parse(handle)


def _summary(delivery_id: int, message: EmailMessage) -> OutboxMessage:
    addresses = getaddresses([str(message.get("To", ""))])
    name, email = addresses[0] if addresses else ("", "")
    first = name.split()[0] if name.split() else ""
    return OutboxMessage(delivery_id, first, mask_email(email), str(message.get("Subject", "")))


@dataclass(frozen=True)
class OutboxPage:
    """One page of a campaign's outbox, in delivery order (the order it was sent)."""

    number: int  # 1-based
    pages: int  # at least 1, even when empty
    total: int  # messages in the folder
    messages: list[OutboxMessage] = field(default_factory=list)

    @property
    def first(self) -> int:
        """The position (1-based) of the page's first message."""
        return (self.number - 1) * PER_PAGE + 1 if self.messages else 0

    @property
    def last(self) -> int:
        return self.first + len(self.messages) - 1 if self.messages else 0

    def links(self, around: int = 2) -> list[int | None]:
        """Page numbers to link: the first, the last and ``around`` either side of this one;
        ``None`` where some are left out."""
        shown = {1, self.pages, *range(self.number - around, self.number + around + 1)}
        numbers = sorted(n for n in shown if 1 <= n <= self.pages)
        out: list[int | None] = []
        for n in numbers:
            if out and n - (out[-1] or 0) > 1:
                out.append(None)
            out.append(n)
        return out


def message_ids(outbox_dir: str, campaign_id: int) -> list[int]:
    """The campaign's delivery ids that have a message file, in order."""
    folder = campaign_dir(outbox_dir, campaign_id)
    if not folder.is_dir():
        return []
    ids = (int(p.stem) for p in folder.glob("*.eml") if p.stem.isascii() and p.stem.isdigit())
    return sorted(i for i in ids if i < MAX_ID)  # another file ("².eml", a huge number) is not a message


def list_page(outbox_dir: str, campaign_id: int, number: int) -> OutboxPage:
    """Page ``number`` (past the end: the last page); only that page's files are read."""
    ids = message_ids(outbox_dir, campaign_id)
    pages = max(1, -(-len(ids) // PER_PAGE))
    number = min(max(1, number), pages)
    folder = campaign_dir(outbox_dir, campaign_id)
    chosen = ids[(number - 1) * PER_PAGE : number * PER_PAGE]
    return OutboxPage(number, pages, len(ids), [_summary(i, _parse(folder / f"{i}.eml")) for i in chosen])


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
