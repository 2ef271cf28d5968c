"""Nurture sequences: short runs of follow-up emails for readers who asked to connect.

Sequences are YAML files (``audiences/nurture/<name>.yaml``, format in
:mod:`newsletter.nurture.sequences`); each step is a campaign row (``kind='nurture'``) sent
through the same ledger as every campaign, so it reaches a reader at most once. A scheduler
tick enrolls new leads, fires exit rules and sends due steps inside the reader's local daytime.

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

# Loaded on first use (PEP 562): ``newsletter/cli/`` imports ``newsletter.nurture.commands`` at
# start-up, and every command would otherwise pay for SQLAlchemy, the campaigns room and MJML.
_FACE = {
    "QuietHours": "clock", "TickResult": "engine", "enroll": "engine", "nurture_tick": "engine", "remove": "engine",
    "Sequence": "sequences", "Step": "sequences", "list_sequences": "sequences", "load_sequence": "sequences",
    "Timeline": "simulator", "parse_events": "simulator", "simulate": "simulator",
    "list_summaries": "status", "sequence_status": "status",
}

__all__ = sorted(_FACE)


def __getattr__(name: str) -> Any:
    if name not in _FACE:
        raise AttributeError(f"module 'newsletter.nurture' has no attribute {name!r}")
    value = getattr(import_module(f"newsletter.nurture.{_FACE[name]}"), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:
    from newsletter.nurture.clock import QuietHours
    from newsletter.nurture.engine import TickResult, enroll, nurture_tick, remove
    from newsletter.nurture.sequences import Sequence, Step, list_sequences, load_sequence
    from newsletter.nurture.simulator import Timeline, parse_events, simulate
    from newsletter.nurture.status import list_summaries, sequence_status
