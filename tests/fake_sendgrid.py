"""A local fake of SendGrid's ``POST /v3/mail/send``, for tests and benchmarks. Never the real API.

Start it and point a transport at it::

    with FakeSendGrid() as sg:                       # 127.0.0.1, a free port, its own thread
        t = SendGridTransport(sg.api_key, host=sg.url)
        t.send_batch(message, recipients)
        sg.received["ann@example.org"][0].html      # what Ann would have received

or take the ``fake_sendgrid`` pytest fixture (defined below; import it in a conftest or a
test module: ``from fake_sendgrid import fake_sendgrid``).

What it does with each request, in order:

1. takes the next planned answer from ``sg.script`` if there is one (fault injection);
2. checks ``Authorization: Bearer <api_key>`` (401 otherwise);
3. parses the JSON (gzip bodies too, as SendGrid accepts them);
4. validates it against SendGrid's official OpenAPI schema when ``schema_path`` is given
   (see :func:`schema_validator` for the one patch), and ALWAYS runs its own essential checks
   (:func:`essential_errors`), which catch the mistakes that matter even without the schema;
5. answers 400 with SendGrid's error shape ``{"errors": [{"message", "field", "help"}]}``
   naming the field (``personalizations.3.to.0.email`` for a recipient), or 200 for a
   sandbox-mode request (nothing delivered), or 202 with a random ``X-Message-Id`` and records,
   per recipient, what they would receive with their substitutions applied as SendGrid does
   (in subject, content and custom_args; never in headers).

State, all guarded by ``sg.lock``:

- ``sg.received``: ``{lower-case address: [Received, ...]}``: a list, so a recipient sent twice
  shows up twice (exactly-once tests assert ``len(...) == 1``);
- ``sg.requests``: every request, answered or not, as :class:`RecordedRequest` (raw bytes,
  parsed body, status);
- ``sg.count``: recipients accepted (202); ``sg.request_count``: requests seen;
  ``sg.connection_count``: connections accepted. It speaks HTTP/1.1 and keeps a connection
  open between requests, as SendGrid does, so a client that reuses connections can be seen to.
- ``sg.addresses``: a Counter of every accepted address, kept even with ``record = False``;
- ``sg.record = False`` skips the per-recipient rendering (benchmarks, big tests); counts still move.

Fault injection: ``sg.script`` is a queue (``collections.deque``); each request consumes at most
one entry, first thing:

- ``("status", code)`` or ``("status", code, {header: value}, body)``: answer that, deliver
  nothing (e.g. ``("status", 429, {"X-RateLimit-Reset": str(int(time.time()) + 2)})``);
- ``("delay", seconds)``: wait, then handle the request normally (it IS delivered: a client
  that timed out meanwhile has an ambiguous batch, as in life);
- ``("drop",)``: read the request, close the connection without answering, deliver nothing;
- ``("drop_after_accept",)``: deliver as for a 202, then close without answering;
- ``("close_after",)``: handle the request normally, then close the connection without saying
  so beforehand (as a server does with a kept-alive connection it no longer wants);
- ``("reject_email", "bad@x")``: if that address is in the request, 400 naming its
  personalization (``personalizations.{i}.to.{j}.email``), deliver nothing; else normal.

``sg.plan(*actions)`` appends to the script; ``sg.reset()`` clears state and script.

Stricter than SendGrid on purpose: the same address twice anywhere in one request is refused
(SendGrid only refuses it within one personalization and would otherwise send twice, which
our one-delivery-per-recipient ledger must never ask for).
"""

from __future__ import annotations

import copy
import gzip
import json
import re
import secrets
import ssl
import threading
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from repo_paths import SHARED_DIR

