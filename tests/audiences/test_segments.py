"""Segments: YAML validation with clear errors, and every rule kind on SQLite and PostgreSQL."""

from __future__ import annotations

import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, insert, literal, select

from factories import add_article, add_campaign
from hostile import billion_laughs, bounded, merge_bomb
from newsletter.audiences import (
    BUILTIN_ALL,
    Segment,
    SegmentError,
    count_segment,
    list_segments,
    load_segment,
    scan_segments,
    segment_condition,
    segment_subscriber_ids,
)
from newsletter.db import models, session_scope
from newsletter.errors import NotFound, UserError
from repo_paths import REPO_DIR

REPO = REPO_DIR
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)


def write_segment(directory: Path, name: str, text: str) -> Path:
    path = directory / f"{name}.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def segment(tmp_path: Path, rules: str, name: str = "s") -> Segment:
    body = textwrap.indent(textwrap.dedent(rules).strip(), "  ")
    write_segment(tmp_path, name, f"name: {name}\nrules:\n{body}\n")
    return load_segment(name, tmp_path)


# --- files ----------------------------------------------------------------------------------------


def test_bundled_example_segments_load():
    segments = {s.name: s for s in list_segments(REPO / "audiences")}
    assert list(segments)[0] == BUILTIN_ALL
    assert {"ketamine-curious", "engaged-readers"} <= set(segments)
    curious = segments["ketamine-curious"]
    assert curious.rules.tags_any == ("ketamine", "depression", "ptsd")
    assert curious.source == REPO / "audiences" / "ketamine-curious.yaml"
    assert curious.description
    assert segments["engaged-readers"].rules.opened_within_days == 30


def test_default_directory_is_the_bundled_audiences_folder():
    assert load_segment("ketamine-curious").source.name == "ketamine-curious.yaml"


def test_builtin_all_needs_no_file(tmp_path):
    everyone = load_segment("all", tmp_path)
    assert everyone.name == "all" and everyone.source is None
    assert everyone.rules.status == ("active",)
    assert [s.name for s in list_segments(tmp_path)] == ["all"]


def test_a_file_named_all_is_an_error(tmp_path):
    write_segment(tmp_path, "all", "name: all\n")
    with pytest.raises(SegmentError, match="built-in") as caught:
        load_segment("all", tmp_path)
    assert caught.value.where.endswith("all.yaml")
    with pytest.raises(SegmentError):
        list_segments(tmp_path)


@pytest.mark.parametrize("name", ["nope", "../audiences/ketamine-curious", "Ketamine-Curious", ""])
def test_unknown_segment_lists_the_available_ones(tmp_path, name):
    write_segment(tmp_path, "vip", "name: vip\n")
    with pytest.raises(NotFound) as caught:
        load_segment(name, tmp_path)
    assert "available: all, vip" in caught.value.message


