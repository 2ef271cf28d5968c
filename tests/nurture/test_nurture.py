"""Nurture sequences: YAML, local time and DST, the tick (entry, exits, conditions, exactly
once), the simulator and the commands. Time is always passed in (``now``); nothing sleeps.
Database tests run on SQLite and PostgreSQL (the ``engine`` fixture)."""

from __future__ import annotations

import json
import subprocess
import threading
from datetime import datetime, time, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select, update

from cli_runs import run_newsletter
from factories import deliveries_by_email, suppress
from hostile import billion_laughs, bounded
from newsletter.campaigns import create_campaign, import_article, send_campaign
from newsletter.config import Settings
from newsletter.content import Article, load_article
from newsletter.db import make_engine, models, session_scope
from newsletter.delivery import BatchOutcome, OutboxTransport
from newsletter.errors import UserError
from newsletter.leads import STATUSES as LEAD_STATUSES
from newsletter.nurture import (
    QuietHours,
    enroll,
    list_summaries,
    load_sequence,
    nurture_tick,
    parse_events,
    remove,
    sequence_status,
    simulate,
)
from newsletter.nurture.clock import add_delay, due_at, next_allowed
from newsletter.nurture.engine import TickResult, advance_due
from newsletter.nurture.plan import Facts, exit_reason
from newsletter.nurture.sequence_reader import load_all
from newsletter.nurture.sequences import Delay, parse_delay
from newsletter.nurture.steps import render_step
from newsletter.render import personalise
from newsletter.tracking import RequestInfo, record_click, record_open, unsubscribe
from repo_paths import REPO_DIR

REPO = REPO_DIR
UTC = timezone.utc
NY = ZoneInfo("America/New_York")
LONDON = ZoneInfo("Europe/London")
TOKYO = ZoneInfo("Asia/Tokyo")
NIGHT = QuietHours.parse("20:00-09:00")
BROWSER = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36"
PERSON = RequestInfo(ip="203.0.113.7", user_agent=BROWSER, accept_language="en-US,en;q=0.9")
SCANNER = RequestInfo(ip="203.0.113.8", user_agent=None)  # no user agent: a machine
SEED_SLUG = "the-emergence-of-ketamine-assisted-psychotherapy-transforming-mental-health"

TWO_STEPS = """
name: {name}
steps:
  - template: nurture/first-consultation.mjml.j2
    subject: One
    delay: 1d
  - template: nurture/ketamine-and-esketamine.mjml.j2
    subject: Two
    delay: 1d
{extra}"""


# --- helpers ------------------------------------------------------------------------------------


class Recording:
    """A transport that accepts everything and remembers who got what (or fails, on demand)."""

    name = "recording"

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.sent: list[tuple[int, int, str]] = []

    def prepare(self, message, recipients):  # type: ignore[no-untyped-def]
        return None  # nothing to make ahead (see delivery.Transport)

    def send_batch(self, message, recipients):  # type: ignore[no-untyped-def]
        if self.fail:
            raise RuntimeError("power cut in the middle of the send")
        self.sent += [(message.campaign_id, r.delivery_id, r.email) for r in recipients]
        return BatchOutcome(sent={r.delivery_id: f"msg-{r.delivery_id}" for r in recipients})

    def close(self) -> None:
        pass


@pytest.fixture
def aud(tmp_path: Path) -> Path:
    folder = tmp_path / "aud"
    (folder / "nurture").mkdir(parents=True)
    return folder


def write(aud: Path, name: str, body: str) -> Path:
    path = aud / "nurture" / f"{name}.yaml"
    path.write_text(body, encoding="utf-8")
    return path


def two_steps(aud: Path, name: str = "test-seq", extra: str = "") -> str:
    write(aud, name, TWO_STEPS.format(name=name, extra=extra))
    return name


def reader(
    engine,
    email: str,
    tz: str | None = "UTC",
    *,
    tags: tuple[str, ...] = (),  # type: ignore[no-untyped-def]
    lead_status: str | None = None,
    score: int = 0,
    first_name: str = "Sam",
) -> int:
    with session_scope(engine) as s:
        sub = models.Subscriber(email=email, first_name=first_name, timezone=tz, status="active", attributes={})
        s.add(sub)
        s.flush()
        s.add_all(models.SubscriberTag(subscriber_id=sub.id, tag=t) for t in tags)
        if lead_status:
            s.add(models.Lead(subscriber_id=sub.id, status=lead_status, score=score, source="cta_click"))
        return sub.id


def enrollment(engine, email: str) -> models.NurtureEnrollment:  # type: ignore[no-untyped-def]
    with session_scope(engine) as s:
        sid = s.scalar(select(models.Subscriber.id).where(models.Subscriber.email == email))
        return s.scalar(select(models.NurtureEnrollment).where(models.NurtureEnrollment.subscriber_id == sid))


def ledger(engine, email: str | None = None) -> list[tuple[str, str, str]]:  # type: ignore[no-untyped-def]
    """(campaign name, email, status) of every nurture ledger row."""
    D, C, S = models.Delivery, models.Campaign, models.Subscriber
    with session_scope(engine) as s:
        query = (
            select(C.name, S.email, D.status)
            .join(C, C.id == D.campaign_id)
            .join(S, S.id == D.subscriber_id)
            .where(C.kind == "nurture")
            .order_by(C.name, S.email)
        )
        if email:
            query = query.where(S.email == email)
        return [tuple(r) for r in s.execute(query)]  # type: ignore[misc]


def tick(engine, settings: Settings, now: datetime, transport=None) -> TickResult:  # type: ignore[no-untyped-def]
    return nurture_tick(engine, settings, now, transport or Recording())


def local(moment: datetime, tz: ZoneInfo) -> str:
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z")


# --- local time, quiet hours, daylight saving ----------------------------------------------------


def test_quiet_hours_parse_and_contain() -> None:
    quiet = QuietHours.parse("20:00-09:00")
    assert quiet.contains(time(20, 0)) and quiet.contains(time(3, 0)) and quiet.contains(time(8, 59))
    assert not quiet.contains(time(9, 0)) and not quiet.contains(time(19, 59))
    lunch = QuietHours.parse("12:00-13:30")
    assert lunch.contains(time(12, 30)) and not lunch.contains(time(13, 30)) and not lunch.contains(time(8, 0))
    assert not QuietHours.parse("none").active and not QuietHours.parse("").active
    for bad in ("20-9", "20:00", "25:00-09:00", "09:00-09:00"):
        with pytest.raises(UserError) as error:
            QuietHours.parse(bad)
        assert error.value.where == "NEWSLETTER_QUIET_HOURS"


def test_next_allowed_moves_out_of_quiet_hours_in_the_recipients_zone() -> None:
    evening = datetime(2026, 6, 10, 21, 30, tzinfo=NY)
    assert local(next_allowed(evening, NY, NIGHT), NY) == "2026-06-11 09:00 EDT"
    early = datetime(2026, 6, 10, 3, 0, tzinfo=NY)
    assert local(next_allowed(early, NY, NIGHT), NY) == "2026-06-10 09:00 EDT"
    noon = datetime(2026, 6, 10, 12, 0, tzinfo=NY)
    assert next_allowed(noon, NY, NIGHT) == noon
    # The same instant is night in Tokyo and afternoon in London.
    instant = datetime(2026, 6, 10, 13, 0, tzinfo=UTC)
    assert local(next_allowed(instant, TOKYO, NIGHT), TOKYO) == "2026-06-11 09:00 JST"
    assert next_allowed(instant, LONDON, NIGHT) == instant


