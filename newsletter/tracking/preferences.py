"""The reader's own preferences, reached with their delivery token: first name and interests.

Only the interest tags listed here are touched; other tags a subscriber carries (from an
import, a segment rule, staff) are left alone, so the page can never remove what it does not
show.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sqlalchemy.orm import Session

# A leaf module (standard library only): the one definition of a clean name, shared with the import.
from newsletter.audiences.names import clean_name
from newsletter.db.models import Delivery, Subscriber, SubscriberTag
from newsletter.tracking.events import UnknownDelivery

#: Interest tags a reader may pick: tag -> label shown on the page.
INTEREST_TAGS: dict[str, str] = {
    "ketamine": "Ketamine-assisted therapy",
    "depression": "Depression",
    "anxiety": "Anxiety",
    "ptsd": "PTSD and trauma",
    "mindfulness": "Mindfulness",
    "family": "Family and relationships",
}

FIRST_NAME_MAX = 100


class InvalidPreferences(ValueError):
    """The submitted form does not make sense; the message is shown to the reader."""


@dataclass(frozen=True)
class Preferences:
    subscriber_id: int
    email: str
    first_name: str | None
    tags: frozenset[str]  # only the interest tags
    status: str


def _subscriber(session: Session, delivery_id: int) -> Subscriber:
    delivery = session.get(Delivery, delivery_id)
    subscriber = session.get(Subscriber, delivery.subscriber_id) if delivery else None
    if subscriber is None:
        raise UnknownDelivery(f"no delivery {delivery_id}")
    return subscriber


def _view(subscriber: Subscriber, interests: Mapping[str, str]) -> Preferences:
    return Preferences(
        subscriber.id,
        subscriber.email,
        subscriber.first_name,
        frozenset(t.tag for t in subscriber.tags if t.tag in interests),
        subscriber.status,
    )


def clean_first_name(raw: str | None) -> str | None:
    """The name as the CSV import stores one (``audiences.clean_name``: line breaks and tabs
    become spaces, control characters go); blank means "no name" (the email says "Hi there")."""
    name = clean_name(raw) or ""
    if len(name) > FIRST_NAME_MAX:
        raise InvalidPreferences(f"Please keep the first name under {FIRST_NAME_MAX} characters.")
    return name or None


def load_preferences(session: Session, delivery_id: int, interests: Mapping[str, str] = INTEREST_TAGS) -> Preferences:
    return _view(_subscriber(session, delivery_id), interests)


def save_preferences(
    session: Session,
    delivery_id: int,
    *,
    first_name: str | None,
    tags: Iterable[str],
    interests: Mapping[str, str] = INTEREST_TAGS,
) -> Preferences:
    """Set the first name and the interest tags. Raises :class:`InvalidPreferences`."""
    name = clean_first_name(first_name)
    wanted = set(tags)
    unknown = wanted - set(interests)
    if unknown:
        raise InvalidPreferences("Please choose interests from the list.")
    subscriber = _subscriber(session, delivery_id)
    subscriber.first_name = name
    subscriber.tags = [t for t in subscriber.tags if t.tag not in interests or t.tag in wanted]
    have = {t.tag for t in subscriber.tags}
    subscriber.tags.extend(SubscriberTag(subscriber_id=subscriber.id, tag=tag) for tag in sorted(wanted - have))
    session.flush()
    return _view(subscriber, interests)
