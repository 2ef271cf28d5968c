"""The ASGI app: tracking routes, public pages, the demo outbox viewer.

Stateless apart from its settings and engine, so any number of replicas can run behind a load
balancer. Routes (all documented in docs/architecture.md):

=========================  =====================================================================
GET|HEAD /o/{token}.gif    open pixel; always the GIF, even for a bad token (then nothing stored)
GET|HEAD /c/{token}/{n}    click on registered link ``n``: 302 to its URL, anything else 404; a
                           doubted human click on the CTA gets the "continue to booking" page
GET|POST /continue/{s}     the continue link (signed: ids and a time): confirmation, lead, 303
POST /webhooks/sendgrid    SendGrid's signed Event Webhook (see webhook_routes)
GET  /u/{token}            unsubscribe confirm page (GET never unsubscribes)
POST /u/{token}            unsubscribe (RFC 8058 one-click or the form): 200 page, no redirect
GET|POST /p/{token}        preferences: first name, interests, unsubscribe button
GET  /w/{token}            web version of the email (without the open pixel)
GET  /a/{slug}             the full article
GET  /healthz              "ok"
GET  /                     outbox transport: campaigns and their outbox; else a short page
GET  /outbox/{c}[/{d}]     outbox transport, loopback only: the .eml files of campaign c, message d
GET  /demo/booking         outbox transport, loopback only: stand-in for the booking page
=========================  =====================================================================
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from newsletter.config import Settings
from newsletter.db import make_engine
from newsletter.tracking import (
    INTEREST_TAGS,
    ContinueSigner,
    InvalidPublicKey,
    TokenSigner,
    TrackingOptions,
    WebhookVerifier,
    options_from_settings,
)
from newsletter.web import page_routes as pages
from newsletter.web import tracking_routes as tracking
from newsletter.web import webhook_routes as webhooks
from newsletter.web.common import AppState, render
from newsletter.web.hosts import slash_redirect
from newsletter.web.middleware import MAX_BODY_BYTES, BodyLimit, SecurityHeaders
from newsletter.web.tracking_routes import fast_tracking

log = logging.getLogger(__name__)

_GET = ["GET", "HEAD"]
WEBHOOK_PATH = "/webhooks/sendgrid"

ROUTES = [
    Route("/o/{token}.gif", tracking.open_pixel, methods=_GET),
    Route("/c/{token}/{position:int}", tracking.click, methods=_GET),
    Route("/continue/{signed}", tracking.continue_to_booking, methods=["GET", "POST"]),
    Route(WEBHOOK_PATH, webhooks.sendgrid_events, methods=["POST"]),
    Route("/u/{token}", tracking.unsubscribe_confirm, methods=_GET),
    Route("/u/{token}", tracking.unsubscribe_post, methods=["POST"]),
    Route("/p/{token}", tracking.preferences_page, methods=_GET),
    Route("/p/{token}", tracking.preferences_post, methods=["POST"]),
    Route("/w/{token}", pages.web_version, methods=_GET),
    Route("/a/{slug}", pages.article_page, methods=_GET),
    Route("/healthz", pages.healthz, methods=_GET),
    Route("/", pages.home, methods=_GET),
    Route("/demo/booking", pages.demo_booking, methods=_GET),
    Route("/outbox/{campaign_id:int}", pages.outbox_campaign, methods=_GET),
    Route("/outbox/{campaign_id:int}/{delivery_id:int}", pages.outbox_message, methods=_GET),
    Route("/outbox/{campaign_id:int}/{delivery_id:int}/html", pages.outbox_message_html, methods=_GET),
]

_ERRORS = {
    400: ("Something was wrong with that request", "Please go back and try again."),
    403: ("Not allowed", "This form can only be sent from our own page."),
    404: (
        "Page not found",
        "This link is not valid or no longer works. If you copied it from an email, "
        "please check that the whole link was copied.",
    ),
    405: ("Not allowed", "This page cannot be used that way."),
    413: ("Too much data", "That request was too large."),
    415: ("Not a form", "Please use the form on the page."),
}


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    heading, text = _ERRORS.get(exc.status_code, ("Something went wrong", "Please try again later."))
    return render(
        request,
        "error.html",
        status_code=exc.status_code,
        headers=exc.headers,
        title=heading,
        heading=heading,
        text=text,
    )


async def _server_error(request: Request, exc: Exception) -> Response:
    """A page for the reader, never a traceback. Starlette re-raises the error after this page is
    sent, so the server logs the traceback once."""
    return render(
        request,
        "error.html",
        status_code=500,
        title="Something went wrong",
        heading="Something went wrong",
        text="Please try again in a few minutes.",
    )


class NewsletterApp(Starlette):
    """Starlette, with the open pixel and the click redirect answered before its middleware stack
    (:func:`newsletter.web.tracking_routes.fast_tracking`); everything else as usual."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope["app"] = self
            if await fast_tracking(scope, receive, send):
                return
        await super().__call__(scope, receive, send)


