"""Public pages (web version, article), the health check and the demo outbox viewer."""

from __future__ import annotations

import re

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response

from newsletter.campaigns import article_content, campaigns_sent, web_version_of
from newsletter.content.model import Article as ArticleContent
from newsletter.db import session_scope
from newsletter.tracking import Engagement, engagement
from newsletter.web.common import PRIVATE_HEADERS, delivery_id_or_404, render, state
from newsletter.web.hosts import host_is_trusted
from newsletter.web.outbox import MAX_ID, list_page, read_message

#: CSP for the email's own HTML (web version, outbox viewer): its images and styles may come
#: from anywhere, scripts and forms from nowhere.
EMAIL_CSP = (
    "default-src 'none'; img-src http: https: data:; style-src 'unsafe-inline' http: https:; "
    "font-src http: https: data:; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
)
OUTBOX_CSP = EMAIL_CSP.replace("form-action 'none'", "form-action 'self'; frame-src 'self'")
#: The outbox's email itself is framed by our own viewer page, and only by it.
FRAMED_EMAIL_HEADERS = {
    "Content-Security-Policy": EMAIL_CSP.replace("frame-ancestors 'none'", "frame-ancestors 'self'"),
    "X-Frame-Options": "SAMEORIGIN",
    **PRIVATE_HEADERS,
}

_PIXEL_IMG = re.compile(r"""<img\b[^>]*?/o/%%token%%\.gif[^>]*>""", re.IGNORECASE)
_PIXEL_URL = re.compile(r"""[^\s"'()<>]*/o/%%token%%\.gif""")
_BLANK_GIF = "data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7"
MAX_SLUG = 200
_PAGE_NUMBER = re.compile(r"[1-9][0-9]{0,8}")


def strip_open_pixel(html: str) -> str:
    """Take the open pixel out of a compiled campaign, before its placeholders are filled.

    Viewing the web version must not count as opening the email. The pixel is the only URL of
    the form ``…/o/%%token%%.gif``; its ``<img>`` is removed, and any other mention of that URL
    (a CSS background, an odd attribute order the pattern missed) becomes an inline blank GIF,
    so the page never requests ``/o/`` for this token. Links keep the same token: a click in the
    web version is a click of that delivery.
    """
    return _PIXEL_URL.sub(_BLANK_GIF, _PIXEL_IMG.sub("", html))


def web_version(request: Request) -> Response:
    from newsletter.render import (  # the render room; imported when used
        personalise,
        recipient_values,
    )

    token = request.path_params["token"]
    delivery_id = delivery_id_or_404(request, token)
    with session_scope(state(request).engine) as session:
        row = web_version_of(session, delivery_id)
    if row is None:
        raise HTTPException(404)
    html = personalise(strip_open_pixel(row.html), recipient_values(row.first_name, token))
    return HTMLResponse(html, headers={**PRIVATE_HEADERS, "Content-Security-Policy": EMAIL_CSP})


def article_page(request: Request) -> Response:
    slug = request.path_params["slug"]
    if len(slug) > MAX_SLUG or "\x00" in slug:  # PostgreSQL refuses a NUL in a parameter: no such slug
        raise HTTPException(404)
    with session_scope(state(request).engine) as session:
        content = article_content(session, slug)
    if content is None:
        raise HTTPException(404)
    article = ArticleContent.from_dict(content)
    return render(
        request, "article.html", title=article.title, article=article, booking_url=state(request).settings.booking_url
    )


def healthz(request: Request) -> Response:
    return PlainTextResponse("ok", headers={"Cache-Control": "no-store"})


LOOPBACK = {"127.0.0.1", "::1", "localhost", "testclient"}


def _outbox_visible(request: Request) -> bool:
    """The outbox holds personal data: shown only with the outbox transport, and only to a
    browser on the same machine (a server that forgot its SendGrid key exposes nothing) that
    names this server by a loopback name or the public host: a DNS-rebinding page also comes
    from 127.0.0.1, but names its own host (web/hosts.py)."""
    app = state(request)
    client = request.client.host if request.client else None
    return (
        app.settings.transport_name == "outbox"
        and client in LOOPBACK
        and host_is_trusted(request.scope, app.trusted_hosts)
    )


def _outbox_only(request: Request) -> None:
    if not _outbox_visible(request):
        raise HTTPException(404)


def demo_booking(request: Request) -> Response:
    """Where the demo's "Connect today" button lands, so clicking through needs no internet."""
    _outbox_only(request)
    return render(request, "demo_booking.html", title="Book a consultation (demo)")


def home(request: Request) -> Response:
    if not _outbox_visible(request):
        return render(request, "home.html", title="Newsletter")
    with session_scope(state(request).engine) as session:
        campaigns = campaigns_sent(session)
    return render(request, "outbox_index.html", title="Outbox", campaigns=campaigns)


def _path_ids(request: Request, *names: str) -> tuple[int, ...]:
    """The route's integer ids; one past what the store's BIGINT holds is no message of ours (404)."""
    ids = tuple(request.path_params[name] for name in names)
    if any(i >= MAX_ID for i in ids):
        raise HTTPException(404)
    return ids


def _page_number(request: Request) -> int:
    """``?page=N`` (1 when absent); anything but a plain page number is a 400."""
    values = request.query_params.getlist("page")
    if not values:
        return 1
    if len(values) > 1 or not _PAGE_NUMBER.fullmatch(values[0]):
        raise HTTPException(400)
    return int(values[0])


def outbox_campaign(request: Request) -> Response:
    """One page of the campaign's outbox (50 messages; ``?page=N``, past the end: the last),
    each with whether it was opened and clicked. The query string holds the page number only."""
    _outbox_only(request)
    (campaign_id,) = _path_ids(request, "campaign_id")
    page = list_page(state(request).settings.outbox_dir, campaign_id, _page_number(request))
    with session_scope(state(request).engine) as session:
        engaged = engagement(session, (m.delivery_id for m in page.messages))
    return render(
        request,
        "outbox_campaign.html",
        title=f"Outbox: campaign {campaign_id}",
        campaign_id=campaign_id,
        page=page,
        engaged=engaged,
        nothing=Engagement(),
    )


def outbox_message(request: Request) -> Response:
    _outbox_only(request)
    campaign_id, delivery_id = _path_ids(request, "campaign_id", "delivery_id")
    found = read_message(state(request).settings.outbox_dir, campaign_id, delivery_id)
    if found is None:
        raise HTTPException(404)
    summary, _html = found
    with session_scope(state(request).engine) as session:
        engaged = engagement(session, [delivery_id]).get(delivery_id, Engagement())
    return render(
        request,
        "outbox_message.html",
        headers={"Content-Security-Policy": OUTBOX_CSP},
        title=f"Outbox: {summary.subject}",
        campaign_id=campaign_id,
        message=summary,
        engaged=engaged,
    )


def outbox_message_html(request: Request) -> Response:
    """The email's HTML alone, for the viewer's iframe. A separate URL rather than ``srcdoc``:
    Chromium leaves a srcdoc frame blank under the viewer page's strict CSP."""
    _outbox_only(request)
    found = read_message(state(request).settings.outbox_dir, *_path_ids(request, "campaign_id", "delivery_id"))
    if found is None:
        raise HTTPException(404)
    return HTMLResponse(found[1], headers=FRAMED_EMAIL_HEADERS)
