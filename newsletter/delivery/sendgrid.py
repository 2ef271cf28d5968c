"""SendGrid v3 mail/send: one request carries a whole batch (≤1000 recipients).

The campaign's subject and parts go once at the top of the request, placeholders still in
them; each recipient is one personalization with their own ``substitutions``, which SendGrid
fills into subject, content and custom_args. It does not fill them into headers, so each
personalization carries its own complete ``List-Unsubscribe`` headers.

:func:`build_request_body` is a pure function over plain dicts (it runs once per 1000
recipients on the send path, so no ``sendgrid.helpers`` objects and no per-recipient
rendering). :class:`SendGridTransport` posts it itself, over a kept-alive connection per
sending thread (:mod:`newsletter.delivery.connections`), with the headers the official client
builds for the key; behind a proxy it hands the request to the official client, which knows
proxies. It turns every kind of answer into a :class:`BatchOutcome` or a
:class:`TransportError` whose kind tells the dispatcher what to do.
"""

from __future__ import annotations

import http.client
import json
import logging
import re
import ssl
import time
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.error import URLError
from urllib.parse import urlsplit

from newsletter.delivery.connections import KeptAliveConnections, RequestNotSent, uses_proxy
from newsletter.delivery.message import BatchOutcome, CampaignMessage, ErrorKind, Recipient, TransportError
from newsletter.emailaddr import trusted_email

log = logging.getLogger(__name__)

#: Where a batch is posted, under the host (the library's ``version=3`` and ``mail.send``).
MAIL_SEND_PATH = "/v3/mail/send"

#: SendGrid's limit for one request: personalizations, and recipients over to/cc/bcc.
MAX_RECIPIENTS = 1000

_ONE_CLICK = "List-Unsubscribe=One-Click"  # RFC 8058
_PERSONALIZATION_FIELD = re.compile(r"^personalizations(?:\.(\d+)|\[(\d+)\])(?:[.\[]|$)")

# SendGrid's own click tracking rewrites every link through its redirect domain and its open
# tracking adds a second pixel. We track opens and clicks ourselves with signed tokens and a
# registry of the campaign's links (tracking/): SendGrid's rewriting would break that registry,
# double-count every event, and hand a third party a per-person reading history for a
# mental-health clinic's mail. Subscription tracking would add SendGrid's own unsubscribe
# footer beside our one-click link. Set explicitly so an account default can't turn them on.
TRACKING_OFF = {
    "click_tracking": {"enable": False, "enable_text": False},
    "open_tracking": {"enable": False},
    "subscription_tracking": {"enable": False},
}


def check_batch(recipients: Sequence[Recipient], limit: int | None = MAX_RECIPIENTS) -> None:
    """Refuse, before anything is sent, a batch the provider would refuse or that breaks the ledger.

    Duplicates compare case-insensitively: one address, one delivery, whatever its spelling.
    """
    if limit is not None and len(recipients) > limit:
        raise ValueError(f"{len(recipients)} recipients in one batch; at most {limit} per request")
    seen: dict[str, int] = {}
    for r in recipients:
        key = trusted_email(r.email)
        if key in seen:
            raise ValueError(f"the same address is in the batch twice (deliveries {seen[key]} and {r.delivery_id})")
        seen[key] = r.delivery_id


