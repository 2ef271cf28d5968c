"""Transports: the SendGrid request body, the SendGrid transport against a local fake, MIME, outbox.

Nothing here talks to the real SendGrid: every request goes to ``fake_sendgrid`` on 127.0.0.1.
"""

from __future__ import annotations

import copy
import email
import email.policy
import json
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest

from fake_sendgrid import (  # the fake_sendgrid fixture comes from conftest.py
    FakeSendGrid,
    essential_errors,
    schema_validator,
)
from newsletter.delivery import (
    BatchOutcome,
    CampaignMessage,
    ErrorKind,
    OutboxTransport,
    Recipient,
    SendGridTransport,
    TransportError,
    build_mime,
    build_request_body,
    encode_request_body,
)

PLACEHOLDER = re.compile(r"%%[a-z_]+%%")


def personalise(content: str, values: Mapping[str, str]) -> str:
    """Stand-in for ``render.personalise``: one pass, unknown placeholders left alone."""
    return PLACEHOLDER.sub(lambda m: values.get(m.group(0), m.group(0)), content)


def make_message(**changes: object) -> CampaignMessage:
    fields = dict(
        campaign_id=12,
        subject="%%first_name%%, a new way through depression",
        html='<p>Hi %%first_name_html%%,</p><p><a href="https://news.example.test/c/%%token%%/1">Read</a></p>'
        '<img src="https://news.example.test/o/%%token%%.gif" alt="">',
        text="Hi %%first_name%%,\n\nRead: https://news.example.test/c/%%token%%/1\n",
        from_email="newsletter@clinic.example",
        from_name="Riverside Clinic",
        reply_to="care@clinic.example",
        category="campaign-12",
        sending_domain="clinic.example",
    )
    fields.update(changes)
    return CampaignMessage(**fields)  # type: ignore[arg-type]


def make_recipient(i: int, email_address: str | None = None, name: str | None = "default") -> Recipient:
    first = f"Name{i}" if name == "default" else name
    token = f"tok{i:05d}.sig"
    return Recipient(
        delivery_id=1000 + i,
        email=email_address or f"person{i}@example.org",
        name=first,
        substitutions={"%%first_name%%": first or "there", "%%first_name_html%%": first or "there", "%%token%%": token},
        unsubscribe_url=f"https://news.example.test/u/{token}",
    )


def make_recipients(n: int) -> list[Recipient]:
    return [make_recipient(i) for i in range(n)]


@pytest.fixture
def bare_fake() -> FakeSendGrid:
    """The fake without the official schema: only its own essential checks stand."""
    with FakeSendGrid(schema_path=None) as server:
        yield server


def transport_for(server: FakeSendGrid, **kwargs: object) -> SendGridTransport:
    kwargs.setdefault("timeout", 0.5)
    return SendGridTransport(kwargs.pop("api_key", server.api_key), host=server.url, **kwargs)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- the request body


def test_body_is_valid_for_the_official_schema_and_the_fakes_checks(sendgrid_schema_path: Path) -> None:
    body = build_request_body(make_message(), make_recipients(3), sandbox=True)
    assert schema_validator(sendgrid_schema_path)(body) == []
    assert essential_errors(body) == []


def test_schema_validator_resolves_refs_and_patches_custom_args(sendgrid_schema_path: Path) -> None:
    validate = schema_validator(sendgrid_schema_path)
    body = build_request_body(make_message(), make_recipients(2), sandbox=False)
    # The document types top-level custom_args as a string; unpatched it would refuse our object.
    raw = json.loads(sendgrid_schema_path.read_text())
    assert (
        raw["components"]["requestBodies"]["PostMailSend"]["content"]["application/json"]["schema"]["properties"][
            "custom_args"
        ]["type"]
        == "string"
    )
    assert validate(body) == []

    broken = copy.deepcopy(body)
    broken["from"]["email"] = "not-an-address"  # via $ref MailFrom, format: email
    broken["personalizations"][1]["to"][0]["email"] = 42  # via $ref MailTo
    broken["custom_args"] = {"campaign_id": 12}  # the patch: values are strings
    broken["categories"] = [f"c{i}" for i in range(11)]
    fields = {e["field"] for e in validate(broken)}
    assert {"from.email", "personalizations.1.to.0.email", "custom_args.campaign_id", "categories"} <= fields