DEFAULT_API_KEY = "SG.fake-key-for-tests.not-a-real-key"
#: Where the official schema sits when ../shared is beside the checkout.
DEFAULT_SCHEMA_PATH = SHARED_DIR / "sendgrid" / "tsg_mail_v3.json"
SEND_PATH = "/v3/mail/send"
MAX_RECIPIENTS = 1000
MAX_CUSTOM_ARGS_BYTES = 10_000
MAX_SUBSTITUTIONS_BYTES = 10_000
#: Headers SendGrid does not let a request set (compared case-insensitively).
RESERVED_HEADERS = frozenset(
    {
        "x-sg-id",
        "x-sg-eid",
        "received",
        "dkim-signature",
        "content-type",
        "content-transfer-encoding",
        "to",
        "from",
        "subject",
        "reply-to",
        "cc",
        "bcc",
    }
)
_HELP = "https://www.twilio.com/docs/sendgrid/api-reference/mail-send/errors"
_BODY_POINTER = "#/components/requestBodies/PostMailSend/content/application~1json/schema"
_SCHEMA_URI = "urn:sendgrid:tsg_mail_v3"


# --------------------------------------------------------------------------- what is recorded


@dataclass(frozen=True)
class Received:
    """One recipient's copy of an accepted request, as SendGrid would deliver it."""

    email: str
    name: str | None
    kind: str  # "to", "cc" or "bcc"
    subject: str
    text: str | None
    html: str | None
    headers: dict[str, str]  # top-level merged with the personalization's; never substituted
    custom_args: dict[str, str]  # top-level merged with the personalization's, substituted
    categories: list[str]
    from_email: str
    from_name: str | None
    reply_to: str | None
    message_id: str
    request_number: int  # index into FakeSendGrid.requests
    personalization_index: int


@dataclass(frozen=True)
class RecordedRequest:
    raw: bytes
    body: Any  # parsed JSON, or None when it did not parse
    status: int | None  # None: the connection was dropped without an answer
    headers: dict[str, str]
    message_id: str | None = None


def _path_of(target: str) -> str:
    """The path of a request target, also in the absolute form a client sends to a proxy
    (``POST http://host/v3/mail/send``): the fake can stand in for a proxy too."""
    return urlsplit(target).path


# --------------------------------------------------------------------------- validation


def _error(field_name: str | None, message: str) -> dict[str, Any]:
    return {"message": message, "field": field_name, "help": _HELP}


def _is_address(value: Any) -> bool:
    return isinstance(value, str) and re.fullmatch(r"[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+", value) is not None


def _string_map_errors(value: Any, where: str, what: str) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, dict):
        return [_error(where, f"{what} must be an object of string keys and string values.")]
    bad = [k for k, v in value.items() if not isinstance(v, str)]
    if bad:
        return [_error(where, f"{what} values must be strings (not: {', '.join(map(repr, bad[:5]))}).")]
    return []


def _header_errors(headers: Any, where: str) -> list[dict[str, Any]]:
    errors = _string_map_errors(headers, where, "Headers")
    if not errors and isinstance(headers, dict):
        reserved = sorted(k for k in headers if k.lower() in RESERVED_HEADERS)
        if reserved:
            errors.append(_error(where, f"These headers are reserved and cannot be set: {', '.join(reserved)}."))
    return errors


def _json_size(mapping: dict[str, Any]) -> int:
    return len(json.dumps(mapping, ensure_ascii=False).encode("utf-8"))