def build_request_body(
    message: CampaignMessage, recipients: Sequence[Recipient], *, sandbox: bool = False
) -> dict[str, Any]:
    """The JSON body of ``POST /v3/mail/send`` for one batch, personalization *i* = recipient *i*."""
    if not recipients:
        raise ValueError("a batch needs at least one recipient")
    check_batch(recipients)
    if not message.subject:
        raise ValueError(f"campaign {message.campaign_id} has an empty subject")
    # SendGrid requires text/plain first, then text/html; empty values are refused.
    content = [{"type": t, "value": v} for t, v in (("text/plain", message.text), ("text/html", message.html)) if v]
    if not content:
        raise ValueError(f"campaign {message.campaign_id} has neither a text nor an HTML part")

    campaign_id = str(message.campaign_id)
    personalizations: list[dict[str, Any]] = []
    append = personalizations.append
    for r in recipients:
        to = {"email": r.email, "name": r.name} if r.name else {"email": r.email}
        subs = r.substitutions
        for key, value in subs.items():
            if type(value) is not str:  # SendGrid refuses the whole request for one non-string value
                raise ValueError(f"delivery {r.delivery_id}: substitution {key!r} is not a string")
        append(
            {
                "to": [to],
                "substitutions": dict(subs),
                # Ids only: custom_args come back in every webhook event and must carry no personal data.
                "custom_args": {"delivery_id": str(r.delivery_id), "campaign_id": campaign_id},
                "headers": {"List-Unsubscribe": f"<{r.unsubscribe_url}>", "List-Unsubscribe-Post": _ONE_CLICK},
            }
        )

    sender: dict[str, str] = {"email": message.from_email}
    if message.from_name:
        sender["name"] = message.from_name
    body: dict[str, Any] = {
        "personalizations": personalizations,
        "from": sender,
        "subject": message.subject,
        "content": content,
        "custom_args": {"campaign_id": campaign_id},
        "mail_settings": {"sandbox_mode": {"enable": bool(sandbox)}},
        "tracking_settings": {k: dict(v) for k, v in TRACKING_OFF.items()},
    }
    if message.reply_to:
        body["reply_to"] = {"email": message.reply_to}
    if message.category:
        body["categories"] = [message.category]
    return body


def encode_request_body(message: CampaignMessage, recipients: Sequence[Recipient], *, sandbox: bool = False) -> str:
    """The same request as :func:`build_request_body`, already as JSON text.

    The send path's cost per recipient is Python work: a dict per personalization, then
    ``json.dumps`` walking it again. Here each personalization is written straight to JSON
    with the C string encoder. ``tests/delivery/test_delivery_transports.py`` checks that parsing the
    result gives exactly :func:`build_request_body`'s dict, tricky names included.
    """
    envelope = build_request_body(message, recipients[:1], sandbox=sandbox)  # validates the message
    check_batch(recipients)
    campaign = _enc(str(message.campaign_id))
    parts: list[str] = []
    append = parts.append
    for r in recipients:
        to = f'{{"email":{_enc(r.email)},"name":{_enc(r.name)}}}' if r.name else f'{{"email":{_enc(r.email)}}}'
        subs = []
        for key, value in r.substitutions.items():
            if type(value) is not str:  # SendGrid refuses the whole request for one non-string value
                raise ValueError(f"delivery {r.delivery_id}: substitution {key!r} is not a string")
            subs.append(f"{_enc(key)}:{_enc(value)}")
        append(
            f'{{"to":[{to}],"substitutions":{{{",".join(subs)}}},'
            f'"custom_args":{{"delivery_id":"{int(r.delivery_id)}","campaign_id":{campaign}}},'
            f'"headers":{{"List-Unsubscribe":{_enc(f"<{r.unsubscribe_url}>")},"List-Unsubscribe-Post":{_ONE_CLICK_JSON}}}}}'
        )
    del envelope["personalizations"]
    rest = json.dumps(envelope, separators=(",", ":"))
    return f'{{"personalizations":[{",".join(parts)}],{rest[1:]}'


#: C-accelerated, quotes included.
_enc = json.encoder.encode_basestring_ascii
_ONE_CLICK_JSON = _enc(_ONE_CLICK)


