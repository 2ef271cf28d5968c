"""Settings: one typed object, read from the environment, a ``.env`` file and ``newsletter.toml``.

Precedence, highest first: process environment, ``.env`` in the working folder, the
``[newsletter]`` table of ``newsletter.toml`` in the working folder, then the defaults below.
Secrets (the SendGrid key, the signing key) only ever come from the environment or ``.env``;
``repr`` hides them so they never reach a log.

Compound values (the time zone, quiet hours, the digest and weekly report times, lead points)
are parsed once, when ``Settings`` is built (``newsletter.settings_types``): a bad one stops
the command at load with one line naming its variable, and rooms read the typed values
(``settings.zone``, ``.quiet``, ``.digest_time``, ``.weekly_report_time``, ``.point_values``).
No room reads the environment for a setting: it is read here only.
"""

from __future__ import annotations

import os
import secrets
import tomllib
from dataclasses import dataclass, field, fields, replace
from datetime import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from dotenv import dotenv_values

from newsletter.errors import UserError
from newsletter.settings_types import QuietHours, WeeklyTime, parse_daily, parse_points, parse_weekly, zone_named

#: More requests out at once than this only queue up at the provider and hold more rows in flight.
MAX_SEND_CONCURRENCY = 16

# env name -> (field name, type). Kept as a table so README and code cannot drift apart.
ENV_VARS: dict[str, tuple[str, type]] = {
    "NEWSLETTER_DATABASE_URL": ("database_url", str),
    "SENDGRID_API_KEY": ("sendgrid_api_key", str),
    "NEWSLETTER_SENDGRID_HOST": ("sendgrid_host", str),
    "NEWSLETTER_SENDGRID_SANDBOX": ("sendgrid_sandbox", bool),
    "NEWSLETTER_SENDGRID_TIMEOUT": ("sendgrid_timeout", float),
    "NEWSLETTER_PUBLIC_URL": ("public_url", str),
    "NEWSLETTER_SECRET_KEY": ("secret_key", str),
    "NEWSLETTER_OUTBOX_DIR": ("outbox_dir", str),
    "NEWSLETTER_FROM_NAME": ("from_name", str),
    "NEWSLETTER_FROM_EMAIL": ("from_email", str),
    "NEWSLETTER_REPLY_TO": ("reply_to", str),
    "NEWSLETTER_BRAND_NAME": ("brand_name", str),
    "NEWSLETTER_POSTAL_ADDRESS": ("postal_address", str),
    "NEWSLETTER_BOOKING_URL": ("booking_url", str),
    "NEWSLETTER_WEBSITE_URL": ("website_url", str),
    "NEWSLETTER_BATCH_SIZE": ("batch_size", int),
    "NEWSLETTER_SEND_CONCURRENCY": ("send_concurrency", int),
    "NEWSLETTER_SCHEDULE_GRACE_SECONDS": ("schedule_grace_seconds", int),
    "NEWSLETTER_TIMEZONE": ("default_timezone", str),
    "NEWSLETTER_AUDIENCES_DIR": ("audiences_dir", str),
    "NEWSLETTER_TEMPLATES_DIR": ("templates_dir", str),
    "NEWSLETTER_TEASER_WORDS": ("teaser_words", int),
    "NEWSLETTER_RATE_PER_SECOND": ("rate_per_second", float),
    "NEWSLETTER_LIMIT_PER_HOUR": ("limit_per_hour", int),
    "NEWSLETTER_LIMIT_PER_DAY": ("limit_per_day", int),
    "NEWSLETTER_LEASE_SECONDS": ("lease_seconds", float),
    "NEWSLETTER_WORKER_POLL_SECONDS": ("worker_poll_seconds", float),
    "NEWSLETTER_SPAMD_HOST": ("spamd_host", str),
    # tracking and the Event Webhook (newsletter.tracking.options)
    "NEWSLETTER_SENDGRID_WEBHOOK_PUBLIC_KEY": ("webhook_public_key", str),
    "NEWSLETTER_WEBHOOK_ALLOW_INSECURE": ("webhook_allow_insecure", bool),
    "NEWSLETTER_WEBHOOK_MAX_BYTES": ("webhook_max_bytes", int),
    "NEWSLETTER_WEBHOOK_TOLERANCE_SECONDS": ("webhook_tolerance_seconds", float),
    "NEWSLETTER_SOFT_BOUNCE_LIMIT": ("soft_bounce_limit", int),
    "NEWSLETTER_IP_STORAGE": ("ip_storage", str),
    "NEWSLETTER_EVENT_RETENTION_DAYS": ("event_retention_days", int),
    "NEWSLETTER_CTA_CONFIRM_MIN_SECONDS": ("cta_confirm_min_seconds", float),
    "NEWSLETTER_CTA_CONFIRM_MAX_AGE_DAYS": ("cta_confirm_max_age_days", float),
    # leads (newsletter.leads)
    "NEWSLETTER_DIRECTOR_EMAIL": ("director_email", str),
    "NEWSLETTER_LEAD_POINTS": ("lead_points", str),
    "NEWSLETTER_LEAD_HALF_LIFE_DAYS": ("lead_half_life_days", float),
    "NEWSLETTER_WARM_LEAD_SCORE": ("warm_lead_score", float),
    "NEWSLETTER_DIGEST_AT": ("digest_at", str),
    "NEWSLETTER_WEEKLY_REPORT_AT": ("weekly_report_at", str),
    # nurture sequences (newsletter.nurture)
    "NEWSLETTER_QUIET_HOURS": ("quiet_hours", str),
    "NEWSLETTER_NURTURE_TICK_SECONDS": ("nurture_tick_seconds", float),
}