def test_missing_directory_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no such folder"):
        load_segment("x", tmp_path / "missing")


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        ("name: x\nrules:\n  tags:\n    any: ketamine\n", "x.yaml: rules.tags.any", "expected a list of strings"),
        ("name: x\nrules:\n  tags:\n    any: [ketamine, 3]\n", "x.yaml: rules.tags.any", "expected a list of strings"),
        (
            "name: x\nrules:\n  tags:\n    some: [a]\n",
            "x.yaml: rules.tags.some",
            "unknown key (expected any, all, none)",
        ),
        ("name: x\nrules:\n  tags: {}\n", "x.yaml: rules.tags", "at least one of any, all, none"),
        ("name: x\nrules:\n  tag: {any: [a]}\n", "x.yaml: rules.tag", "unknown key"),
        ("name: x\nlimit: 5\n", "x.yaml: limit", "unknown key (expected name, description, rules)"),
        ("name: x\nrules: [status]\n", "x.yaml: rules", "expected a mapping"),
        ("name: x\nrules:\n  status: sleeping\n", "x.yaml: rules.status", "unknown status 'sleeping'"),
        ("name: x\nrules:\n  status: []\n", "x.yaml: rules.status", "expected a list of strings"),
        ("name: x\nrules:\n  joined: {after: 2024-13-01}\n", "x.yaml: rules.joined.after", "not a date: '2024-13-01'"),
        ("name: x\nrules:\n  joined: {before: 2024}\n", "x.yaml: rules.joined.before", "not a date"),
        ("name: x\nrules:\n  joined: {after: 2025-01-01, before: 2024-01-01}\n", "x.yaml: rules.joined", "earlier"),
        (
            "name: x\nrules:\n  engagement: {opened_within_days: 0}\n",
            "x.yaml: rules.engagement.opened_within_days",
            "whole number of days",
        ),
        (
            "name: x\nrules:\n  engagement: {clicked_within_days: yes}\n",
            "x.yaml: rules.engagement.clicked_within_days",
            "whole number of days",
        ),
        (
            "name: x\nrules:\n  engagement: {opened_within: 3}\n",
            "x.yaml: rules.engagement.opened_within",
            "unknown key",
        ),
        ("name: x\nrules:\n  attributes: {state: OR}\n", "x.yaml: rules.attributes.state", "expected a mapping"),
        ("name: x\nrules:\n  attributes: {state: {like: O%}}\n", "x.yaml: rules.attributes.state.like", "unknown key"),
        (
            "name: x\nrules:\n  attributes: {state: {equals: NO}}\n",
            "x.yaml: rules.attributes.state.equals",
            "quote the value",
        ),
        ("name: x\nrules:\n  attributes: {plan: {in: basic}}\n", "x.yaml: rules.attributes.plan.in", "list of values"),
        (
            "name: x\nrules:\n  attributes: {plan: {exists: maybe}}\n",
            "x.yaml: rules.attributes.plan.exists",
            "true or false",
        ),
        ("name: y\n", "x.yaml: name", "'y' does not match the file name (expected 'x')"),
        ("description: no name\n", "x.yaml: name", "missing"),
        ("", "x.yaml", "empty"),
        ("- just\n- a list\n", "x.yaml", "expected a mapping"),
    ],
)
def test_mistakes_name_the_file_and_key_path(tmp_path, text, where, message):
    write_segment(tmp_path, "x", text)
    with pytest.raises(SegmentError) as caught:
        load_segment("x", tmp_path)
    assert caught.value.where.endswith(where), caught.value.where
    assert message in caught.value.message
    assert isinstance(caught.value, UserError)
    assert str(caught.value).endswith(f"{where}: {caught.value.message}")


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("name: x\nrules:\n  tags: {any: [a, b}\n", 3, "not valid YAML"),
        ("name: x\nrules:\n\tstatus: active\n", 3, "not valid YAML"),
        ("name: x\ndescription: a\nname: x\n", 3, "the key 'name' appears twice"),
    ],
)
def test_yaml_syntax_errors_name_the_line(tmp_path, text, line, message):
    write_segment(tmp_path, "x", text)
    with pytest.raises(SegmentError) as caught:
        load_segment("x", tmp_path)
    assert caught.value.where.endswith(f"x.yaml: line {line}")
    assert message in caught.value.message


def test_valid_file_parses_into_rules(tmp_path):
    seg = segment(
        tmp_path,
        """
        status: [active, pending, active]
        tags: {any: [Ketamine, ' depression '], all: [family], none: [clinician]}
        attributes: {State: {equals: OR}, plan: {in: [basic, 2]}, referrer: {exists: false}}
        joined: {after: 2024-01-01, before: '2026-01-01T06:00:00-05:00'}
        engagement: {opened_within_days: 30, clicked_within_days: 60, clicked_cta_within_days: 90}
    """,
    )
    rules = seg.rules
    assert rules.status == ("active", "pending")
    assert (rules.tags_any, rules.tags_all, rules.tags_none) == (
        ("ketamine", "depression"),
        ("family",),
        ("clinician",),
    )
    assert [(a.key, a.equals, a.one_of, a.exists) for a in rules.attributes] == [
        ("state", "OR", None, None),
        ("plan", None, ("basic", "2"), None),
        ("referrer", None, None, False),
    ]
    assert rules.joined_after == datetime(2024, 1, 1, tzinfo=timezone.utc)
    assert rules.joined_before == datetime(2026, 1, 1, 11, tzinfo=timezone.utc)
    assert (rules.opened_within_days, rules.clicked_within_days, rules.clicked_cta_within_days) == (30, 60, 90)


# --- rules against the store ------------------------------------------------------------------------


def add(
    engine: Engine,
    email: str,
    *,
    status: str = "active",
    tags: tuple[str, ...] = (),
    attributes: dict | None = None,
    created_at: datetime | None = None,
) -> int:
    with session_scope(engine) as session:
        row = models.Subscriber(
            email=email, status=status, attributes=attributes or {}, created_at=created_at or NOW - timedelta(days=100)
        )
        session.add(row)
        session.flush()
        session.add_all(models.SubscriberTag(subscriber_id=row.id, tag=tag) for tag in tags)
        return row.id