@pytest.mark.parametrize(
    "tz, before, after, hours",
    [
        (NY, datetime(2026, 3, 7, 10, 0), "2026-03-08 10:00 EDT", 23),  # spring forward
        (NY, datetime(2026, 10, 31, 10, 0), "2026-11-01 10:00 EST", 25),  # fall back
        (LONDON, datetime(2026, 3, 28, 10, 0), "2026-03-29 10:00 BST", 23),
        (LONDON, datetime(2026, 10, 24, 10, 0), "2026-10-25 10:00 GMT", 25),
    ],
)
def test_a_day_keeps_the_local_clock_across_dst(tz, before, after, hours) -> None:  # type: ignore[no-untyped-def]
    anchor = before.replace(tzinfo=tz)
    moved = add_delay(anchor, Delay(days=1), tz)
    assert local(moved, tz) == after
    assert moved - anchor == timedelta(hours=hours)
    # Hours are elapsed time: 24h across the change is not the same local clock.
    assert add_delay(anchor, parse_delay("24h"), tz) - anchor == timedelta(hours=24)


def test_nonexistent_and_repeated_local_times_are_deterministic() -> None:
    # 02:30 does not exist on 2026-03-08 in New York: read with the old offset, it is 03:30 EDT.
    skipped = add_delay(datetime(2026, 3, 7, 2, 30, tzinfo=NY), Delay(days=1), NY)
    assert skipped == datetime(2026, 3, 8, 7, 30, tzinfo=UTC) and local(skipped, NY) == "2026-03-08 03:30 EDT"
    assert local(due_at(datetime(2026, 3, 7, 2, 30, tzinfo=NY), Delay(days=1), NY, NIGHT), NY) == "2026-03-08 09:00 EDT"
    # 01:30 happens twice on 2026-11-01: the first one (EDT) is taken.
    twice = add_delay(datetime(2026, 10, 31, 1, 30, tzinfo=NY), Delay(days=1), NY)
    assert twice == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)
    # London: 01:30 is skipped on 2026-03-29 (→ 02:30 BST) and repeated on 2026-10-25 (→ BST one).
    assert (
        local(add_delay(datetime(2026, 3, 28, 1, 30, tzinfo=LONDON), Delay(days=1), LONDON), LONDON)
        == "2026-03-29 02:30 BST"
    )
    assert add_delay(datetime(2026, 10, 24, 1, 30, tzinfo=LONDON), Delay(days=1), LONDON) == datetime(
        2026, 10, 25, 0, 30, tzinfo=UTC
    )
    # Quiet hours ending inside the repeated hour: the second 01:30 for a moment past the first.
    quiet = QuietHours.parse("20:00-01:30")
    second_hour = datetime(2026, 11, 1, 6, 15, tzinfo=UTC)  # 01:15 EST, the repeated hour
    assert next_allowed(second_hour, NY, quiet) == datetime(2026, 11, 1, 6, 30, tzinfo=UTC)
    first_hour = datetime(2026, 11, 1, 5, 15, tzinfo=UTC)  # 01:15 EDT
    assert next_allowed(first_hour, NY, quiet) == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)


def test_delays_parse() -> None:
    assert parse_delay("2d 4h") == Delay(2, 4 * 3600, "2d 4h")
    assert parse_delay("90m").seconds == 5400 and parse_delay("1w").days == 7 and parse_delay("0").days == 0
    for bad in ("2x", "d", "", "400d", True):
        with pytest.raises(ValueError):
            parse_delay(bad)


# --- YAML -----------------------------------------------------------------------------------------


def test_the_shipped_sequence_loads_and_every_step_renders(seed_article_path: Path) -> None:
    sequence = load_sequence("connect-today")
    assert [s.name for s in sequence.steps] == [
        "first-consultation",
        "ketamine-and-esketamine",
        "neuroplasticity-and-psychotherapy",
        "last-reminder",
    ]
    assert sequence.entry.article == SEED_SLUG == load_article(seed_article_path).slug
    assert sequence.entry.campaign_kind == "newsletter"
    # Its promise: whoever books, or whom staff mark client / not a fit / lost, leaves at once;
    # a new or contacted lead stays.
    leaves = {status: exit_reason(sequence, Facts(lead_status=status)) for status in LEAD_STATUSES}
    assert leaves == {
        "new": None,
        "contacted": None,
        "booked": "lead_booked",
        "client": "lead_client",
        "not_a_fit": "lead_not_a_fit",
        "lost": "lead_lost",
    }
    settings = Settings(public_url="https://news.example.test")
    for article in (load_article(seed_article_path), Article(title="stand-in", slug="connect-today", sections=())):
        for step in sequence.steps:
            rendered = render_step(settings, sequence, step, article)
            kinds = {link.kind for link in rendered.links}
            assert "cta" in kinds and ("read_more" in kinds) == bool(article.sections)
            booking = [link for link in rendered.links if link.kind == "cta"]
            assert booking[0].url == settings.booking_url and booking[0].label == "Book a consultation"
            for part in (rendered.html, rendered.text):
                assert "/u/%%token%%" in part and settings.postal_address.split(",")[1].strip() in part
                assert "Connect today" in part  # the footer says why they get this
            assert "%%first_name" in rendered.html and "Hi %%first_name%%," in rendered.text
            words = rendered.text.lower()
            for claim in ("cure", "guarantee", "proven", "100%", "no side effects", "safe and effective"):
                assert claim not in words, (step.name, claim)


def test_copy_states_the_articles_facts(seed_article_path: Path) -> None:
    """The facts the emails repeat are, word for word, the article's own."""
    article_text = " ".join(seed_article_path.read_text(encoding="utf-8").split())
    for fact in (
        "first approved for human use in 1970",
        "nasal spray formulation of ketamine",
        "lower potential for abuse than ketamine",
        "faster onset and shorter duration of action",
        "brain-derived neurotrophic factor (BDNF)",
        "new neural pathways associated with positive emotions and behaviors",
        "more research is needed",
        "Dr. John Krystal, a Yale psychiatrist",
    ):
        assert fact in article_text
    copy = " ".join(
        (REPO / "templates" / "nurture" / "copy" / name).read_text(encoding="utf-8")
        for name in ("ketamine-and-esketamine.j2", "neuroplasticity-and-psychotherapy.j2")
    )
    for fact in (
        "first approved for human use in 1970",
        "nasal spray formulation of ketamine",
        "lower potential for abuse than ketamine",
        "brain-derived neurotrophic factor (BDNF)",
        "new neural pathways associated with positive emotions and behaviors",
        "more research is needed",
        "Dr. John Krystal, a Yale psychiatrist",
    ):
        assert fact in " ".join(copy.split())