_ENV_OF = {fname: env_name for env_name, (fname, _) in ENV_VARS.items()}
_SECRET_FIELDS = {"sendgrid_api_key", "secret_key"}
SECRET_FILE = ".newsletter-secret"


@dataclass(frozen=True)
class Settings:
    database_url: str = "sqlite:///newsletter.db"
    sendgrid_api_key: str | None = field(default=None, repr=False)
    sendgrid_host: str = "https://api.sendgrid.com"
    sendgrid_sandbox: bool = False
    sendgrid_timeout: float = 30.0
    public_url: str = "http://127.0.0.1:8000"
    secret_key: str | None = field(default=None, repr=False)
    outbox_dir: str = "outbox"
    from_name: str = "Roots Mental Wellness"
    from_email: str = "newsletter@rootsmentalwellness.example"
    reply_to: str = "hello@rootsmentalwellness.example"
    brand_name: str = "Roots Mental Wellness"
    postal_address: str = "Roots Mental Wellness, 100 Example Avenue, Suite 200, Portland, OR 97201, USA"
    booking_url: str = "https://rootsmentalwellness.example/book"
    website_url: str = "https://rootsmentalwellness.example"
    batch_size: int = 1000
    send_concurrency: int = 4  # requests out at once per worker (see delivery.dispatch)
    schedule_grace_seconds: int = 3600
    default_timezone: str = "UTC"
    audiences_dir: str | None = None
    templates_dir: str | None = None
    teaser_words: int = 1200
    rate_per_second: float | None = None  # per worker process; None = as fast as SendGrid answers
    limit_per_hour: int | None = None  # account-wide, counted in the store (send log + rows in flight)
    limit_per_day: int | None = None
    lease_seconds: float = 600.0  # an in-flight batch older than this belonged to a dead worker
    worker_poll_seconds: float = 2.0
    spamd_host: str | None = None  # a local spamd (started with --local) for preflight; else spamassassin -L -t
    # Tracking and the Event Webhook: meanings in newsletter/tracking/options.py.
    webhook_public_key: str | None = None  # public, not a secret: SendGrid shows it in its console
    webhook_allow_insecure: bool = False
    webhook_max_bytes: int = 5 * 1024 * 1024
    webhook_tolerance_seconds: float = 600.0
    soft_bounce_limit: int = 3
    ip_storage: str = "truncate"  # truncate | hash | none
    event_retention_days: int = 180
    cta_confirm_min_seconds: float = 1.0
    cta_confirm_max_age_days: float = 7.0
    # Leads: who hears of new ones, and how engagement scores.
    director_email: str = "director@rootsmentalwellness.example"
    lead_points: str = "open=1,click=3,cta=10"  # human events only
    lead_half_life_days: float = 14.0  # an event's points halve every this many days
    warm_lead_score: float = 10.0  # the daily digest lists leads at or above this score
    digest_at: str = "08:00"  # daily lead digest, local time in NEWSLETTER_TIMEZONE
    weekly_report_at: str = "mon 08:00"  # the director's weekly report, same time zone
    # Nurture sequences: no sends in the recipient's local quiet hours.
    quiet_hours: str = "20:00-09:00"
    nurture_tick_seconds: float = 30.0
    # The compound values above, parsed once when the object is built (``__post_init__``, so
    # ``with_overrides`` re-parses): rooms read these and never parse the strings again.
    zone: ZoneInfo = field(init=False, repr=False, compare=False)  # default_timezone
    quiet: QuietHours = field(init=False, repr=False, compare=False)  # quiet_hours
    digest_time: time = field(init=False, repr=False, compare=False)  # digest_at
    weekly_report_time: WeeklyTime = field(init=False, repr=False, compare=False)  # weekly_report_at
    point_values: dict[str, float] = field(init=False, repr=False, compare=False)  # lead_points

    def __post_init__(self) -> None:
        """Parse each compound setting once; a bad one raises a ``UserError`` naming its variable."""
        parsed = {
            "zone": zone_named(self.default_timezone, _ENV_OF["default_timezone"]),
            "quiet": QuietHours.parse(self.quiet_hours, _ENV_OF["quiet_hours"]),
            "digest_time": parse_daily(self.digest_at, _ENV_OF["digest_at"]),
            "weekly_report_time": parse_weekly(self.weekly_report_at, _ENV_OF["weekly_report_at"]),
            "point_values": parse_points(self.lead_points, _ENV_OF["lead_points"]),
        }
        for name, value in parsed.items():
            object.__setattr__(self, name, value)  # frozen: set once, here

    @property
    def transport_name(self) -> str:
        """SendGrid when a key is configured, otherwise the local outbox: never a surprise send."""
        return "sendgrid" if self.sendgrid_api_key else "outbox"

    @property
    def public_base(self) -> str:
        return self.public_url.rstrip("/")

    @property
    def sending_domain(self) -> str:
        return self.from_email.rpartition("@")[2]

    def signing_key(self) -> str:
        """The key that signs tracking tokens.

        Without ``NEWSLETTER_SECRET_KEY`` a random key is made once and kept in
        ``.newsletter-secret`` in the working folder (mode 0600), so the sender and the web app
        started from the same folder agree. Production sets the variable.
        """
        if self.secret_key:
            return self.secret_key
        path = Path(SECRET_FILE)
        if path.exists():
            return path.read_text(encoding="utf-8").strip()
        key = secrets.token_urlsafe(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(key)
        return key

    def with_overrides(self, **changes: Any) -> Settings:
        """A copy with some settings changed (as strings, like the environment's); the compound
        ones are parsed again, so a bad value raises here, naming its variable."""
        return replace(self, **changes)

    def redacted(self) -> dict[str, Any]:
        """All settings as a dict, secrets shown only as set/unset (for `--json` and logs).
        The parsed values are left out: the strings they came from are there."""
        out: dict[str, Any] = {}
        for f in fields(self):
            if not f.init:
                continue
            value = getattr(self, f.name)
            out[f.name] = ("<set>" if value else "<unset>") if f.name in _SECRET_FIELDS else value
        return out


def _coerce(name: str, kind: type, raw: Any) -> Any:
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in {"1", "true", "yes", "on"}:
            return True
        if text in {"0", "false", "no", "off", ""}:
            return False
        raise UserError(f"expected true or false, got {raw!r}", where=name)
    try:
        return kind(raw)
    except (TypeError, ValueError):
        raise UserError(f"expected {kind.__name__}, got {raw!r}", where=name) from None


def _toml_values(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise UserError(str(exc), where=str(path)) from None
    table: dict[str, Any] = data.get("newsletter", {})
    known = {name for name, _ in ENV_VARS.values()} - _SECRET_FIELDS
    unknown = set(table) - known
    if unknown:
        raise UserError(f"unknown setting(s) {sorted(unknown)}", where=f"{path} [newsletter]")
    return table


def load_settings(environ: dict[str, str] | None = None, workdir: Path | None = None) -> Settings:
    """Read settings; ``environ`` and ``workdir`` exist so tests need not touch the real ones."""
    workdir = workdir or Path.cwd()
    env = dict(os.environ if environ is None else environ)
    values: dict[str, Any] = {}
    by_field = {fname: (env_name, kind) for env_name, (fname, kind) in ENV_VARS.items()}
    for fname, raw in _toml_values(workdir / "newsletter.toml").items():
        values[fname] = _coerce(f"newsletter.toml: {fname}", by_field[fname][1], raw)
    dotenv = (
        {k: v for k, v in dotenv_values(workdir / ".env").items() if v is not None}
        if (workdir / ".env").exists()
        else {}
    )
    for source in (dotenv, env):
        for env_name, (fname, kind) in ENV_VARS.items():
            if env_name in source and source[env_name] != "":
                values[fname] = _coerce(env_name, kind, source[env_name])
    settings = Settings(**values)
    if settings.batch_size < 1 or settings.batch_size > 1000:
        raise UserError("must be between 1 and 1000 (SendGrid's limit per request)", where="NEWSLETTER_BATCH_SIZE")
    if not 1 <= settings.send_concurrency <= MAX_SEND_CONCURRENCY:
        raise UserError(
            f"must be between 1 and {MAX_SEND_CONCURRENCY} (requests out at once per worker)",
            where="NEWSLETTER_SEND_CONCURRENCY",
        )
    return settings