def webhook_setup(options: TrackingOptions) -> tuple[WebhookVerifier | None, str | None]:
    """The webhook's verifier, or why it refuses posts; logs which, once, at startup."""
    if options.webhook_public_key:
        try:
            verifier = WebhookVerifier(options.webhook_public_key, tolerance_seconds=options.webhook_tolerance_seconds)
        except InvalidPublicKey as exc:
            log.error(
                "NEWSLETTER_SENDGRID_WEBHOOK_PUBLIC_KEY is not valid (%s): POST %s answers 503 until it is "
                "fixed. Copy the verification key from SendGrid (Settings > Mail Settings > Event Webhook).",
                exc,
                WEBHOOK_PATH,
            )
            return None, "webhook public key is not valid; see the server log"
        log.info("SendGrid Event Webhook on POST %s: signatures verified.", WEBHOOK_PATH)
        return verifier, None
    if options.webhook_allow_insecure:
        log.warning(
            "SendGrid Event Webhook on POST %s accepts UNSIGNED posts (NEWSLETTER_WEBHOOK_ALLOW_INSECURE=1): "
            "anyone who finds the URL can bounce or unsubscribe your readers. Local testing only.",
            WEBHOOK_PATH,
        )
        return None, None
    log.warning(
        "SendGrid Event Webhook is OFF: NEWSLETTER_SENDGRID_WEBHOOK_PUBLIC_KEY is not set, so POST %s "
        "answers 503. Set it to the verification key SendGrid shows (or NEWSLETTER_WEBHOOK_ALLOW_INSECURE=1 "
        "for local testing only).",
        WEBHOOK_PATH,
    )
    return None, (
        "signed webhook not configured: set NEWSLETTER_SENDGRID_WEBHOOK_PUBLIC_KEY "
        "(or NEWSLETTER_WEBHOOK_ALLOW_INSECURE=1 for local testing)"
    )


def _relative_slash_redirects(app: Starlette) -> None:
    """Starlette's router redirects ``/u/tok/`` to an absolute URL built from the ``Host``
    header; ours is relative (:func:`newsletter.web.hosts.slash_redirect`), else the usual 404."""
    router = app.router
    router.redirect_slashes = False
    not_found = router.default

    async def redirect_or_not_found(scope: Scope, receive: Receive, send: Send) -> None:
        if not await slash_redirect(router.routes, scope, receive, send):
            await not_found(scope, receive, send)

    router.default = redirect_or_not_found


def create_app(
    settings: Settings,
    engine: Engine | None = None,
    *,
    interests: Mapping[str, str] = INTEREST_TAGS,
    max_body_bytes: int = MAX_BODY_BYTES,
    tracking: TrackingOptions | None = None,
) -> Starlette:
    """Build the app. Without ``engine``, one is made from ``settings.database_url`` and disposed
    of when the app shuts down. Without ``tracking``, its options come from ``settings``
    (:func:`newsletter.tracking.options_from_settings`; a bad value is a ``UserError`` naming it)."""
    signing_key = settings.signing_key()
    tracking = tracking or options_from_settings(settings)
    verifier, refusal = webhook_setup(tracking)
    owns_engine = engine is None
    engine = engine or make_engine(settings.database_url)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        app.state.newsletter.recorder.close()  # finish the opens and clicks already queued
        if app.state.newsletter.checkpointer is not None:
            app.state.newsletter.checkpointer.close()
        if owns_engine:
            engine.dispose()

    app = NewsletterApp(
        routes=ROUTES,
        middleware=[
            Middleware(SecurityHeaders),
            Middleware(BodyLimit, max_bytes=max_body_bytes, overrides={WEBHOOK_PATH: tracking.webhook_max_bytes}),
        ],
        exception_handlers={HTTPException: _http_error, Exception: _server_error},
        lifespan=lifespan,
    )
    _relative_slash_redirects(app)
    app.state.newsletter = AppState(
        settings,
        engine,
        TokenSigner(signing_key),
        dict(interests),
        tracking=tracking,
        continue_signer=ContinueSigner(signing_key),
        webhook_verifier=verifier,
        webhook_refusal=refusal,
        error_page=_http_error,
        server_error_page=_server_error,
    )
    return app
