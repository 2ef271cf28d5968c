"""A delivery's opens and clicks, people and machines apart: the demo outbox viewer shows them.

Events are tracking's, so the count lives here; the web app only renders the result.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter.db.models import Event


@dataclass(frozen=True)
class Engagement:
    """A delivery's opens and clicks, people and machines apart (tracking's verdicts)."""

    opens: int = 0
    machine_opens: int = 0
    clicks: int = 0
    machine_clicks: int = 0

    @property
    def opened(self) -> str:
        return _state(self.opens, self.machine_opens)

    @property
    def clicked(self) -> str:
        return _state(self.clicks, self.machine_clicks)


def _state(people: int, machines: int) -> str:
    if people:
        return "yes" if people == 1 else f"yes ({people}×)"
    return "machine only" if machines else "no"


def engagement(session: Session, delivery_ids: Iterable[int]) -> dict[int, Engagement]:
    """Opens and clicks per delivery, for a page's messages (one grouped query on the events'
    (delivery, type, time) index); deliveries without any are absent."""
    ids = sorted(set(delivery_ids))
    if not ids:
        return {}
    counts: dict[int, dict[str, int]] = {}
    rows = session.execute(
        select(Event.delivery_id, Event.type, Event.is_machine, func.count())
        .where(Event.delivery_id.in_(ids), Event.type.in_(("open", "click")))
        .group_by(Event.delivery_id, Event.type, Event.is_machine)
    )
    for delivery_id, kind, is_machine, n in rows:
        if delivery_id is None:  # pragma: no cover - the query asks for given ids
            continue
        name = ("machine_" if is_machine else "") + ("opens" if kind == "open" else "clicks")
        counts.setdefault(delivery_id, {})[name] = n
    return {delivery_id: Engagement(**values) for delivery_id, values in counts.items()}
