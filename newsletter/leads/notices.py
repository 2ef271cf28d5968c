"""Telling the director: an alert for each new CTA lead, and a daily digest of new and warm leads.

Both are staff mail sent once per key (``notify``): ``lead-alert:<lead id>`` and
``digest:<local date>``. The scheduler calls :func:`leads_tick` and :func:`send_daily_digest`
often (every tick); each does nothing when there is nothing due, so a restarted or second
scheduler never sends anything twice.

Alerts wait ``ALERT_SETTLE`` after the click, so a click that a burst of scanner clicks takes
back a moment later (``tracking.mark_burst``) never reaches the director; a lead older than
``ALERT_MAX_AGE`` gets no alert (the digest covers it), so a first deployment onto an old store
sends no flood, and a lead staff already moved past ``new`` needs none. Subjects carry a lead number, never a name: phones show subjects on the lock
screen, and this is a mental-health clinic.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo

from jinja2 import Environment, StrictUndefined
from sqlalchemy import Engine, String, cast, exists, literal
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.db import session_scope
from newsletter.db.models import Lead, Notification, Subscriber, utcnow
from newsletter.leads.model import LABELS
from newsletter.leads.queries import LeadRow, lead_rows, lead_select, new_leads, warm_leads
from newsletter.leads.scoring import score_leads
from newsletter.notify import StaffMailError, notification_status, send_staff_mail, skip_staff_mail

log = logging.getLogger(__name__)

ALERT_SETTLE = timedelta(seconds=60)
ALERT_MAX_AGE = timedelta(days=7)
ALERTS_PER_TICK = 50
FAILURES_PER_TICK = 3  # the transport is probably down: stop asking it, the next tick retries
_DONE = ("sent", "sending", "ambiguous", "skipped")
QUIET_DAY = "no new or warm leads"


def alert_key(lead_id: int) -> str:
    return f"lead-alert:{int(lead_id)}"


def digest_key(day: date) -> str:
    return f"digest:{day.isoformat()}"


def check_settings(settings: Settings) -> None:
    """Every lead setting read, so a daemon can refuse a bad one at start rather than at 08:00.
    Raises :class:`UserError` naming the variable. (The time zone, the digest time and the
    points were parsed and checked when ``settings`` was built; the half-life is checked here.)"""
    from newsletter.leads.scoring import ScoreRules

    ScoreRules.from_settings(settings)


def _when(value: datetime | None, zone: tzinfo) -> str:
    return value.astimezone(zone).strftime("%a %d %b %Y, %H:%M %Z") if value else "—"


_env = Environment(autoescape=True, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
_text_env = Environment(autoescape=False, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
for _e in (_env, _text_env):
    _e.filters["when"] = _when
    _e.globals["LABELS"] = LABELS
    _e.globals["SOURCES"] = {"cta_click": "CTA click", "signup": "signup", "staff": "added by staff"}

_ALERT_TEXT = """\
A reader pressed "Connect today" and may want a consultation.

