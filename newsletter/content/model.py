"""The Article: what every parser produces and every template reads.

Paragraph and heading strings are *safe inline HTML*: plain-text sources are escaped, Markdown
and HTML sources are sanitised with nh3 down to a small inline set (a, em, strong, b, i, br,
code). Templates may therefore print them with ``|safe``, and the text part is derived from
the same strings.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any


@dataclass(frozen=True)
class Section:
    """A run of paragraphs under an optional heading (the opening section has none)."""

    heading: str | None
    paragraphs: tuple[str, ...]


@dataclass(frozen=True)
class CallToAction:
    """The article's closing invitation: its paragraph and the label of the button."""

    text: str
    label: str = "Connect today"


@dataclass(frozen=True)
class SignOff:
    name: str
    role: str | None = None


@dataclass(frozen=True)
class Article:
    title: str
    slug: str
    sections: tuple[Section, ...]
    author: str | None = None
    published: date | None = None
    cta: CallToAction | None = None
    signoff: SignOff | None = None
    source_format: str = "text"  # text | markdown | html | rss
    images: tuple[dict[str, str], ...] = field(default=())  # {"src", "alt"} kept from HTML sources

    @property
    def paragraphs(self) -> tuple[str, ...]:
        return tuple(p for s in self.sections for p in s.paragraphs)

    @property
    def word_count(self) -> int:
        return sum(len(p.split()) for p in self.paragraphs)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["published"] = self.published.isoformat() if self.published else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Article:
        return cls(
            title=data["title"],
            slug=data["slug"],
            sections=tuple(Section(s["heading"], tuple(s["paragraphs"])) for s in data["sections"]),
            author=data.get("author"),
            published=date.fromisoformat(data["published"]) if data.get("published") else None,
            cta=CallToAction(**data["cta"]) if data.get("cta") else None,
            signoff=SignOff(**data["signoff"]) if data.get("signoff") else None,
            source_format=data.get("source_format", "text"),
            images=tuple(data.get("images") or ()),
        )