class _DropSecrets(logging.Filter):
    """python_http_client logs every request's headers (our API key) and payload (addresses,
    names) at DEBUG. Drop those two records so turning on DEBUG logging can't leak them."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.msg
        return not (isinstance(msg, str) and msg.startswith(("HEADERS:", "PAYLOAD:")))


def guard_library_logging() -> None:
    """Every user of the official library calls this first (campaigns and staff mail alike)."""
    logger = logging.getLogger("python_http_client.client")
    if not any(isinstance(f, _DropSecrets) for f in logger.filters):
        logger.addFilter(_DropSecrets())


def _error_list(body: bytes | None) -> list[dict[str, Any]]:
    """SendGrid's ``{"errors": [{"message", "field", "help"}]}``, or [] when it is not that."""
    try:
        data = json.loads(body or b"")
    except (ValueError, UnicodeDecodeError):
        return []
    errors = data.get("errors") if isinstance(data, dict) else None
    return [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []


def _summary(errors: Iterable[dict[str, Any]], fallback: str) -> str:
    parts: list[str] = []
    for e in errors:
        text = str(e.get("message") or "").strip()
        if e.get("field"):
            text = f"{e['field']}: {text}"
        if text:
            parts.append(text)
    return "; ".join(parts)[:1000] or fallback


def _retry_after(headers: Any) -> float | None:
    """Seconds until ``X-RateLimit-Reset`` (epoch seconds), or None if absent or unreadable."""
    value = headers.get("X-RateLimit-Reset") if headers is not None else None
    try:
        return max(0.0, float(value) - time.time()) if value is not None else None
    except (TypeError, ValueError):
        return None


class SendGridTransport:
    """Sends batches through SendGrid's v3 API.

    The official ``sendgrid`` library gives the request its conventions (the key's
    ``Authorization`` form, ``User-Agent``, ``Accept``); the transport posts the JSON text
    :meth:`prepare` made over its own kept-alive connections (:mod:`~newsletter.delivery.connections`).
    Behind an HTTP(S) proxy from the environment the official client posts it, as a dict, the
    way the library is meant to be used: it speaks proxies and this transport does not.

    ``host`` points the client elsewhere (a local fake in tests). ``timeout`` applies to each
    socket operation (connect, each read), not to the request as a whole. ``sandbox`` asks
    SendGrid to validate without delivering (it answers 200). ``ssl_context``: whom to trust
    (default: the system's certificates).
    """

    name = "sendgrid"

    def __init__(
        self,
        api_key: str,
        host: str = "https://api.sendgrid.com",
        *,
        timeout: float = 30.0,
        sandbox: bool = False,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        # Imported here: only this transport needs the library, and it takes a while to import.
        from sendgrid import SendGridAPIClient

        if not api_key or not api_key.strip():
            # SendGridAPIClient silently falls back to $SENDGRID_API_KEY on an empty key.
            raise ValueError("a SendGrid API key is required")
        if timeout is None or timeout <= 0:
            raise ValueError("timeout must be a positive number of seconds")
        guard_library_logging()
        host = host.rstrip("/")
        library = SendGridAPIClient(api_key, host=host)
        #: The library's headers for this key, and our body's type. Holds the key: never logged.
        self._headers = {**library.client.request_headers, "Content-Type": "application/json"}
        self._path = urlsplit(host).path + MAIL_SEND_PATH
        #: The kept-alive connections, or None behind a proxy (then the library posts).
        self.connections = None if uses_proxy(host) else KeptAliveConnections(host, ssl_context=ssl_context)
        self._library_send = library.client.mail.send if self.connections is None else None
        self.host = host
        self.timeout = float(timeout)
        self.sandbox = sandbox

    def __repr__(self) -> str:  # never the key
        return f"SendGridTransport(host={self.host!r}, timeout={self.timeout}, sandbox={self.sandbox})"

    def prepare(self, message: CampaignMessage, recipients: Sequence[Recipient]) -> str:
        """The request body for these recipients, made ahead of :meth:`send_batch` (see ``Transport``)."""
        return encode_request_body(message, recipients, sandbox=self.sandbox)

    def send_batch(
        self, message: CampaignMessage, recipients: Sequence[Recipient], prepared: object | None = None
    ) -> BatchOutcome:
        """Post one batch; ``prepared`` is :meth:`prepare`'s body for exactly these recipients."""
        if not recipients:
            return BatchOutcome()
        body = prepared if isinstance(prepared, str) else self.prepare(message, recipients)
        started = time.monotonic()
        status, data, headers = self._post(body) if self.connections is not None else self._post_by_library(body)
        log.debug(
            "SendGrid answered %s for %d recipients in %.0f ms",
            status,
            len(recipients),
            (time.monotonic() - started) * 1000,
        )
        if status == 202 or (status == 200 and self.sandbox):
            message_id = headers.get("X-Message-Id") if headers is not None else None
            return BatchOutcome(sent={r.delivery_id: message_id for r in recipients})
        if 200 <= status < 300:
            # Another 2xx: not what mail/send answers; we cannot tell whether it was sent.
            raise TransportError(f"unexpected answer {status} from SendGrid", kind=ErrorKind.AMBIGUOUS, status=status)
        raise self._error_for(status, data, headers, recipients)

    def _post(self, body: str) -> tuple[int, bytes, Any]:
        """POST over this thread's kept-alive connection: (status, body, headers), any status."""
        assert self.connections is not None
        try:
            answer = self.connections.request("POST", self._path, body.encode("utf-8"), self._headers, self.timeout)
        except RequestNotSent as error:
            # Failed while connecting or writing the request: SendGrid never received a whole
            # request, so it cannot have acted on it.
            raise TransportError(f"SendGrid unreachable: {_reason(error.cause)}", kind=ErrorKind.RETRYABLE) from None
        except (TimeoutError, ConnectionError, http.client.HTTPException, OSError) as error:
            raise _no_answer(error) from None
        return answer.status, answer.body, answer.headers

    def _post_by_library(self, body: str) -> tuple[int, bytes, Any]:
        """POST through the official client (behind a proxy): the same verdicts from urllib's errors."""
        from python_http_client.exceptions import HTTPError as ApiError

        assert self._library_send is not None
        try:
            response = self._library_send.post(request_body=json.loads(body), timeout=self.timeout)
        except ApiError as error:  # any answer outside 2xx
            return error.status_code, error.body, error.headers
        except URLError as error:
            # urllib wraps what fails while connecting or writing the request: never received whole.
            raise TransportError(f"SendGrid unreachable: {_reason(error.reason)}", kind=ErrorKind.RETRYABLE) from None
        except (TimeoutError, ConnectionError, http.client.HTTPException, OSError) as error:
            raise _no_answer(error) from None
        return response.status_code, response.body, response.headers

    def _error_for(
        self, status: int, body: bytes | None, headers: Any, recipients: Sequence[Recipient]
    ) -> TransportError:
        errors = _error_list(body)
        summary = _summary(errors, f"HTTP {status}")
        if status == 400:
            bad: dict[int, list[str]] = {}
            for e in errors:
                match = _PERSONALIZATION_FIELD.match(str(e.get("field") or ""))
                index = int(match.group(1) or match.group(2)) if match else -1
                if 0 <= index < len(recipients):
                    bad.setdefault(index, []).append(f"{e['field']}: {e.get('message') or 'rejected'}")
            if bad:
                # Positions in the batch as sent: personalization *i* is recipient *i*.
                return TransportError(
                    f"SendGrid rejected {len(bad)} recipient(s): {summary}",
                    kind=ErrorKind.REJECTED,
                    status=400,
                    rejected={i: "; ".join(m) for i, m in bad.items()},
                )
            return TransportError(f"SendGrid refused the request: {summary}", kind=ErrorKind.SPLIT, status=400)
        if status == 401:
            return TransportError(f"SendGrid API key rejected (401): {summary}", kind=ErrorKind.PAUSE, status=401)
        if status == 403:
            return TransportError(
                f"SendGrid forbade the send (403): sender not verified or key lacks mail.send: {summary}",
                kind=ErrorKind.PAUSE,
                status=403,
            )
        if status == 413:
            return TransportError(
                f"request too large for SendGrid (413): split the batch: {summary}", kind=ErrorKind.SPLIT, status=413
            )
        if status == 429:
            return TransportError(
                f"SendGrid rate limit (429): {summary}",
                kind=ErrorKind.RATE_LIMITED,
                status=429,
                retry_after=_retry_after(headers),
            )
        if status >= 500:
            return TransportError(
                f"SendGrid server error ({status}): {summary}", kind=ErrorKind.RETRYABLE, status=status
            )
        return TransportError(f"SendGrid answered {status}: {summary}", kind=ErrorKind.PERMANENT, status=status)

    def close(self) -> None:
        """Close the kept-alive connections (a later batch opens new ones)."""
        if self.connections is not None:
            self.connections.close()


def _no_answer(error: BaseException) -> TransportError:
    """The request went out whole and the answer never came (timeout, reset, closed
    connection, garbled answer): SendGrid may have accepted it."""
    return TransportError(
        f"no answer from SendGrid after the request was sent: {_reason(error)}", kind=ErrorKind.AMBIGUOUS
    )


def _reason(error: object) -> str:
    if isinstance(error, str):
        return error
    text, name = str(error), type(error).__name__
    return f"{name}: {text}" if text else name


def error_summary(body: bytes | None, fallback: str = "") -> str:
    """SendGrid's error answer as one line ("field: message; ..."), or ``fallback``."""
    return _summary(_error_list(body), fallback)
