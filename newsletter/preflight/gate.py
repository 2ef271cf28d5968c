"""The gate before a send or a schedule: every check passes, or an operator overrides on the record."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy.orm import Session

from newsletter.campaigns import get_campaign
from newsletter.config import Settings
from newsletter.errors import UserError
from newsletter.preflight.model import NOT_OVERRIDABLE, PreflightReport
from newsletter.preflight.run import run_preflight

FORCED_BY_MAX = 200  # campaigns.forced_by


def forced_record(operator: str, failed: list[str], when: datetime | None = None) -> str:
    """``"{operator} at {iso time}: {failed check names}"``, cut to fit the column."""
    when = (when or datetime.now(timezone.utc)).astimezone(timezone.utc)
    tail = f" at {when.isoformat(timespec='seconds')}: {', '.join(failed)}"
    operator = " ".join((operator or "unknown").split()) or "unknown"
    room = FORCED_BY_MAX - len(tail)
    if room < 8:  # very many failed names: keep the operator, shorten the list
        tail = tail[: FORCED_BY_MAX - min(len(operator), 40) - 1] + "…"
        room = FORCED_BY_MAX - len(tail)
    if len(operator) > room:
        operator = operator[: room - 1] + "…"
    return operator + tail


def ensure_preflight_passes(
    session: Session,
    settings: Settings,
    campaign_id: int,
    *,
    force: bool,
    operator: str,
    screenshots_dir: Path | None = None,
) -> PreflightReport:
    """Run the preflight; raise UserError naming each failed check unless ``force``.

    With ``force`` and failures, records ``Campaign.forced_by`` (who, when, which checks) in
    ``session``; the caller's transaction commits it with the send or schedule. Warnings never
    block. A check in ``NOT_OVERRIDABLE`` (a campaign rendered for an old public URL) raises
    even with ``force``. Returns the report either way.
    """
    report = run_preflight(session, settings, campaign_id, screenshots_dir=screenshots_dir)
    failed = report.failed
    if not failed:
        return report
    for check in failed:
        if check.name in NOT_OVERRIDABLE:  # its links lead elsewhere: --force would send them so
            raise UserError(check.reason + ("; --force does not override this" if force else ""))
    if not force:
        listed = "; ".join(f"{check.name}: {check.reason}" for check in failed)
        raise UserError(
            f"preflight failed ({len(failed)} check{'s' if len(failed) > 1 else ''}): {listed}. "
            f"See `newsletter campaign preflight {campaign_id}`; fix them, or override with --force "
            "(recorded on the campaign)",
            where=f"campaign {campaign_id}",
        )
    campaign = get_campaign(session, campaign_id)
    campaign.forced_by = forced_record(operator, [check.name for check in failed])
    session.flush()
    return report