@pytest.mark.parametrize(
    "body, where, message",
    [
        (
            "name: bad\nsteps:\n  - template: nurture/first-consultation.mjml.j2\n    subject: One\n    delay: 2x\n",
            ":5",
            "steps[1].delay: '2x' is not a duration",
        ),
        (
            "name: bad\nsteps:\n  - template: nurture/first-consultation.mjml.j2\n    subject: One\n    delay: 1d\n    colour: red\n",
            ":6",
            "steps[1].colour: unknown key",
        ),
        (
            "name: bad\nsteps:\n  - template: nurture/first-consultation.mjml.j2\n    subject: One\n    delay: 1d\n"
            "  - template: nurture/missing.mjml.j2\n    subject: Two\n    delay: 1d\n",
            ":6",
            "step 2: no template 'nurture/missing.mjml.j2'",
        ),
        (
            "name: bad\nsteps:\n  - template: nurture/first-consultation.mjml.j2\n    subject: [unclosed\n",
            ":5",
            "not valid YAML",
        ),
        ("name: other\nsteps: []\n", ":1", "'other' does not match the file name"),
        (
            "name: bad\nsteps:\n  - template: nurture/first-consultation.mjml.j2\n    subject: One\n    delay: 1d\n"
            "    when: {opened: previous}\n",
            ":6",
            "the first step has no previous step",
        ),
        (
            "name: bad\nentry:\n  on: signup\nsteps:\n  - template: nurture/first-consultation.mjml.j2\n    subject: One\n    delay: 1d\n",
            ":3",
            "entry.on: 'signup' is not one of cta_lead",
        ),
        (
            "name: bad\nexit:\n  lead_status: [booked, gone]\nsteps:\n  - template: nurture/first-consultation.mjml.j2\n"
            "    subject: One\n    delay: 1d\n",
            ":3",
            "exit.lead_status[2]: 'gone' is not one of",
        ),
    ],
)
def test_yaml_mistakes_name_the_file_line_and_field(aud: Path, body: str, where: str, message: str) -> None:
    write(aud, "bad", body)
    with pytest.raises(UserError) as error:
        load_sequence("bad", aud)
    assert error.value.where is not None and error.value.where.endswith("nurture/bad.yaml" + where), error.value.where
    assert message in error.value.message, error.value.message


def test_unknown_sequence_lists_the_known_ones(aud: Path) -> None:
    two_steps(aud, "alpha")
    with pytest.raises(UserError, match="available: alpha"):
        load_sequence("beta", aud)


# --- the simulator -----------------------------------------------------------------------------


def test_simulator_shows_the_month_with_local_send_times() -> None:
    sequence = load_sequence("connect-today")
    start = datetime(2026, 3, 5, 15, 40, tzinfo=NY)
    timeline = simulate(sequence, start=start, days=30, events=parse_events("day2:open,day5:click"), tz=NY, quiet=NIGHT)
    sent = [(e.step, e.local) for e in timeline.sent]
    # The 2-day delay crosses the spring-forward night: 15:40 stays 15:40 (EDT now).
    assert sent == [
        (1, "Fri 2026-03-06 15:40 EST"),
        (2, "Sun 2026-03-08 15:40 EDT"),
        (3, "Wed 2026-03-11 15:40 EDT"),
        (4, "Sun 2026-03-15 15:40 EDT"),
    ]
    assert timeline.status == "completed"
    events = [e.note for e in timeline.entries if e.kind == "event"]
    assert events == ["day2:open: opened step 1", "day5:click: clicked in step 2"]


def test_simulator_waits_then_sends_and_honours_quiet_hours() -> None:
    sequence = load_sequence("connect-today")
    start = datetime(2026, 11, 30, 21, 15, tzinfo=LONDON)  # late evening: the first send moves to 09:00
    timeline = simulate(sequence, start=start, days=30, events=[], tz=LONDON, quiet=NIGHT)
    kinds = [(e.kind, e.step, e.local.split(" ", 2)[2]) for e in timeline.entries if e.kind != "enrolled"]
    assert kinds == [
        ("sent", 1, "09:00 GMT"),
        ("sent", 2, "09:00 GMT"),
        ("waiting", 3, "09:00 GMT"),
        ("sent", 3, "09:00 GMT"),
        ("sent", 4, "09:00 GMT"),
        ("completed", None, "09:00 GMT"),
    ]
    waiting = next(e for e in timeline.entries if e.kind == "waiting")
    assert "not opened step 2" in waiting.note
    # An open in the evening while step 3 waits: it goes the next morning, not at night.
    opened = simulate(sequence, start=start, days=30, events=parse_events("day7@22:10:open"), tz=LONDON, quiet=NIGHT)
    step3 = [e for e in opened.entries if e.step == 3]
    assert [e.kind for e in step3] == ["waiting", "deferred", "sent"]
    assert step3[-1].local == "Tue 2026-12-08 09:00 GMT"


def test_simulator_exits_at_once() -> None:
    sequence = load_sequence("connect-today")
    start = datetime(2026, 5, 4, 10, 0, tzinfo=NY)
    booked = simulate(
        sequence, start=start, days=30, events=parse_events("day1:open,day2@11:00:booked"), tz=NY, quiet=NIGHT
    )
    assert [e.step for e in booked.sent] == [1] and booked.status == "exited" and booked.exit_reason == "lead_booked"
    assert booked.entries[-1].local == "Wed 2026-05-06 11:00 EDT"
    gone = simulate(sequence, start=start, days=30, events=parse_events("day3:unsubscribe"), tz=NY, quiet=NIGHT)
    assert gone.exit_reason == "unsubscribed" and len(gone.sent) == 2
    short = simulate(sequence, start=start, days=2, events=[], tz=NY, quiet=NIGHT)
    assert short.status == "active" and short.next_step == 2 and len(short.sent) == 1


def test_event_script_mistakes() -> None:
    assert [e.kind for e in parse_events("day2:open, day5@14:30:click,day6:tag=ketamine,day7:score=12")] == [
        "open",
        "click",
        "tag",
        "score",
    ]
    for bad in ("day2:opn", "2:open", "day2@25:00:open", "day2:score=lots", "day2:lead=vip", "day2:tag="):
        with pytest.raises(UserError) as error:
            parse_events(bad)
        assert error.value.where == "--events" and bad in error.value.message


# --- the tick: time zones and DST --------------------------------------------------------------------


