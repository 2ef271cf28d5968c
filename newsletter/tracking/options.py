"""The tracking room's own settings, read from the environment with documented defaults.

Kept here until they move into :mod:`newsletter.config` (the lead owns that file): one frozen
object, built once by the web app (or the CLI) and handed to the room's functions, so nothing
deep inside reads ``os.environ`` on every request.

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
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

IpStorage = Literal["truncate", "hash", "none"]
IP_STORAGE_MODES: tuple[str, ...] = ("truncate", "hash", "none")

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


def _flag(raw: str | None) -> bool:
    return (raw or "").strip().lower() in {"1", "true", "yes", "on"}


def _number(env: Mapping[str, str], name: str, kind: type, default: float | int) -> float | int:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    try:
        return kind(raw)
    except ValueError:
        raise ValueError(f"{name}: expected a number, got {raw!r}") from None


def options_from_env(environ: Mapping[str, str] | None = None, *, signing_key: str | None = None) -> TrackingOptions:
    """Read the variables in the module docstring. ``signing_key`` is only needed for
    ``NEWSLETTER_IP_STORAGE=hash``. A malformed value fails here, naming the variable."""
    env = os.environ if environ is None else environ
    storage = (env.get("NEWSLETTER_IP_STORAGE") or "truncate").strip().lower()
    return TrackingOptions(
        webhook_public_key=(env.get("NEWSLETTER_SENDGRID_WEBHOOK_PUBLIC_KEY") or "").strip() or None,
        webhook_allow_insecure=_flag(env.get("NEWSLETTER_WEBHOOK_ALLOW_INSECURE")),
        webhook_max_bytes=int(_number(env, "NEWSLETTER_WEBHOOK_MAX_BYTES", int, DEFAULT_WEBHOOK_MAX_BYTES)),
        webhook_tolerance_seconds=float(_number(env, "NEWSLETTER_WEBHOOK_TOLERANCE_SECONDS", float,
                                                DEFAULT_WEBHOOK_TOLERANCE_SECONDS)),
        soft_bounce_limit=int(_number(env, "NEWSLETTER_SOFT_BOUNCE_LIMIT", int, DEFAULT_SOFT_BOUNCE_LIMIT)),
        ip_storage=storage,  # type: ignore[arg-type]  (checked in __post_init__)
        ip_hash_key=derive_ip_hash_key(signing_key) if storage == "hash" and signing_key else None,
        retention_days=int(_number(env, "NEWSLETTER_EVENT_RETENTION_DAYS", int, DEFAULT_RETENTION_DAYS)),
        cta_confirm_min_seconds=float(_number(env, "NEWSLETTER_CTA_CONFIRM_MIN_SECONDS", float,
                                              DEFAULT_CONFIRM_MIN_SECONDS)),
        cta_confirm_max_age_days=float(_number(env, "NEWSLETTER_CTA_CONFIRM_MAX_AGE_DAYS", float,
                                               DEFAULT_CONFIRM_MAX_AGE_DAYS)),
    )


#: What library callers get when they pass no options: the defaults above, addresses truncated.
DEFAULT_OPTIONS = TrackingOptions()