def essential_errors(body: Any) -> list[dict[str, Any]]:
    """The mistakes that matter, checked with or without the official schema.

    Each error is SendGrid-shaped and names the field; a problem with one recipient names its
    personalization (``personalizations.{i}...``) so the sender can drop just that recipient.
    """
    if not isinstance(body, dict):
        return [_error(None, "The request body must be a JSON object.")]
    errors: list[dict[str, Any]] = []
    add = errors.append
    uses_template = isinstance(body.get("template_id"), str) and body["template_id"] != ""

    sender = body.get("from")
    if not isinstance(sender, dict) or not _is_address(sender.get("email")):
        add(
            _error(
                "from.email",
                "The from object must be provided for every email send. "
                "It is an object that requires the email parameter.",
            )
        )
    reply_to = body.get("reply_to")
    if reply_to is not None and (not isinstance(reply_to, dict) or not _is_address(reply_to.get("email"))):
        add(_error("reply_to.email", "The reply_to email does not contain a valid address."))

    content = body.get("content")
    if content is None and uses_template:
        pass
    elif not isinstance(content, list) or not content:
        add(
            _error(
                "content",
                "Unless a valid template_id is provided, the content parameter is required. "
                "There must be at least one defined content block.",
            )
        )
    else:
        types: list[str] = []
        for i, part in enumerate(content):
            if not isinstance(part, dict) or not isinstance(part.get("type"), str) or not part["type"]:
                add(_error(f"content.{i}.type", "The content type must be a non-empty string."))
                continue
            if not isinstance(part.get("value"), str) or not part["value"]:
                add(
                    _error(f"content.{i}.value", "The content value must be a string at least one character in length.")
                )
            types.append(part["type"].lower())
        if (
            "text/plain" in types
            and types.index("text/plain") != 0
            or "text/html" in types
            and types.index("text/html") != (1 if "text/plain" in types else 0)
        ):
            add(
                _error(
                    "content",
                    "If present, text/plain must be first, followed by text/html, followed by any other content.",
                )
            )

    categories = body.get("categories")
    if categories is not None and (
        not isinstance(categories, list)
        or len(categories) > 10
        or not all(isinstance(c, str) and 0 < len(c) <= 255 for c in categories)
        or len(set(categories)) != len(categories)
    ):
        add(_error("categories", "Categories must be at most 10 unique non-empty strings of at most 255 characters."))

    top_args = body.get("custom_args")
    errors.extend(_string_map_errors(top_args, "custom_args", "Custom args"))
    top_args = top_args if isinstance(top_args, dict) else {}
    errors.extend(_header_errors(body.get("headers"), "headers"))

    subject = body.get("subject")
    has_subject = isinstance(subject, str) and subject != ""
    personalizations = body.get("personalizations")
    if not isinstance(personalizations, list) or not 1 <= len(personalizations) <= MAX_RECIPIENTS:
        add(
            _error(
                "personalizations",
                f"The personalizations field is required and must have at least one "
                f"and at most {MAX_RECIPIENTS} personalization objects.",
            )
        )
        personalizations = personalizations[:MAX_RECIPIENTS] if isinstance(personalizations, list) else []

    seen: dict[str, str] = {}
    total = 0
    missing_subject = False
    for i, p in enumerate(personalizations):
        where = f"personalizations.{i}"
        if not isinstance(p, dict):
            add(_error(where, "Each personalization must be an object."))
            continue
        if not isinstance(p.get("to"), list) or not p["to"]:
            add(
                _error(
                    f"{where}.to",
                    "The to array is required for all personalization objects, "
                    "and must have at least one email object with a valid email address.",
                )
            )
        for kind in ("to", "cc", "bcc"):
            addresses = p.get(kind) or []
            if not isinstance(addresses, list):
                add(_error(f"{where}.{kind}", f"The {kind} field must be an array of email objects."))
                continue
            for j, address in enumerate(addresses):
                total += 1
                email = address.get("email") if isinstance(address, dict) else None
                if not _is_address(email):
                    add(_error(f"{where}.{kind}.{j}.email", "Does not contain a valid address."))
                    continue
                key = email.lower()
                if key in seen:
                    add(
                        _error(
                            f"{where}.{kind}.{j}.email",
                            f"Each email address should be unique within one request; already in {seen[key]}.",
                        )
                    )
                else:
                    seen[key] = f"{where}.{kind}.{j}"
        p_subject = p.get("subject")
        if p_subject is not None and (not isinstance(p_subject, str) or not p_subject):
            add(_error(f"{where}.subject", "The subject must be a string at least one character in length."))
        elif p_subject is None and not has_subject:
            missing_subject = True

        subs = p.get("substitutions")
        sub_errors = _string_map_errors(subs, f"{where}.substitutions", "Substitutions")
        errors.extend(sub_errors)
        if not sub_errors and isinstance(subs, dict) and _json_size(subs) > MAX_SUBSTITUTIONS_BYTES:
            add(
                _error(
                    f"{where}.substitutions",
                    f"Substitutions may not exceed {MAX_SUBSTITUTIONS_BYTES} bytes per personalization.",
                )
            )
        args = p.get("custom_args")
        arg_errors = _string_map_errors(args, f"{where}.custom_args", "Custom args")
        errors.extend(arg_errors)
        if not arg_errors and _json_size({**top_args, **(args or {})}) > MAX_CUSTOM_ARGS_BYTES:
            add(
                _error(
                    f"{where}.custom_args",
                    f"The custom arguments (top-level and personalization together) "
                    f"may not exceed {MAX_CUSTOM_ARGS_BYTES} bytes.",
                )
            )
        errors.extend(_header_errors(p.get("headers"), f"{where}.headers"))

    if missing_subject and not uses_template:
        add(
            _error(
                "subject",
                "The subject is required. You can get around this requirement if you use a template "
                "with a subject defined or if every personalization has a subject defined.",
            )
        )
    if total > MAX_RECIPIENTS:
        add(
            _error(
                "personalizations",
                f"The total number of recipients (to, cc and bcc, over all "
                f"personalizations) must be no more than {MAX_RECIPIENTS}; got {total}.",
            )
        )
    return errors


