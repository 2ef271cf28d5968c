"""Reading the local outbox (``{outbox_dir}/campaign-{id}/{delivery_id}.eml``) for the demo viewer:
one page of messages at a time (a campaign of 300 was one 20,000-pixel page), each with whether
it was opened and clicked, by a person or only by machines (the events of its delivery)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import getaddresses
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter.db.models import Event
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
        return BytesParser(policy=policy.default).parse(handle)  # type: ignore[return-value]


def _summary(delivery_id: int, message: EmailMessage) -> OutboxMessage:
    addresses = getaddresses([str(message.get("To", ""))])
    name, email = addresses[0] if addresses else ("", "")
    first = name.split()[0] if name.split() else ""
    return OutboxMessage(delivery_id, first, mask_email(email), str(message.get("Subject", "")))


@dataclass(frozen=True)
class Engagement:
    """A delivery's opens and clicks, people and machines apart (tracking's verdicts)."""

    opens: int = 0
    machine_opens: int = 0
    clicks: int = 0
    machine_clicks: int = 0

    @property
    def opened(self) -> str:
        return _state(self.opens, self.machine_opens)

    @property
    def clicked(self) -> str:
        return _state(self.clicks, self.machine_clicks)


def _state(people: int, machines: int) -> str:
    if people:
        return "yes" if people == 1 else f"yes ({people}×)"
    return "machine only" if machines else "no"


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
    chosen = ids[(number - 1) * PER_PAGE:number * PER_PAGE]
    return OutboxPage(number, pages, len(ids), [_summary(i, _parse(folder / f"{i}.eml")) for i in chosen])


def engagement(session: Session, delivery_ids: Iterable[int]) -> dict[int, Engagement]:
    """Opens and clicks per delivery, for a page's messages (one grouped query on the events'
    (delivery, type, time) index); deliveries without any are absent."""
    ids = sorted(set(delivery_ids))
    if not ids:
        return {}
    counts: dict[int, dict[str, int]] = {}
    rows = session.execute(
        select(Event.delivery_id, Event.type, Event.is_machine, func.count())
        .where(Event.delivery_id.in_(ids), Event.type.in_(("open", "click")))
        .group_by(Event.delivery_id, Event.type, Event.is_machine))
    for delivery_id, kind, is_machine, n in rows:
        if delivery_id is None:  # pragma: no cover - the query asks for given ids
            continue
        name = ("machine_" if is_machine else "") + ("opens" if kind == "open" else "clicks")
        counts.setdefault(delivery_id, {})[name] = n
    return {delivery_id: Engagement(**values) for delivery_id, values in counts.items()}


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
