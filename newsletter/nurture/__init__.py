"""Nurture sequences: short runs of follow-up emails for readers who asked to connect.

Sequences are YAML files (``audiences/nurture/<name>.yaml``, format in
:mod:`newsletter.nurture.sequences`, read by :mod:`~newsletter.nurture.sequence_reader`); each
step is a campaign row (``kind='nurture'``) sent through the same ledger as every campaign, so
it reaches a reader at most once. A scheduler tick enrolls new leads, fires exit rules and sends
due steps inside the reader's local daytime.

Public face::

    nurture_tick(engine, settings, now, transport=None) -> TickResult     # the scheduler job
    enroll(engine, settings, sequence, email, now) -> (enrollment id, created)
    remove(engine, sequence, email, now) -> bool                          # manual exit
    load_sequence(name, audiences_dir=None, templates_dir=None) -> Sequence
    list_sequences(audiences_dir=None, templates_dir=None) -> list[Sequence]
    simulate(sequence, *, start, days, events, tz, quiet, ...) -> Timeline; parse_events(text)
    list_summaries(engine, settings), sequence_status(engine, settings, name)
    QuietHours, Sequence, Step, TickResult, Timeline
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

# Loaded on first use (PEP 562): ``newsletter/cli/nurture.py`` imports this face at
# start-up, and every command would otherwise pay for SQLAlchemy, the campaigns room and MJML.
_FACE = {
    "QuietHours": "clock",
    "TickResult": "engine",
    "enroll": "enrollment",
    "nurture_tick": "engine",
    "remove": "enrollment",
    "Sequence": "sequences",
    "Step": "sequences",
    "list_sequences": "sequence_reader",
    "load_sequence": "sequence_reader",
    "Timeline": "simulator",
    "parse_events": "simulator",
    "simulate": "simulator",
    "list_summaries": "status",
    "sequence_status": "status",
}

__all__ = sorted(_FACE)


def __getattr__(name: str) -> Any:
    if name not in _FACE:
        raise AttributeError(f"module 'newsletter.nurture' has no attribute {name!r}")
    value = getattr(import_module(f"newsletter.nurture.{_FACE[name]}"), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:
    from newsletter.nurture.clock import QuietHours as QuietHours
    from newsletter.nurture.engine import TickResult as TickResult
    from newsletter.nurture.engine import nurture_tick as nurture_tick
    from newsletter.nurture.enrollment import enroll as enroll
    from newsletter.nurture.enrollment import remove as remove
    from newsletter.nurture.sequence_reader import list_sequences as list_sequences
    from newsletter.nurture.sequence_reader import load_sequence as load_sequence
    from newsletter.nurture.sequences import Sequence as Sequence
    from newsletter.nurture.sequences import Step as Step
    from newsletter.nurture.simulator import Timeline as Timeline
    from newsletter.nurture.simulator import parse_events as parse_events
    from newsletter.nurture.simulator import simulate as simulate
    from newsletter.nurture.status import list_summaries as list_summaries
    from newsletter.nurture.status import sequence_status as sequence_status
