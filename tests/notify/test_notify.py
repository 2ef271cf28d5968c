"""Staff mail, sent once: the outbox's .eml and SendGrid (through the local fake), inline images
that Gmail shows, retry after a failure, never twice after a success, never on a guess after a
lost answer. Every test runs on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import email
import logging
import struct
import threading
import zlib
from email import policy

import pytest
from sqlalchemy import select

from newsletter.db import session_scope
from newsletter.db.models import Notification
from newsletter.notify import StaffMailError, notification_status, outbox_path, send_staff_mail


def png(width: int = 2, height: int = 1) -> bytes:
    """A real, tiny PNG (grey pixels), built by hand so the test needs no image library."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


CHART = png()
HTML = '<h1>Week 12</h1><p>Opens by day:</p><img src="cid:opens" alt="Opens by day" width="600">'
TEXT = "Week 12\nOpens by day: see the HTML version."


def mail(engine, settings, key: str = "weekly:2026-W12", images=None, **kw) -> bool:  # type: ignore[no-untyped-def]
    args = dict(
        key=key,
        kind="weekly_report",
        to="director@clinic.example",
        subject="Weekly report — week 12",
        html=HTML,
        text=TEXT,
        images={"opens": CHART} if images is None else images,
    )
    args.update(kw)
    return send_staff_mail(engine, settings, **args)


def rows(engine) -> list[tuple[str, str, str, str]]:  # type: ignore[no-untyped-def]
    with session_scope(engine) as s:
        return [
            (n.key, n.kind, n.recipient, n.status) for n in s.scalars(select(Notification).order_by(Notification.id))
        ]


@pytest.fixture
def sg_settings(settings, fake_sendgrid):  # type: ignore[no-untyped-def]
    return settings.with_overrides(
        sendgrid_api_key=fake_sendgrid.api_key, sendgrid_host=fake_sendgrid.url, sendgrid_timeout=5.0
    )


# --- outbox ------------------------------------------------------------------------------------


def test_outbox_writes_a_complete_message_with_inline_images_once(engine, settings) -> None:  # type: ignore[no-untyped-def]
    assert mail(engine, settings) is True
    path = outbox_path(settings, "weekly:2026-W12")
    assert path.name == "weekly-2026-W12.eml" and path.parent.name == "staff"
    msg = email.message_from_bytes(path.read_bytes(), policy=policy.default)
    assert msg["To"] == "director@clinic.example" and msg["Subject"] == "Weekly report — week 12"
    assert msg["From"] == f"{settings.from_name} <{settings.from_email}>" and msg["Message-ID"]
    assert msg.get_content_type() == "multipart/alternative"
    text_part, related = msg.get_payload()
    assert text_part.get_content_type() == "text/plain" and "Opens by day" in text_part.get_content()
    assert related.get_content_type() == "multipart/related"
    html_part, image = related.get_payload()
    assert html_part.get_content_type() == "text/html" and 'src="cid:opens"' in html_part.get_content()
    assert image.get_content_type() == "image/png" and image["Content-ID"] == "<opens>"
    assert image.get_content_disposition() == "inline" and image.get_content() == CHART
    assert rows(engine) == [("weekly:2026-W12", "weekly_report", "director@clinic.example", "sent")]

    path.unlink()
    assert mail(engine, settings) is False  # the key is spent: nothing written again
    assert not path.exists()


def test_outbox_without_images_is_plain_alternative(engine, settings) -> None:  # type: ignore[no-untyped-def]
    assert mail(engine, settings, key="lead-alert:7", images={}, html="<p>New lead</p>", text="New lead")
    msg = email.message_from_bytes(outbox_path(settings, "lead-alert:7").read_bytes(), policy=policy.default)
    assert [p.get_content_type() for p in msg.get_payload()] == ["text/plain", "text/html"]
    assert notification_status(engine, "lead-alert:7") == "sent"


def test_an_unwritable_outbox_fails_and_a_later_call_retries(engine, settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    blocker = tmp_path / "blocked"
    blocker.write_text("a file where the folder should be")
    broken = settings.with_overrides(outbox_dir=str(blocker))
    with pytest.raises(StaffMailError) as caught:
        mail(engine, broken)
    assert caught.value.retryable
    assert notification_status(engine, "weekly:2026-W12") == "failed"
    with session_scope(engine) as s:
        assert "not writable" in s.scalar(select(Notification.detail))
    assert mail(engine, settings) is True  # retried, now sent
    assert rows(engine)[0][3] == "sent" and outbox_path(settings, "weekly:2026-W12").exists()
    assert mail(engine, settings) is False


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"images": {"opens": b"GIF89a..."}}, "not PNG"),
        ({"images": {"other": CHART}}, "not referenced"),
        ({"images": {"../x": CHART}}, "image name"),
        ({"to": "a@x.example, b@x.example"}, "one address"),
        ({"subject": "two\nlines"}, "one non-empty line"),
        ({"key": ""}, "key"),
    ],
)
def test_malformed_mail_is_refused_before_anything_is_claimed(engine, settings, change, words) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=words):
        mail(engine, settings, **change)
    assert rows(engine) == []


