"""``newsletter nurture simulate``: the month a lead would live through, without sending.

The simulator walks time forward from the enrollment and asks :func:`plan.decide` (the very
function the scheduler tick uses) at each moment the tick would act: when a step falls due,
right after each scripted event while a step waits for it, and when a wait runs out. So the
timeline shows real local send times, quiet-hour moves, DST, skipped or waiting steps and exits.

Scripted events (``--events``), comma-separated, each ``dayN[@HH:MM]:what``. ``dayN`` is N days
after enrollment at the enrollment's local clock time unless ``@HH:MM`` says otherwise; when an
event and a send fall on the same minute, the send comes first (so ``day1:open`` opens the
email sent on day 1). ``what`` is one of:

``open`` / ``click``      the reader (a person) opens / clicks the latest email sent
``cta``                   clicks the booking button in it (a click, and lead points)
``booked`` (or ``book``)  staff mark the lead booked; also ``lead=client``, ``lead=not_a_fit`` ...
``unsubscribe``, ``bounce``, ``complain``, ``suppress``, ``remove``
``tag=NAME``, ``score=N`` the subscriber gains a tag / the lead's score is set to N

The lead's score is estimated as the leads room scores: points per human event
(``NEWSLETTER_LEAD_POINTS``, the entry click counting as a CTA click), halving every
``NEWSLETTER_LEAD_HALF_LIFE_DAYS``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, time, timezone, tzinfo
from typing import Protocol

from newsletter.errors import UserError
from newsletter.nurture.clock import QuietHours, add_delay, local_label, wall
from newsletter.nurture.plan import Decision, Facts, decide, exit_reason, first_due, following
from newsletter.nurture.sequences import Delay, Sequence
from newsletter.settings_types import DEFAULT_POINTS

_EVENT = re.compile(r"^day(\d{1,3})(?:@([01]\d|2[0-3]):([0-5]\d))?:([a-z_]+)(?:=(.+))?$")
SIMPLE_KINDS = ("open", "click", "cta", "booked", "book", "unsubscribe", "bounce", "complain", "suppress", "remove")
VALUE_KINDS = ("tag", "score", "lead")
LEAD_STATUSES = ("new", "contacted", "booked", "client", "not_a_fit", "lost")
MAX_DAYS = 366
MAX_STEPS = 10_000  # a runaway guard; a real timeline takes a few dozen


@dataclass(frozen=True)
class ScriptEvent:
    day: int
    clock: time | None
    kind: str
    value: str | None
    text: str


def parse_events(text: str | None, where: str = "--events") -> list[ScriptEvent]:
    """``"day2:open,day5@14:30:click,day6:tag=ketamine"`` → events, checked one by one."""
    out: list[ScriptEvent] = []
    for number, raw in enumerate((text or "").split(","), start=1):
        item = raw.strip().lower()
        if not item:
            continue
        match = _EVENT.match(item)
        kind = match.group(4) if match else ""
        value = match.group(5) if match else None
        ok = bool(match) and ((kind in SIMPLE_KINDS and value is None) or (kind in VALUE_KINDS and value))
        if ok and kind == "score":
            try:
                float(value or "")
            except ValueError:
                ok = False
        if ok and kind == "lead" and value not in LEAD_STATUSES:
            ok = False
        if not ok or match is None:
            raise UserError(
                f"event {number} {raw.strip()!r}: expected dayN[@HH:MM]:WHAT with WHAT one of "
                f"{', '.join(SIMPLE_KINDS)}, tag=NAME, score=N, lead=STATUS",
                where=where,
            )
        clock = time(int(match.group(2)), int(match.group(3))) if match.group(2) else None
        out.append(ScriptEvent(int(match.group(1)), clock, kind, value, raw.strip()))
    return out


@dataclass
class Entry:
    at: datetime
    local: str
    day: int
    kind: str  # enrolled | sent | skipped | waiting | deferred | event | exited | completed
    step: int | None = None  # 1-based
    name: str | None = None
    subject: str | None = None
    note: str = ""

    @property
    def clock(self) -> str:
        return self.local.split(" ")[2]

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["at"] = self.at.isoformat()
        data["time"] = self.clock
        return data


@dataclass
class Timeline:
    sequence: str
    timezone: str
    quiet_hours: str
    start: datetime
    end: datetime
    days: int
    entries: list[Entry] = field(default_factory=list)
    status: str = "active"  # where the lead stands at the end: active | completed | exited
    exit_reason: str | None = None
    next_step: int | None = None  # still active at the end: the step (1-based) due next, and when
    next_due: datetime | None = None
    next_due_local: str | None = None

    @property
    def sent(self) -> list[Entry]:
        return [e for e in self.entries if e.kind == "sent"]

    def to_dict(self) -> dict[str, object]:
        return {
            "sequence": self.sequence,
            "timezone": self.timezone,
            "quiet_hours": self.quiet_hours,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "days": self.days,
            "status": self.status,
            "exit_reason": self.exit_reason,
            "sent": len(self.sent),
            "next_step": self.next_step,
            "next_due": self.next_due.isoformat() if self.next_due else None,
            "next_due_local": self.next_due_local,
            "entries": [e.to_dict() for e in self.entries],
        }


class _Reader:
    """The simulated reader: what the scripted events have made true so far."""

    def __init__(self, start: datetime, points: Mapping[str, float], half_life_days: float) -> None:
        self.facts = Facts(lead_status="new")
        self.removed = False
        self.last_sent: int | None = None
        self.points = points
        self.half_life = half_life_days
        self.scored: list[tuple[datetime, float]] = [(start, points.get("cta", 0.0))]  # the entry click

    def score(self, now: datetime) -> float:
        if self.half_life <= 0:
            return sum(p for _, p in self.scored)
        decayed: float = sum(
            p * 0.5 ** (max((now - t).total_seconds(), 0) / 86400 / self.half_life) for t, p in self.scored
        )  # typeshed types float ** float as Any
        return decayed

    def at(self, now: datetime) -> Facts:
        return replace(self.facts, score=round(self.score(now), 3))

    def apply(self, event: ScriptEvent, now: datetime) -> str:
        """Change the facts; returns what happened, in words."""
        f = self.facts
        if event.kind in ("open", "click", "cta"):
            if self.last_sent is None:
                return "nothing has been sent yet: no effect"
            step = self.last_sent
            self.scored.append((now, self.points.get(event.kind, 0.0)))
            if event.kind == "open":
                self.facts = replace(f, opened=f.opened | {step})
                return f"opened step {step + 1}"
            self.facts = replace(f, opened=f.opened | {step}, clicked=f.clicked | {step})
            return f"clicked {'the booking button ' if event.kind == 'cta' else ''}in step {step + 1}"
        if event.kind in ("booked", "book", "lead"):
            status = event.value if event.kind == "lead" else "booked"
            self.facts = replace(f, lead_status=status)
            return f"lead marked {status}"
        statuses = {"unsubscribe": "unsubscribed", "bounce": "bounced", "complain": "complained"}
        if event.kind in statuses:
            self.facts = replace(f, subscriber_status=statuses[event.kind])
            return statuses[event.kind]
        if event.kind == "suppress":
            self.facts = replace(f, suppressed=True)
            return "address suppressed"
        if event.kind == "remove":
            self.removed = True
            return "removed by staff"
        if event.kind == "tag":
            self.facts = replace(f, tags=f.tags | {event.value or ""})
            return f"tagged {event.value}"
        self.scored = [(now, float(event.value or 0))]
        return f"score set to {event.value}"


def _event_time(event: ScriptEvent, start: datetime, tz: tzinfo) -> datetime:
    moved = add_delay(start, Delay(days=event.day), tz)
    return wall(moved.astimezone(tz).date(), event.clock, tz) if event.clock else moved


def simulate(
    sequence: Sequence,
    *,
    start: datetime,
    days: int,
    events: list[ScriptEvent],
    tz: tzinfo,
    quiet: QuietHours,
    lead_points: Mapping[str, float] = DEFAULT_POINTS,
    half_life_days: float = 14.0,
) -> Timeline:
    """The timeline of one lead entering ``sequence`` at ``start``, for ``days`` days; ``lead_points``
    is ``settings.point_values`` (points per kind, already parsed)."""
    if start.tzinfo is None:
        raise ValueError("start must be time-zone aware")
    if not 1 <= days <= MAX_DAYS:
        raise UserError(f"must be between 1 and {MAX_DAYS}", where="--days")
    start = start.astimezone(timezone.utc)
    end = add_delay(start, Delay(days=days), tz)
    timeline = Timeline(sequence.name, str(getattr(tz, "key", tz)), str(quiet), start, end, days)
    first_day = start.astimezone(tz).date()

    def note(at: datetime, kind: str, step: int | None = None, text: str = "") -> None:
        s = sequence.steps[step] if step is not None else None
        timeline.entries.append(
            Entry(
                at,
                local_label(at, tz),
                (at.astimezone(tz).date() - first_day).days,
                kind,
                s.number if s else None,
                s.name if s else None,
                s.subject if s and kind in ("sent", "skipped", "waiting") else None,
                text,
            )
        )

    script = sorted(((_event_time(e, start, tz), i, e) for i, e in enumerate(events)), key=lambda x: (x[0], x[1]))
    reader = _Reader(start, lead_points, half_life_days)
    note(start, "enrolled", text=f"entered {sequence.name} ({sequence.entry.on})")
    index, due = 0, first_due(sequence, start, tz, quiet)
    check, waiting, k = due, False, 0
    for _ in range(MAX_STEPS):
        if k < len(script) and script[k][0] < check and script[k][0] <= end:
            at, _, event = script[k]
            k += 1
            note(at, "event", text=f"{event.text}: {reader.apply(event, at)}")
            reason = "removed" if reader.removed else exit_reason(sequence, reader.at(at))
            if reason:
                return _stop(timeline, note, at, "exited", reason)
            if waiting:
                check = max(at, due)  # the tick would look again at once
            continue
        if check > end:
            break
        now = check
        decision = decide(sequence, index, due, reader.at(now), now, tz, quiet)
        if decision.action == "exit":
            return _stop(timeline, note, now, "exited", decision.reason or "exit", index)
        if decision.action == "wait":
            if not waiting:
                note(
                    now,
                    "waiting",
                    index,
                    f"{decision.reason}; waits up to {sequence.steps[index].wait_up_to} "
                    f"(until {_short(decision.until, tz)})",
                )
            waiting, check = True, decision.until or now
            continue
        if decision.action == "defer":
            note(now, "deferred", index, f"quiet hours {quiet}: moved to {_short(decision.until, tz)}")
            due = decision.until if decision.move and decision.until else due
            check = decision.until or now
            continue
        index, next_due = _done(sequence, decision, reader, note, now, tz, quiet)
        if next_due is None:
            return _stop(timeline, note, now, "completed", None)
        due = check = next_due
        waiting = False
    timeline.next_step, timeline.next_due, timeline.next_due_local = index + 1, check, local_label(check, tz)
    return timeline


class _Note(Protocol):
    """The timeline's ``note`` (a closure in :func:`simulate`), as the helpers call it."""

    def __call__(self, at: datetime, kind: str, step: int | None = None, text: str = "") -> None: ...


def _done(
    sequence: Sequence, decision: Decision, reader: _Reader, note: _Note, now: datetime, tz: tzinfo, quiet: QuietHours
) -> tuple[int, datetime | None]:
    """Note the step sent or skipped; (next step, when it falls due, None when the sequence is done)."""
    if decision.action == "send":
        reader.last_sent = decision.step
        note(now, "sent", decision.step)
    else:
        note(now, "skipped", decision.step, decision.reason or "")
    return following(sequence, decision.step, now, tz, quiet)


def _stop(
    timeline: Timeline, note: _Note, at: datetime, status: str, reason: str | None, step: int | None = None
) -> Timeline:
    if status == "completed":
        note(at, "completed", text="sequence complete")
    else:
        note(at, "exited", step, reason or "")
    timeline.status, timeline.exit_reason = status, reason
    return timeline


def _short(moment: datetime | None, tz: tzinfo) -> str:
    return local_label(moment, tz).rsplit(" ", 1)[0] if moment else "?"
