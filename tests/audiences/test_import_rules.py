"""The import's rules on their own: no store, no file (``audiences.import_rules``, ``values``,
``csv_layout``). The behaviour through a real import, on both stores, is in test_audiences.py."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from newsletter.audiences.csv_layout import attribute_key, read_layout
from newsletter.audiences.import_rules import ERASED_REASON, ImportDefaults, ImportRow, RowParser, plan_chunk
from newsletter.audiences.rejects import Rejection
from newsletter.audiences.values import canonical_locale, canonical_zone, parse_datetime, split_tags
from newsletter.errors import UserError

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
DEFAULTS = ImportDefaults(
    format="newsletter",
    source="csv import",
    consent_text_version="v1",
    extra_tags=frozenset(),
    now=NOW,
    max_id_before=100,
)


def parser(header: str) -> RowParser:
    return RowParser(read_layout(header.split(","), "t.csv: line 1"), NOW)


def row(email: str, line: int = 2, **values: object) -> ImportRow:
    out = ImportRow(line, email)
    for name, value in values.items():
        setattr(out, name, value)
    return out


# --- layout and values ---------------------------------------------------------------------------


def test_the_header_decides_the_layout() -> None:
    ours = read_layout(["Email", "First Name", "Home State"], "w")
    assert (ours.format, ours.fields, ours.attributes) == (
        "newsletter",
        {"email": 0, "first_name": 1},
        [(2, "home_state")],
    )
    mailchimp = read_layout(["Email Address", "NOTES", "CC", "UNSUB_TIME"], "w")
    assert (mailchimp.format, mailchimp.fields, mailchimp.attributes) == (
        "mailchimp",
        {"email": 0, "unsub_time": 3},
        [(2, "country")],
    )
    with pytest.raises(UserError, match="no email column"):
        read_layout(["name", "phone"], "w")
    with pytest.raises(UserError, match="appears twice"):
        read_layout(["email", "First Name", "first_name"], "w")


def test_values_are_cleaned_up_to_their_stored_form() -> None:
    assert attribute_key("  Home State! ") == "home_state"
    assert canonical_zone("europe/paris") == "Europe/Paris" and canonical_zone("Mars/Olympus") is None
    assert canonical_locale("en_us") == "en-US" and canonical_locale("zh-hant") == "zh-Hant"
    assert canonical_locale("not a locale") is None
    assert split_tags('"Ketamine","  Family  Therapy"') == ("ketamine", "family therapy")
    assert split_tags("a;b|c,d") == ("a", "b", "c", "d")
    assert split_tags("x" * 101) is None
    assert parse_datetime("2024-05-01", NOW) == datetime(2024, 5, 1, tzinfo=timezone.utc)
    with pytest.raises(ValueError, match="in the future"):
        parse_datetime("2030-01-01", NOW)


# --- a row ---------------------------------------------------------------------------------------


def test_a_row_becomes_a_subscriber_or_a_rejection_with_its_reason() -> None:
    parse = parser("email,first_name,timezone,tags,city").parse
    good = parse([" Ann@Example.COM ", "Ann\tLee", "europe/paris", "a;B", "Lyon"], 7)
    assert isinstance(good, ImportRow)
    assert (good.line, good.email, good.first_name, good.timezone, good.tags, good.attributes) == (
        7,
        "ann@example.com",
        "Ann Lee",
        "Europe/Paris",
        {"a", "b"},
        {"city": "Lyon"},
    )
    reasons = {
        "missing email address": ["", "A", "", "", ""],
        "invalid email address": ["not-an-address", "A", "", "", ""],
        "invalid time zone": ["b@example.com", "B", "Nowhere/City", "", ""],
        "too many columns": ["b@example.com", "B", "", "", "", "extra"],
        "NUL character": ["b@example.com", "B\x00", "", "", ""],
    }
    for reason, values in reasons.items():
        rejected = parse(values, 3)
        assert isinstance(rejected, Rejection) and reason in rejected.reason and rejected.line == 3, (reason, rejected)


def test_a_mailchimp_opt_out_row_states_its_status() -> None:
    parse = parser("Email Address,UNSUB_TIME,CLEAN_TIME").parse

    def status(values: list[str]) -> str | None:
        parsed = parse(values, 2)
        assert isinstance(parsed, ImportRow)
        return parsed.status

    assert status(["a@example.com", "2024-01-01", ""]) == "unsubscribed"
    assert status(["a@example.com", "", "2024-01-01"]) == "bounced"
    assert status(["a@example.com", "", ""]) is None


def test_a_duplicate_merges_later_values_and_keeps_the_first_consent() -> None:
    first = row(
        "a@example.com",
        2,
        first_name="A",
        last_name="Old",
        consent_source="fair",
        tags={"x"},
        attributes={"city": "Paris", "plan": "basic"},
    )
    first.merge(
        row("a@example.com", 9, last_name="New", consent_source="later", tags={"y"}, attributes={"city": "Lyon"})
    )
    assert (first.line, first.first_name, first.last_name, first.consent_source) == (9, "A", "New", "fair")
    assert first.tags == {"x", "y"} and first.attributes == {"city": "Lyon", "plan": "basic"}


# --- a chunk against what the store holds --------------------------------------------------------


def test_a_chunk_is_planned_from_what_the_store_holds() -> None:
    chunk = {email: row(email) for email in ("new@x.org", "old@x.org", "again@x.org", "gone@x.org", "quit@x.org")}
    chunk["out@x.org"] = row("out@x.org", status="unsubscribed")
    known = {
        "old@x.org": (50, "active", None),  # stored before this import: an update
        "again@x.org": (150, "active", None),  # stored by an earlier chunk of this file: a duplicate
        "gone@x.org": (None, None, "erased"),  # erased: never stored again
        "quit@x.org": (None, None, "invalid"),  # suppressed: created with the matching status
    }
    plan = plan_chunk(chunk, known, DEFAULTS)
    assert (plan.created, plan.updated, plan.merged) == (3, 1, 1)
    assert [(r.line, r.email, r.reason) for r in plan.rejected] == [(2, "gone@x.org", ERASED_REASON)]
    statuses = {values[0]: values[6] for values in plan.rows}
    assert statuses == {
        "new@x.org": "active",
        "old@x.org": "active",
        "again@x.org": "active",
        "quit@x.org": "bounced",
        "out@x.org": "unsubscribed",
    }
    assert plan.existing == {"old@x.org", "again@x.org"}
    assert [(o["email"], o["reason"]) for o in plan.opt_outs] == [("out@x.org", "unsubscribed")]


def test_defaults_fill_what_a_row_leaves_empty() -> None:
    consent = datetime(2024, 5, 1, tzinfo=timezone.utc)
    chunk = {
        "a@x.org": row("a@x.org", tags={"x"}),
        "b@x.org": row("b@x.org", consent_source="form", consent_at=consent),
    }
    defaults = ImportDefaults(
        format="newsletter",
        source="csv import",
        consent_text_version="v1",
        extra_tags=frozenset({"imported"}),
        now=NOW,
        max_id_before=0,
    )
    plan = plan_chunk(chunk, {}, defaults)
    by_email = {values[0]: values for values in plan.rows}
    assert by_email["a@x.org"][7:10] == ("csv import", NOW, "v1")
    assert by_email["b@x.org"][7:9] == ("form", consent)
    assert dict(plan.tagged) == {"a@x.org": {"x", "imported"}, "b@x.org": {"imported"}}
