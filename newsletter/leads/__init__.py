"""Leads: people who asked to connect, their status history, engagement scores, and the
director's alerts and daily digest.

Public face (import from here):

* model: ``STATUSES``, ``OPEN_STATUSES``, ``CLOSED_STATUSES``, ``TRANSITIONS``, ``LABELS``,
  ``create_signup_lead(session, email, *, source, by, note, now)`` → ``SignupLead``,
  ``update_status(session, lead_id, status, *, by, note, now)`` → ``StatusChange``,
  ``history(session, lead_id)``, ``check_status``;
* scoring: ``score_leads(session, now, settings)`` (recomputes the stored ``leads.score``),
  ``ScoreRules``, ``engagement_score``, ``parse_points``;
* reading: ``LeadRow``, ``list_leads(session, status)``, ``lead_row``, ``export_csv``;
* the director: ``leads_tick(engine, settings, now)`` → ``TickResult`` (rescoring + one alert
  per new CTA lead), ``send_daily_digest(engine, settings, now)`` → bool,
  ``compose_alert``, ``compose_digest``, ``alert_key``, ``digest_key``, ``check_settings(settings)``
  (every lead setting, checked at once: call it when a daemon starts).

* writing (the one home of lead rows, ``writes.py``): ``warm_lead_from_click(db, subscriber_id,
  campaign_id, link_id, now)`` → lead id, ``take_back_click_lead(db, subscriber_id, now)``;
  ``tracking`` calls them, in the click's transaction, with plain ids.

Leads are created here only: from a person's CTA click (``tracking`` calls
``warm_lead_from_click``) or a signup that asks for a consultation. Uses ``db``, ``config``,
``audiences`` (address normalising) and ``notify``.
"""

from newsletter.leads.model import (
    CLOSED_STATUSES,
    LABELS,
    OPEN_STATUSES,
    STATUSES,
    TRANSITIONS,
    SignupLead,
    StatusChange,
    check_status,
    create_signup_lead,
    history,
    update_status,
)
from newsletter.leads.notices import (
    TickResult,
    alert_key,
    check_settings,
    compose_alert,
    compose_digest,
    digest_key,
    leads_tick,
    send_daily_digest,
)
from newsletter.leads.queries import LeadRow, export_csv, lead_row, list_leads
from newsletter.leads.scoring import ScoreRules, engagement_score, parse_points, score_leads
from newsletter.leads.writes import take_back_click_lead, warm_lead_from_click

__all__ = [
    "STATUSES",
    "OPEN_STATUSES",
    "CLOSED_STATUSES",
    "TRANSITIONS",
    "LABELS",
    "SignupLead",
    "StatusChange",
    "check_status",
    "create_signup_lead",
    "history",
    "update_status",
    "ScoreRules",
    "engagement_score",
    "parse_points",
    "score_leads",
    "LeadRow",
    "list_leads",
    "lead_row",
    "export_csv",
    "warm_lead_from_click",
    "take_back_click_lead",
    "TickResult",
    "check_settings",
    "leads_tick",
    "send_daily_digest",
    "compose_alert",
    "compose_digest",
    "alert_key",
    "digest_key",
]
