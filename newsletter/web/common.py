"""What every handler shares: the app's state, page rendering, token checks, request facts."""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from sqlalchemy import Engine
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse

from newsletter.config import Settings
from newsletter.db import is_postgres
from newsletter.db.checkpoints import Checkpointer
from newsletter.tracking import (
    ContinueSigner,
    InvalidToken,
    Recorder,
    RequestInfo,
    TokenSigner,
    TrackingOptions,
    WebhookVerifier,
)
from newsletter.web.hosts import trusted_hosts

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
MAX_TOKEN_LENGTH = 200  # real tokens are about 35 characters; anything longer is not ours

#: Headers for every page or response reached with a delivery token: personal, never cached by
#: a shared cache, never indexed.
PRIVATE_HEADERS = {"Cache-Control": "no-store, private", "X-Robots-Tag": "noindex, nofollow"}

#: The default Content-Security-Policy of our own pages: no scripts at all, styles inline only.
PAGE_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


@dataclass
class AppState:
    settings: Settings
    engine: Engine
    signer: TokenSigner
    interests: Mapping[str, str]
    tracking: TrackingOptions = field(default_factory=TrackingOptions)
    continue_signer: ContinueSigner | None = None
    #: The SendGrid webhook: a verifier, or ``None`` with ``webhook_refusal`` saying why it is off
    #: (``None`` and no refusal: explicitly insecure).
    webhook_verifier: WebhookVerifier | None = None
    webhook_refusal: str | None = None
    #: The app's error page for an HTTP status (for pure-ASGI code that cannot raise HTTPException).
    error_page: Callable[[Request, Exception], Awaitable[Any]] | None = None
    server_error_page: Callable[[Request, Exception], Awaitable[Any]] | None = None
    templates: Environment = field(init=False)
    #: Opens and clicks go through one writer thread that commits them in groups (tracking.recorder).
    recorder: Recorder = field(init=False)
    #: SQLite: one webhook post written at a time (webhook_routes._ingest says why).
    webhook_write_lock: threading.Lock = field(default_factory=threading.Lock)
    #: SQLite: the webhook's WAL checkpoints, off the request (db/checkpoints.py); None on PostgreSQL.
    checkpointer: Checkpointer | None = field(init=False)
    #: The ``Host`` names the loopback-only pages answer for (web/hosts.py says why).
    trusted_hosts: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        self.trusted_hosts = trusted_hosts(self.settings.public_url)
        self.checkpointer = None if is_postgres(self.engine) else Checkpointer(self.engine)
        self.recorder = Recorder(
            self.engine, self.tracking, around_commit=self.checkpointer.deferred if self.checkpointer else None
        )
        self.templates = Environment(
            loader=FileSystemLoader(str(TEMPLATES_DIR)),
            autoescape=True,
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates.globals.update(
            brand_name=self.settings.brand_name,
            website_url=self.settings.website_url,
            postal_address=self.settings.postal_address,
            reply_to=self.settings.reply_to,
        )


def state(request: Request) -> AppState:
    return request.app.state.newsletter  # type: ignore[no-any-return]


def render(
    request: Request, template: str, status_code: int = 200, headers: Mapping[str, str] | None = None, **context: Any
) -> HTMLResponse:
    html = state(request).templates.get_template(template).render(**context)
    return HTMLResponse(html, status_code=status_code, headers=dict(headers or {}))


def delivery_id_or_none(request: Request, token: str) -> int | None:
    if len(token) > MAX_TOKEN_LENGTH:
        return None
    try:
        return state(request).signer.verify(token)
    except InvalidToken:
        return None


def delivery_id_or_404(request: Request, token: str) -> int:
    delivery_id = delivery_id_or_none(request, token)
    if delivery_id is None:
        raise HTTPException(404)
    return delivery_id


def request_info(request: Request) -> RequestInfo:
    """The full client address is handed to tracking, which keeps only its network (or a hash).
    A missing ``Accept-Language`` is ``""``: absent, which the classifier may doubt."""
    headers = request.headers
    return RequestInfo(
        ip=request.client.host if request.client else None,
        user_agent=headers.get("user-agent"),
        method=request.method,
        accept_language=headers.get("accept-language", ""),
    )


def mask_email(email: str) -> str:
    """``jane.doe@example.com`` → ``j***@example.com``: enough to recognise, not to harvest."""
    local, at, domain = email.partition("@")
    if not at or not local:
        return "***"
    return f"{local[0]}***@{domain}"
