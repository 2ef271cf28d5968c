"""Sending a campaign: build the ledger once, then let the dispatcher drain it.

Safe to call again at any time: the ledger insert adds nothing twice and the dispatcher only
takes ``queued`` rows, so a repeated send, a scheduler retry or a second worker never mails
anyone twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from sqlalchemy import Engine, update

from newsletter.campaigns.create import get_campaign
from newsletter.campaigns.ledger import build_ledger, ledger_counts
from newsletter.campaigns.rerender import refuse_stale
from newsletter.config import Settings
from newsletter.db import models, session_scope
from newsletter.db.models import utcnow
from newsletter.delivery import CampaignMessage, OutboxTransport, Recipient, SendGridTransport, Transport
from newsletter.delivery.dispatch import DispatchResult, LedgerRow, RetryPolicy, dispatch
from newsletter.delivery.throttle import Limits, Throttle, ledger_window_count
from newsletter.errors import UserError
from newsletter.render import personalise, recipient_values
from newsletter.tracking.tokens import TokenSigner
from newsletter.userpaths import ensure_output_folder

SENDABLE_STATUSES = {"draft", "scheduled", "sending", "missed"}


@dataclass
class SendSummary:
    campaign_id: int
    transport: str
    ledger_added: int
    sent: int
    failed: int
    suppressed: int
    ambiguous: int
    paused_reason: str | None
    counts: dict[str, int]

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def make_transport(settings: Settings) -> Transport:
    """SendGrid when a key is set, else the local outbox: a missing key never sends for real."""
    if settings.sendgrid_api_key:
        return SendGridTransport(
            settings.sendgrid_api_key,
            settings.sendgrid_host,
            timeout=settings.sendgrid_timeout,
            sandbox=settings.sendgrid_sandbox,
        )
    folder = ensure_output_folder(Path(settings.outbox_dir), "NEWSLETTER_OUTBOX_DIR")  # a file there is one line
    return OutboxTransport(folder, personalise=personalise)


def campaign_message(campaign: models.Campaign, settings: Settings) -> CampaignMessage:
    return CampaignMessage(
        campaign_id=campaign.id,
        subject=campaign.subject,
        html=campaign.html,
        text=campaign.text,
        from_email=settings.from_email,
        from_name=settings.from_name,
        reply_to=settings.reply_to,
        category=f"campaign-{campaign.id}",
        sending_domain=settings.sending_domain,
    )


def recipient_factory(settings: Settings) -> Callable[[LedgerRow], Recipient]:
    """Per-recipient work is a signature and a dict: no template runs here."""
    signer = TokenSigner(settings.signing_key())
    base = settings.public_base

    def make(row: LedgerRow) -> Recipient:
        token = signer.sign(row.delivery_id)
        first, last = row.first_name, row.last_name
        name = (f"{first} {last}" if first and last else first or last) or None
        # positional: keyword arguments cost a third more, a million times a send
        return Recipient(row.delivery_id, row.email, name, recipient_values(first, token), f"{base}/u/{token}")

    return make


def check_sendable(campaign: models.Campaign) -> None:
    """Refuse a campaign that cannot be sent now (a nurture step, one already sent, paused…).
    The command checks it before the preflight as well, so the refusal comes first."""
    if campaign.kind == "nurture":
        raise UserError(
            "is a nurture sequence step; the scheduler sends it to each reader when their step is due",
            where=f"campaign {campaign.id}",
        )
    if campaign.status not in SENDABLE_STATUSES:
        raise UserError(
            f"is {campaign.status}; only a draft or scheduled campaign can be sent"
            + ("; use `newsletter campaign resume`" if campaign.status == "paused" else ""),
            where=f"campaign {campaign.id}",
        )


def start_sending(engine: Engine, settings: Settings, campaign_id: int) -> int:
    """Move the campaign to ``sending`` and materialise its ledger; returns rows added."""
    with session_scope(engine) as session:
        campaign = get_campaign(session, campaign_id)
        check_sendable(campaign)
        if campaign.status != "sending":  # not yet under way: its links must lead to today's address
            refuse_stale(campaign, settings)
        campaign.status = "sending"
        campaign.started_at = campaign.started_at or utcnow()
        campaign.status_reason = None
        session.flush()
        return build_ledger(session, campaign, settings.audiences_dir)


def finish_if_done(engine: Engine, campaign_id: int) -> dict[str, int]:
    with session_scope(engine) as session:
        counts = ledger_counts(session, campaign_id)
        if counts["queued"] == 0 and counts["in_flight"] == 0:
            session.execute(
                update(models.Campaign)
                .where(models.Campaign.id == campaign_id, models.Campaign.status == "sending")
                .values(status="sent", finished_at=utcnow())
            )
        return counts


def make_throttle(engine: Engine, settings: Settings) -> Throttle | None:
    limits = Limits(settings.rate_per_second, settings.limit_per_hour, settings.limit_per_day)
    if not (limits.rate_per_second or limits.per_hour or limits.per_day):
        return None
    return Throttle(limits, ledger_window_count(engine))


def dispatch_campaign(
    engine: Engine,
    settings: Settings,
    campaign_id: int,
    transport: Transport,
    *,
    throttle: Throttle | None = None,
    worker_id: str | None = None,
    on_batch: Callable[[DispatchResult], None] | None = None,
    retry: RetryPolicy | None = None,
) -> DispatchResult:
    """Drain whatever is queued for the campaign; shared by `campaign send`, workers and the scheduler."""
    with session_scope(engine) as session:
        message = campaign_message(get_campaign(session, campaign_id), settings)
    return dispatch(
        engine,
        campaign_id,
        transport,
        message,
        recipient_factory(settings),
        batch_size=settings.batch_size,
        worker_id=worker_id,
        lease_seconds=settings.lease_seconds,
        retry=retry,
        on_batch=on_batch,
        throttle=throttle,
        concurrency=settings.send_concurrency,
    )


def send_campaign(
    engine: Engine,
    settings: Settings,
    campaign_id: int,
    *,
    transport: Transport | None = None,
    on_batch: Callable[[DispatchResult, int], None] | None = None,
    retry: RetryPolicy | None = None,
) -> SendSummary:
    """Send now. ``on_batch(result, total)`` reports progress after each batch."""
    transport = transport or make_transport(settings)  # a bad outbox folder is said before the ledger is built
    try:
        added = start_sending(engine, settings, campaign_id)
    except BaseException:
        transport.close()  # drain closes it otherwise
        raise
    return drain(engine, settings, campaign_id, added, transport=transport, on_batch=on_batch, retry=retry)


def drain(
    engine: Engine,
    settings: Settings,
    campaign_id: int,
    added: int = 0,
    *,
    transport: Transport | None = None,
    on_batch: Callable[[DispatchResult, int], None] | None = None,
    retry: RetryPolicy | None = None,
) -> SendSummary:
    """Dispatch in this process until nothing is queued, then close the campaign if it is done."""
    with session_scope(engine) as session:
        total = ledger_counts(session, campaign_id)["queued"]
    transport = transport or make_transport(settings)
    try:
        result = dispatch_campaign(
            engine,
            settings,
            campaign_id,
            transport,
            throttle=make_throttle(engine, settings),
            on_batch=(lambda r: on_batch(r, total)) if on_batch else None,
            retry=retry,
        )
    finally:
        transport.close()
    counts = finish_if_done(engine, campaign_id)
    return SendSummary(
        campaign_id=campaign_id,
        transport=transport.name,
        ledger_added=added,
        sent=result.sent,
        failed=result.failed,
        suppressed=result.suppressed,
        ambiguous=result.ambiguous,
        paused_reason=result.paused_reason,
        counts=counts,
    )
