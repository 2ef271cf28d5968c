"""The routes in every email: open pixel, click redirect, unsubscribe, preferences.

Handlers only translate: token → delivery id, request → ``RequestInfo``, result → response.
The decisions live in ``newsletter.tracking``.
"""

from __future__ import annotations

import base64
import logging
from urllib.parse import parse_qs, unquote_plus, urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from newsletter.db import session_scope
from newsletter.tracking import (
    InvalidPreferences,
    Preferences,
    UnknownDelivery,
    UnknownLink,
    load_preferences,
    record_click,
    record_open,
    save_preferences,
    unsubscribe,
)
from newsletter.web.common import (
    PRIVATE_HEADERS,
    delivery_id_or_404,
    delivery_id_or_none,
    mask_email,
    render,
    request_info,
    state,
)

log = logging.getLogger(__name__)

#: A 1x1 transparent GIF89a (42 bytes).
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
PIXEL_HEADERS = {
    "Cache-Control": "no-store, no-cache, must-revalidate, max-age=0, private",
    "Pragma": "no-cache",
    "Expires": "0",
    "X-Robots-Tag": "noindex, nofollow",
}
MAX_POSITION = 100_000
REDIRECT_SCHEMES = {"http", "https", "mailto", "tel"}
FORM_TYPE = "application/x-www-form-urlencoded"


def open_pixel(request: Request) -> Response:
    """Always the GIF, whatever happens: a mail client must never show a broken image."""
    delivery_id = delivery_id_or_none(request, request.path_params["token"])
    if delivery_id is not None:
        try:
            with session_scope(state(request).engine) as session:
                record_open(session, delivery_id, request_info(request))
        except UnknownDelivery:
            pass
        except Exception:  # an open is not worth a broken image; the log keeps the cause
            log.exception("could not record an open for delivery %s", delivery_id)
    return Response(PIXEL, media_type="image/gif", headers=PIXEL_HEADERS)


def click(request: Request) -> Response:
    delivery_id = delivery_id_or_404(request, request.path_params["token"])
    position = request.path_params["position"]
    if position > MAX_POSITION:
        raise HTTPException(404)
    try:
        with session_scope(state(request).engine) as session:
            result = record_click(session, delivery_id, position, request_info(request))
    except (UnknownLink, UnknownDelivery):
        raise HTTPException(404) from None
    if urlsplit(result.url).scheme.lower() not in REDIRECT_SCHEMES:  # never javascript:, data:, ...
        raise HTTPException(404)
    return RedirectResponse(result.url, status_code=302, headers={"Cache-Control": "no-store"})


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
    return render(request, "unsubscribe.html", headers=PRIVATE_HEADERS, title="Unsubscribe",
                  email=mask_email(prefs.email), already=prefs.status == "unsubscribed", token=token)


def _is_one_click(body: bytes) -> bool:
    """RFC 8058 bodies are ``List-Unsubscribe=One-Click``, urlencoded or multipart."""
    text = unquote_plus(body.decode("latin-1")).lower()
    return "list-unsubscribe" in text and "one-click" in text


async def unsubscribe_post(request: Request) -> Response:
    """RFC 8058 one-click and our confirm form: 200 and a page, never a redirect, no cookies."""
    token = request.path_params["token"]
    delivery_id = delivery_id_or_404(request, token)
    source = "one_click" if _is_one_click(await request.body()) else "link"
    await run_in_threadpool(_unsubscribe, request, delivery_id, source)
    return render(request, "unsubscribed.html", headers=PRIVATE_HEADERS, title="You're unsubscribed", token=token)


def _unsubscribe(request: Request, delivery_id: int, source: str) -> None:
    try:
        with session_scope(state(request).engine) as session:
            unsubscribe(session, delivery_id, source=source, request=request_info(request))  # type: ignore[arg-type]
    except UnknownDelivery:
        raise HTTPException(404) from None


def preferences_page(request: Request) -> Response:
    prefs = _preferences(request, delivery_id_or_404(request, request.path_params["token"]))
    return _preferences_response(request, prefs.first_name, prefs.tags, mask_email(prefs.email), prefs.status)


def _preferences_response(request: Request, first_name: str | None, tags: frozenset[str] | set[str], email: str,
                          status: str, *, saved: bool = False, error: str | None = None) -> Response:
    return render(request, "preferences.html", status_code=400 if error else 200, headers=PRIVATE_HEADERS,
                  title="Your email preferences", first_name=first_name or "", tags=tags, email=email,
                  status=status, interests=state(request).interests, saved=saved, error=error)


def _check_form_post(request: Request) -> None:
    """The token in the path is the credential; still, take plain HTML form posts only, and only
    from our own pages when the browser says where the post comes from."""
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type != FORM_TYPE:
        raise HTTPException(415)
    origin = request.headers.get("origin")
    if origin and origin != "null":
        allowed = {urlsplit(state(request).settings.public_url).netloc, request.headers.get("host", "")}
        if urlsplit(origin).netloc not in allowed:
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
        return _preferences_response(request, first_name, {t for t in tags if t in interests},
                                     mask_email(prefs.email), prefs.status, error=str(exc))
    return _preferences_response(request, prefs.first_name, prefs.tags, mask_email(prefs.email), prefs.status,
                                 saved=True)
