"""The routes in every email: open pixel, click redirect (and the CTA's continue page),
unsubscribe, preferences.

Handlers only translate: token → delivery id, request → ``RequestInfo``, result → response.
The decisions live in ``newsletter.tracking``.

One file, over ~400 lines, on purpose: :func:`fast_tracking` (the hot path, answered before the
router) must behave exactly as the routed :func:`open_pixel` and :func:`click` and hands every
other case back to them, and both share the continue page, the redirect check and the pixel
headers; kept side by side, a change to one is seen next to the other.
"""

from __future__ import annotations

import base64
import logging
from datetime import datetime, timezone
from functools import lru_cache
from typing import Literal
from urllib.parse import parse_qs, quote, unquote_plus, urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.types import Receive, Scope, Send

from newsletter.db import session_scope
from newsletter.tracking import (
    ClickResult,
    InvalidPreferences,
    InvalidToken,
    Preferences,
    RequestInfo,
    UnknownDelivery,
    UnknownLink,
    confirm_cta,
    load_preferences,
    save_preferences,
    unsubscribe,
)
from newsletter.web.common import (
    MAX_TOKEN_LENGTH,
    PRIVATE_HEADERS,
    AppState,
    delivery_id_or_404,
    delivery_id_or_none,
    mask_email,
    render,
    request_info,
    state,
)
from newsletter.web.middleware import SECURITY_HEADERS, SecurityHeaders

log = logging.getLogger(__name__)

#: How a reader unsubscribed, as the tracking room records it.
UnsubscribeSource = Literal["one_click", "link", "preferences"]

#: A 1x1 transparent GIF89a (42 bytes).
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
PIXEL_HEADERS = {
    "Cache-Control": "no-store, no-cache, must-revalidate, max-age=0, private",
    "Pragma": "no-cache",
    "Expires": "0",
    "X-Robots-Tag": "noindex, nofollow",
}
MAX_POSITION = 100_000
MAX_CONTINUE_LENGTH = 200
REDIRECT_SCHEMES = {"http", "https", "mailto", "tel"}
FORM_TYPE = "application/x-www-form-urlencoded"


async def open_pixel(request: Request) -> Response:
    """Always the GIF, whatever happens: a mail client must never show a broken image. Answered
    once the open is stored (the recorder commits opens in groups)."""
    delivery_id = delivery_id_or_none(request, request.path_params["token"])
    if delivery_id is not None:
        try:
            await state(request).recorder.open(delivery_id, request_info(request))
        except Exception:  # an open is not worth a broken image; the log keeps the cause
            log.exception("could not record an open for delivery %s", delivery_id)
    return Response(PIXEL, media_type="image/gif", headers=PIXEL_HEADERS)


def _redirect_target(url: str) -> str:
    if urlsplit(url).scheme.lower() not in REDIRECT_SCHEMES:  # never javascript:, data:, ...
        raise HTTPException(404)
    return url


async def click(request: Request) -> Response:
    """302 to the registered link; for a doubted human click on the CTA, the continue page."""
    token = request.path_params["token"]
    delivery_id = delivery_id_or_404(request, token)
    position = request.path_params["position"]
    if position > MAX_POSITION:
        raise HTTPException(404)
    app = state(request)
    try:
        result = await app.recorder.click(delivery_id, position, request_info(request))
    except (UnknownLink, UnknownDelivery):
        raise HTTPException(404) from None
    url = _redirect_target(result.url)
    if result.needs_confirmation and app.continue_signer is not None:
        return _continue_page(request, delivery_id, result)
    return RedirectResponse(url, status_code=302, headers={"Cache-Control": "no-store"})


def _continue_page(request: Request, delivery_id: int, result: ClickResult) -> Response:
    """One step: a button that says where it goes. A person presses it; scanners fetch URLs,
    they do not submit forms. The link is signed and carries ids and a time, nothing personal."""
    signer = state(request).continue_signer
    assert signer is not None
    signed = signer.sign(delivery_id, result.position, int(state(request).tracking.clock() * 1000))
    return render(
        request, "cta_continue.html", headers=PRIVATE_HEADERS, title="Continue to booking", action=f"/continue/{signed}"
    )


async def continue_to_booking(request: Request) -> Response:
    """GET or POST of the continue link: record the confirmation, count the lead, 303 onward.

    A bad or foreign-signed link is a 404; a form post from another site is a 403 (the link is
    the credential, but a confirmation should come from our own page).
    """
    signed = request.path_params["signed"]
    signer = state(request).continue_signer
    if signer is None or len(signed) > MAX_CONTINUE_LENGTH:
        raise HTTPException(404)
    try:
        delivery_id, position, issued_ms = signer.verify(signed)
    except InvalidToken:
        raise HTTPException(404) from None
    if request.method == "POST":
        _check_origin(request)
        await request.body()  # drain (capped by BodyLimit); the button carries nothing we need
    issued_at = datetime.fromtimestamp(issued_ms / 1000, timezone.utc)
    result = await run_in_threadpool(_confirm, request, delivery_id, position, issued_at)
    return RedirectResponse(_redirect_target(result.url), status_code=303, headers={"Cache-Control": "no-store"})


