"""Where sequences stand: enrollments per status, exits per reason, and per step what the
ledger and the (human) events say. Read-only: nothing here creates a step campaign."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, distinct, func, select

from newsletter.config import Settings
from newsletter.db import models, session_scope
from newsletter.errors import UserError
from newsletter.nurture.sequence_reader import (
    load_sequence,
    parse_sequence_file,
    sequence_files,
    sequences_dir,
    templates_folder,
)
from newsletter.nurture.steps import find_step_campaigns

E = models.NurtureEnrollment


def _counts(engine: Engine) -> dict[str, dict[str, int]]:
    with session_scope(engine) as session:
        rows = session.execute(select(E.sequence, E.status, func.count()).group_by(E.sequence, E.status)).all()
    out: dict[str, dict[str, int]] = {}
    for name, status, count in rows:
        out.setdefault(name, {"active": 0, "completed": 0, "exited": 0})[status] = count
    return out


def list_summaries(engine: Engine, settings: Settings) -> list[dict[str, Any]]:
    """Every sequence file (and any sequence still enrolled whose file is gone), with counts."""
    counts = _counts(engine)
    out = []
    folder = sequences_dir(settings.audiences_dir)
    for name, path in sequence_files(folder).items():
        row: dict[str, Any] = {"name": name, "description": "", "steps": None, "error": None}
        try:
            sequence = parse_sequence_file(path, templates_folder(settings.templates_dir))
            row.update(description=sequence.description, steps=len(sequence.steps))
        except UserError as error:
            row["error"] = str(error)
        row.update(counts.get(name, {"active": 0, "completed": 0, "exited": 0}))
        out.append(row)
    for name in sorted(set(counts) - {r["name"] for r in out}):
        out.append({"name": name, "description": "", "steps": None, "error": "its file is gone", **counts[name]})
    return out


def sequence_status(engine: Engine, settings: Settings, name: str) -> dict[str, Any]:
    sequence = load_sequence(name, settings.audiences_dir, settings.templates_dir)
    D, EV = models.Delivery, models.Event
    counts = _counts(engine).get(name, {"active": 0, "completed": 0, "exited": 0})
    with session_scope(engine) as session:
        campaigns = find_step_campaigns(session, sequence)
        exits = dict(
            session.execute(
                select(E.exit_reason, func.count())
                .where(E.sequence == name, E.status == "exited")
                .group_by(E.exit_reason)
            ).all()
        )
        at_step = dict(
            session.execute(
                select(E.next_step, func.count()).where(E.sequence == name, E.status == "active").group_by(E.next_step)
            ).all()
        )
        next_due = session.scalar(select(func.min(E.next_due_at)).where(E.sequence == name, E.status == "active"))
        ledger: dict[int, dict[str, int]] = {}
        human: dict[tuple[int, str], int] = {}
        ids = list(campaigns.values())
        if ids:
            for campaign_id, status, count in session.execute(
                select(D.campaign_id, D.status, func.count())
                .where(D.campaign_id.in_(ids))
                .group_by(D.campaign_id, D.status)
            ):
                ledger.setdefault(campaign_id, {})[status] = count
            for event_campaign_id, kind, count in session.execute(
                select(EV.campaign_id, EV.type, func.count(distinct(EV.subscriber_id)))
                .where(EV.campaign_id.in_(ids), EV.is_machine.is_(False), EV.type.in_(("open", "click")))
                .group_by(EV.campaign_id, EV.type)
            ):
                if event_campaign_id is not None:  # always: campaign_id.in_ above
                    human[(event_campaign_id, kind)] = count
    steps = []
    for step in sequence.steps:
        cid = campaigns.get(step.index)
        rows = ledger.get(cid or -1, {})
        steps.append(
            {
                "step": step.number,
                "name": step.name,
                "subject": step.subject,
                "delay": str(step.delay),
                "when": step.when.describe() or None,
                "if_not": step.if_not if not step.when.empty else None,
                "campaign_id": cid,
                "waiting_here": at_step.get(step.index, 0),
                "sent": rows.get("sent", 0),
                "queued": rows.get("queued", 0) + rows.get("in_flight", 0),
                "failed": rows.get("failed", 0),
                "ambiguous": rows.get("ambiguous", 0),
                "suppressed": rows.get("suppressed", 0),
                "human_opens": human.get((cid or -1, "open"), 0),
                "human_clicks": human.get((cid or -1, "click"), 0),
            }
        )
    return {
        "name": sequence.name,
        "description": sequence.description,
        "quiet_hours": str(settings.quiet),
        "entry": {
            "on": sequence.entry.on,
            "campaign_kind": sequence.entry.campaign_kind,
            "article": sequence.entry.article,
            "within": str(sequence.entry.within),
        },
        "exit_lead_statuses": list(sequence.exit_lead_statuses),
        **counts,
        "exits": {str(k): v for k, v in exits.items()},
        "next_due_at": next_due.isoformat() if next_due else None,
        "steps": steps,
    }
