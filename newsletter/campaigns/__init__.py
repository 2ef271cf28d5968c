"""Campaigns: from an article to a sent campaign, with its ledger.

For the public pages and the demo outbox (pages.py): ``web_version_of`` (→ ``WebVersion``),
``article_content``, ``campaigns_sent`` (→ ``CampaignSent``).

Public face: ``import_article``, ``list_articles``, ``create_campaign``, ``preview``, ``send_campaign``,
``campaign_status``, ``list_campaigns``, ``parse_send_time``, ``mark_scheduled``, ``get_campaign``; operator control
(``pause``, ``resume``, ``cancel``, ``resolve_ambiguous``, ``retry_failed``, ``drain``), the
worker loop (``run_worker``), and the pieces nurture sequences reuse (``store_draft``, ``dispatch_campaign``,
``finish_if_done``, ``make_throttle``); after a settings change, ``rerender_campaign`` and
``stale_public_url`` / ``refuse_stale`` (a message rendered for an old public URL); for the
scheduler, a scheduled campaign's status moves (``scheduled_campaigns``, ``mark_unscheduled``,
``mark_schedule_failed``, ``mark_schedule_missed``).
"""

from newsletter.campaigns.articles import ArticleRow, ImportedArticle, get_article, import_article, list_articles
from newsletter.campaigns.control import cancel, pause, resolve_ambiguous, resume, retry_failed
from newsletter.campaigns.create import (
    brand_from_settings,
    create_campaign,
    default_preheader,
    get_campaign,
    store_draft,
)
from newsletter.campaigns.demo_support import backdate_campaign, link_kinds, sent_messages
from newsletter.campaigns.ledger import build_ledger, ledger_counts
from newsletter.campaigns.pages import CampaignSent, WebVersion, article_content, campaigns_sent, web_version_of
from newsletter.campaigns.preview import Preview, preview
from newsletter.campaigns.rerender import (
    Rerendered,
    refuse_stale,
    rendered_public_url,
    rerender_campaign,
    stale_public_url,
    stale_url_message,
)
from newsletter.campaigns.schedule import (
    ScheduledCampaign,
    mark_schedule_failed,
    mark_schedule_missed,
    mark_unscheduled,
    scheduled_campaigns,
)
from newsletter.campaigns.send import (
    SendSummary,
    campaign_message,
    check_sendable,
    dispatch_campaign,
    drain,
    finish_if_done,
    make_throttle,
    make_transport,
    recipient_factory,
    send_campaign,
    start_sending,
)
from newsletter.campaigns.status import (
    NEEDS_DECISION,
    campaign_status,
    check_schedulable,
    list_campaigns,
    mark_scheduled,
    parse_send_time,
)
from newsletter.campaigns.worker import run_worker

__all__ = [
    "ImportedArticle",
    "import_article",
    "get_article",
    "ArticleRow",
    "list_articles",
    "create_campaign",
    "store_draft",
    "brand_from_settings",
    "default_preheader",
    "get_campaign",
    "build_ledger",
    "ledger_counts",
    "Preview",
    "preview",
    "SendSummary",
    "send_campaign",
    "campaign_message",
    "make_transport",
    "recipient_factory",
    "campaign_status",
    "list_campaigns",
    "mark_scheduled",
    "parse_send_time",
    "pause",
    "resume",
    "cancel",
    "resolve_ambiguous",
    "retry_failed",
    "drain",
    "start_sending",
    "run_worker",
    "dispatch_campaign",
    "finish_if_done",
    "make_throttle",
    "ScheduledCampaign",
    "scheduled_campaigns",
    "mark_unscheduled",
    "mark_schedule_failed",
    "mark_schedule_missed",
    "Rerendered",
    "rerender_campaign",
    "rendered_public_url",
    "stale_public_url",
    "stale_url_message",
    "refuse_stale",
    "WebVersion",
    "web_version_of",
    "article_content",
    "CampaignSent",
    "campaigns_sent",
    "backdate_campaign",
    "link_kinds",
    "sent_messages",  # for `newsletter demo` only (demo_support.py)
    "check_sendable",
    "check_schedulable",
    "NEEDS_DECISION",  # the send/schedule commands' gate and status
]
