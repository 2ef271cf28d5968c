"""Reading leads for people: the list, one lead, the CSV export, the digest's two lists."""

from __future__ import annotations

import csv
import os
import tempfile
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from newsletter.db.models import Campaign, CampaignLink, Lead, Subscriber
from newsletter.errors import UserError
from newsletter.leads.model import check_status


@dataclass(frozen=True)
class LeadRow:
    id: int
    status: str
    score: int
    source: str
    cta_clicks: int
    subscriber_id: int
    email: str
    first_name: str | None
    last_name: str | None
    campaign_id: int | None
    campaign: str | None
    link: str | None  # the link's label, or its URL when it has none
    note: str | None
    created_at: datetime
    status_changed_at: datetime | None
    last_engaged_at: datetime | None

    @property
    def name(self) -> str:
        return " ".join(p for p in (self.first_name, self.last_name) if p) or ""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("created_at", "status_changed_at", "last_engaged_at"):
            data[key] = data[key].isoformat() if data[key] else None
        return data


def lead_select() -> Select[*tuple[Any, ...]]:
    """Leads with their subscriber, campaign and link, named as :class:`LeadRow` names them (the
    link as its two parts: :func:`lead_rows` makes them one)."""
    return (
        select(
            Lead.id,
            Lead.status,
            Lead.score,
            Lead.source,
            Lead.cta_clicks,
            Lead.subscriber_id,
            Subscriber.email,
            Subscriber.first_name,
            Subscriber.last_name,
            Lead.campaign_id,
            Campaign.name.label("campaign"),
            CampaignLink.label.label("link_label"),
            CampaignLink.url.label("link_url"),
            Lead.note,
            Lead.created_at,
            Lead.status_changed_at,
            Lead.last_engaged_at,
        )
        .join(Subscriber, Subscriber.id == Lead.subscriber_id)
        .outerjoin(Campaign, Campaign.id == Lead.campaign_id)
        .outerjoin(CampaignLink, CampaignLink.id == Lead.link_id)
    )


def lead_rows(session: Session, statement: Select[*tuple[Any, ...]]) -> list[LeadRow]:
    return [_lead_row(dict(row._mapping)) for row in session.execute(statement)]


def _lead_row(columns: dict[str, Any]) -> LeadRow:
    """The link is named by its label, or its URL when it has none."""
    label, url = columns.pop("link_label"), columns.pop("link_url")
    return LeadRow(**columns, link=label or url)


def list_leads(session: Session, status: str | None = None) -> list[LeadRow]:
    """Leads, highest score first, then newest; ``status`` filters (checked)."""
    statement = lead_select()
    if status is not None:
        statement = statement.where(Lead.status == check_status(status))
    return lead_rows(session, statement.order_by(Lead.score.desc(), Lead.created_at.desc(), Lead.id.desc()))


def lead_row(session: Session, lead_id: int) -> LeadRow | None:
    rows = lead_rows(session, lead_select().where(Lead.id == lead_id))
    return rows[0] if rows else None


def new_leads(session: Session, since: datetime, until: datetime) -> list[LeadRow]:
    """Leads created in ``(since, until]``, any source and status, oldest first."""
    return lead_rows(
        session,
        lead_select().where(Lead.created_at > since, Lead.created_at <= until).order_by(Lead.created_at, Lead.id),
    )


def warm_leads(session: Session, min_score: float) -> list[LeadRow]:
    """Open leads nobody has booked yet (new or contacted) at or above ``min_score``, warmest first."""
    return lead_rows(
        session,
        lead_select()
        .where(Lead.status.in_(("new", "contacted")), Lead.score >= min_score)
        .order_by(Lead.score.desc(), Lead.id),
    )


# --- CSV ---------------------------------------------------------------------------------------

CSV_COLUMNS = (
    "id",
    "status",
    "score",
    "source",
    "cta_clicks",
    "email",
    "first_name",
    "last_name",
    "campaign_id",
    "campaign",
    "link",
    "note",
    "created_at",
    "status_changed_at",
    "last_engaged_at",
)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> str:
    """A spreadsheet cell that stays text: a value starting like a formula gets a leading
    apostrophe (OWASP's advice), since names and notes come from the public and from staff."""
    if value is None:
        return ""
    text = value.isoformat() if isinstance(value, datetime) else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def export_csv(session: Session, path: Path, status: str | None = None) -> int:
    """Write the leads (``status`` filters) to ``path`` as UTF-8 CSV; returns the row count.

    Written to a temporary file beside ``path`` and renamed over it, so a failed export never
    leaves half a file (or half of yesterday's file) behind.
    """
    rows = list_leads(session, status)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise UserError(f"folder {folder} does not exist", where="--csv")
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as error:
        raise UserError(f"cannot write in {folder}: {error.strerror or error}", where="--csv") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(CSV_COLUMNS)
            for r in rows:
                data = r.to_dict()
                writer.writerow([_cell(data[c] if c in data else None) for c in CSV_COLUMNS])
        os.replace(tmp, path)
    except BaseException as error:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(error, OSError):
            raise UserError(f"cannot write {path}: {error.strerror or error}", where="--csv") from None
        raise
    return len(rows)