Lead #{{ lead.id }} ({{ LABELS[lead.status] }})
Name:  {{ lead.name or "(no name given)" }}
Email: {{ lead.email }}
From:  {% if lead.campaign %}campaign "{{ lead.campaign }}" (#{{ lead.campaign_id }}){% if lead.link %}, link "{{ lead.link }}"{% endif %}{% else %}—{% endif %}

When:  {{ lead.created_at | when(zone) }}
Score: {{ lead.score }} ({{ lead.cta_clicks }} CTA click{{ "" if lead.cta_clicks == 1 else "s" }})

When you have reached out, record it:
  newsletter leads update {{ lead.id }} --status contacted --note "called, left a message"
History: newsletter leads show {{ lead.id }}
"""

_ALERT_HTML = """\
<div style="font-family:Arial,Helvetica,sans-serif;font-size:15px;line-height:1.5;color:#1d2a24;max-width:600px">
<p>A reader pressed <strong>Connect today</strong> and may want a consultation.</p>
<table role="presentation" cellpadding="4" style="border-collapse:collapse">
<tr><th align="left">Lead</th><td>#{{ lead.id }} ({{ LABELS[lead.status] }})</td></tr>
<tr><th align="left">Name</th><td>{{ lead.name or "(no name given)" }}</td></tr>
<tr><th align="left">Email</th><td><a href="mailto:{{ lead.email }}">{{ lead.email }}</a></td></tr>
<tr><th align="left">From</th><td>{% if lead.campaign %}campaign “{{ lead.campaign }}” (#{{ lead.campaign_id }}){% if lead.link %}, link “{{ lead.link }}”{% endif %}{% else %}—{% endif %}</td></tr>
<tr><th align="left">When</th><td>{{ lead.created_at | when(zone) }}</td></tr>
<tr><th align="left">Score</th><td>{{ lead.score }} ({{ lead.cta_clicks }} CTA click{{ "" if lead.cta_clicks == 1 else "s" }})</td></tr>
</table>
<p>When you have reached out, record it:<br>
<code>newsletter leads update {{ lead.id }} --status contacted --note "called, left a message"</code></p>
</div>
"""

_DIGEST_TEXT = """\
Leads for {{ day }} ({{ brand }})

New since {{ since | when(zone) }}: {{ new | length }}
{% for l in new %}
  #{{ l.id }}  {{ l.name or "(no name)" }} <{{ l.email }}>  {{ LABELS[l.status] }}, score {{ l.score }}, {{ SOURCES.get(l.source, l.source) }}{% if l.campaign %} from "{{ l.campaign }}"{% endif %}

{% else %}
  none
{% endfor %}

Warm (score {{ warm_score }} or more, not yet booked): {{ warm | length }}
{% for l in warm %}
  #{{ l.id }}  {{ l.name or "(no name)" }} <{{ l.email }}>  {{ LABELS[l.status] }}, score {{ l.score }}, last engaged {{ l.last_engaged_at | when(zone) }}
{% else %}
  none
{% endfor %}

Update a lead: newsletter leads update ID --status contacted --note "..."
All leads:     newsletter leads list
"""

_DIGEST_HTML = """\
<div style="font-family:Arial,Helvetica,sans-serif;font-size:15px;line-height:1.5;color:#1d2a24;max-width:680px">
<h2 style="font-size:20px">Leads for {{ day }}</h2>
{% for title, rows, extra in sections %}
<h3 style="font-size:16px">{{ title }}: {{ rows | length }}</h3>
{% if rows %}
<table role="presentation" cellpadding="4" style="border-collapse:collapse;width:100%">
<tr><th align="left">#</th><th align="left">Name</th><th align="left">Email</th><th align="left">Status</th><th align="right">Score</th><th align="left">{{ extra }}</th></tr>
{% for l in rows %}
<tr><td>{{ l.id }}</td><td>{{ l.name or "—" }}</td><td><a href="mailto:{{ l.email }}">{{ l.email }}</a></td><td>{{ LABELS[l.status] }}</td><td align="right">{{ l.score }}</td><td>{% if extra == "From" %}{{ l.campaign or SOURCES.get(l.source, l.source) }}{% else %}{{ l.last_engaged_at | when(zone) }}{% endif %}</td></tr>
{% endfor %}
</table>
{% else %}
<p>None.</p>
{% endif %}
{% endfor %}
<p style="color:#555">Update a lead: <code>newsletter leads update ID --status contacted --note "…"</code></p>
</div>
"""


def compose_alert(lead: LeadRow, settings: Settings) -> tuple[str, str, str]:
    """Subject, HTML and text of the alert for one new lead."""
    zone = settings.zone
    subject = f"New lead #{lead.id}" + (f" from “{lead.campaign}”" if lead.campaign else "")
    return (
        subject,
        _env.from_string(_ALERT_HTML).render(lead=lead, zone=zone),
        _text_env.from_string(_ALERT_TEXT).render(lead=lead, zone=zone),
    )


def compose_digest(
    day: date, since: datetime, new: list[LeadRow], warm: list[LeadRow], settings: Settings
) -> tuple[str, str, str]:
    """Subject, HTML and text of the daily digest."""
    zone = settings.zone
    label = day.strftime("%a %d %b %Y")
    subject = f"Leads for {label}: {len(new)} new, {len(warm)} warm"
    warm_title = f"Warm (score {settings.warm_lead_score:g} or more, not yet booked)"
    html = _env.from_string(_DIGEST_HTML).render(
        day=label,
        zone=zone,
        sections=[(f"New since {_when(since, zone)}", new, "From"), (warm_title, warm, "Last engaged")],
    )
    text = _text_env.from_string(_DIGEST_TEXT).render(
        day=label,
        brand=settings.brand_name,
        since=since,
        zone=zone,
        new=new,
        warm=warm,
        warm_score=f"{settings.warm_lead_score:g}",
    )
    return subject, html, text


# --- alerts ------------------------------------------------------------------------------------


def pending_alerts(session: Session, now: datetime, limit: int = ALERTS_PER_TICK) -> list[LeadRow]:
    """CTA leads still ``new`` that settled, are not too old, and have no alert sent, in flight or
    ambiguous (a ``failed`` one is pending again). A lead staff already moved on needs no alert."""
    key = literal("lead-alert:", String) + cast(Lead.id, String)
    done = exists().where(Notification.key == key, Notification.status.in_(_DONE))
    statement = (
        lead_select()
        .where(
            Lead.source == "cta_click",
            Lead.status == "new",
            Lead.created_at <= now - ALERT_SETTLE,
            Lead.created_at >= now - ALERT_MAX_AGE,
            Subscriber.status != "erased",
            ~done,
        )
        .order_by(Lead.id)
        .limit(limit)
    )
    return lead_rows(session, statement)


@dataclass(frozen=True)
class TickResult:
    rescored: int  # leads whose stored score or last engagement changed
    alerts_sent: int
    alerts_failed: int  # retried on the next tick


def leads_tick(engine: Engine, settings: Settings, now: datetime | None = None) -> TickResult:
    """Rescore every lead at ``now``, then alert the director of each new CTA lead, once.

    Safe to call as often as you like and from more than one process. A failed alert is
    logged and retried on the next call; after ``FAILURES_PER_TICK`` failures this call stops.
    """
    now = now or utcnow()
    with session_scope(engine) as session:
        rescored = score_leads(session, now, settings)
        pending = pending_alerts(session, now)
    director = (settings.director_email or "").strip()
    if not director:
        if pending:
            log.info("%d lead alert(s) due but NEWSLETTER_DIRECTOR_EMAIL is empty: not sent", len(pending))
        return TickResult(rescored, 0, 0)
    sent = failed = 0
    for lead in pending:
        subject, html, text = compose_alert(lead, settings)
        try:
            if send_staff_mail(
                engine,
                settings,
                key=alert_key(lead.id),
                kind="lead_alert",
                to=director,
                subject=subject,
                html=html,
                text=text,
            ):
                sent += 1
        except StaffMailError as error:
            failed += 1
            log.warning("lead alert for lead %d not sent (%s)", lead.id, error)
            if failed >= FAILURES_PER_TICK:
                break
    return TickResult(rescored, sent, failed)


# --- the daily digest --------------------------------------------------------------------------


def send_daily_digest(engine: Engine, settings: Settings, now: datetime | None = None) -> bool:
    """Send the day's digest once it is ``NEWSLETTER_DIGEST_AT`` or later, local time in
    ``NEWSLETTER_TIMEZONE``; True when this call sent it.

    Once per local day (key ``digest:<YYYY-MM-DD>``): before the hour, after it was sent, or
    while another process sends it, this returns False. A scheduler that was down at the hour
    sends it when it comes back, the same day. "New" is every lead created since the previous
    day's digest hour; "warm" is every new or contacted lead scoring ``NEWSLETTER_WARM_LEAD_SCORE``
    or more (rescored at ``now``) that is not already listed as new. When both are empty
    nothing is sent ("0 new, 0 warm" is no news, and was the first thing a fresh install
    mailed): the day is settled as ``skipped`` so later ticks do not build it again, and a lead
    arriving later that day is in tomorrow's "new since" (and has had its own alert). Raises
    ``notify.StaffMailError`` when the send fails; the next call retries.
    """
    now = now or utcnow()
    zone, at = settings.zone, settings.digest_time
    local = now.astimezone(zone)
    if local.time().replace(tzinfo=None) < at:
        return False
    day = local.date()
    key = digest_key(day)
    director = (settings.director_email or "").strip()
    if not director or notification_status(engine, key) in _DONE:
        return False
    since = datetime.combine(day - timedelta(days=1), at, tzinfo=zone)
    with session_scope(engine) as session:
        score_leads(session, now, settings)
        new = new_leads(session, since, now)
        listed = {lead.id for lead in new}
        warm = [lead for lead in warm_leads(session, settings.warm_lead_score) if lead.id not in listed]
    if not new and not warm:
        if skip_staff_mail(engine, key=key, kind="lead_digest", to=director, reason=QUIET_DAY):
            log.info("daily digest for %s not sent: %s", day.isoformat(), QUIET_DAY)
        return False
    subject, html, text = compose_digest(day, since, new, warm, settings)
    return send_staff_mail(
        engine, settings, key=key, kind="lead_digest", to=director, subject=subject, html=html, text=text
    )