@pytest.mark.parametrize("sandbox", [False, True])
def test_encoded_body_parses_to_exactly_the_built_body(sandbox: bool) -> None:
    """The send path posts ``encode_request_body``'s text; it must mean what the reference
    builder's dict means, with names and values that need escaping."""
    recipients = [
        make_recipient(0),
        make_recipient(1, name=None),
        make_recipient(2, "zoe@example.org", name='Zoë "Z" O\'Brien <admin>'),
        make_recipient(3, "line@example.org", name="Tab\tand\nnewline \u2028 \U0001f600 \\ back"),
    ]
    recipients[2] = replace(
        recipients[2],
        substitutions={
            **recipients[2].substitutions,
            "%%first_name%%": 'Zoë "Z"',
            "%%first_name_html%%": "Zo&euml; &quot;Z&quot;",
        },
    )
    message = make_message()
    text = encode_request_body(message, recipients, sandbox=sandbox)
    assert text.isascii()
    assert json.loads(text) == build_request_body(message, recipients, sandbox=sandbox)


def test_encoded_body_refuses_what_the_builder_refuses() -> None:
    with pytest.raises(ValueError, match="not a string"):
        encode_request_body(make_message(), [replace(make_recipient(0), substitutions={"%%token%%": 7})])
    with pytest.raises(ValueError, match="twice"):
        encode_request_body(
            make_message(), [make_recipient(1, "Ann@Example.org"), make_recipient(2, "ann@example.ORG")]
        )
    with pytest.raises(ValueError, match="at most 1000"):
        encode_request_body(make_message(), make_recipients(1001))