def members(engine: Engine, seg: Segment, now: datetime = NOW) -> set[str]:
    with session_scope(engine) as session:
        chosen = session.scalars(select(models.Subscriber.email).where(segment_condition(seg, now))).all()
        assert count_segment(session, seg, now) == len(chosen)
        return set(chosen)


def test_all_is_every_active_subscriber(engine, tmp_path):
    for status in ("active", "pending", "unsubscribed", "bounced", "complained", "erased"):
        add(engine, f"{status}@example.com", status=status)
    add(engine, "active2@example.com")
    everyone = load_segment("all", tmp_path)
    assert members(engine, everyone) == {"active@example.com", "active2@example.com"}
    with session_scope(engine) as session:
        assert count_segment(session, everyone) == 2


def test_status_rule(engine, tmp_path):
    add(engine, "a@example.com")
    add(engine, "p@example.com", status="pending")
    add(engine, "u@example.com", status="unsubscribed")
    assert members(engine, segment(tmp_path, "status: pending")) == {"p@example.com"}
    assert members(engine, segment(tmp_path, "status: [active, pending]")) == {"a@example.com", "p@example.com"}


def test_tag_rules_any_all_none(engine, tmp_path):
    add(engine, "k@example.com", tags=("ketamine",))
    add(engine, "kd@example.com", tags=("ketamine", "depression"))
    add(engine, "kdc@example.com", tags=("ketamine", "depression", "clinician"))
    add(engine, "m@example.com", tags=("mindfulness",))
    add(engine, "none@example.com")
    add(engine, "gone@example.com", status="unsubscribed", tags=("ketamine",))
    assert members(engine, segment(tmp_path, "tags: {any: [ketamine, mindfulness]}")) == {
        "k@example.com",
        "kd@example.com",
        "kdc@example.com",
        "m@example.com",
    }
    assert members(engine, segment(tmp_path, "tags: {all: [ketamine, depression]}")) == {
        "kd@example.com",
        "kdc@example.com",
    }
    assert members(engine, segment(tmp_path, "tags: {none: [clinician, mindfulness]}")) == {
        "k@example.com",
        "kd@example.com",
        "none@example.com",
    }
    assert members(engine, segment(tmp_path, "tags: {any: [Ketamine], none: [clinician]}")) == {
        "k@example.com",
        "kd@example.com",
    }
    # a value is only ever a bound parameter
    assert members(engine, segment(tmp_path, 'tags: {any: ["x\') OR 1=1 --"]}')) == set()


def test_attribute_rules(engine, tmp_path):
    add(engine, "or@example.com", attributes={"state": "OR", "plan": "basic", "visits": 3})
    add(engine, "wa@example.com", attributes={"state": "WA", "plan": "plus"})
    add(engine, "ca@example.com", attributes={"state": "CA", "referrer": "Dr. Lee"})
    add(engine, "bare@example.com")
    assert members(engine, segment(tmp_path, "attributes: {state: {equals: OR}}")) == {"or@example.com"}
    assert members(engine, segment(tmp_path, "attributes: {plan: {in: [basic, plus]}}")) == {
        "or@example.com",
        "wa@example.com",
    }
    assert members(engine, segment(tmp_path, "attributes: {referrer: {exists: true}}")) == {"ca@example.com"}
    assert members(engine, segment(tmp_path, "attributes: {referrer: {exists: false}}")) == {
        "or@example.com",
        "wa@example.com",
        "bare@example.com",
    }
    # numbers stored by other rooms compare as text on both stores
    assert members(engine, segment(tmp_path, "attributes: {visits: {equals: 3}}")) == {"or@example.com"}
    assert members(engine, segment(tmp_path, "attributes: {Visits: {in: ['3', '4']}}")) == {"or@example.com"}
    assert members(engine, segment(tmp_path, "attributes: {state: {equals: OR}, plan: {equals: plus}}")) == set()
    assert members(engine, segment(tmp_path, "attributes: {state: {in: [OR, WA], equals: WA}}")) == {"wa@example.com"}


def test_attribute_rule_reads_what_the_importer_stored(engine, tmp_path):
    from newsletter.audiences import import_subscribers

    csv = tmp_path / "people.csv"
    csv.write_text("email,Home State\nhs@example.com,OR\nother@example.com,WA\n", encoding="utf-8")
    import_subscribers(engine, csv, progress=False)
    assert members(engine, segment(tmp_path, "attributes: {Home State: {equals: OR}}")) == {"hs@example.com"}


