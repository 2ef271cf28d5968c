"""The tables. One module so a newcomer sees the whole store at once.

Statuses are short strings with CHECK constraints rather than database enums: both stores
accept them, and migrations stay simple when a status is added. Every timestamp is stored in
UTC and read back time-zone aware (``UTCDateTime``), on SQLite as on PostgreSQL.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    and_,
    exists,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Attributes are parsed once on write as JSONB on PostgreSQL (segment rules read them per row);
# plain JSON text on SQLite.
JSONB_ON_POSTGRES = JSON().with_variant(JSONB(), "postgresql")

# BigInteger ids on PostgreSQL (a million-recipient ledger outgrows nothing soon), plain INTEGER on
# SQLite so the id stays the rowid alias and autoincrements.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, whatever the store keeps."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; attach a time zone first")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


#: Half-empty pages on insert, so both of a ledger row's updates stay on its page (heap-only).
DELIVERIES_FILLFACTOR = 50


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


SUBSCRIBER_STATUSES = ("pending", "active", "unsubscribed", "bounced", "complained", "erased")
CAMPAIGN_STATUSES = ("draft", "scheduled", "sending", "sent", "paused", "cancelled", "missed", "failed")
DELIVERY_STATUSES = ("queued", "in_flight", "sent", "failed", "ambiguous", "suppressed")
LEAD_STATUSES = ("new", "contacted", "booked", "client", "not_a_fit", "lost")
LEAD_SOURCES = ("cta_click", "signup", "staff")
CAMPAIGN_KINDS = ("newsletter", "nurture")
ENROLLMENT_STATUSES = ("active", "completed", "exited")
SUPPRESSION_REASONS = ("unsubscribed", "bounced", "complained", "erased", "invalid", "manual")
STAFF_ROLES = ("admin", "marketer", "director")
AUDIT_OUTCOMES = ("ok", "denied", "failed")


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON}


class Subscriber(Base):
    __tablename__ = "subscribers"
    __table_args__ = (
        CheckConstraint(_in("status", SUBSCRIBER_STATUSES), name="ck_subscribers_status"),
        Index("ix_subscribers_status_created", "status", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)  # normalised: see audiences.emails
    first_name: Mapped[str | None] = mapped_column(String(200))
    last_name: Mapped[str | None] = mapped_column(String(200))
    timezone: Mapped[str | None] = mapped_column(String(64))  # IANA name
    locale: Mapped[str | None] = mapped_column(String(35))  # BCP 47
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONB_ON_POSTGRES, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="active")
    consent_source: Mapped[str | None] = mapped_column(String(100))
    consent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    consent_text_version: Mapped[str | None] = mapped_column(String(50))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    status_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    tags: Mapped[list[SubscriberTag]] = relationship(cascade="all, delete-orphan", lazy="selectin")


class SubscriberTag(Base):
    """Tags live in their own table: segment rules become indexed EXISTS, same on both stores."""

    __tablename__ = "subscriber_tags"
    __table_args__ = (Index("ix_subscriber_tags_tag", "tag", "subscriber_id"),)

    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(100), primary_key=True)


class Article(Base):
    __tablename__ = "articles"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    slug: Mapped[str] = mapped_column(String(200), unique=True)
    title: Mapped[str] = mapped_column(String(500))
    author: Mapped[str | None] = mapped_column(String(200))
    published_on: Mapped[date | None] = mapped_column(Date)
    source_format: Mapped[str] = mapped_column(String(20))
    source_path: Mapped[str | None] = mapped_column(Text)
    content: Mapped[dict[str, Any]] = mapped_column(JSON)  # content.Article.to_dict()
    content_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Campaign(Base):
    __tablename__ = "campaigns"
    __table_args__ = (
        CheckConstraint(_in("status", CAMPAIGN_STATUSES), name="ck_campaigns_status"),
        CheckConstraint(_in("kind", CAMPAIGN_KINDS), name="ck_campaigns_kind"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # A nurture step is a campaign too (same ledger, so never sent twice) but may have no article.
    kind: Mapped[str] = mapped_column(String(16), default="newsletter", server_default="newsletter")
    article_id: Mapped[int | None] = mapped_column(ForeignKey("articles.id"))
    name: Mapped[str] = mapped_column(String(300))
    subject: Mapped[str] = mapped_column(String(300))
    preheader: Mapped[str] = mapped_column(String(300), default="")
    segment: Mapped[str] = mapped_column(String(100))
    template: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="draft")
    # The compiled message, with per-recipient placeholders (render.PLACEHOLDERS) still in it.
    html: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    scheduled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    schedule_timezone: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    status_reason: Mapped[str | None] = mapped_column(Text)
    forced_by: Mapped[str | None] = mapped_column(String(200))  # preflight override, who and when
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    article: Mapped[Article | None] = relationship(lazy="joined")
    links: Mapped[list[CampaignLink]] = relationship(order_by="CampaignLink.position", lazy="selectin")


class CampaignLink(Base):
    """Every link a campaign may redirect to. A click on anything else is a 404."""

    __tablename__ = "campaign_links"
    __table_args__ = (UniqueConstraint("campaign_id", "position", name="uq_campaign_links_position"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)  # the link's number inside the message (render.Link.position)
    url: Mapped[str] = mapped_column(Text)
    label: Mapped[str] = mapped_column(String(300), default="")
    kind: Mapped[str] = mapped_column(String(20), default="article")  # cta, article, read_more, web, honeypot, ...


class Delivery(Base):
    """The ledger: one row per (campaign, subscriber); the unique constraint is the invariant.

    Every row is rewritten twice on its way out (queued → in_flight → sent), so the table is
    kept for PostgreSQL's heap-only updates: no index holds a column those two updates change
    (``status``, ``sent_at``, ``message_id``, the claim's columns), and pages are only half
    filled on insert (fillfactor 50) so the new version fits beside the old one. Such an update
    writes no index entry at all; with ``status`` indexed, each claim and each record wrote
    three to five (see docs/architecture.md, "The ledger's two updates"). What those indexes
    served is answered elsewhere: recent sends and message ids by :class:`SendLog`, a campaign's
    rows by ``ix_deliveries_campaign`` (the cursor of the claim keeps it from rescanning).
    """

    __tablename__ = "deliveries"
    __table_args__ = (
        # Subscriber first: the same index answers "this subscriber's deliveries" (unsubscribes,
        # cascades) and "this subscriber's row in that campaign" (the webhook's fallback).
        UniqueConstraint("subscriber_id", "campaign_id", name="uq_deliveries_subscriber_campaign"),
        CheckConstraint(_in("status", DELIVERY_STATUSES), name="ck_deliveries_status"),
        Index("ix_deliveries_campaign", "campaign_id", "id"),
        {"postgresql_with": {"fillfactor": DELIVERIES_FILLFACTOR}},
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    batch_key: Mapped[str | None] = mapped_column(String(64))  # which claim took the row; never searched
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    message_id: Mapped[str | None] = mapped_column(String(200))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SendLog(Base):
    """One row per answer the provider accepted: when, how many, and its message id.

    The ledger keeps each recipient's ``sent_at`` and ``message_id`` but indexes neither (see
    :class:`Delivery`); the two questions that need an index ask this small table instead, one
    row per thousand recipients: "how many were sent in the last hour / day" (throttle windows)
    and "which campaign sent this message id" (webhook events without our custom_args). A
    provider that gives each recipient their own id (the local outbox) logs one row per batch
    without an id.
    """

    __tablename__ = "send_log"
    __table_args__ = (
        Index(
            "ix_send_log_message_id",
            "message_id",
            postgresql_where=text("message_id IS NOT NULL"),
            sqlite_where=text("message_id IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), index=True)
    message_id: Mapped[str | None] = mapped_column(String(200))
    recipients: Mapped[int] = mapped_column(Integer)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class Event(Base):
    """Opens, clicks, unsubscribes and provider events. ``event_key`` makes each count once."""

    __tablename__ = "events"
    __table_args__ = (
        # Reports (migration 0003): a campaign's people per event type, human or machine, from the
        # index alone (INCLUDE on PostgreSQL): a report costs the size of its campaign, not of the
        # whole events table. It replaced ix_events_campaign_type, a prefix of it.
        Index(
            "ix_events_campaign_people",
            "campaign_id",
            "type",
            "is_machine",
            "subscriber_id",
            postgresql_include=["link_id", "occurred_at", "machine_reason"],
        ),
        # Segment engagement rules: "a human open/click since T" answered from the index alone.
        Index(
            "ix_events_subscriber_type_machine_time",
            "subscriber_id",
            "type",
            "is_machine",
            "occurred_at",
            postgresql_include=["link_id"],
        ),
        # Per-message rules (burst clicks, too fast after delivery, soft-bounce counts).
        Index("ix_events_delivery_type_time", "delivery_id", "type", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    event_key: Mapped[str] = mapped_column(String(200), unique=True)  # our uuid, or "sg:" + sg_event_id
    type: Mapped[str] = mapped_column(String(30))
    source: Mapped[str] = mapped_column(String(20), default="tracking")  # tracking | sendgrid | staff
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id", ondelete="SET NULL"))
    delivery_id: Mapped[int | None] = mapped_column(ForeignKey("deliveries.id", ondelete="SET NULL"))
    subscriber_id: Mapped[int | None] = mapped_column(ForeignKey("subscribers.id", ondelete="SET NULL"))
    link_id: Mapped[int | None] = mapped_column(ForeignKey("campaign_links.id", ondelete="SET NULL"))
    is_machine: Mapped[bool] = mapped_column(Boolean, default=False)
    machine_reason: Mapped[str | None] = mapped_column(String(100))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ip_prefix: Mapped[str | None] = mapped_column(String(64))  # truncated, never the full address
    user_agent: Mapped[str | None] = mapped_column(String(500))
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class Suppression(Base):
    __tablename__ = "suppressions"
    __table_args__ = (CheckConstraint(_in("reason", SUPPRESSION_REASONS), name="ck_suppressions_reason"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    reason: Mapped[str] = mapped_column(String(20))
    source: Mapped[str] = mapped_column(String(50))  # unsubscribe_link, one_click, sendgrid, import, staff
    detail: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


def sendable() -> Any:
    """Subscribers we may mail: active, and not on the suppression list. "Suppression wins" in
    one place: the ledger build, each batch's dispatch and the nurture steps all ask this."""
    return and_(Subscriber.status == "active", ~exists().where(Suppression.email == Subscriber.email))