def test_body_shape() -> None:
    recipients = [make_recipient(0), make_recipient(1, name=None)]
    body = build_request_body(make_message(), recipients, sandbox=False)

    assert body["from"] == {"email": "newsletter@clinic.example", "name": "Riverside Clinic"}
    assert body["reply_to"] == {"email": "care@clinic.example"}
    assert body["subject"] == "%%first_name%%, a new way through depression"
    assert [c["type"] for c in body["content"]] == ["text/plain", "text/html"]
    assert body["categories"] == ["campaign-12"]
    assert body["custom_args"] == {"campaign_id": "12"}
    assert body["mail_settings"]["sandbox_mode"]["enable"] is False
    tracking = body["tracking_settings"]
    assert tracking["click_tracking"]["enable"] is False and tracking["open_tracking"]["enable"] is False

    first, second = body["personalizations"]  # in the batch's order: index i is recipient i
    assert first["to"] == [{"email": "person0@example.org", "name": "Name0"}]
    assert second["to"] == [{"email": "person1@example.org"}]  # no name: no key
    assert first["substitutions"] == recipients[0].substitutions
    assert first["custom_args"] == {"delivery_id": "1000", "campaign_id": "12"}
    assert first["headers"] == {
        "List-Unsubscribe": "<https://news.example.test/u/tok00000.sig>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
    assert "person0" not in json.dumps(first["custom_args"])  # ids only
    assert (
        build_request_body(make_message(), recipients, sandbox=True)["mail_settings"]["sandbox_mode"]["enable"] is True
    )


def test_body_refuses_bad_batches_before_sending() -> None:
    with pytest.raises(ValueError, match="1001 recipients"):
        build_request_body(make_message(), make_recipients(1001), sandbox=False)
    with pytest.raises(ValueError, match="twice"):
        build_request_body(
            make_message(), [make_recipient(1, "Ann@Example.org"), make_recipient(2, "ann@example.ORG")], sandbox=False
        )
    with pytest.raises(ValueError, match="not a string"):
        bad = make_recipient(1)
        bad.substitutions["%%token%%"] = None  # type: ignore[assignment]
        build_request_body(make_message(), [bad], sandbox=False)
    with pytest.raises(ValueError):
        build_request_body(make_message(), [], sandbox=False)


# --------------------------------------------------------------------------- the fake's own checks


def _valid_body() -> dict:
    return build_request_body(make_message(), make_recipients(3), sandbox=False)


def _mutate(body: dict, change: str) -> None:
    p = body["personalizations"]
    if change == "no from.email":
        del body["from"]["email"]
    elif change == "no subject anywhere":
        del body["subject"]
    elif change == "empty content":
        body["content"] = []
    elif change == "html before text":
        body["content"].reverse()
    elif change == "empty content value":
        body["content"][0]["value"] = ""
    elif change == "no personalizations":
        body["personalizations"] = []
    elif change == "1001 personalizations":
        body["personalizations"] = [{"to": [{"email": f"p{i}@example.org"}]} for i in range(1001)]
    elif change == "1001 recipients in 501 personalizations":
        body["personalizations"] = [
            {"to": [{"email": f"p{i}@example.org"}], "cc": [{"email": f"c{i}@example.org"}]} for i in range(500)
        ] + [{"to": [{"email": "last@example.org"}]}]
    elif change == "duplicate address":
        p[1]["to"][0]["email"] = p[0]["to"][0]["email"].upper()
    elif change == "bad address":
        p[0]["to"][0]["email"] = "nobody"
    elif change == "no to":
        del p[0]["to"]
    elif change == "substitution not a string":
        p[0]["substitutions"]["%%token%%"] = 5
    elif change == "custom_arg not a string":
        p[0]["custom_args"]["delivery_id"] = 1000
    elif change == "top custom_arg not a string":
        body["custom_args"]["campaign_id"] = 12
    elif change == "custom_args too big":
        p[0]["custom_args"]["blob"] = "x" * 10_001
    elif change == "header not a string":
        p[0]["headers"]["X-Priority"] = 1
    elif change == "reserved header":
        p[0]["headers"]["Subject"] = "override"
    else:  # pragma: no cover
        raise AssertionError(change)


ESSENTIAL_RULES = [
    ("no from.email", "from.email"),
    ("no subject anywhere", "subject"),
    ("empty content", "content"),
    ("html before text", "content"),
    ("empty content value", "content.0.value"),
    ("no personalizations", "personalizations"),
    ("1001 personalizations", "personalizations"),
    ("1001 recipients in 501 personalizations", "personalizations"),
    ("duplicate address", "personalizations.1.to.0.email"),
    ("bad address", "personalizations.0.to.0.email"),
    ("no to", "personalizations.0.to"),
    ("substitution not a string", "personalizations.0.substitutions"),
    ("custom_arg not a string", "personalizations.0.custom_args"),
    ("top custom_arg not a string", "custom_args"),
    ("custom_args too big", "personalizations.0.custom_args"),
    ("header not a string", "personalizations.0.headers"),
    ("reserved header", "personalizations.0.headers"),
]


@pytest.fixture
def http() -> httpx.Client:
    with httpx.Client(trust_env=False, timeout=5) as client:
        yield client


def _post(http: httpx.Client, server: FakeSendGrid, body: object, key: str | None = None) -> httpx.Response:
    return http.post(
        server.send_url,
        content=json.dumps(body),
        headers={"Authorization": f"Bearer {key or server.api_key}", "Content-Type": "application/json"},
    )


def test_fake_accepts_a_valid_body(bare_fake: FakeSendGrid, http: httpx.Client) -> None:
    answer = _post(http, bare_fake, _valid_body())
    assert answer.status_code == 202
    assert answer.headers["X-Message-Id"]
    assert bare_fake.count == 3


@pytest.mark.parametrize(("change", "field"), ESSENTIAL_RULES, ids=[c for c, _ in ESSENTIAL_RULES])
def test_fake_catches_each_essential_mistake(
    bare_fake: FakeSendGrid, http: httpx.Client, change: str, field: str
) -> None:
    body = _valid_body()
    _mutate(body, change)
    answer = _post(http, bare_fake, body)
    assert answer.status_code == 400
    errors = answer.json()["errors"]
    assert all(set(e) == {"message", "field", "help"} for e in errors)
    assert field in {e["field"] for e in errors}, errors
    assert bare_fake.count == 0 and bare_fake.received == {}


def test_fake_accepts_subject_in_every_personalization(bare_fake: FakeSendGrid, http: httpx.Client) -> None:
    body = _valid_body()
    del body["subject"]
    for i, p in enumerate(body["personalizations"]):
        p["subject"] = f"Hello {i}"
    assert _post(http, bare_fake, body).status_code == 202
    assert bare_fake.inbox("person2@example.org")[0].subject == "Hello 2"


def test_fake_checks_auth_and_json(bare_fake: FakeSendGrid, http: httpx.Client) -> None:
    assert _post(http, bare_fake, _valid_body(), key="SG.wrong").status_code == 401
    assert http.post(bare_fake.send_url, content=json.dumps(_valid_body())).status_code == 401
    garbled = http.post(bare_fake.send_url, content=b"{nope", headers={"Authorization": f"Bearer {bare_fake.api_key}"})
    assert garbled.status_code == 400
    assert bare_fake.count == 0


def test_fake_with_schema_reports_schema_errors(sendgrid_schema_path: Path, http: httpx.Client) -> None:
    with FakeSendGrid(schema_path=sendgrid_schema_path) as server:
        body = _valid_body()
        body["categories"] = ["same", "same"]  # uniqueItems, from the schema
        body["ip_pool_name"] = "x"  # minLength 2: only the schema knows this one
        answer = _post(http, server, body)
        assert answer.status_code == 400
        assert "ip_pool_name" in {e["field"] for e in answer.json()["errors"]}
        assert _post(http, server, _valid_body()).status_code == 202


def test_fake_does_not_substitute_in_headers(bare_fake: FakeSendGrid, http: httpx.Client) -> None:
    """Why each personalization carries its own complete List-Unsubscribe: SendGrid does not fill headers."""
    body = _valid_body()
    body["personalizations"][0]["headers"]["List-Unsubscribe"] = "<https://news.example.test/u/%%token%%>"
    assert _post(http, bare_fake, body).status_code == 202
    got = bare_fake.inbox("person0@example.org")[0]
    assert got.headers["List-Unsubscribe"] == "<https://news.example.test/u/%%token%%>"
    assert "tok00000.sig" in got.html


# --------------------------------------------------------------------------- the SendGrid transport


def test_full_batch_of_1000_is_accepted_and_1001_refused_locally(fake_sendgrid: FakeSendGrid) -> None:
    transport = transport_for(fake_sendgrid, timeout=10)
    outcome = transport.send_batch(make_message(), make_recipients(1000))
    assert len(outcome.sent) == 1000 and outcome.failed == {}
    assert fake_sendgrid.count == 1000 and len(fake_sendgrid.requests) == 1

    with pytest.raises(ValueError, match="1001"):
        transport.send_batch(make_message(), make_recipients(1001))
    assert fake_sendgrid.request_count == 1  # nothing went out


def test_duplicate_addresses_are_refused_before_sending(fake_sendgrid: FakeSendGrid) -> None:
    recipients = [make_recipient(1, "Ann@Example.org"), make_recipient(2), make_recipient(3, "ann@example.org")]
    with pytest.raises(ValueError, match="twice"):
        transport_for(fake_sendgrid).send_batch(make_message(), recipients)
    assert fake_sendgrid.request_count == 0


def test_each_recipient_gets_their_own_substitutions_and_headers(fake_sendgrid: FakeSendGrid) -> None:
    recipients = make_recipients(5)
    outcome = transport_for(fake_sendgrid).send_batch(make_message(), recipients)
    message_id = fake_sendgrid.requests[0].message_id
    assert message_id and outcome.sent == {r.delivery_id: message_id for r in recipients}  # from X-Message-Id

    others = {r.substitutions["%%token%%"] for r in recipients}
    for r in recipients:
        (got,) = fake_sendgrid.inbox(r.email)
        token = r.substitutions["%%token%%"]
        assert got.subject == f"{r.name}, a new way through depression"
        assert f"Hi {r.name}," in got.text and f"/c/{token}/1" in got.text
        assert f"/o/{token}.gif" in got.html and f"Hi {r.name},</p>" in got.html
        for other in others - {token}:
            assert other not in got.html and other not in got.text and other not in str(got.headers)
        assert "%%" not in got.html + got.text + got.subject
        assert got.headers == {
            "List-Unsubscribe": f"<{r.unsubscribe_url}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        }
        assert got.custom_args == {"campaign_id": "12", "delivery_id": str(r.delivery_id)}
        assert got.from_name == "Riverside Clinic" and got.categories == ["campaign-12"]


def test_sandbox_mode_answers_200_and_delivers_nothing(fake_sendgrid: FakeSendGrid) -> None:
    outcome = transport_for(fake_sendgrid, sandbox=True).send_batch(make_message(), make_recipients(3))
    assert set(outcome.sent) == {1000, 1001, 1002}
    assert fake_sendgrid.requests[0].status == 200 and fake_sendgrid.count == 0


def test_empty_batch_sends_nothing(fake_sendgrid: FakeSendGrid) -> None:
    assert transport_for(fake_sendgrid).send_batch(make_message(), []) == BatchOutcome()
    assert fake_sendgrid.request_count == 0


def test_wrong_key_pauses(fake_sendgrid: FakeSendGrid) -> None:
    with pytest.raises(TransportError) as caught:
        transport_for(fake_sendgrid, api_key="SG.revoked-key").send_batch(make_message(), make_recipients(2))
    error = caught.value
    assert error.status == 401 and error.kind is ErrorKind.PAUSE
    assert "API key rejected" in error.message and "SG.revoked-key" not in error.message


def test_forbidden_pauses(fake_sendgrid: FakeSendGrid) -> None:
    fake_sendgrid.plan(
        (
            "status",
            403,
            {},
            {
                "errors": [
                    {
                        "message": "The from address does not match a verified Sender Identity.",
                        "field": "from",
                        "help": None,
                    }
                ]
            },
        )
    )
    with pytest.raises(TransportError) as caught:
        transport_for(fake_sendgrid).send_batch(make_message(), make_recipients(2))
    assert caught.value.kind is ErrorKind.PAUSE and caught.value.status == 403
    assert "sender not verified or key lacks mail.send" in caught.value.message


def test_rate_limit_is_retryable_with_retry_after(fake_sendgrid: FakeSendGrid) -> None:
    fake_sendgrid.plan(("status", 429, {"X-RateLimit-Reset": str(int(time.time()) + 30)}), ("status", 429))
    transport = transport_for(fake_sendgrid)
    with pytest.raises(TransportError) as caught:
        transport.send_batch(make_message(), make_recipients(2))
    error = caught.value
    assert error.status == 429 and error.kind is ErrorKind.RATE_LIMITED
    assert error.retry_after is not None and 25 <= error.retry_after <= 31
    with pytest.raises(TransportError) as caught:
        transport.send_batch(make_message(), make_recipients(2))
    assert caught.value.kind is ErrorKind.RATE_LIMITED and caught.value.retry_after is None
    assert fake_sendgrid.count == 0


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_retryable(fake_sendgrid: FakeSendGrid, status: int) -> None:
    fake_sendgrid.plan(("status", status))
    with pytest.raises(TransportError) as caught:
        transport_for(fake_sendgrid).send_batch(make_message(), make_recipients(2))
    assert caught.value.status == status and caught.value.kind is ErrorKind.RETRYABLE


def test_too_large_is_not_retryable_as_is(fake_sendgrid: FakeSendGrid) -> None:
    fake_sendgrid.plan(("status", 413))
    with pytest.raises(TransportError) as caught:
        transport_for(fake_sendgrid).send_batch(make_message(), make_recipients(2))
    assert caught.value.status == 413 and caught.value.kind is ErrorKind.SPLIT and not caught.value.rejected


def test_dropped_connection_is_ambiguous(fake_sendgrid: FakeSendGrid) -> None:
    fake_sendgrid.plan(("drop",))
    with pytest.raises(TransportError) as caught:
        transport_for(fake_sendgrid).send_batch(make_message(), make_recipients(2))
    assert caught.value.kind is ErrorKind.AMBIGUOUS and caught.value.status is None


def test_answer_lost_after_acceptance_is_ambiguous_and_was_delivered(fake_sendgrid: FakeSendGrid) -> None:
    """The reason ambiguous batches are never resent blindly: the provider may have sent them."""
    fake_sendgrid.plan(("drop_after_accept",))
    with pytest.raises(TransportError) as caught:
        transport_for(fake_sendgrid).send_batch(make_message(), make_recipients(2))
    assert caught.value.kind is ErrorKind.AMBIGUOUS
    assert fake_sendgrid.count == 2


def test_slow_answer_times_out_as_ambiguous(fake_sendgrid: FakeSendGrid) -> None:
    fake_sendgrid.plan(("delay", 3))
    started = time.monotonic()
    with pytest.raises(TransportError) as caught:
        transport_for(fake_sendgrid, timeout=0.5).send_batch(make_message(), make_recipients(2))
    assert time.monotonic() - started < 2.0  # the timeout really applies
    assert caught.value.kind is ErrorKind.AMBIGUOUS


def test_unreachable_host_is_retryable_not_ambiguous() -> None:
    with socket.socket() as probe:  # a port with nobody listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    transport = SendGridTransport("SG.some-key", host=f"http://127.0.0.1:{port}", timeout=0.5)
    with pytest.raises(TransportError) as caught:
        transport.send_batch(make_message(), make_recipients(1))
    assert caught.value.kind is ErrorKind.RETRYABLE


# --------------------------------------------------------------------------- kept-alive connections


def test_batches_share_one_kept_alive_connection(fake_sendgrid: FakeSendGrid) -> None:
    transport = transport_for(fake_sendgrid)
    for start in range(0, 50, 10):
        transport.send_batch(make_message(), [make_recipient(i) for i in range(start, start + 10)])
    assert fake_sendgrid.request_count == 5 and fake_sendgrid.count == 50
    assert fake_sendgrid.connection_count == 1
    transport.close()
    transport.send_batch(make_message(), [make_recipient(99)])  # closed: the next batch opens a new one
    assert fake_sendgrid.connection_count == 2


def test_errors_arrive_as_before_over_a_kept_connection(fake_sendgrid: FakeSendGrid) -> None:
    """A 429 answer on a reused connection is read whole, its headers readable, and the
    connection stays in use."""
    transport = transport_for(fake_sendgrid)
    transport.send_batch(make_message(), make_recipients(2))
    fake_sendgrid.plan(("status", 429, {"X-RateLimit-Reset": str(int(time.time()) + 30)}))
    with pytest.raises(TransportError) as caught:
        transport.send_batch(make_message(), [make_recipient(5)])
    assert caught.value.status == 429 and 25 <= caught.value.retry_after <= 31
    transport.send_batch(make_message(), [make_recipient(6)])
    assert fake_sendgrid.count == 3 and fake_sendgrid.connection_count == 1


def test_a_connection_the_server_closed_while_idle_is_not_reused(fake_sendgrid: FakeSendGrid) -> None:
    """Writing the next request into a connection the server has closed would lose its answer
    and make the batch ambiguous; the client sees the close first and opens a new one."""
    transport = transport_for(fake_sendgrid)
    fake_sendgrid.plan(("close_after",))
    transport.send_batch(make_message(), make_recipients(2))
    time.sleep(0.2)  # the server's close reaches the client's socket
    outcome = transport.send_batch(make_message(), [make_recipient(7)])
    assert set(outcome.sent) == {make_recipient(7).delivery_id}
    assert fake_sendgrid.connection_count == 2 and fake_sendgrid.count == 3


def test_a_connection_idle_too_long_is_replaced(fake_sendgrid: FakeSendGrid) -> None:
    transport = transport_for(fake_sendgrid)
    transport.connections.max_idle = 0.05
    transport.send_batch(make_message(), [make_recipient(1)])
    time.sleep(0.1)
    transport.send_batch(make_message(), [make_recipient(2)])
    assert fake_sendgrid.connection_count == 2


def test_each_sending_thread_has_its_own_connection(fake_sendgrid: FakeSendGrid) -> None:
    fake_sendgrid.plan(("delay", 0.3), ("delay", 0.3))  # both requests out at the same time
    transport = transport_for(fake_sendgrid, timeout=5)
    batches = [[make_recipient(i)] for i in range(2)] + [[make_recipient(i)] for i in range(2, 4)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(lambda batch: transport.send_batch(make_message(), batch), batches))
    assert fake_sendgrid.count == 4 and fake_sendgrid.connection_count == 2


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 signed by its own key, and the key (PEM files)."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake sendgrid")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


def test_https_checks_the_certificate_and_keeps_the_connection(tmp_path: Path) -> None:
    import ssl

    cert_file, key_file = _self_signed(tmp_path)
    server_side = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_side.load_cert_chain(cert_file, key_file)
    with FakeSendGrid(tls=server_side) as server:
        assert server.url.startswith("https://")
        # The system's trust store does not know this certificate: refused before any request
        # is written, so retryable and never ambiguous.
        with pytest.raises(TransportError) as caught:
            transport_for(server, timeout=5).send_batch(make_message(), [make_recipient(1)])
        assert caught.value.kind is ErrorKind.RETRYABLE
        assert server.count == 0

        trusting = ssl.create_default_context(cafile=str(cert_file))
        transport = transport_for(server, timeout=5, ssl_context=trusting)
        for i in range(3):
            transport.send_batch(make_message(), [make_recipient(i)])
        assert server.count == 3 and server.connection_count == 1  # the refused handshake never got that far


def test_connections_of_ended_threads_are_closed(fake_sendgrid: FakeSendGrid) -> None:
    """A worker keeps its transport for days; each dispatch sends from new threads."""
    transport = transport_for(fake_sendgrid, timeout=5)
    for i in range(3):  # three dispatches, one sending thread each, one after the other
        thread = threading.Thread(target=transport.send_batch, args=(make_message(), [make_recipient(i)]))
        thread.start()
        thread.join()
    assert fake_sendgrid.count == 3 and fake_sendgrid.connection_count == 3
    assert transport.connections.open_connections() == 1  # the last thread's; the others were closed


def test_behind_a_proxy_the_librarys_own_path_stays(
    fake_sendgrid: FakeSendGrid, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    transport = SendGridTransport("SG.some-key", host="https://api.sendgrid.com")
    assert transport.connections is None
    transport.close()  # nothing to close, and no error
    assert transport_for(fake_sendgrid).connections is not None  # plain http: no proxy set


def test_behind_a_proxy_the_official_client_posts_the_same_body(
    fake_sendgrid: FakeSendGrid, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fake stands in for the proxy: the library sends it the absolute URL, as to any proxy."""
    monkeypatch.setenv("HTTP_PROXY", fake_sendgrid.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    transport = SendGridTransport(fake_sendgrid.api_key, host="http://sendgrid.example.invalid", timeout=5)
    assert transport.connections is None
    recipients = make_recipients(3)
    outcome = transport.send_batch(make_message(), recipients)
    assert set(outcome.sent) == {r.delivery_id for r in recipients}
    assert fake_sendgrid.requests[0].body == json.loads(encode_request_body(make_message(), recipients))
    fake_sendgrid.plan(("status", 429, {"X-RateLimit-Reset": str(int(time.time()) + 30)}))
    with pytest.raises(TransportError) as caught:
        transport.send_batch(make_message(), recipients)
    assert caught.value.kind is ErrorKind.RATE_LIMITED and 25 <= (caught.value.retry_after or 0) <= 31


def test_400_naming_one_recipient_rejects_just_them(fake_sendgrid: FakeSendGrid) -> None:
    recipients = make_recipients(4)
    fake_sendgrid.plan(("reject_email", recipients[2].email))
    with pytest.raises(TransportError) as caught:
        transport_for(fake_sendgrid).send_batch(make_message(), recipients)
    error = caught.value
    assert error.status == 400 and error.kind is ErrorKind.REJECTED
    assert set(error.rejected) == {2}  # personalization 2 is recipient 2
    assert "personalizations.2.to.0.email" in error.rejected[2]
    assert fake_sendgrid.count == 0


def test_400_naming_no_recipient_is_a_plain_error(fake_sendgrid: FakeSendGrid) -> None:
    fake_sendgrid.plan(("status", 400, {}, {"errors": [{"message": "bad content", "field": "content", "help": None}]}))
    with pytest.raises(TransportError) as caught:
        transport_for(fake_sendgrid).send_batch(make_message(), make_recipients(2))
    assert caught.value.status == 400 and caught.value.kind is ErrorKind.SPLIT and not caught.value.rejected
    assert "content: bad content" in caught.value.message


def test_api_key_is_never_logged(fake_sendgrid: FakeSendGrid, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    transport = transport_for(fake_sendgrid)
    transport.send_batch(make_message(), make_recipients(2))
    fake_sendgrid.plan(("status", 500))
    with pytest.raises(TransportError):
        transport.send_batch(make_message(), make_recipients(2))
    assert fake_sendgrid.api_key not in caplog.text
    assert "person0@example.org" not in caplog.text  # nor the payload
    assert fake_sendgrid.api_key not in repr(transport)


def test_the_request_carries_the_official_librarys_headers(fake_sendgrid: FakeSendGrid) -> None:
    """The transport posts itself but keeps the library's conventions for the key and agent."""
    import sendgrid

    transport_for(fake_sendgrid).send_batch(make_message(), make_recipients(1))
    headers = {k.lower(): v for k, v in fake_sendgrid.requests[0].headers.items()}
    assert headers["authorization"] == f"Bearer {fake_sendgrid.api_key}"
    assert headers["user-agent"] == f"sendgrid/{sendgrid.__version__};python"
    assert headers["content-type"] == "application/json"


def test_empty_key_is_refused_not_taken_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENDGRID_API_KEY", "SG.from-the-environment")
    with pytest.raises(ValueError):
        SendGridTransport("", host="http://127.0.0.1:9")


# --------------------------------------------------------------------------- MIME


def _parse(data: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(data, policy=email.policy.default)  # type: ignore[return-value]


def test_mime_is_a_proper_multipart_alternative() -> None:
    message = make_message(html="<p>Hi %%first_name_html%% — café</p>" + "<span>" + "x" * 5000 + "</span>")
    recipient = make_recipient(7, name="Zoë")
    when = datetime(2025, 3, 4, 5, 6, 7, tzinfo=timezone.utc)
    mime = build_mime(message, recipient, personalise=personalise, date=when)
    data = mime.as_bytes()

    lines = data.split(b"\r\n")
    assert max(len(line) for line in lines) <= 78  # far under RFC 5322's 998
    assert b"\n" not in data.replace(b"\r\n", b"")  # CRLF throughout

    parsed = _parse(data)
    assert parsed.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in parsed.iter_parts()] == ["text/plain", "text/html"]
    for part in parsed.iter_parts():
        assert part.get_content_charset() == "utf-8"
        assert part["Content-Transfer-Encoding"] == "quoted-printable"
        assert "MIME-Version" not in part
    assert parsed["MIME-Version"] == "1.0"
    assert parsed["Subject"] == "Zoë, a new way through depression"
    assert parsed["From"].addresses[0].display_name == "Riverside Clinic"
    assert parsed["From"].addresses[0].addr_spec == "newsletter@clinic.example"
    assert parsed["To"].addresses[0].addr_spec == "person7@example.org"
    assert parsed["Reply-To"] == "care@clinic.example"
    assert parsed["Date"].datetime == when
    assert re.fullmatch(r"<[^@<>]+@clinic\.example>", parsed["Message-ID"])
    assert parsed["List-Unsubscribe"] == "<https://news.example.test/u/tok00007.sig>"
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert (parsed["X-Newsletter-Campaign"], parsed["X-Newsletter-Delivery"]) == ("12", "1007")
    html = parsed.get_body(("html",)).get_content()
    assert html.startswith("<p>Hi Zoë — café</p>") and "x" * 5000 in html
    assert "Read: https://news.example.test/c/tok00007.sig/1" in parsed.get_body(("plain",)).get_content()


def test_mime_refuses_header_injection_and_bad_addresses() -> None:
    sneaky = Recipient(1, "a@example.org", None, {"%%first_name%%": "x\r\nBcc: evil@example.com"}, "https://n/u/t")
    with pytest.raises(ValueError):
        build_mime(make_message(), sneaky, personalise=personalise)
    with pytest.raises(ValueError):
        build_mime(make_message(), make_recipient(1, "not an address@@x"), personalise=personalise)


# --------------------------------------------------------------------------- outbox


def test_outbox_writes_one_parseable_eml_per_recipient(tmp_path: Path) -> None:
    recipients = make_recipients(3)
    outbox = OutboxTransport(tmp_path / "outbox", personalise=personalise)
    outcome = outbox.send_batch(make_message(), recipients)

    folder = tmp_path / "outbox" / "campaign-12"
    assert sorted(p.name for p in folder.iterdir()) == ["1000.eml", "1001.eml", "1002.eml"]  # ids only, no temp files
    assert outcome.failed == {}
    for r in recipients:
        parsed = _parse((folder / f"{r.delivery_id}.eml").read_bytes())
        assert parsed["To"].addresses[0].addr_spec == r.email
        assert outcome.sent[r.delivery_id] == parsed["Message-ID"]
        assert r.substitutions["%%token%%"] in parsed.get_body(("html",)).get_content()


def test_outbox_write_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    outbox = OutboxTransport(tmp_path, personalise=personalise, fsync=False)
    real_replace, calls = os.replace, []

    def crash_on_second(src: str, dst: str) -> None:
        calls.append(dst)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash_on_second)
    with pytest.raises(TransportError) as caught:
        outbox.send_batch(make_message(), make_recipients(3))
    assert caught.value.kind is ErrorKind.RETRYABLE
    files = sorted(p.name for p in (tmp_path / "campaign-12").iterdir())
    assert files == ["1000.eml"]  # whole or absent; no half file, no temp left behind
    _parse((tmp_path / "campaign-12" / "1000.eml").read_bytes())

    monkeypatch.setattr(os, "replace", real_replace)
    outcome = outbox.send_batch(make_message(), make_recipients(3))  # the retry replaces, never doubles
    assert len(outcome.sent) == 3 and len(list((tmp_path / "campaign-12").iterdir())) == 3


def test_outbox_fails_only_the_unwritable_recipient_and_refuses_duplicates(tmp_path: Path) -> None:
    outbox = OutboxTransport(tmp_path, personalise=personalise)
    outcome = outbox.send_batch(make_message(), [make_recipient(1), make_recipient(2, "broken address@@x")])
    assert set(outcome.sent) == {1001} and set(outcome.failed) == {1002}
    assert "broken" not in outcome.failed[1002]
    with pytest.raises(ValueError, match="twice"):
        outbox.send_batch(make_message(), [make_recipient(1, "a@example.org"), make_recipient(2, "A@example.org")])
