"""Preflight: every campaign proves it is a good email before it can be sent or scheduled.

Eight checks on the exact MIME message a sample subscriber would get (``campaigns.preview``):
spam score (SpamAssassin, local tests), size (Gmail clipping), parts and headers, compliance
(postal address, unsubscribe, sender, nothing unrendered), accessibility, links (https,
registered for click tracking, CTA), responsive rendering (headless Chromium at 375 and 600 px)
and subject/preheader. Each answers pass / warn / fail with a reason and where to fix it.
A missing SpamAssassin or Chromium is a warning that names the Debian package, never a pass.

Public face::

    run_preflight(session, settings, campaign_id, *, screenshots_dir=None) -> PreflightReport
    check_message(eml, html=None, text=None, *, context: CheckContext, only=None) -> list[Check]
    ensure_preflight_passes(session, settings, campaign_id, *, force, operator) -> PreflightReport
    preflight_command(engine, settings, campaign_id, *, as_json=False, screenshots=None) -> exit status
    Check, CheckContext, PreflightReport, CHECK_NAMES, SPAMD_HOST_ENV
"""

from newsletter.preflight.command import preflight_command
from newsletter.preflight.gate import ensure_preflight_passes
from newsletter.preflight.model import TITLES, Check, CheckContext, PreflightReport
from newsletter.preflight.run import campaign_context, check_message, run_preflight
from newsletter.preflight.spam import SPAMD_HOST_ENV

CHECK_NAMES: tuple[str, ...] = tuple(TITLES)

__all__ = [
    "CHECK_NAMES",
    "Check",
    "CheckContext",
    "PreflightReport",
    "SPAMD_HOST_ENV",
    "campaign_context",
    "check_message",
    "ensure_preflight_passes",
    "preflight_command",
    "run_preflight",
]