def test_steps_fire_at_local_time_across_zones_and_dst(engine, settings, aud) -> None:  # type: ignore[no-untyped-def]
    config = settings.with_overrides(audiences_dir=str(aud), default_timezone="America/Los_Angeles")
    name = two_steps(aud)
    people = {
        "ny@example.com": "America/New_York",
        "london@example.com": "Europe/London",
        "tokyo@example.com": "Asia/Tokyo",
        "nowhere@example.com": None,
        "mars@example.com": "Mars/Base",
    }
    for email, tz in people.items():
        reader(engine, email, tz)
    # Enrolled Saturday 2026-03-07 15:30 UTC: 10:30 in New York, 15:30 in London, 00:30 (Sunday) in Tokyo,
    # 07:30 in Los Angeles (the default zone, for the missing and the unknown zone).
    start = datetime(2026, 3, 7, 15, 30, tzinfo=UTC)
    for email in people:
        assert enroll(engine, config, name, email, start)[1] is True
    expected = {
        "ny@example.com": datetime(2026, 3, 8, 14, 30, tzinfo=UTC),  # 10:30 EDT: a 23-hour day
        "london@example.com": datetime(2026, 3, 8, 15, 30, tzinfo=UTC),  # 15:30 GMT, 24 hours
        "tokyo@example.com": datetime(2026, 3, 9, 0, 0, tzinfo=UTC),  # Monday 00:30 JST is quiet: 09:00 JST
        "nowhere@example.com": datetime(2026, 3, 8, 16, 0, tzinfo=UTC),  # 07:30 PDT is quiet: 09:00 PDT
        "mars@example.com": datetime(2026, 3, 8, 16, 0, tzinfo=UTC),
    }
    for email, due in expected.items():
        assert enrollment(engine, email).next_due_at == due, email
    for due in sorted(set(expected.values())):
        those = [email for email, when in expected.items() if when == due]
        tick(engine, config, due - timedelta(minutes=1))
        assert not any(ledger(engine, email) for email in those), f"{those} sent before {due}"
        tick(engine, config, due)
        for email in those:
            assert [row[2] for row in ledger(engine, email)] == ["sent"], email
            assert enrollment(engine, email).last_sent_at == due


def test_fall_back_and_london_dst_in_the_tick(engine, settings, aud) -> None:  # type: ignore[no-untyped-def]
    config = settings.with_overrides(audiences_dir=str(aud))
    name = two_steps(aud)
    reader(engine, "ny@example.com", "America/New_York")
    reader(engine, "london@example.com", "Europe/London")
    enroll(engine, config, name, "ny@example.com", datetime(2026, 10, 31, 14, 0, tzinfo=UTC))  # 10:00 EDT
    enroll(engine, config, name, "london@example.com", datetime(2026, 10, 24, 9, 0, tzinfo=UTC))  # 10:00 BST
    assert enrollment(engine, "ny@example.com").next_due_at == datetime(2026, 11, 1, 15, 0, tzinfo=UTC)  # 10:00 EST
    assert enrollment(engine, "london@example.com").next_due_at == datetime(
        2026, 10, 25, 10, 0, tzinfo=UTC
    )  # 10:00 GMT
    tick(engine, config, datetime(2026, 10, 25, 10, 0, tzinfo=UTC))
    assert ledger(engine) == [(f"nurture:{name}:1", "london@example.com", "sent")]
    tick(engine, config, datetime(2026, 11, 1, 14, 59, tzinfo=UTC))
    assert not ledger(engine, "ny@example.com")
    tick(engine, config, datetime(2026, 11, 1, 15, 0, tzinfo=UTC))
    assert ledger(engine, "ny@example.com") == [(f"nurture:{name}:1", "ny@example.com", "sent")]


def test_a_late_tick_at_night_defers_to_the_morning(engine, settings, aud) -> None:  # type: ignore[no-untyped-def]
    config = settings.with_overrides(audiences_dir=str(aud))
    name = two_steps(aud)
    reader(engine, "ny@example.com", "America/New_York")
    enroll(engine, config, name, "ny@example.com", datetime(2026, 6, 1, 16, 0, tzinfo=UTC))  # 12:00 EDT
    # The scheduler was down all afternoon; it comes back at 22:00 EDT.
    result = tick(engine, config, datetime(2026, 6, 3, 2, 0, tzinfo=UTC))
    assert result.deferred == 1 and not ledger(engine)
    assert enrollment(engine, "ny@example.com").next_due_at == datetime(2026, 6, 3, 13, 0, tzinfo=UTC)  # 09:00 EDT
    tick(engine, config, datetime(2026, 6, 3, 13, 0, tzinfo=UTC))
    assert len(ledger(engine)) == 1


# --- the tick: entry from the seed campaign, machine clicks ----------------------------------------


def _seed_campaign(engine, settings, seed_article_path, emails: list[str]) -> tuple[int, dict[str, int]]:  # type: ignore[no-untyped-def]
    for email in emails:
        reader(engine, email, "America/New_York", first_name=email.split("@")[0].title())
    with session_scope(engine) as s:
        slug = import_article(s, seed_article_path).row.slug
        campaign_id = create_campaign(s, settings, article_slug=slug, segment="all").id
    send_campaign(engine, settings, campaign_id, transport=Recording())
    return campaign_id, deliveries_by_email(engine, campaign_id, models.Delivery.id)


def _position(engine, campaign_id: int, kind: str) -> int:  # type: ignore[no-untyped-def]
    with session_scope(engine) as s:
        return s.scalar(
            select(models.CampaignLink.position).where(
                models.CampaignLink.campaign_id == campaign_id, models.CampaignLink.kind == kind
            )
        )


def _cta_position(engine, campaign_id: int) -> int:  # type: ignore[no-untyped-def]
    return _position(engine, campaign_id, "cta")


def test_seed_campaign_readers_who_click_connect_today_enter_and_get_step_one(
    engine, settings, seed_article_path
) -> None:  # type: ignore[no-untyped-def]
    config = settings.with_overrides(quiet_hours="none")
    campaign_id, deliveries = _seed_campaign(
        engine, config, seed_article_path, ["ann@example.com", "bot@example.com", "cal@example.com"]
    )
    cta = _cta_position(engine, campaign_id)
    clicked = models.utcnow() + timedelta(minutes=5)  # well after delivery: not a doubted quick click
    with session_scope(engine) as s:
        person = record_click(s, deliveries["ann@example.com"], cta, PERSON, clicked)
        scanner = record_click(s, deliveries["bot@example.com"], cta, SCANNER, clicked)
    assert person.lead_id is not None and not person.is_machine
    assert scanner.is_machine and scanner.lead_id is None

    first = tick(engine, config, clicked + timedelta(seconds=30))
    assert first.enrolled == 1 and first.queued == 0
    ann = enrollment(engine, "ann@example.com")
    assert ann.sequence == "connect-today" and ann.lead_id == person.lead_id and ann.status == "active"
    assert enrollment(engine, "bot@example.com") is None and enrollment(engine, "cal@example.com") is None
    assert ann.next_due_at == clicked + timedelta(seconds=30) + timedelta(days=1)

    outbox = OutboxTransport(Path(config.outbox_dir), personalise=personalise, fsync=False)
    due = tick(engine, config, ann.next_due_at, outbox)
    assert due.queued == 1 and due.sent == 1 and due.enrolled == 0
    assert ledger(engine) == [("nurture:connect-today:1", "ann@example.com", "sent")]
    with session_scope(engine) as s:
        step = s.scalar(select(models.Campaign).where(models.Campaign.name == "nurture:connect-today:1"))
        assert step.kind == "nurture" and step.article.slug == SEED_SLUG
        assert {link.kind for link in step.links} >= {"cta", "read_more"}
        files = list(Path(config.outbox_dir).glob(f"campaign-{step.id}/*.eml"))
    eml = files[0].read_bytes().decode()
    assert "Subject: What to expect at a first consultation" in eml and "Hi Ann," in eml
    assert "List-Unsubscribe-Post: List-Unsubscribe=One-Click" in eml and "%%" not in eml

    # Later clicks warm the lead but never enroll twice.
    with session_scope(engine) as s:
        record_click(s, deliveries["ann@example.com"], cta, PERSON, clicked + timedelta(hours=1))
    assert tick(engine, config, ann.next_due_at + timedelta(hours=2)).enrolled == 0