# --- SendGrid ----------------------------------------------------------------------------------


def test_sendgrid_gets_inline_attachments_gmail_shows(engine, sg_settings, fake_sendgrid) -> None:  # type: ignore[no-untyped-def]
    assert mail(engine, sg_settings) is True
    [body] = fake_sendgrid.bodies()
    [attachment] = body["attachments"]
    assert attachment["disposition"] == "inline" and attachment["content_id"] == "opens"
    assert attachment["type"] == "image/png" and base64.b64decode(attachment["content"]) == CHART
    assert body["mail_settings"]["sandbox_mode"]["enable"] is False
    assert body["tracking_settings"]["click_tracking"]["enable"] is False
    [received] = fake_sendgrid.inbox("director@clinic.example")
    assert received.subject == "Weekly report — week 12" and 'src="cid:opens"' in received.html
    assert received.text == TEXT and received.from_email == sg_settings.from_email
    assert rows(engine)[0][3] == "sent"
    with session_scope(engine) as s:
        assert s.scalar(select(Notification.detail)) == received.message_id
    assert mail(engine, sg_settings) is False
    assert fake_sendgrid.request_count == 1


def test_sendgrid_failure_is_retried_by_the_next_call_and_sent_once(engine, sg_settings, fake_sendgrid) -> None:  # type: ignore[no-untyped-def]
    fake_sendgrid.plan(("status", 503))
    with pytest.raises(StaffMailError, match="503") as caught:
        mail(engine, sg_settings)
    assert caught.value.retryable and notification_status(engine, "weekly:2026-W12") == "failed"
    assert fake_sendgrid.inbox("director@clinic.example") == []
    assert mail(engine, sg_settings) is True
    assert mail(engine, sg_settings) is False
    assert len(fake_sendgrid.inbox("director@clinic.example")) == 1


def test_a_lost_answer_is_never_resent_on_a_guess(engine, sg_settings, fake_sendgrid) -> None:  # type: ignore[no-untyped-def]
    fake_sendgrid.plan(("drop_after_accept",))  # SendGrid took it; the answer never came
    with pytest.raises(StaffMailError) as caught:
        mail(engine, sg_settings)
    assert not caught.value.retryable and notification_status(engine, "weekly:2026-W12") == "ambiguous"
    assert mail(engine, sg_settings) is False
    assert len(fake_sendgrid.inbox("director@clinic.example")) == 1


def test_sandbox_mode_counts_as_sent(engine, sg_settings, fake_sendgrid) -> None:  # type: ignore[no-untyped-def]
    assert mail(engine, sg_settings.with_overrides(sendgrid_sandbox=True)) is True
    assert fake_sendgrid.bodies()[0]["mail_settings"]["sandbox_mode"]["enable"] is True
    assert notification_status(engine, "weekly:2026-W12") == "sent"


def test_two_processes_racing_send_once(engine, sg_settings, fake_sendgrid) -> None:  # type: ignore[no-untyped-def]
    fake_sendgrid.plan(("delay", 0.3))  # the first send is slow: the second arrives meanwhile
    results: list[bool] = []
    start = threading.Barrier(4)

    def go() -> None:
        start.wait()
        results.append(mail(engine, sg_settings))

    threads = [threading.Thread(target=go) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False, False, False, True]
    assert len(fake_sendgrid.inbox("director@clinic.example")) == 1


def test_the_api_key_never_reaches_a_log_or_an_error(engine, sg_settings, fake_sendgrid, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.DEBUG)
    fake_sendgrid.plan(("status", 401))
    with pytest.raises(StaffMailError) as caught:
        mail(engine, sg_settings)
    assert mail(engine, sg_settings) is True
    assert fake_sendgrid.api_key not in caplog.text and fake_sendgrid.api_key not in str(caught.value)
    with session_scope(engine) as s:
        assert all(fake_sendgrid.api_key not in (n.detail or "") for n in s.scalars(select(Notification)))