def schema_validator(schema_path: Path | str):
    """A callable ``body -> [SendGrid-style errors]`` from the official OpenAPI document.

    The request body schema is referenced in place (so its ``$ref``s to ``#/components/...``
    resolve inside the document) and checked with JSON Schema 2020-12, OpenAPI 3.1's dialect,
    including ``format: email``. One patch: the top-level ``custom_args`` is typed ``string`` in
    the document but SendGrid takes (and documents) an object of string values.
    """
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    document = copy.deepcopy(json.loads(Path(schema_path).read_text(encoding="utf-8")))
    body_schema = document["components"]["requestBodies"]["PostMailSend"]["content"]["application/json"]["schema"]
    body_schema["properties"]["custom_args"] = {"type": "object", "additionalProperties": {"type": "string"}}
    registry = Registry().with_resource(
        _SCHEMA_URI, Resource.from_contents(document, default_specification=DRAFT202012)
    )
    validator = Draft202012Validator(
        {"$ref": _SCHEMA_URI + _BODY_POINTER}, registry=registry, format_checker=Draft202012Validator.FORMAT_CHECKER
    )

    def validate(body: Any) -> list[dict[str, Any]]:
        found = []
        for error in validator.iter_errors(body):
            where = ".".join(str(part) for part in error.absolute_path) or None
            found.append(_error(where, f"schema: {error.message[:300]}"))
            if len(found) >= 20:
                break
        return found

    return validate


# --------------------------------------------------------------------------- substitution


def _substituter(substitutions: dict[str, str]):
    """Single pass, longest key first: a value is never substituted again."""
    if not substitutions:
        return lambda text: text
    pattern = re.compile("|".join(re.escape(k) for k in sorted(substitutions, key=len, reverse=True)))
    return lambda text: pattern.sub(lambda m: substitutions[m.group(0)], text) if text else text


# --------------------------------------------------------------------------- the server