def test_the_nurture_email_passes_preflight_checks(engine, settings, seed_article_path) -> None:  # type: ignore[no-untyped-def]
    from newsletter.preflight import check_message
    from newsletter.preflight.run import campaign_context

    config = settings.with_overrides(quiet_hours="none")
    _seed_campaign(engine, config, seed_article_path, [])
    reader(engine, "ann@example.com", "America/New_York")
    now = datetime(2026, 6, 1, 15, 0, tzinfo=UTC)
    enroll(engine, config, "connect-today", "ann@example.com", now)
    outbox = OutboxTransport(Path(config.outbox_dir), personalise=personalise, fsync=False)
    tick(engine, config, now + timedelta(days=1), outbox)
    with session_scope(engine) as s:
        step = s.scalar(select(models.Campaign).where(models.Campaign.name == "nurture:connect-today:1"))
        context = campaign_context(step, config)
        eml = next(Path(config.outbox_dir).glob(f"campaign-{step.id}/*.eml")).read_bytes()
    checks = check_message(
        eml, context=context, only=("size", "mime", "compliance", "links", "subject", "accessibility")
    )
    failed = [(c.name, c.reason) for c in checks if c.status == "fail"]
    assert not failed


def _fake_lead_event(engine, email: str, campaign_id: int, *, machine: bool, when: datetime) -> None:  # type: ignore[no-untyped-def]
    with session_scope(engine) as s:
        sid = s.scalar(select(models.Subscriber.id).where(models.Subscriber.email == email))
        s.add(
            models.Event(
                event_key=f"test-{email}-{when.timestamp()}",
                type="lead",
                campaign_id=campaign_id,
                subscriber_id=sid,
                is_machine=machine,
                machine_reason="burst_clicks" if machine else None,
                occurred_at=when,
            )
        )
        if s.scalar(select(models.Lead.id).where(models.Lead.subscriber_id == sid)) is None:
            s.add(models.Lead(subscriber_id=sid, campaign_id=campaign_id, status="new", source="cta_click"))


def test_entry_filters_and_old_or_machine_leads(engine, settings, seed_article_path) -> None:  # type: ignore[no-untyped-def]
    config = settings.with_overrides(quiet_hours="none")
    campaign_id, _ = _seed_campaign(engine, config, seed_article_path, [])
    now = datetime(2026, 6, 10, 12, 0, tzinfo=UTC)
    for email in (
        "fresh@example.com",
        "old@example.com",
        "burst@example.com",
        "booked@example.com",
        "gone@example.com",
        "other@example.com",
    ):
        reader(engine, email)
    _fake_lead_event(engine, "fresh@example.com", campaign_id, machine=False, when=now - timedelta(hours=1))
    _fake_lead_event(engine, "old@example.com", campaign_id, machine=False, when=now - timedelta(days=8))
    _fake_lead_event(engine, "burst@example.com", campaign_id, machine=True, when=now - timedelta(hours=1))
    _fake_lead_event(engine, "booked@example.com", campaign_id, machine=False, when=now - timedelta(hours=1))
    _fake_lead_event(engine, "gone@example.com", campaign_id, machine=False, when=now - timedelta(hours=1))
    with session_scope(engine) as s:
        s.execute(
            update(models.Lead)
            .where(
                models.Lead.subscriber_id
                == select(models.Subscriber.id).where(models.Subscriber.email == "booked@example.com").scalar_subquery()
            )
            .values(status="booked")
        )
        other = models.Campaign(
            name="Other", subject="Other", segment="all", template="x", status="sent", html="<p>x</p>", text="x"
        )
        s.add(other)
        s.flush()
        other_id = other.id
    suppress(engine, "gone@example.com", "bounced")
    _fake_lead_event(engine, "other@example.com", other_id, machine=False, when=now - timedelta(hours=1))
    assert tick(engine, config, now).enrolled == 1
    assert enrollment(engine, "fresh@example.com") is not None
    for email in (
        "old@example.com",
        "burst@example.com",
        "booked@example.com",
        "gone@example.com",
        "other@example.com",
    ):
        assert enrollment(engine, email) is None, email


# --- exits -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "how, reason",
    [
        ("booked", "lead_booked"),
        ("client", "lead_client"),
        ("unsubscribe", "unsubscribed"),
        ("suppress", "suppressed"),
        ("remove", "removed"),
    ],
)
def test_exits_stop_the_sequence_midway(engine, settings, aud, how, reason) -> None:  # type: ignore[no-untyped-def]
    config = settings.with_overrides(audiences_dir=str(aud), quiet_hours="none")
    name = two_steps(aud)
    reader(engine, "ann@example.com", lead_status="new")
    start = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    enroll(engine, config, name, "ann@example.com", start)
    tick(engine, config, start + timedelta(days=1))
    assert [r[2] for r in ledger(engine)] == ["sent"]
    midway = start + timedelta(days=1, hours=3)
    if how in ("booked", "client"):
        with session_scope(engine) as s:
            s.execute(update(models.Lead).values(status=how))
    elif how == "unsubscribe":
        with session_scope(engine) as s:
            delivery_id = s.scalar(select(models.Delivery.id))
            unsubscribe(s, delivery_id, source="one_click", now=midway)
    elif how == "suppress":
        suppress(engine, "ann@example.com", "complained")
    else:
        assert remove(engine, name, "ann@example.com", midway) is True
        assert remove(engine, name, "ann@example.com", midway) is False
    result = tick(engine, config, midway)
    if how != "remove":
        assert result.exited == {reason: 1}
    gone = enrollment(engine, "ann@example.com")
    assert gone.status == "exited" and gone.exit_reason == reason and gone.next_due_at is None
    tick(engine, config, start + timedelta(days=5))
    assert len(ledger(engine)) == 1  # step 2 never queued


def test_an_exit_takes_back_a_queued_step(engine, settings, aud) -> None:  # type: ignore[no-untyped-def]
    config = settings.with_overrides(audiences_dir=str(aud), quiet_hours="none")
    name = two_steps(aud)
    reader(engine, "ann@example.com", lead_status="new")
    start = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    enroll(engine, config, name, "ann@example.com", start)
    sequence = load_sequence(name, aud)
    advance_due(
        engine, config, sequence, start + timedelta(days=1), NIGHT.parse("none"), TickResult()
    )  # queued, not sent
    assert [r[2] for r in ledger(engine)] == ["queued"]
    with session_scope(engine) as s:
        s.execute(update(models.Lead).values(status="booked"))
    transport = Recording()
    tick(engine, config, start + timedelta(days=1, minutes=1), transport)
    assert transport.sent == [] and [r[2] for r in ledger(engine)] == ["suppressed"]


# --- exactly once ---------------------------------------------------------------------------------


