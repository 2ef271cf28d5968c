"""The tracking room's settings: one frozen object built from :class:`newsletter.config.Settings`.

The values come from where every setting comes from (the environment, ``.env``,
``newsletter.toml``: :func:`newsletter.config.load_settings`); :func:`options_from_settings`
checks them and derives what the room needs (the address-hashing key). Built once by the web
app (or the CLI) and handed to the room's functions, so nothing deep inside reads settings on
every request.

============================================  ==========  ============================================
variable                                      default     meaning
============================================  ==========  ============================================
NEWSLETTER_SENDGRID_WEBHOOK_PUBLIC_KEY        (unset)     the Event Webhook's verification key, base64
                                                          DER, exactly as SendGrid shows it
NEWSLETTER_WEBHOOK_ALLOW_INSECURE             0           1: accept unsigned webhook posts when no key
                                                          is set (local testing only)
NEWSLETTER_WEBHOOK_MAX_BYTES                  5242880     largest webhook body accepted (413 above)
NEWSLETTER_WEBHOOK_TOLERANCE_SECONDS          600         a signed timestamp further than this from now
                                                          is a replay (or a broken clock): refused
NEWSLETTER_SOFT_BOUNCE_LIMIT                  3           soft bounces (``blocked``) since the last
                                                          ``delivered`` after which an address is bounced
NEWSLETTER_IP_STORAGE                         truncate    ``truncate`` (/24, /48), ``hash`` (keyed HMAC
                                                          of the address) or ``none``
NEWSLETTER_EVENT_RETENTION_DAYS               180         ``newsletter events prune`` default: older
                                                          events lose address, user agent and raw data
NEWSLETTER_CTA_CONFIRM_MIN_SECONDS            1.0         a "continue to booking" faster than this after
                                                          the page was served is a machine following links
NEWSLETTER_CTA_CONFIRM_MAX_AGE_DAYS           7           an older continue link still redirects, without
                                                          counting a lead
============================================  ==========  ============================================
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from newsletter.errors import UserError

if TYPE_CHECKING:  # the room reads settings it is handed; it never loads them
    from newsletter.config import Settings

IpStorage = Literal["truncate", "hash", "none"]
IP_STORAGE_MODES: tuple[IpStorage, ...] = ("truncate", "hash", "none")

DEFAULT_WEBHOOK_MAX_BYTES = 5 * 1024 * 1024
DEFAULT_WEBHOOK_TOLERANCE_SECONDS = 600
DEFAULT_SOFT_BOUNCE_LIMIT = 3
DEFAULT_RETENTION_DAYS = 180
DEFAULT_CONFIRM_MIN_SECONDS = 1.0
DEFAULT_CONFIRM_MAX_AGE_DAYS = 7


@dataclass(frozen=True)
class TrackingOptions:
    webhook_public_key: str | None = field(default=None, repr=False)
    webhook_allow_insecure: bool = False
    webhook_max_bytes: int = DEFAULT_WEBHOOK_MAX_BYTES
    webhook_tolerance_seconds: float = DEFAULT_WEBHOOK_TOLERANCE_SECONDS
    soft_bounce_limit: int = DEFAULT_SOFT_BOUNCE_LIMIT
    ip_storage: IpStorage = "truncate"
    #: HMAC key for ``ip_storage="hash"``; the web app derives it from the signing key.
    ip_hash_key: bytes | None = field(default=None, repr=False)
    retention_days: int = DEFAULT_RETENTION_DAYS
    cta_confirm_min_seconds: float = DEFAULT_CONFIRM_MIN_SECONDS
    cta_confirm_max_age_days: float = DEFAULT_CONFIRM_MAX_AGE_DAYS
    #: Seconds since the epoch; replaced in tests to check the replay window.
    clock: Callable[[], float] = field(default=time.time, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.ip_storage not in IP_STORAGE_MODES:
            raise ValueError(f"NEWSLETTER_IP_STORAGE must be one of {IP_STORAGE_MODES}, not {self.ip_storage!r}")
        if self.ip_storage == "hash" and not self.ip_hash_key:
            raise ValueError("NEWSLETTER_IP_STORAGE=hash needs a key (the app derives it from the signing key)")
        if self.soft_bounce_limit < 1:
            raise ValueError("NEWSLETTER_SOFT_BOUNCE_LIMIT must be at least 1")
        if self.webhook_max_bytes < 1024:
            raise ValueError("NEWSLETTER_WEBHOOK_MAX_BYTES must be at least 1024")


def derive_ip_hash_key(signing_key: str) -> bytes:
    """A key of its own for address hashing, derived from the signing key (never the key itself)."""
    return hmac.new(signing_key.encode("utf-8"), b"newsletter.ip-hash.v1", hashlib.sha256).digest()


def _check(ok: bool, variable: str, message: str) -> None:
    if not ok:
        raise UserError(message, where=variable)


def _ip_storage(raw: str | None) -> IpStorage:
    """The mode ``raw`` names, as the Literal type (an unknown mode fails like any other range check)."""
    wanted = (raw or "").strip().lower() or "truncate"
    for mode in IP_STORAGE_MODES:
        if mode == wanted:
            return mode
    raise UserError(f"must be one of {', '.join(IP_STORAGE_MODES)}, not {raw!r}", where="NEWSLETTER_IP_STORAGE")


def options_from_settings(settings: Settings) -> TrackingOptions:
    """The options for ``settings`` (the variables in the module docstring).

    A value out of range raises :class:`~newsletter.errors.UserError` naming the variable, so a
    command or ``newsletter serve`` fails with one line before anything is served. The signing
    key is only read (or made) for ``NEWSLETTER_IP_STORAGE=hash``.
    """
    storage = _ip_storage(settings.ip_storage)
    _check(settings.soft_bounce_limit >= 1, "NEWSLETTER_SOFT_BOUNCE_LIMIT", "must be at least 1")
    _check(settings.webhook_max_bytes >= 1024, "NEWSLETTER_WEBHOOK_MAX_BYTES", "must be at least 1024")
    _check(
        math.isfinite(settings.webhook_tolerance_seconds) and settings.webhook_tolerance_seconds > 0,
        "NEWSLETTER_WEBHOOK_TOLERANCE_SECONDS",
        "must be a number of seconds above zero",
    )
    _check(settings.event_retention_days >= 0, "NEWSLETTER_EVENT_RETENTION_DAYS", "must be zero or more")
    _check(
        math.isfinite(settings.cta_confirm_min_seconds) and settings.cta_confirm_min_seconds >= 0,
        "NEWSLETTER_CTA_CONFIRM_MIN_SECONDS",
        "must be zero or more",
    )
    _check(
        math.isfinite(settings.cta_confirm_max_age_days) and settings.cta_confirm_max_age_days > 0,
        "NEWSLETTER_CTA_CONFIRM_MAX_AGE_DAYS",
        "must be above zero",
    )
    return TrackingOptions(
        webhook_public_key=(settings.webhook_public_key or "").strip() or None,
        webhook_allow_insecure=settings.webhook_allow_insecure,
        webhook_max_bytes=settings.webhook_max_bytes,
        webhook_tolerance_seconds=settings.webhook_tolerance_seconds,
        soft_bounce_limit=settings.soft_bounce_limit,
        ip_storage=storage,
        ip_hash_key=derive_ip_hash_key(settings.signing_key()) if storage == "hash" else None,
        retention_days=settings.event_retention_days,
        cta_confirm_min_seconds=settings.cta_confirm_min_seconds,
        cta_confirm_max_age_days=settings.cta_confirm_max_age_days,
    )


#: What library callers get when they pass no options: the defaults above, addresses truncated.
DEFAULT_OPTIONS = TrackingOptions()