def test_joined_rule(engine, tmp_path):
    add(engine, "old@example.com", created_at=datetime(2023, 12, 31, 23, 59, tzinfo=timezone.utc))
    add(engine, "first@example.com", created_at=datetime(2024, 1, 1, tzinfo=timezone.utc))
    add(engine, "mid@example.com", created_at=datetime(2025, 6, 1, tzinfo=timezone.utc))
    add(engine, "late@example.com", created_at=datetime(2026, 1, 1, tzinfo=timezone.utc))
    assert members(engine, segment(tmp_path, "joined: {after: 2024-01-01, before: 2026-01-01}")) == {
        "first@example.com",
        "mid@example.com",
    }
    assert members(engine, segment(tmp_path, "joined: {after: '2025-06-01T00:00:01Z'}")) == {"late@example.com"}
    assert members(engine, segment(tmp_path, "joined: {before: 2024-01-01}")) == {"old@example.com"}


def _campaign_with_links(engine: Engine) -> tuple[int, int, int]:
    """A campaign with one CTA link and one article link; returns (campaign, cta link, article link)."""
    with session_scope(engine) as session:
        article = add_article(session)
        campaign = add_campaign(
            session, article.id, "c", subject="s", status="draft", template="t", html="<p>", text="t"
        )
        cta = models.CampaignLink(campaign_id=campaign.id, position=1, url="https://example.com/book", kind="cta")
        read = models.CampaignLink(campaign_id=campaign.id, position=2, url="https://example.com/a", kind="article")
        session.add_all([cta, read])
        session.flush()
        return campaign.id, cta.id, read.id


def test_engagement_rules_count_human_events_only(engine, tmp_path):
    campaign, cta, read = _campaign_with_links(engine)
    ids = {
        name: add(engine, f"{name}@example.com")
        for name in ("opener", "machine", "stale", "clicker", "cta", "cta_machine", "cold")
    }
    events = [
        ("opener", "open", False, 3, None),
        ("machine", "open", True, 1, None),  # Apple Mail privacy proxy, a scanner...
        ("stale", "open", False, 45, None),
        ("clicker", "click", False, 10, read),
        ("cta", "click", False, 80, cta),
        ("cta_machine", "click", True, 2, cta),  # link scanners click everything
    ]
    with session_scope(engine) as session:
        session.execute(
            insert(models.Event),
            [
                {
                    "event_key": f"k{n}",
                    "type": kind,
                    "campaign_id": campaign,
                    "subscriber_id": ids[who],
                    "link_id": link,
                    "is_machine": machine,
                    "occurred_at": NOW - timedelta(days=days),
                    "source": "tracking",
                }
                for n, (who, kind, machine, days, link) in enumerate(events)
            ],
        )
    assert members(engine, segment(tmp_path, "engagement: {opened_within_days: 30}")) == {"opener@example.com"}
    assert members(engine, segment(tmp_path, "engagement: {opened_within_days: 60}")) == {
        "opener@example.com",
        "stale@example.com",
    }
    assert members(engine, segment(tmp_path, "engagement: {clicked_within_days: 60}")) == {"clicker@example.com"}
    assert members(engine, segment(tmp_path, "engagement: {clicked_within_days: 90}")) == {
        "clicker@example.com",
        "cta@example.com",
    }
    assert members(engine, segment(tmp_path, "engagement: {clicked_cta_within_days: 90}")) == {"cta@example.com"}
    assert members(engine, segment(tmp_path, "engagement: {clicked_cta_within_days: 30}")) == set()
    assert members(engine, segment(tmp_path, "engagement: {opened_within_days: 60, clicked_within_days: 60}")) == set()
    # the window moves with `now`
    later = NOW + timedelta(days=28)
    assert members(engine, segment(tmp_path, "engagement: {opened_within_days: 30}"), now=later) == set()
    with pytest.raises(ValueError, match="aware"):
        segment_condition(load_segment("all", tmp_path), datetime(2026, 1, 1))


def test_rules_combine_with_and(engine, tmp_path):
    for email, tag, state, year in (
        ("yes@example.com", "ketamine", "OR", 2025),
        ("tag@example.com", "anxiety", "OR", 2025),
        ("state@example.com", "ketamine", "WA", 2025),
        ("early@example.com", "ketamine", "OR", 2023),
    ):  # each but "yes" misses one rule
        add(
            engine,
            email,
            tags=(tag,),
            attributes={"state": state},
            created_at=datetime(year, 1, 1, tzinfo=timezone.utc),
        )
    seg = segment(
        tmp_path,
        """
        tags: {any: [ketamine]}
        attributes: {state: {equals: OR}}
        joined: {after: 2024-01-01}
    """,
    )
    assert members(engine, seg) == {"yes@example.com"}