def _readers_in_two_steps(engine, settings, aud, count: int):  # type: ignore[no-untyped-def]
    """``count`` readers enrolled on June 1st in a two-step sequence: the settings, the sequence's
    name, and when step 1 is due."""
    config = settings.with_overrides(audiences_dir=str(aud), quiet_hours="none")
    name = two_steps(aud)
    for n in range(count):
        reader(engine, f"r{n}@example.com")
        enroll(engine, config, name, f"r{n}@example.com", datetime(2026, 6, 1, 12, 0, tzinfo=UTC))
    return config, name, datetime(2026, 6, 2, 12, 0, tzinfo=UTC)


def test_a_step_is_never_sent_twice_when_the_scheduler_restarts(engine, settings, aud, db_url) -> None:  # type: ignore[no-untyped-def]
    config, _, due = _readers_in_two_steps(engine, settings, aud, 6)
    transport = Recording()
    tick(engine, config, due, transport)
    tick(engine, config, due, transport)  # the same tick again (a restart)
    other = make_engine(db_url)  # a second scheduler process, same moment
    try:
        tick(other, config, due + timedelta(seconds=30), transport)
    finally:
        other.dispose()
    assert len(transport.sent) == 6 and len({d for _, d, _ in transport.sent}) == 6
    assert [r[2] for r in ledger(engine)] == ["sent"] * 6


def test_two_schedulers_at_once_send_each_step_once(engine, settings, aud, db_url) -> None:  # type: ignore[no-untyped-def]
    config, name, due = _readers_in_two_steps(engine, settings, aud, 8)
    engines = [make_engine(db_url), make_engine(db_url)]
    transports = [Recording(), Recording()]
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait()
            tick(engines[i], config, due, transports[i])
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for e in engines:
        e.dispose()
    assert not errors
    sent = transports[0].sent + transports[1].sent
    assert sorted(email for _, _, email in sent) == sorted(f"r{n}@example.com" for n in range(8))
    with session_scope(engine) as s:  # and the step campaign exists once
        assert s.scalar(
            select(models.Campaign.id)
            .where(models.Campaign.name == f"nurture:{name}:1")
            .order_by(models.Campaign.id.desc())
        ) == s.scalar(
            select(models.Campaign.id).where(models.Campaign.name == f"nurture:{name}:1").order_by(models.Campaign.id)
        )


def test_a_crash_between_ledger_insert_and_send(engine, settings, aud) -> None:  # type: ignore[no-untyped-def]
    config = settings.with_overrides(audiences_dir=str(aud), quiet_hours="none")
    name = two_steps(aud)
    reader(engine, "ann@example.com")
    start = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    enroll(engine, config, name, "ann@example.com", start)
    # The tick queued the step and died before sending.
    advance_due(engine, config, load_sequence(name, aud), start + timedelta(days=1), QuietHours(), TickResult())
    assert [r[2] for r in ledger(engine)] == ["queued"] and enrollment(engine, "ann@example.com").next_step == 1
    transport = Recording()
    restarted = tick(engine, config, start + timedelta(days=1, minutes=1), transport)
    assert restarted.queued == 0 and restarted.sent == 1 and len(transport.sent) == 1
    tick(engine, config, start + timedelta(days=1, minutes=2), transport)
    assert len(transport.sent) == 1 and [r[2] for r in ledger(engine)] == ["sent"]


def test_a_crash_during_the_send_is_flagged_never_resent(engine, settings, aud) -> None:  # type: ignore[no-untyped-def]
    config = settings.with_overrides(audiences_dir=str(aud), quiet_hours="none", lease_seconds=0.0)
    name = two_steps(aud)
    reader(engine, "ann@example.com")
    start = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    enroll(engine, config, name, "ann@example.com", start)
    crashed = tick(engine, config, start + timedelta(days=1), Recording(fail=True))
    assert crashed.errors and "power cut" in crashed.errors[0]
    assert [r[2] for r in ledger(engine)] == ["in_flight"]
    transport = Recording()
    tick(engine, config, start + timedelta(days=1, minutes=1), transport)
    assert transport.sent == [] and [r[2] for r in ledger(engine)] == ["ambiguous"]


def test_sendgrid_gets_each_step_once(engine, settings, aud, fake_sendgrid, db_url) -> None:  # type: ignore[no-untyped-def]
    config = settings.with_overrides(
        audiences_dir=str(aud),
        quiet_hours="none",
        sendgrid_api_key=fake_sendgrid.api_key,
        sendgrid_host=fake_sendgrid.url,
        sendgrid_timeout=5.0,
    )
    name = two_steps(aud)
    reader(engine, "ann@example.com", first_name="Ann")
    start = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    enroll(engine, config, name, "ann@example.com", start)
    nurture_tick(engine, config, start + timedelta(days=1))
    other = make_engine(db_url)
    try:
        nurture_tick(other, config, start + timedelta(days=1, seconds=30))
    finally:
        other.dispose()
    nurture_tick(engine, config, start + timedelta(days=2))
    inbox = fake_sendgrid.inbox("ann@example.com")
    assert [m.subject for m in inbox] == ["One", "Two"]
    assert "Hi Ann," in inbox[0].text and inbox[0].headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert enrollment(engine, "ann@example.com").status == "completed"


# --- conditions ------------------------------------------------------------------------------------


def _step_delivery(engine, name: str, step: int, email: str) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    with session_scope(engine) as s:
        row = s.execute(
            select(models.Delivery.id, models.Delivery.campaign_id)
            .join(models.Campaign, models.Campaign.id == models.Delivery.campaign_id)
            .join(models.Subscriber, models.Subscriber.id == models.Delivery.subscriber_id)
            .where(models.Campaign.name == f"nurture:{name}:{step}", models.Subscriber.email == email)
        ).one()
    return row[0], row[1]


def test_machine_clicks_and_opens_never_satisfy_conditions(engine, settings, aud) -> None:  # type: ignore[no-untyped-def]
    config = settings.with_overrides(audiences_dir=str(aud), quiet_hours="none")
    name = two_steps(aud, extra="    when: {clicked: previous}\n    if_not: skip\n")
    for email in ("human@example.com", "machine@example.com", "opener@example.com"):
        reader(engine, email)
    start = models.utcnow().replace(microsecond=0)
    for email in ("human@example.com", "machine@example.com", "opener@example.com"):
        enroll(engine, config, name, email, start - timedelta(days=1))
    tick(engine, config, start)  # step 1 to all three, sent now (real time: clicks are timed from it)
    later = models.utcnow() + timedelta(minutes=10)
    _, step1 = _step_delivery(engine, name, 1, "human@example.com")
    cta, honeypot = _cta_position(engine, step1), _position(engine, step1, "honeypot")
    with session_scope(engine) as s:
        d, _ = _step_delivery(engine, name, 1, "human@example.com")
        assert not record_click(s, d, cta, PERSON, later).is_machine
        d, _ = _step_delivery(engine, name, 1, "machine@example.com")
        assert record_click(s, d, cta, SCANNER, later).is_machine
        assert record_click(
            s, d, cta, RequestInfo(ip="203.0.113.9", user_agent=BROWSER, method="HEAD"), later
        ).is_machine
        assert record_click(s, d, honeypot, PERSON, later).is_machine  # only software follows the hidden link
        d, _ = _step_delivery(engine, name, 1, "opener@example.com")
        record_open(s, d, PERSON, later)  # an open is not a click
    result = tick(engine, config, start + timedelta(days=1, minutes=20))
    assert result.queued == 1 and result.skipped == 2
    assert ledger(engine, "human@example.com")[-1] == (f"nurture:{name}:2", "human@example.com", "sent")
    assert len(ledger(engine, "machine@example.com")) == 1 and len(ledger(engine, "opener@example.com")) == 1
    assert enrollment(engine, "machine@example.com").status == "completed"