class Lead(Base):
    """A reader who asked to connect. One open lead per subscriber; later CTA clicks warm it."""

    __tablename__ = "leads"
    __table_args__ = (
        CheckConstraint(_in("status", LEAD_STATUSES), name="ck_leads_status"),
        CheckConstraint(_in("source", LEAD_SOURCES), name="ck_leads_source"),
        Index("ix_leads_status_created", "status", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"), unique=True)
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id", ondelete="SET NULL"), index=True)
    link_id: Mapped[int | None] = mapped_column(ForeignKey("campaign_links.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(20), default="new")
    score: Mapped[int] = mapped_column(Integer, default=0)
    cta_clicks: Mapped[int] = mapped_column(Integer, default=1)
    note: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(20), default="cta_click", server_default="cta_click")
    last_engaged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # newest human event scored
    status_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class LeadStatusChange(Base):
    """Every status a lead has had, when and by whom: the history staff and reports read."""

    __tablename__ = "lead_status_changes"
    __table_args__ = (Index("ix_lead_status_changes_lead_time", "lead_id", "changed_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"))
    from_status: Mapped[str | None] = mapped_column(String(20))  # None for the lead's creation
    to_status: Mapped[str] = mapped_column(String(20))
    changed_by: Mapped[str] = mapped_column(String(200))  # a person, or "system:<what>"
    note: Mapped[str | None] = mapped_column(Text)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class NurtureEnrollment(Base):
    """One subscriber's place in one sequence. Sends go through the ledger (one campaign per
    step), so this row only says what is due next and whether the sequence still runs."""

    __tablename__ = "nurture_enrollments"
    __table_args__ = (
        UniqueConstraint("sequence", "subscriber_id", name="uq_nurture_enrollments_sequence_subscriber"),
        CheckConstraint(_in("status", ENROLLMENT_STATUSES), name="ck_nurture_enrollments_status"),
        Index("ix_nurture_enrollments_due", "status", "next_due_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    sequence: Mapped[str] = mapped_column(String(100))  # the YAML file's name without extension
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"))
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("leads.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(16), default="active")
    exit_reason: Mapped[str | None] = mapped_column(String(100))
    next_step: Mapped[int] = mapped_column(Integer, default=0)  # index into the sequence's steps
    next_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    enrolled_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Notification(Base):
    """Mail to staff (lead alerts, the daily digest, the weekly report). ``key`` makes each go
    out once, whichever scheduler or process gets there first."""

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)  # e.g. lead-alert:42, digest:2026-11-27
    kind: Mapped[str] = mapped_column(String(30))
    recipient: Mapped[str] = mapped_column(String(320))
    status: Mapped[str] = mapped_column(String(16), default="sent")  # sent | failed
    detail: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class StaffUser(Base):
    """A person who works in the product (issue 16): their role says what they may do
    (``staff.can``); a disabled account keeps its row, so the audit log still names it."""

    __tablename__ = "staff_users"
    __table_args__ = (CheckConstraint(_in("role", STAFF_ROLES), name="ck_staff_users_role"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)  # audiences.normalise_email's form
    name: Mapped[str | None] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str | None] = mapped_column(String(200))  # argon2id; None until one is set
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    password_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class AuditEntry(Base):
    """Who did what, when, from where, to what, with what outcome. Written by ``staff.audit``
    only, in the transaction of the change it records; never a password or its hash."""

    __tablename__ = "audit_log"
    __table_args__ = (
        CheckConstraint(_in("outcome", AUDIT_OUTCOMES), name="ck_audit_log_outcome"),
        Index("ix_audit_log_at", "at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(200))  # "user:<id>" or "cli:<os user>"
    source: Mapped[str] = mapped_column(String(100))  # an IP address, or "cli"
    action: Mapped[str] = mapped_column(String(60))
    target: Mapped[str | None] = mapped_column(String(400))
    outcome: Mapped[str] = mapped_column(String(10))
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)
