"""What happens to one enrollment when its step falls due: one pure function for the scheduler
tick and the simulator alike, so the simulator shows exactly what the tick would do.

Order of questions, each answered from :class:`Facts` at ``now``:

1. Exit rules (:func:`exit_reason`): the subscriber is no longer active or is suppressed, or the
   lead reached one of the sequence's exit statuses. → ``exit``.
2. The step's conditions (``when``). When they do not hold, ``if_not`` decides:
   ``skip`` (default) the step and move on; ``exit`` the sequence; or ``wait``: check again on
   every tick until ``wait_up_to`` after the step fell due, then ``after_wait`` (``skip`` or
   ``send`` anyway).
3. Quiet hours in the recipient's zone. → ``defer`` to when they end. A step with a ``wait``
   rule keeps its due time while deferred (``move=False``), because its wait is measured from it.
4. → ``send``.

After ``send`` or ``skip`` the next step's delay runs from ``now`` (:func:`following`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, tzinfo

from newsletter.nurture.clock import QuietHours, add_delay, due_at, in_daytime, next_allowed
from newsletter.nurture.sequences import Conditions, Sequence, Step

#: Subscriber statuses that end every enrollment, named as the exit reason.
GONE_STATUSES = ("unsubscribed", "bounced", "complained", "erased", "pending")


@dataclass(frozen=True)
class Facts:
    """What is known of the reader when a step falls due. ``opened``/``clicked`` hold the
    indexes of the steps a *person* opened or clicked (machine events never count)."""

    subscriber_status: str = "active"
    suppressed: bool = False
    lead_status: str | None = None
    score: float = 0.0
    tags: frozenset[str] = field(default_factory=frozenset)
    opened: frozenset[int] = field(default_factory=frozenset)
    clicked: frozenset[int] = field(default_factory=frozenset)


@dataclass(frozen=True)
class Decision:
    action: str  # send | skip | wait | defer | exit
    step: int  # index of the step decided about
    reason: str | None = None  # exit reason, or why a step was skipped / is waiting
    until: datetime | None = None  # defer: when to look again
    move: bool = True  # defer: store ``until`` as the new due time


def exit_reason(sequence: Sequence, facts: Facts) -> str | None:
    """The exit rule that fires, if any; its name is stored as the enrollment's exit reason."""
    if facts.subscriber_status != "active":
        return facts.subscriber_status if facts.subscriber_status in GONE_STATUSES else "not_active"
    if facts.suppressed:
        return "suppressed"
    if facts.lead_status in sequence.exit_lead_statuses:
        return f"lead_{facts.lead_status}"
    return None


def conditions_hold(when: Conditions, facts: Facts) -> bool:
    if when.opened is not None and when.opened not in facts.opened:
        return False
    if when.clicked is not None and when.clicked not in facts.clicked:
        return False
    if when.score_above is not None and not facts.score > when.score_above:
        return False
    return not when.has_tag or bool(facts.tags.intersection(when.has_tag))


def wait_deadline(step: Step, due: datetime, tz: tzinfo) -> datetime:
    return add_delay(due, step.wait_up_to, tz)


def decide(
    sequence: Sequence, index: int, due: datetime, facts: Facts, now: datetime, tz: tzinfo, quiet: QuietHours
) -> Decision:
    """The decision for step ``index``, due at ``due`` (the enrollment's ``next_due_at``), at ``now``."""
    step = sequence.steps[index]
    reason = exit_reason(sequence, facts)
    if reason:
        return Decision("exit", index, reason)
    if not step.when.empty and not conditions_hold(step.when, facts):
        unmet = f"not {step.when.describe()}"
        if step.if_not == "exit":
            return Decision("exit", index, f"condition:{step.name}")
        if step.if_not == "skip":
            return Decision("skip", index, unmet)
        deadline = wait_deadline(step, due, tz)
        if now < deadline:
            return Decision("wait", index, unmet, until=deadline)
        if step.after_wait == "skip":
            return Decision("skip", index, f"{unmet} within {step.wait_up_to}")
    if not in_daytime(now, tz, quiet):
        return Decision("defer", index, "quiet hours", until=next_allowed(now, tz, quiet), move=step.if_not != "wait")
    return Decision("send", index)


def following(
    sequence: Sequence, index: int, now: datetime, tz: tzinfo, quiet: QuietHours
) -> tuple[int, datetime | None]:
    """After step ``index`` was sent or skipped at ``now``: (next step, when it falls due);
    ``None`` when the sequence is complete."""
    nxt = index + 1
    if nxt >= len(sequence.steps):
        return nxt, None
    return nxt, due_at(now, sequence.steps[nxt].delay, tz, quiet)


def first_due(sequence: Sequence, enrolled_at: datetime, tz: tzinfo, quiet: QuietHours) -> datetime:
    return due_at(enrolled_at, sequence.steps[0].delay, tz, quiet)


__all__ = [
    "Facts",
    "Decision",
    "decide",
    "exit_reason",
    "conditions_hold",
    "following",
    "first_due",
    "wait_deadline",
    "GONE_STATUSES",
]