def test_score_tag_and_if_not_rules(engine, settings, aud) -> None:  # type: ignore[no-untyped-def]
    config = settings.with_overrides(audiences_dir=str(aud), quiet_hours="none")
    write(
        aud,
        "rules",
        """
name: rules
steps:
  - template: nurture/first-consultation.mjml.j2
    subject: One
    delay: 0
  - template: nurture/ketamine-and-esketamine.mjml.j2
    subject: Warm only
    delay: 1d
    when: {score_above: 10, has_tag: [ketamine, ptsd]}
    if_not: exit
  - template: nurture/last-reminder.mjml.j2
    subject: Three
    delay: 1d
""",
    )
    reader(engine, "warm@example.com", tags=("ptsd",), lead_status="contacted", score=25)
    reader(engine, "cold@example.com", tags=("ptsd",), lead_status="new", score=3)
    reader(engine, "untagged@example.com", lead_status="new", score=40)
    start = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    for email in ("warm@example.com", "cold@example.com", "untagged@example.com"):
        enroll(engine, config, "rules", email, start)
    tick(engine, config, start)
    result = tick(engine, config, start + timedelta(days=1))
    assert result.queued == 1 and result.exited == {"condition:ketamine-and-esketamine": 2}
    tick(engine, config, start + timedelta(days=2))
    assert [r[0] for r in ledger(engine, "warm@example.com")] == [
        "nurture:rules:1",
        "nurture:rules:2",
        "nurture:rules:3",
    ]
    assert [r[0] for r in ledger(engine, "cold@example.com")] == ["nurture:rules:1"]


def test_wait_for_an_open_then_send_anyway(engine, settings, aud) -> None:  # type: ignore[no-untyped-def]
    config = settings.with_overrides(audiences_dir=str(aud))
    name = two_steps(
        aud, extra="    when: {opened: previous}\n    if_not: wait\n    wait_up_to: 2d\n    after_wait: send\n"
    )
    reader(engine, "reader@example.com", "Europe/London")
    reader(engine, "quiet@example.com", "Europe/London")
    start = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)  # 11:00 BST
    for email in ("reader@example.com", "quiet@example.com"):
        enroll(engine, config, name, email, start)
    tick(engine, config, start + timedelta(days=1))  # step 1 at 11:00 BST
    due2 = start + timedelta(days=2)
    assert tick(engine, config, due2).waiting == 2
    # A (human) open at 22:00 BST: the step may go, but not at night; it goes at 09:00 BST.
    with session_scope(engine) as s:
        d, campaign_id = _step_delivery(engine, name, 1, "reader@example.com")
        s.add(
            models.Event(
                event_key="open-1",
                type="open",
                campaign_id=campaign_id,
                delivery_id=d,
                subscriber_id=enrollment(engine, "reader@example.com").subscriber_id,
                is_machine=False,
                occurred_at=datetime(2026, 6, 3, 21, 0, tzinfo=UTC),
            )
        )
    night = tick(engine, config, datetime(2026, 6, 3, 21, 5, tzinfo=UTC))
    assert night.deferred == 1 and night.waiting == 1 and len(ledger(engine, "reader@example.com")) == 1
    tick(engine, config, datetime(2026, 6, 4, 8, 0, tzinfo=UTC))  # 09:00 BST
    assert len(ledger(engine, "reader@example.com")) == 2 and len(ledger(engine, "quiet@example.com")) == 1
    # The one who never opened gets it when the wait runs out (due + 2 days, in daytime).
    tick(engine, config, due2 + timedelta(days=2) - timedelta(minutes=1))
    assert len(ledger(engine, "quiet@example.com")) == 1
    tick(engine, config, due2 + timedelta(days=2))
    assert len(ledger(engine, "quiet@example.com")) == 2


def test_a_paused_step_holds_and_a_broken_file_does_not_stop_the_others(engine, settings, aud) -> None:  # type: ignore[no-untyped-def]
    config = settings.with_overrides(audiences_dir=str(aud), quiet_hours="none")
    name = two_steps(aud)
    write(aud, "broken", "name: broken\nsteps: nope\n")
    reader(engine, "ann@example.com")
    start = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    enroll(engine, config, name, "ann@example.com", start)
    first = tick(engine, config, start + timedelta(days=1))
    assert first.sent == 1 and any("broken.yaml" in e for e in first.errors)
    # Every step's campaign exists from the first due step on; an operator pauses step 2.
    with session_scope(engine) as s:
        s.execute(update(models.Campaign).where(models.Campaign.name == f"nurture:{name}:2").values(status="paused"))
    held = tick(engine, config, start + timedelta(days=2))
    assert held.held == 1 and len(ledger(engine)) == 1
    assert enrollment(engine, "ann@example.com").next_step == 1
    with session_scope(engine) as s:
        s.execute(update(models.Campaign).where(models.Campaign.name == f"nurture:{name}:2").values(status="sending"))
    assert tick(engine, config, start + timedelta(days=2, hours=1)).sent == 1
    assert len(ledger(engine)) == 2
    # `campaign send` refuses a step outright (and its segment names no file, in case).
    with session_scope(engine) as s:
        s.execute(update(models.Campaign).where(models.Campaign.name == f"nurture:{name}:2").values(status="draft"))
        step2 = s.scalar(select(models.Campaign.id).where(models.Campaign.name == f"nurture:{name}:2"))
    reader(engine, "bystander@example.com")
    with pytest.raises(UserError, match="nurture sequence step"):
        send_campaign(engine, config, step2, transport=Recording())
    assert len(ledger(engine)) == 2


# --- status, list, enroll/remove ------------------------------------------------------------------


def test_status_and_list(engine, settings, aud) -> None:  # type: ignore[no-untyped-def]
    config = settings.with_overrides(audiences_dir=str(aud), quiet_hours="none")
    name = two_steps(aud)
    reader(engine, "ann@example.com")
    reader(engine, "bob@example.com", lead_status="new")
    start = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    for email in ("ann@example.com", "bob@example.com"):
        enroll(engine, config, name, email, start)
    assert enroll(engine, config, name, "ann@example.com", start)[1] is False  # once, ever
    tick(engine, config, start + timedelta(days=1))
    remove(engine, name, "bob@example.com", start + timedelta(days=1, hours=1))
    status = sequence_status(engine, config, name)
    assert (status["active"], status["exited"], status["exits"]) == (1, 1, {"removed": 1})
    assert [(s["step"], s["sent"], s["waiting_here"]) for s in status["steps"]] == [(1, 2, 0), (2, 0, 1)]
    [row] = [r for r in list_summaries(engine, config) if r["name"] == name]
    assert (row["steps"], row["active"], row["exited"]) == (2, 1, 1)
    with pytest.raises(UserError, match="not in the nurture sequence"):
        remove(engine, "other", "ann@example.com", start)
    suppress(engine, "cal@example.com")
    reader(engine, "cal@example.com")
    with pytest.raises(UserError, match="suppressed"):
        enroll(engine, config, name, "cal@example.com", start)


