"""What a preflight is given (CheckContext, a parsed message) and what it answers (Check, PreflightReport)."""

from __future__ import annotations

import email
from dataclasses import asdict, dataclass, field
from email import policy as email_policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal

Status = Literal["pass", "warn", "fail"]

#: Check names in report order, with the title a person reads.
TITLES: dict[str, str] = {
    "spam": "Spam score (SpamAssassin)",
    "size": "Size (Gmail clipping)",
    "mime": "Parts and headers",
    "compliance": "Compliance (CAN-SPAM footer, leftovers)",
    "accessibility": "Accessibility",
    "links": "Links and click tracking",
    "responsive": "Responsive rendering (Chromium)",
    "subject": "Subject and preheader",
}

#: Checks about the campaign rather than the message, run before the others (and instead of
#: them when they fail).
GATE_TITLES: dict[str, str] = {
    "public_url": "Rendered for today's public URL",
}

#: Failing checks that ``--force`` cannot override: the message itself must be made again.
NOT_OVERRIDABLE = frozenset(GATE_TITLES)


@dataclass(frozen=True)
class Check:
    """One check's verdict. ``reason`` says what was found, ``fix_hint`` where to fix it."""

    name: str
    status: Status
    reason: str
    fix_hint: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def title(self) -> str:
        return TITLES.get(self.name) or GATE_TITLES.get(self.name, self.name)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "title": self.title}


def failed_on(name: str, problems: list[tuple[str, str]], details: dict[str, Any]) -> Check | None:
    """List ``problems`` in ``details`` (a passing check lists none) and, when there are any,
    the failing verdict."""
    details["problems"] = [p for p, _ in problems]
    return failing(name, problems, details) if problems else None


def failing(name: str, problems: list[tuple[str, str]], details: dict[str, Any]) -> Check:
    """The failing verdict for ``problems``, (what was found, where to fix it) pairs: every problem
    in the reason, each hint once (several problems often share one fix)."""
    return Check(
        name, "fail", "; ".join(p for p, _ in problems), "; ".join(dict.fromkeys(h for _, h in problems)), details
    )


@dataclass(frozen=True)
class PreflightReport:
    checks: tuple[Check, ...]
    campaign_id: int | None = None
    sample_email: str | None = None
    screenshots: tuple[str, ...] = ()

    @property
    def failed(self) -> list[Check]:
        """The failing checks (an empty list, so falsy, when the message may go out)."""
        return [c for c in self.checks if c.status == "fail"]

    @property
    def warnings(self) -> list[Check]:
        return [c for c in self.checks if c.status == "warn"]

    @property
    def passed(self) -> bool:
        return not self.failed

    def check(self, name: str) -> Check:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "campaign_id": self.campaign_id,
            "sample_email": self.sample_email,
            "passed": self.passed,
            "failed": [c.name for c in self.failed],
            "warnings": [c.name for c in self.warnings],
            "screenshots": list(self.screenshots),
            "checks": [c.to_dict() for c in self.checks],
        }


@dataclass(frozen=True)
class CheckContext:
    """What the checks need to know besides the message itself.

    ``links`` maps each registered click-tracking position to its kind (``cta``, ``article``,
    ``read_more``); ``None`` means "not a campaign", and then links can only be checked for
    their form. ``sending_domain`` defaults to the From address's domain.
    """

    public_url: str
    postal_address: str
    brand_name: str | None = None
    sending_domain: str | None = None
    links: dict[int, str] | None = None
    cta_label: str | None = None
    preheader: str | None = None  # what the campaign asked for (the HTML shows what it got)
    sample_token: str | None = None  # the token in the preview, to size real ones
    screenshots_dir: Path | None = None
    campaign_id: int | None = None
    spamd_host: str | None = None  # settings.spamd_host; None or empty: the local spamassassin

    @property
    def public_base(self) -> str:
        return self.public_url.rstrip("/")

    @property
    def cta_positions(self) -> set[int]:
        return {position for position, kind in (self.links or {}).items() if kind == "cta"}


@dataclass
class ParsedMessage:
    """The message as bytes, parsed, and its two bodies as a reader's client decodes them."""

    eml: bytes
    message: EmailMessage
    html: str
    text: str
    has_html_part: bool
    has_text_part: bool  # a text/plain part with something in it
    empty_text_part: bool = False  # a text/plain part that is there but blank

    @classmethod
    def parse(cls, eml: bytes, html: str | None = None, text: str | None = None) -> ParsedMessage:
        message = email.message_from_bytes(eml, policy=email_policy.default)
        assert isinstance(message, EmailMessage)
        html_part = _first_part(message, "html")
        text_part = _first_part(message, "plain")
        if html is None:
            html = _content(html_part)
        if text is None:
            text = _content(text_part)
        return cls(
            eml=eml,
            message=message,
            html=html,
            text=text,
            has_html_part=html_part is not None,
            has_text_part=text_part is not None and bool(text.strip()),
            empty_text_part=text_part is not None and not text.strip(),
        )


def _first_part(message: EmailMessage, subtype: str) -> EmailMessage | None:
    for part in message.walk():
        if part.is_multipart() or part.get_content_maintype() != "text" or part.get_content_subtype() != subtype:
            continue
        if part.get_content_disposition() == "attachment":
            continue
        return part
    return None


def _content(part: EmailMessage | None) -> str:
    if part is None:
        return ""
    try:
        return str(part.get_content())
    except (LookupError, ValueError):
        payload = part.get_payload(decode=True) or b""
        return payload.decode("utf-8", "replace") if isinstance(payload, bytes) else str(payload)