class _Handler(BaseHTTPRequestHandler):
    server_version = "FakeSendGrid/1.0"
    protocol_version = "HTTP/1.1"  # connections stay open between requests unless a side closes
    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.fake.lock:
            self.server.fake.connection_count += 1

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        self.server.fake._handle(self, raw)

    def do_GET(self) -> None:
        self._answer(
            405 if _path_of(self.path) == SEND_PATH else 404,
            {"errors": [_error(None, "method or path not supported by the fake")]},
        )

    def _answer(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        data = b"" if body is None else body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if data:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if data:
            self.wfile.write(data)

    def _drop(self) -> None:
        """Close without a byte of answer: the client sees the connection end (RemoteDisconnected)."""
        self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    fake: FakeSendGrid

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up (it timed out, or was dropped on purpose) is not news."""
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class FakeSendGrid:
    """See the module docstring. ``schema_path=None`` runs the essential checks only."""

    def __init__(
        self,
        *,
        api_key: str = DEFAULT_API_KEY,
        schema_path: Path | str | None = None,
        record: bool = True,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        """``tls``: a server-side context to answer over HTTPS (``url`` then starts ``https://``)."""
        self.api_key = api_key
        self.tls = tls
        self.schema_path = Path(schema_path) if schema_path else None
        self._validate_schema = schema_validator(self.schema_path) if self.schema_path else None
        self.record = record
        self.lock = threading.Lock()
        self.script: deque[tuple[Any, ...]] = deque()
        self.received: dict[str, list[Received]] = {}
        self.addresses: Counter[str] = Counter()  # every accepted address, even with record=False
        self.requests: list[RecordedRequest] = []
        self.count = 0
        self.request_count = 0
        self.connection_count = 0
        self._stopping = threading.Event()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # ----- lifecycle

    @property
    def url(self) -> str:
        """The host to give the client: ``http://127.0.0.1:<port>`` (the path is /v3/mail/send)."""
        if self._httpd is None:
            raise RuntimeError("the fake SendGrid is not running")
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def send_url(self) -> str:
        return self.url + SEND_PATH

    @property
    def schema_checked(self) -> bool:
        return self._validate_schema is not None

    def start(self) -> FakeSendGrid:
        self._stopping.clear()
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.fake = self
        if self.tls is not None:
            self._httpd.socket = self.tls.wrap_socket(self._httpd.socket, server_side=True)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.01}, name="fake-sendgrid", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes any ("delay", s) in progress
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeSendGrid:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ----- conveniences

    def plan(self, *actions: tuple[Any, ...]) -> None:
        self.script.extend(actions)

    def reset(self) -> None:
        with self.lock:
            self.script.clear()
            self.received.clear()
            self.addresses.clear()
            self.requests.clear()
            self.count = 0
            self.request_count = 0
            self.connection_count = 0

    def inbox(self, email: str) -> list[Received]:
        with self.lock:
            return list(self.received.get(email.lower(), []))

    def bodies(self) -> list[Any]:
        with self.lock:
            return [r.body for r in self.requests]

    # ----- one request

    def _log(self, raw: bytes, body: Any, status: int | None, handler: _Handler, message_id: str | None = None) -> int:
        with self.lock:
            self.requests.append(RecordedRequest(raw, body, status, dict(handler.headers.items()), message_id))
            return len(self.requests) - 1

    def _handle(self, handler: _Handler, raw: bytes) -> None:
        with self.lock:
            self.request_count += 1
        try:
            action = self.script.popleft()
        except IndexError:
            action = None
        kind = action[0] if action else None
        if kind == "delay":
            self._stopping.wait(float(action[1]))
            action = kind = None
        if kind == "drop":
            self._log(raw, None, None, handler)
            return handler._drop()
        if kind == "status":
            status = int(action[1])
            headers = dict(action[2]) if len(action) > 2 and action[2] else {}
            body = action[3] if len(action) > 3 else {"errors": [_error(None, f"scripted answer {status}")]}
            self._log(raw, None, status, handler)
            return handler._answer(status, body, headers)

        if _path_of(handler.path) != SEND_PATH:
            self._log(raw, None, 404, handler)
            return handler._answer(404, {"errors": [_error(None, "not found")]})
        if handler.headers.get("Authorization") != f"Bearer {self.api_key}":
            self._log(raw, None, 401, handler)
            return handler._answer(
                401, {"errors": [_error(None, "The provided authorization grant is invalid, expired, or revoked")]}
            )
        try:
            data = gzip.decompress(raw) if handler.headers.get("Content-Encoding", "").lower() == "gzip" else raw
            body = json.loads(data)
        except (ValueError, OSError):
            self._log(raw, None, 400, handler)
            return handler._answer(400, {"errors": [_error(None, "Bad Request: the body is not valid JSON")]})

        errors = (self._validate_schema(body) if self._validate_schema else []) + essential_errors(body)
        if not errors and kind == "reject_email":
            field_name = _find_address(body, str(action[1]))
            if field_name:
                errors = [_error(field_name, "Does not contain a valid address.")]
        if errors:
            self._log(raw, body, 400, handler)
            return handler._answer(400, {"errors": errors})

        if (body.get("mail_settings") or {}).get("sandbox_mode", {}).get("enable") is True:
            self._log(raw, body, 200, handler)
            return handler._answer(200)

        message_id = secrets.token_urlsafe(16)
        number = self._log(raw, body, 202, handler, message_id)
        self._deliver(body, message_id, number)
        if kind == "drop_after_accept":
            return handler._drop()
        handler._answer(202, None, {"X-Message-Id": message_id})
        if kind == "close_after":
            handler.close_connection = True

    def _deliver(self, body: dict[str, Any], message_id: str, number: int) -> None:
        addresses = [
            a["email"].lower() for p in body["personalizations"] for k in ("to", "cc", "bcc") for a in p.get(k) or []
        ]
        with self.lock:
            self.addresses.update(addresses)
        if not self.record:
            with self.lock:
                self.count += len(addresses)
            return
        parts = {c["type"].lower(): c["value"] for c in body.get("content") or []}
        sender = body["from"]
        top_headers = body.get("headers") or {}
        top_args = body.get("custom_args") or {}
        copies: list[Received] = []
        for index, p in enumerate(body["personalizations"]):
            fill = _substituter(p.get("substitutions") or {})
            subject = fill(p.get("subject") or body.get("subject") or "")
            text, html = fill(parts.get("text/plain")), fill(parts.get("text/html"))
            headers = {**top_headers, **(p.get("headers") or {})}
            args = {k: fill(v) for k, v in {**top_args, **(p.get("custom_args") or {})}.items()}
            for kind in ("to", "cc", "bcc"):
                for address in p.get(kind) or []:
                    copies.append(
                        Received(
                            email=address["email"],
                            name=address.get("name"),
                            kind=kind,
                            subject=subject,
                            text=text,
                            html=html,
                            headers=headers,
                            custom_args=args,
                            categories=list(body.get("categories") or []),
                            from_email=sender["email"],
                            from_name=sender.get("name"),
                            reply_to=(body.get("reply_to") or {}).get("email"),
                            message_id=message_id,
                            request_number=number,
                            personalization_index=index,
                        )
                    )
        with self.lock:
            for c in copies:
                self.received.setdefault(c.email.lower(), []).append(c)
            self.count += len(copies)


def _find_address(body: dict[str, Any], email: str) -> str | None:
    wanted = email.lower()
    for i, p in enumerate(body.get("personalizations") or []):
        for kind in ("to", "cc", "bcc"):
            for j, address in enumerate(p.get(kind) or []):
                if str(address.get("email", "")).lower() == wanted:
                    return f"personalizations.{i}.{kind}.{j}.email"
    return None


# --------------------------------------------------------------------------- pytest fixture

try:
    import pytest
except ImportError:  # benchmarks without pytest still get FakeSendGrid
    pytest = None  # type: ignore[assignment]

if pytest is not None:

    @pytest.fixture
    def fake_sendgrid() -> Iterator[FakeSendGrid]:
        """A running fake; checks against the official schema too when ../shared is present."""
        schema = DEFAULT_SCHEMA_PATH if DEFAULT_SCHEMA_PATH.exists() else None
        with FakeSendGrid(schema_path=schema) as server:
            yield server