def _confirm(request: Request, delivery_id: int, position: int, issued_at: datetime) -> ClickResult:
    app = state(request)
    try:
        with session_scope(app.engine) as session:
            return confirm_cta(
                session,
                delivery_id,
                position,
                request_info(request),
                issued_at=issued_at,
                now=datetime.fromtimestamp(app.tracking.clock(), timezone.utc),
                options=app.tracking,
            )
    except (UnknownLink, UnknownDelivery):
        raise HTTPException(404) from None


def _preferences(request: Request, delivery_id: int) -> Preferences:
    try:
        with session_scope(state(request).engine) as session:
            return load_preferences(session, delivery_id, state(request).interests)
    except UnknownDelivery:
        raise HTTPException(404) from None


def unsubscribe_confirm(request: Request) -> Response:
    """GET never unsubscribes: link scanners fetch every URL in a message."""
    token = request.path_params["token"]
    prefs = _preferences(request, delivery_id_or_404(request, token))
    return render(
        request,
        "unsubscribe.html",
        headers=PRIVATE_HEADERS,
        title="Unsubscribe",
        email=mask_email(prefs.email),
        already=prefs.status == "unsubscribed",
        token=token,
    )


def _is_one_click(body: bytes) -> bool:
    """RFC 8058 bodies are ``List-Unsubscribe=One-Click``, urlencoded or multipart."""
    text = unquote_plus(body.decode("latin-1")).lower()
    return "list-unsubscribe" in text and "one-click" in text


async def unsubscribe_post(request: Request) -> Response:
    """RFC 8058 one-click and our confirm form: 200 and a page, never a redirect, no cookies."""
    token = request.path_params["token"]
    delivery_id = delivery_id_or_404(request, token)
    source: UnsubscribeSource = "one_click" if _is_one_click(await request.body()) else "link"
    await run_in_threadpool(_unsubscribe, request, delivery_id, source)
    return render(request, "unsubscribed.html", headers=PRIVATE_HEADERS, title="You're unsubscribed", token=token)


def _unsubscribe(request: Request, delivery_id: int, source: UnsubscribeSource) -> None:
    app = state(request)
    try:
        with session_scope(app.engine) as session:
            unsubscribe(session, delivery_id, source=source, request=request_info(request), options=app.tracking)
    except UnknownDelivery:
        raise HTTPException(404) from None


def preferences_page(request: Request) -> Response:
    prefs = _preferences(request, delivery_id_or_404(request, request.path_params["token"]))
    return _preferences_response(request, prefs.first_name, prefs.tags, mask_email(prefs.email), prefs.status)


def _preferences_response(
    request: Request,
    first_name: str | None,
    tags: frozenset[str] | set[str],
    email: str,
    status: str,
    *,
    saved: bool = False,
    error: str | None = None,
) -> Response:
    return render(
        request,
        "preferences.html",
        status_code=400 if error else 200,
        headers=PRIVATE_HEADERS,
        title="Your email preferences",
        first_name=first_name or "",
        tags=tags,
        email=email,
        status=status,
        interests=state(request).interests,
        saved=saved,
        error=error,
    )


def _check_form_post(request: Request) -> None:
    """The token in the path is the credential; still, take plain HTML form posts only, and only
    from our own pages when the browser says where the post comes from."""
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type != FORM_TYPE:
        raise HTTPException(415)
    _check_origin(request)


def _check_origin(request: Request) -> None:
    origin = request.headers.get("origin")
    if origin and origin != "null":
        allowed = {urlsplit(state(request).settings.public_url).netloc, request.headers.get("host", "")}
        try:
            netloc = urlsplit(origin).netloc
        except ValueError:  # "http://[" is no site of ours: refused, not a server error
            raise HTTPException(403) from None
        if netloc not in allowed:
            raise HTTPException(403)


async def preferences_post(request: Request) -> Response:
    token = request.path_params["token"]
    delivery_id = delivery_id_or_404(request, token)
    _check_form_post(request)
    try:
        form = parse_qs((await request.body()).decode("utf-8"), keep_blank_values=True, max_num_fields=50)
    except (UnicodeDecodeError, ValueError):
        raise HTTPException(400) from None
    if form.get("action", ["save"])[0] == "unsubscribe":
        await run_in_threadpool(_unsubscribe, request, delivery_id, "preferences")
        return render(request, "unsubscribed.html", headers=PRIVATE_HEADERS, title="You're unsubscribed", token=token)
    first_name, tags = form.get("first_name", [""])[0], form.get("interest", [])
    return await run_in_threadpool(_save_preferences, request, delivery_id, first_name, tags)


def _save_preferences(request: Request, delivery_id: int, first_name: str, tags: list[str]) -> Response:
    interests = state(request).interests
    try:
        with session_scope(state(request).engine) as session:
            prefs = save_preferences(session, delivery_id, first_name=first_name, tags=tags, interests=interests)
    except UnknownDelivery:
        raise HTTPException(404) from None
    except InvalidPreferences as exc:
        prefs = _preferences(request, delivery_id)  # re-show what was typed, with the reason
        return _preferences_response(
            request,
            first_name,
            {t for t in tags if t in interests},
            mask_email(prefs.email),
            prefs.status,
            error=str(exc),
        )
    return _preferences_response(
        request, prefs.first_name, prefs.tags, mask_email(prefs.email), prefs.status, saved=True
    )