def test_subscriber_ids_select_works_inside_insert_select(engine, tmp_path):
    add(engine, "k@example.com", tags=("ketamine",))
    add(engine, "d@example.com", tags=("depression",))
    add(engine, "m@example.com", tags=("mindfulness",))
    seg = load_segment("ketamine-curious", REPO / "audiences")
    with session_scope(engine) as session:
        session.execute(
            insert(models.SubscriberTag).from_select(
                ["subscriber_id", "tag"], segment_subscriber_ids(seg, NOW).add_columns(literal("campaign-7"))
            )
        )
        tagged = session.scalars(
            select(models.Subscriber.email)
            .join(models.SubscriberTag, models.SubscriberTag.subscriber_id == models.Subscriber.id)
            .where(models.SubscriberTag.tag == "campaign-7")
        ).all()
        assert set(tagged) == {"k@example.com", "d@example.com"}
        total = session.scalar(select(func.count()).where(models.Subscriber.id.in_(segment_subscriber_ids(seg))))
        assert total == 2


def test_a_badly_named_file_is_an_error(tmp_path):
    write_segment(tmp_path, "VIP Readers", "name: VIP Readers\n")
    with pytest.raises(SegmentError, match="lowercase") as caught:
        list_segments(tmp_path)
    assert caught.value.where.endswith("VIP Readers.yaml")


# --- hostile files (issue 14) ------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        f"name: bomb\nrules:\n  joined:\n    after: {billion_laughs()}\n",  # repr'd by the old "not a date" message
        f"name: bomb\nrules:\n{merge_bomb(indent='  ')}",
    ],
    ids=["lists", "merge-keys"],
)
def test_a_yaml_alias_bomb_is_refused_in_bounded_time_and_memory(tmp_path, body):
    write_segment(tmp_path, "bomb", body)
    assert len(body) < 700
    with pytest.raises(SegmentError) as caught:
        bounded(lambda: load_segment("bomb", tmp_path))  # what `segment count bomb` runs first
    assert caught.value.where.endswith("bomb.yaml: line 4")
    assert "aliases" in caught.value.message
    segments, errors = bounded(lambda: scan_segments(tmp_path))
    assert [s.name for s in segments] == ["all"] and "aliases" in errors[0].message


def test_one_broken_file_does_not_hide_the_others(tmp_path):
    write_segment(tmp_path, "good", "name: good\ndescription: fine\n")
    write_segment(tmp_path, "broken", "name: broken\nrules:\n  tags: {any: [a, b}\n")
    write_segment(tmp_path, "VIP Readers", "name: VIP Readers\n")
    write_segment(tmp_path, "zzz", "name: zzz\nrules: {status: gone}\n")
    segments, errors = scan_segments(tmp_path)
    assert [s.name for s in segments] == ["all", "good"]
    assert [e.where.rsplit("/", 1)[-1] for e in errors] == [
        "VIP Readers.yaml",
        "broken.yaml: line 3",
        "zzz.yaml: rules.status",
    ]
    # ... and a badly named neighbour no longer stops `segment count good`.
    assert load_segment("good", tmp_path).description == "fine"


def test_segment_list_names_the_broken_file_lists_the_others_and_exits_3(tmp_path):
    import json
    import os
    import subprocess
    import sys

    folder = tmp_path / "aud"
    folder.mkdir()
    write_segment(folder, "good", "name: good\ndescription: fine\n")
    write_segment(folder, "broken", "name: broken\nrules:\n  tags: {any: [a, b}\n")
    env = {
        **os.environ,
        "NEWSLETTER_AUDIENCES_DIR": str(folder),
        "NEWSLETTER_DATABASE_URL": f"sqlite:///{tmp_path}/n.db",
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "newsletter", "segment", "list", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    human = run()
    assert human.returncode == 3, human.stderr
    assert "good" in human.stdout and "all" in human.stdout
    assert human.stderr.strip().splitlines() == [
        "error: aud/broken.yaml: line 3: not valid YAML: while parsing a flow sequence expected ',' or ']', but got '}'"
    ]
    scripted = run("--json")
    assert scripted.returncode == 3
    data = json.loads(scripted.stdout)
    assert [s["name"] for s in data["segments"]] == ["all", "good"]
    assert data["errors"] == [
        {
            "where": "aud/broken.yaml: line 3",
            "message": "not valid YAML: while parsing a flow sequence expected ',' or ']', but got '}'",
        }
    ]
