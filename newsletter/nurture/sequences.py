"""Nurture sequences: one YAML file each, ``audiences/nurture/<name>.yaml``.

A sequence is a short run of emails for one kind of reader (for example the readers who pressed
"Connect today"), each step a template, a delay and optional conditions. The file is the whole
truth of a sequence; the database only remembers where each subscriber stands in it
(``nurture_enrollments``) and, through the ledger, which steps they were sent.

Format (every key but ``name`` and ``steps`` is optional)::

    name: connect-today              # must match the file name
    description: Readers who pressed "Connect today" on the ketamine article
    reason: You are receiving this because you pressed "Connect today" in the {brand_name} newsletter.
    entry:
      on: cta_lead                   # a person's click on a campaign's call to action (a lead)
      campaign_kind: newsletter      # only leads from this kind of campaign (newsletter | nurture)
      article: the-emergence-of-...  # only leads from campaigns of this article (its slug)
      within: 7d                     # only leads this recent (so a new sequence does not mail last year's leads)
    exit:
      lead_status: [booked, client, not_a_fit, lost]   # leave when staff move the lead here
    steps:
      - name: first-consultation     # default: the template's file name
        template: nurture/first-consultation.mjml.j2   # and its twin nurture/first-consultation.txt.j2
        subject: What to expect at a first consultation
        preheader: A short line for the inbox preview
        delay: 1d                    # after enrollment (step 1) or after the previous step
      - template: nurture/neuroplasticity.mjml.j2
        subject: ...
        delay: 2d 4h
        when:                        # every condition given must hold
          opened: previous           # a person opened the previous step (or: a step number)
          clicked: 1                 # a person clicked in step 1
          score_above: 5             # the lead's score (leads.score) is above 5
          has_tag: [ketamine, ptsd]  # the subscriber has one of these tags
        if_not: wait                 # skip (default) | wait | exit
        wait_up_to: 2d               # with wait: how long to keep checking (default 3d)
        after_wait: send             # with wait: what then, skip (default) | send

Always, whatever the file says, a subscriber leaves a sequence when they unsubscribe, bounce,
complain or are erased, when their address is on the suppression list, and when staff remove
them (``newsletter nurture remove``).

This module is the sequence as the engine sees it (``Sequence``, ``Step``, ``Conditions``,
``Delay`` and the words a file may use); reading and checking the files is
:mod:`newsletter.nurture.sequence_reader`. Mistakes raise :class:`UserError` naming the file and
line, and the key (``steps[2].delay``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")
ENTRY_TRIGGERS = ("cta_lead",)
CAMPAIGN_KINDS = ("newsletter", "nurture")
LEAD_STATUSES = ("new", "contacted", "booked", "client", "not_a_fit", "lost")
DEFAULT_EXIT_STATUSES = ("booked", "client", "not_a_fit", "lost")
IF_NOT = ("skip", "wait", "exit")
AFTER_WAIT = ("skip", "send")
MAX_DELAY_DAYS = 365
_DURATION_PART = re.compile(r"(\d+)\s*([wdhm])")
_UNIT_SECONDS = {"h": 3600, "m": 60}


@dataclass(frozen=True)
class Delay:
    """Days count on the recipient's calendar (same local clock time, DST or not); hours and
    minutes are elapsed time. ``2d 4h``: two calendar days, then four hours."""

    days: int = 0
    seconds: int = 0
    text: str = "0"

    def __str__(self) -> str:
        return self.text


DEFAULT_WAIT = Delay(3, 0, "3d")  # if_not: wait keeps checking this long
DEFAULT_WITHIN = Delay(7, 0, "7d")  # entry: leads older than this never enroll


@dataclass(frozen=True)
class Conditions:
    """What must hold when a step falls due; step references are 0-based indexes."""

    opened: int | None = None
    clicked: int | None = None
    score_above: float | None = None
    has_tag: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return self.opened is None and self.clicked is None and self.score_above is None and not self.has_tag

    def describe(self) -> str:
        parts = []
        if self.opened is not None:
            parts.append(f"opened step {self.opened + 1}")
        if self.clicked is not None:
            parts.append(f"clicked in step {self.clicked + 1}")
        if self.score_above is not None:
            parts.append(f"score above {self.score_above:g}")
        if self.has_tag:
            parts.append("tag " + " or ".join(self.has_tag))
        return " and ".join(parts)


@dataclass(frozen=True)
class Step:
    index: int  # 0-based
    name: str
    template: str
    subject: str
    preheader: str
    delay: Delay
    when: Conditions = field(default_factory=Conditions)
    if_not: str = "skip"
    wait_up_to: Delay = DEFAULT_WAIT
    after_wait: str = "skip"
    line: int = 0

    @property
    def number(self) -> int:
        return self.index + 1


@dataclass(frozen=True)
class Entry:
    on: str = "cta_lead"
    campaign_kind: str | None = None
    article: str | None = None
    within: Delay = DEFAULT_WITHIN


@dataclass(frozen=True)
class Sequence:
    name: str
    description: str
    entry: Entry
    exit_lead_statuses: tuple[str, ...]
    steps: tuple[Step, ...]
    source: Path | None = None
    reason: str | None = None  # the footer's "why you get this"; "{brand_name}" is filled in

    def campaign_name(self, index: int) -> str:
        """The stable name of the campaign row that carries step ``index`` (find-or-create key)."""
        return f"nurture:{self.name}:{index + 1}"

    @property
    def campaign_names(self) -> list[str]:
        return [self.campaign_name(i) for i in range(len(self.steps))]


# --- durations -----------------------------------------------------------------------------------


def parse_delay(value: Any) -> Delay:
    """``1d``, ``2d 4h``, ``90m``, ``1w``, ``0``; raises ValueError with a readable message."""
    if isinstance(value, bool) or value is None:
        raise ValueError("expected a duration such as 1d, 2d 4h or 90m")
    text = str(value).strip().lower()
    if text in ("0", "0d", "0h", "0m", "now"):
        return Delay(0, 0, "0")
    rest = _DURATION_PART.sub("", text).replace(" ", "")
    parts = _DURATION_PART.findall(text)
    if rest or not parts:
        raise ValueError(f"{value!r} is not a duration (use e.g. 1d, 2d 4h, 90m or 1w)")
    days = seconds = 0
    for number, unit in parts:
        if unit == "w":
            days += 7 * int(number)
        elif unit == "d":
            days += int(number)
        else:
            seconds += int(number) * _UNIT_SECONDS[unit]
    if days + seconds / 86400 > MAX_DELAY_DAYS:
        raise ValueError(f"{value!r} is longer than {MAX_DELAY_DAYS} days")
    return Delay(days, seconds, " ".join(f"{n}{u}" for n, u in parts))