# --- the fast path -----------------------------------------------------------------------------


def _scope_request_info(scope: Scope) -> RequestInfo:
    """:func:`newsletter.web.common.request_info` from the raw ASGI scope (same values)."""
    agent = None
    language = ""
    for name, value in scope["headers"]:
        if name == b"user-agent":
            agent = value.decode("latin-1")
        elif name == b"accept-language":
            language = value.decode("latin-1")
    client = scope.get("client")
    return RequestInfo(
        ip=client[0] if client else None, user_agent=agent, method=scope["method"], accept_language=language
    )


_PIXEL_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"image/gif"), (b"content-length", str(len(PIXEL)).encode())]
    + [(k.lower().encode(), v.encode()) for k, v in PIXEL_HEADERS.items()]
    + [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()],
}
_PIXEL_BODY = {"type": "http.response.body", "body": PIXEL}
_SECURITY_RAW = [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]


async def fast_tracking(scope: Scope, receive: Receive, send: Send) -> bool:
    """Answer ``GET|HEAD /o/{token}.gif`` and a valid click before Starlette's middleware stack
    and router; ``False`` when the request is anything else (the app then runs as usual).

    The open pixel is fetched once per message opened and the redirect once per click: most of
    the app's traffic. Starlette's layers (error middleware, our two middlewares, the router,
    the request object, the endpoint wrapper) cost as much CPU as the rest of the request
    (bench/RESULTS.md). Same behaviour as :func:`open_pixel` and :func:`click`, which stay routed
    and serve every case handed on here: every error page (a bad token, an unknown link or
    delivery: nothing was stored for those, so nothing is stored twice). The security headers
    of :class:`~newsletter.web.middleware.SecurityHeaders` are added here too.
    """
    if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD") or scope.get("root_path"):
        return False
    path: str = scope["path"]
    if path.startswith("/o/") and path.endswith(".gif"):
        token = path[3:-4]
        if token and "/" not in token:
            await _pixel(scope, token, send)
            return True
    elif path.startswith("/c/"):
        token, _, position = path[3:].rpartition("/")
        if token and "/" not in token and position.isdigit() and position.isascii():
            return await _click(scope, receive, send, token, int(position))
    return False


async def _pixel(scope: Scope, token: str, send: Send) -> None:
    app: AppState = scope["app"].state.newsletter
    delivery_id = _verify(app, token)
    if delivery_id is not None:
        try:
            await app.recorder.open(delivery_id, _scope_request_info(scope))
        except Exception:  # an open is not worth a broken image; the log keeps the cause
            log.exception("could not record an open for delivery %s", delivery_id)
    await send(_PIXEL_START)
    await send(_PIXEL_BODY)


async def _click(scope: Scope, receive: Receive, send: Send, token: str, position: int) -> bool:
    app: AppState = scope["app"].state.newsletter
    delivery_id = _verify(app, token)
    if delivery_id is None or position > MAX_POSITION:
        return False  # the router's 404 page
    try:
        result = await app.recorder.click(delivery_id, position, _scope_request_info(scope))
    except (UnknownLink, UnknownDelivery):
        return False  # nothing was stored; the router answers 404
    except Exception as exc:  # the store is down: the reader gets our error page, the log the cause
        log.exception("could not record a click for delivery %s", delivery_id)
        assert app.server_error_page is not None  # create_app sets both pages
        response: Response = await app.server_error_page(Request(scope), exc)
    else:
        location = _location(result.url)
        if location is None:
            assert app.error_page is not None
            response = await app.error_page(Request(scope), HTTPException(404))
        elif result.needs_confirmation and app.continue_signer is not None:
            response = _continue_page(Request(scope), delivery_id, result)
        else:  # the common case, sent as raw ASGI messages: the same bytes RedirectResponse sends
            await send(
                {
                    "type": "http.response.start",
                    "status": 302,
                    "headers": [
                        (b"content-length", b"0"),
                        (b"cache-control", b"no-store"),
                        (b"location", location),
                        *_SECURITY_RAW,
                    ],
                }
            )
            await send({"type": "http.response.body", "body": b""})
            return True
    await SecurityHeaders(response)(scope, receive, send)
    return True


@lru_cache(maxsize=4096)
def _location(url: str) -> bytes | None:
    """The ``Location`` header for a registered link (as RedirectResponse quotes it), ``None`` for
    a scheme we never redirect to. A campaign has a handful of links: each is worked out once."""
    if urlsplit(url).scheme.lower() not in REDIRECT_SCHEMES:
        return None
    return quote(url, safe=":/%#?=@[]!$&'()*+,;").encode("latin-1")


def _verify(app: AppState, token: str) -> int | None:
    if len(token) > MAX_TOKEN_LENGTH:
        return None
    try:
        return app.signer.verify(token)
    except InvalidToken:
        return None