# --- the commands ----------------------------------------------------------------------------------


def _run(args: list[str], cwd: Path, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return run_newsletter(["nurture", *args], cwd, env_extra)


def _store_env(tmp_path: Path, db_url: str) -> dict[str, str]:
    """The settings the store-writing nurture commands run with: quiet hours off, so a tick sends now."""
    return {
        "NEWSLETTER_DATABASE_URL": db_url,
        "NEWSLETTER_SECRET_KEY": "cli-test-key",
        "NEWSLETTER_OUTBOX_DIR": str(tmp_path / "outbox"),
        "NEWSLETTER_QUIET_HOURS": "none",
    }


def test_simulate_command(tmp_path: Path) -> None:
    human = _run(
        [
            "simulate",
            "connect-today",
            "--days",
            "30",
            "--events",
            "day2:open,day5:click",
            "--timezone",
            "America/New_York",
            "--start",
            "2026-03-05T15:40",
        ],
        tmp_path,
    )
    assert human.returncode == 0, human.stderr
    assert "2026-03-08 15:40 EDT" in human.stdout and "What to expect at a first consultation" in human.stdout
    assert "nothing was sent" in human.stdout
    data = json.loads(
        _run(
            ["simulate", "connect-today", "--timezone", "Europe/London", "--start", "2026-10-20T21:30+01:00", "--json"],
            tmp_path,
        ).stdout
    )
    assert data["status"] == "completed" and data["sent"] == 4
    assert [e["time"] for e in data["entries"] if e["kind"] == "sent"][0] == "09:00"
    assert not list(tmp_path.iterdir())  # nothing stored, no database made
    wrong = _run(["simulate", "connect-today", "--events", "day2:opn"], tmp_path)
    assert wrong.returncode == 1 and "--events" in wrong.stderr and "Traceback" not in wrong.stderr
    assert _run(["simulate", "nope"], tmp_path).returncode == 1
    assert _run(["simulate", "connect-today", "--timezone", "Mars/Base"], tmp_path).returncode == 1
    assert _run(["simulate", "connect-today", "--start", "yesterday"], tmp_path).returncode == 1


def test_tick_list_status_remove_commands(tmp_path: Path, db_url: str, engine) -> None:  # type: ignore[no-untyped-def]
    env = _store_env(tmp_path, db_url)
    reader(engine, "ann@example.com")
    settings = Settings(database_url=db_url, outbox_dir=str(tmp_path / "outbox"), quiet_hours="none")
    enroll(engine, settings, "connect-today", "ann@example.com", models.utcnow() - timedelta(days=1, minutes=1))
    ticked = _run(["tick", "--json"], tmp_path, env)
    assert ticked.returncode == 0, ticked.stderr
    assert json.loads(ticked.stdout)["sent"] == 1
    listed = json.loads(_run(["list", "--json"], tmp_path, env).stdout)
    assert [(r["name"], r["active"]) for r in listed] == [("connect-today", 1)]
    status = _run(["status", "connect-today"], tmp_path, env)
    assert status.returncode == 0 and "first-consultation" in status.stdout
    removed = _run(["remove", "ann@example.com", "connect-today", "--json"], tmp_path, env)
    assert json.loads(removed.stdout)["removed"] is True
    assert _run(["remove", "zed@example.com", "connect-today"], tmp_path, env).returncode == 1


def test_enroll_command(tmp_path: Path, db_url: str, engine) -> None:  # type: ignore[no-untyped-def]
    """Staff put a reader in by hand: once; not twice; never an unknown or unsubscribed address."""
    env = _store_env(tmp_path, db_url)
    reader(engine, "ann@example.com")
    gone = reader(engine, "gone@example.com")
    with session_scope(engine) as session:
        session.execute(update(models.Subscriber).where(models.Subscriber.id == gone).values(status="unsubscribed"))
    first = _run(["enroll", "Ann@Example.com", "connect-today", "--json"], tmp_path, env)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["enrolled"] is True
    again = _run(["enroll", "ann@example.com", "connect-today"], tmp_path, env)
    assert again.returncode == 0 and "already enrolled" in again.stdout
    with session_scope(engine) as session:
        assert session.scalar(select(func.count()).select_from(models.NurtureEnrollment)) == 1
    for email, message in (("gone@example.com", "unsubscribed"), ("zed@example.com", "no subscriber")):
        refused = _run(["enroll", email, "connect-today"], tmp_path, env)
        assert refused.returncode == 1 and message in refused.stderr and "Traceback" not in refused.stderr
    assert _run(["enroll", "ann@example.com", "no-such-sequence"], tmp_path, env).returncode == 1


# --- hostile sequence files (issue 14) -----------------------------------------------------------


def _bomb(aud: Path) -> None:
    write(
        aud,
        "bomb",
        f"name: bomb\ndescription: {billion_laughs()}\n" + TWO_STEPS.format(name="x", extra="").split("\n", 2)[2],
    )


def test_an_alias_bomb_in_a_description_is_refused_and_the_other_sequences_load(aud: Path) -> None:
    _bomb(aud)
    two_steps(aud, "good")
    with pytest.raises(UserError) as caught:
        bounded(lambda: load_sequence("bomb", aud))
    assert caught.value.where is not None and caught.value.where.endswith("nurture/bomb.yaml:2")
    assert "aliases" in caught.value.message
    found, errors = bounded(lambda: load_all(aud))
    assert [s.name for s in found] == ["good"] and len(errors) == 1 and "bomb.yaml:2" in errors[0]


def test_nurture_list_and_tick_survive_a_bomb_and_an_unreadable_file(engine, settings, aud) -> None:  # type: ignore[no-untyped-def]
    config = settings.with_overrides(audiences_dir=str(aud), quiet_hours="none")
    _bomb(aud)
    (aud / "nurture" / "latin1.yaml").write_bytes("name: latin1\ndescription: caf\xe9\n".encode("latin-1"))
    name = two_steps(aud)
    rows = {r["name"]: r for r in bounded(lambda: list_summaries(engine, config), seconds=10)}
    assert "aliases" in rows["bomb"]["error"] and "not UTF-8" in rows["latin1"]["error"]
    assert rows[name]["error"] is None and rows[name]["steps"] == 2
    reader(engine, "ann@example.com")
    start = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    enroll(engine, config, name, "ann@example.com", start)
    result = bounded(lambda: tick(engine, config, start + timedelta(days=1)), seconds=30, megabytes=256)
    assert result.sent == 1
    assert any("bomb.yaml:2" in e for e in result.errors) and any("latin1.yaml" in e for e in result.errors)
