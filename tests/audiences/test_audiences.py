"""Audiences: address normalising and the CSV importer, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import random
import tracemalloc
from datetime import datetime, timezone
from pathlib import Path

import pytest
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import Engine, insert, select

from newsletter.audiences import ImportReport, InvalidEmail, Rejection, import_subscribers, normalise_email
from newsletter.audiences import importer as importer_module
from newsletter.audiences.import_stores import store_for
from newsletter.db import models, session_scope
from newsletter.errors import UserError
from repo_paths import REPO_DIR

REPO = REPO_DIR
OWN_HEADER = "email,first_name,last_name,timezone,locale,tags,consent_source,consent_at,consent_text_version"


def write(tmp_path: Path, text: str, name: str = "people.csv", *, bom: bool = False) -> Path:
    path = tmp_path / name
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return path


def subscribers(engine: Engine) -> dict[str, models.Subscriber]:
    with session_scope(engine) as session:
        rows = session.scalars(select(models.Subscriber)).all()
        return {row.email: row for row in rows}


def tags_of(engine: Engine) -> dict[str, set[str]]:
    S, T = models.Subscriber, models.SubscriberTag
    out: dict[str, set[str]] = {}
    with session_scope(engine) as session:
        for email, tag in session.execute(select(S.email, T.tag).join(T, T.subscriber_id == S.id)):
            out.setdefault(email, set()).add(tag)
    return out


# --- normalise_email ------------------------------------------------------------------------------


def test_normalise_email_trims_and_lowercases_whole_address():
    assert normalise_email("  Jane.Doe+News@Example.COM \t") == "jane.doe+news@example.com"
    assert normalise_email("\ufeffbob@example.org\u200b") == "bob@example.org"
    assert normalise_email("Zoë@Exämple.com") == "zoë@exämple.com"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "missing email address"),
        ("   ", "missing email address"),
        ("jane.example.com", "@-sign"),
        ("jane@localhost", "period"),
        ("a b@example.com", "SPACE"),
        ("jane@example.test", "special-use"),
        ("Jane <jane@example.com>", ""),
    ],
)
def test_normalise_email_rejects_with_a_reason(raw, reason):
    with pytest.raises(InvalidEmail) as caught:
        normalise_email(raw)
    assert reason in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_fast_path_agrees_with_email_validator():
    """The per-domain shortcut must accept exactly what email-validator accepts, in the same form."""
    rng = random.Random(5)
    pieces = ["a", "Z", "0", ".", "-", "_", "+", "'", "!", "..", "@", " ", "é", "xn--", "--", '"', "(", "\\"]
    domains = [
        "example.com",
        "Example.ORG",
        "ex-ample.net",
        "-bad.com",
        "bad-.com",
        "a..b.com",
        "example.test",
        "localhost",
        "x.y",
        "e.123",
        "xn--bcher-kva.example",
        "xn--zz.com",
        "b\u00fccher.example",
        "a.b.c.d.example",
        "x" * 64 + ".com",
        ".example.com",
        "example.com.",
    ]
    samples = []
    for _ in range(3000):
        local = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 6)))
        samples.append(f"{local}@{rng.choice(domains)}")
    samples += [
        "a" * 64 + "@example.com",
        "a" * 65 + "@example.com",
        "b@" + "c" * 60 + "." + "d" * 60 + "." + "e" * 60 + "." + "f" * 60 + ".com",
    ]
    for raw in samples:
        try:
            expected: str | None = validate_email(raw.strip(), check_deliverability=False).normalized.lower()
        except EmailNotValidError:
            expected = None
        try:
            got: str | None = normalise_email(raw)
        except InvalidEmail:
            got = None
        assert got == expected, raw


# --- our own format -------------------------------------------------------------------------------


def test_own_format_imports_fields_tags_attributes_and_consent(engine, tmp_path):
    path = write(
        tmp_path,
        OWN_HEADER + ",State,Referred By\n"
        "Ana.Costa@Example.com,Ana,Costa,america/new_york,en_us,Ketamine;depression| PTSD ,,2024-03-01,v2,OR,\n"
        'ben@example.org,"Ben, Jr.",Baker,,,,clinic front desk,2024-05-06T07:08:09+02:00,,WA,Dr. Lee\n',
    )
    report = import_subscribers(engine, path, progress=False)
    assert (report.created, report.updated, report.duplicates_merged, report.rejected, report.total_rows) == (
        2,
        0,
        0,
        [],
        2,
    )
    assert report.format == "newsletter"
    rows = subscribers(engine)
    ana, ben = rows["ana.costa@example.com"], rows["ben@example.org"]
    assert (ana.first_name, ana.last_name, ana.timezone, ana.locale) == ("Ana", "Costa", "America/New_York", "en-US")
    assert ana.attributes == {"state": "OR"}
    assert ana.status == "active"
    assert ana.consent_source == "csv import"
    assert ana.consent_at == datetime(2024, 3, 1, tzinfo=timezone.utc)
    assert ana.consent_text_version == "v2"
    assert ben.first_name == "Ben, Jr."
    assert ben.attributes == {"state": "WA", "referred_by": "Dr. Lee"}
    assert ben.consent_source == "clinic front desk"
    assert ben.consent_at == datetime(2024, 5, 6, 5, 8, 9, tzinfo=timezone.utc)
    assert tags_of(engine) == {"ana.costa@example.com": {"ketamine", "depression", "ptsd"}}


def test_consent_defaults_to_source_argument_and_now(engine, tmp_path):
    path = write(tmp_path, "Email\nnew@example.com\n")
    before = datetime.now(timezone.utc)
    import_subscribers(engine, path, source="webinar", consent_text_version="2024-01", progress=False)
    row = subscribers(engine)["new@example.com"]
    assert row.consent_source == "webinar" and row.consent_text_version == "2024-01"
    assert before <= row.consent_at <= datetime.now(timezone.utc)
    assert row.attributes == {} and row.first_name is None


def test_extra_tags_are_added_to_every_row(engine, tmp_path):
    path = write(tmp_path, "email,tags\na@example.com,anxiety\nb@example.com,\n")
    report = import_subscribers(engine, path, tags=["Webinar 2024", " webinar   2024 ", ""], progress=False)
    assert report.created == 2
    assert tags_of(engine) == {"a@example.com": {"anxiety", "webinar 2024"}, "b@example.com": {"webinar 2024"}}


def test_extra_tag_too_long_is_a_user_error(engine, tmp_path):
    path = write(tmp_path, "email\na@example.com\n")
    with pytest.raises(UserError, match="--tag"):
        import_subscribers(engine, path, tags=["x" * 101], progress=False)


# --- Mailchimp ---------------------------------------------------------------------------------------


MAILCHIMP = (
    '"Email Address","First Name","Last Name","Address","Phone Number",MEMBER_RATING,OPTIN_TIME,OPTIN_IP,'
    "CONFIRM_TIME,CONFIRM_IP,LATITUDE,LONGITUDE,GMTOFF,DSTOFF,TIMEZONE,CC,REGION,LAST_CHANGED,LEID,EUID,NOTES,TAGS\n"
    '"Maria.Garcia@Example.COM","Maria","García, MD","12 Elm St  Portland OR 97201 US","",4,"2023-04-02 10:11:12",'
    '203.0.113.5,"2023-04-02 10:15:00",203.0.113.5,45.5,-122.6,-8,-7,America/Los_Angeles,US,OR,'
    '"2024-01-01 00:00:00",123456,abcdef,"asked about dosing for her son","""ketamine"",""depression"""\n'
    'tom@example.net,Tom,,,,2,"2022-12-01 09:00:00",,,,,,,,Europe/London,GB,ENG,,2,x,,"anxiety, Family"\n'
)


def test_mailchimp_export_with_bom_quoted_commas_and_tags(engine, tmp_path):
    path = write(tmp_path, MAILCHIMP, "members_export.csv", bom=True)
    report = import_subscribers(engine, path, source="mailchimp import", progress=False)
    assert report.format == "mailchimp"
    assert (report.created, report.rejected) == (2, [])
    rows = subscribers(engine)
    maria = rows["maria.garcia@example.com"]
    assert (maria.first_name, maria.last_name, maria.timezone) == ("Maria", "García, MD", "America/Los_Angeles")
    assert maria.consent_at == datetime(2023, 4, 2, 10, 15, tzinfo=timezone.utc)  # CONFIRM_TIME beats OPTIN_TIME
    assert maria.consent_source == "mailchimp import"
    # internal ids, IPs, coordinates and free-text notes are not kept
    assert maria.attributes == {
        "address": "12 Elm St  Portland OR 97201 US",
        "member_rating": "4",
        "country": "US",
        "region": "OR",
    }
    tom = rows["tom@example.net"]
    assert tom.consent_at == datetime(2022, 12, 1, 9, tzinfo=timezone.utc)  # only OPTIN_TIME
    assert tom.attributes == {"member_rating": "2", "country": "GB", "region": "ENG"}
    assert tags_of(engine) == {
        "maria.garcia@example.com": {"ketamine", "depression"},
        "tom@example.net": {"anxiety", "family"},
    }


def test_header_matching_ignores_case_and_spaces(engine, tmp_path):
    path = write(tmp_path, ' EMAIL ADDRESS , first name ,Tags\nx@example.com,Xi,"""mindfulness"""\n')
    report = import_subscribers(engine, path, progress=False)
    assert report.format == "mailchimp" and report.created == 1
    assert subscribers(engine)["x@example.com"].first_name == "Xi"
    assert tags_of(engine) == {"x@example.com": {"mindfulness"}}


def test_mailchimp_unsubscribed_export_is_stored_as_opt_out(engine, tmp_path):
    path = write(
        tmp_path,
        "Email Address,First Name,UNSUB_TIME,UNSUB_REASON,CLEAN_TIME\n"
        "gone@example.com,Gone,2024-02-02 02:02:02,too many emails,\n"
        "bounce@example.com,Bo,,,2024-03-03 03:03:03\n",
    )
    import_subscribers(engine, path, progress=False)
    rows = subscribers(engine)
    assert rows["gone@example.com"].status == "unsubscribed"
    assert rows["bounce@example.com"].status == "bounced"
    assert rows["gone@example.com"].attributes == {}  # UNSUB_REASON is Mailchimp bookkeeping
    with session_scope(engine) as session:
        suppressed = dict(session.execute(select(models.Suppression.email, models.Suppression.reason)).all())
    assert suppressed == {"gone@example.com": "unsubscribed", "bounce@example.com": "bounced"}


# --- rejected rows ------------------------------------------------------------------------------------


def test_rejected_rows_are_reported_with_their_line_while_valid_rows_go_in(engine, tmp_path):
    lines = [
        OWN_HEADER,  # 1
        "ok1@example.com,One,,,,,,,",  # 2
        '"bad@@example.com",Two,,,,,,,',  # 3
        ",Three,,,,,,,",  # 4
        "",  # 5 (blank: skipped)
        'ok2@example.com,"Multi',  # 6
        'line",,,,,,,',  # 7
        "tz@example.com,,,Mars/Olympus_Mons,,,,,",  # 8
        "date@example.com,,,,,,,31/12/2023,",  # 9
        "future@example.com,,,,,,,2999-01-01,",  # 10
        "wide@example.com,,,,,,,,,extra",  # 11
        "loc@example.com,,,,english please,,,,",  # 12
        "long@example.com," + "x" * 201 + ",,,,,,,",  # 13
        "ok3@example.com,Three,,Asia/Tokyo,,,,,",  # 14
    ]
    path = write(tmp_path, "\n".join(lines) + "\n")
    report = import_subscribers(engine, path, progress=False)
    assert report.total_rows == 11
    assert report.created == 3
    got = [(r.line, r.email) for r in report.rejected]
    assert got == [
        (3, "bad@@example.com"),
        (4, None),
        (8, "tz@example.com"),
        (9, "date@example.com"),
        (10, "future@example.com"),
        (11, "wide@example.com"),
        (12, "loc@example.com"),
        (13, "long@example.com"),
    ]
    reasons = {r.line: r.reason for r in report.rejected}
    assert "invalid email" in reasons[3]
    assert reasons[4] == "missing email address"
    assert "time zone 'Mars/Olympus_Mons'" in reasons[8]
    assert "consent date '31/12/2023'" in reasons[9] and "ISO 8601" in reasons[9]
    assert "future" in reasons[10]
    assert "too many columns" in reasons[11]
    assert "locale" in reasons[12]
    assert "first_name is longer than 200" in reasons[13]
    assert set(subscribers(engine)) == {"ok1@example.com", "ok2@example.com", "ok3@example.com"}
    # A quoted value may span lines (the next row's line number stays right); a name is one line.
    assert subscribers(engine)["ok2@example.com"].first_name == "Multi line"
    json.dumps(report.to_dict())  # --json must serialise


@pytest.mark.parametrize(
    ("bad_row", "reason"),
    [
        (b"bad@example.com,Jos\xe9", "UTF-8"),
        # PostgreSQL's text cannot hold a NUL, and SQLite would keep garbage: rejected on both stores.
        (b"bad@example.com,Jo\x00se", "NUL"),
    ],
)
def test_a_row_that_is_not_clean_text_is_rejected_alone(engine, tmp_path, bad_row, reason):
    # A UTF-8 file (its accents are valid UTF-8) with one damaged row: that row is rejected, the
    # file is not reinterpreted (a file with no UTF-8 at all is read as Windows-1252: see below).
    path = tmp_path / "mixed.csv"
    path.write_bytes("email,first_name\nok@example.com,Zoë\n".encode() + bad_row + b"\nok2@example.com,Ana\n")
    report = import_subscribers(engine, path, progress=False)
    assert report.created == 2
    assert [(r.line, r.email) for r in report.rejected] == [(3, "bad@example.com")]
    assert reason in report.rejected[0].reason
    assert set(subscribers(engine)) == {"ok@example.com", "ok2@example.com"}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"name,phone\nAna,555\n", "no email column"),
        (b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00\xb5U\x8a\xff\xfe\xc1", "not a UTF-8 CSV"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "CSV"),
    ],
)
def test_not_a_csv_is_a_user_error_naming_the_file_and_line_1(engine, tmp_path, content, message):
    path = tmp_path / "upload.csv"
    path.write_bytes(content)
    with pytest.raises(UserError) as caught:
        import_subscribers(engine, path, progress=False)
    assert message in caught.value.message
    assert caught.value.where.endswith("upload.csv: line 1")


def test_missing_file_is_a_user_error(engine, tmp_path):
    with pytest.raises(UserError, match="no such file") as caught:
        import_subscribers(engine, tmp_path / "nope.csv", progress=False)
    assert "nope.csv" in str(caught.value)


# --- duplicates, updates, suppression ---------------------------------------------------------------


def test_duplicates_in_the_file_are_merged(engine, tmp_path):
    path = write(
        tmp_path,
        "email,first_name,last_name,timezone,tags,city\n"
        "dup@example.com,Dana,Old,Europe/Paris,anxiety,Paris\n"
        "other@example.com,O,,,,\n"
        "DUP@example.com,,New,,family|anxiety,\n"
        " dup@EXAMPLE.com ,Danielle,,,ptsd,Lyon\n",
    )
    report = import_subscribers(engine, path, progress=False)
    assert (report.total_rows, report.created, report.duplicates_merged) == (4, 2, 2)
    dup = subscribers(engine)["dup@example.com"]
    assert (dup.first_name, dup.last_name, dup.timezone) == ("Danielle", "New", "Europe/Paris")
    assert dup.attributes == {"city": "Lyon"}
    assert tags_of(engine)["dup@example.com"] == {"anxiety", "family", "ptsd"}


def test_duplicates_across_chunks_are_counted_and_merged(engine, tmp_path, monkeypatch):
    monkeypatch.setattr(importer_module, "CHUNK_ROWS", 2)
    monkeypatch.setattr(importer_module, "PG_CHUNK_ROWS", 2)
    path = write(
        tmp_path,
        "email,first_name,tags\n"
        "a@example.com,A,one\nb@example.com,B,\nc@example.com,C,\n"
        "A@example.com,Alpha,two\nd@example.com,D,\n",
    )
    report = import_subscribers(engine, path, progress=False)
    assert (report.created, report.updated, report.duplicates_merged) == (4, 0, 1)
    assert subscribers(engine)["a@example.com"].first_name == "Alpha"
    assert tags_of(engine)["a@example.com"] == {"one", "two"}


def test_existing_subscribers_are_updated_not_reactivated(engine, tmp_path):
    with session_scope(engine) as session:
        for email, status in [
            ("act@example.com", "active"),
            ("uns@example.com", "unsubscribed"),
            ("bnc@example.com", "bounced"),
            ("cmp@example.com", "complained"),
        ]:
            session.add(
                models.Subscriber(
                    email=email,
                    first_name="Old",
                    last_name="Name",
                    status=status,
                    timezone="Europe/Berlin",
                    attributes={"plan": "basic", "city": "Bonn"},
                    consent_source="form",
                    consent_at=datetime(2020, 1, 1, tzinfo=timezone.utc),
                )
            )
        session.flush()
        first = session.scalar(select(models.Subscriber.id).where(models.Subscriber.email == "act@example.com"))
        session.add(models.SubscriberTag(subscriber_id=first, tag="old"))
    path = write(
        tmp_path,
        "email,first_name,last_name,timezone,tags,consent_at,plan\n"
        "act@example.com,New,,,fresh,2024-01-01,plus\n"
        "uns@example.com,New,,,,,\nbnc@example.com,,,,,,\ncmp@example.com,,,,,,\n",
    )
    report = import_subscribers(engine, path, progress=False)
    assert (report.created, report.updated) == (0, 4)
    rows = subscribers(engine)
    act = rows["act@example.com"]
    assert (act.first_name, act.last_name, act.timezone) == ("New", "Name", "Europe/Berlin")
    assert act.attributes == {"plan": "plus", "city": "Bonn"}
    assert act.consent_source == "form" and act.consent_at == datetime(2020, 1, 1, tzinfo=timezone.utc)
    assert tags_of(engine)["act@example.com"] == {"old", "fresh"}
    assert {email: row.status for email, row in rows.items()} == {
        "act@example.com": "active",
        "uns@example.com": "unsubscribed",
        "bnc@example.com": "bounced",
        "cmp@example.com": "complained",
    }
    assert rows["uns@example.com"].first_name == "New"


def test_reimporting_is_idempotent(engine, tmp_path):
    path = REPO / "audiences" / "demo.csv"
    first = import_subscribers(engine, path, progress=False)
    tags_before = tags_of(engine)
    second = import_subscribers(engine, path, progress=False)
    assert first.created == 300 and first.duplicates_merged == 1 and first.rejected == []
    assert (second.created, second.updated, second.duplicates_merged) == (0, 300, 1)
    assert tags_of(engine) == tags_before
    assert len(subscribers(engine)) == 300


def test_suppression_wins(engine, tmp_path):
    with session_scope(engine) as session:
        for email, reason in [
            ("unsub@example.com", "unsubscribed"),
            ("bounce@example.com", "bounced"),
            ("spam@example.com", "complained"),
            ("bad@example.com", "invalid"),
            ("staff@example.com", "manual"),
            ("known@example.com", "complained"),
            ("erased@example.com", "erased"),
        ]:
            session.add(models.Suppression(email=email, reason=reason, source="test"))
        session.add(models.Subscriber(email="known@example.com", status="active", attributes={}))
        session.add(models.Subscriber(email="gone@example.com", status="erased", attributes={}))
    path = write(
        tmp_path,
        "email,first_name,tags\n"
        "UNSUB@example.com,U,x\nbounce@example.com,B,\nspam@example.com,S,\nbad@example.com,,\n"
        "staff@example.com,,\nknown@example.com,K,\nerased@example.com,E,x\ngone@example.com,G,x\n"
        "fine@example.com,F,\n",
    )
    report = import_subscribers(engine, path, progress=False)
    rows = subscribers(engine)
    assert {email: row.status for email, row in rows.items()} == {
        "unsub@example.com": "unsubscribed",
        "bounce@example.com": "bounced",
        "spam@example.com": "complained",
        "bad@example.com": "bounced",
        "staff@example.com": "unsubscribed",
        "known@example.com": "complained",
        "gone@example.com": "erased",
        "fine@example.com": "active",
    }
    assert rows["unsub@example.com"].status_changed_at is not None
    # an erased person is never stored again, nor their erased row written to
    assert "erased@example.com" not in rows
    assert rows["gone@example.com"].first_name is None
    assert "gone@example.com" not in tags_of(engine) and "erased@example.com" not in tags_of(engine)
    assert [(r.line, r.email) for r in report.rejected] == [(8, "erased@example.com"), (9, "gone@example.com")]
    assert "erased" in report.rejected[0].reason
    assert (report.created, report.updated) == (6, 1)


def test_tags_with_quotes_backslashes_braces_and_commas_are_stored_as_written(engine, tmp_path):
    """On PostgreSQL the tags travel as array literals inside COPY text: every character must survive."""
    path = write(tmp_path, "email,tags\na@example.com,back\\slash;{brace};x}y;a b\nb@example.com,\n")
    import_subscribers(engine, path, tags=['Extra, "Quoted"\\', "{}", "NULL"], progress=False)
    extra = {'extra, "quoted"\\', "{}", "null"}
    assert tags_of(engine) == {
        "a@example.com": {"back\\slash", "{brace}", "x}y", "a b"} | extra,
        "b@example.com": extra,
    }


def test_an_address_stored_meanwhile_by_someone_else_is_updated_not_a_failure(engine, tmp_path, monkeypatch):
    """Between a chunk's lookup and its insert a signup stores one of its new addresses: the chunk
    still goes in whole (PostgreSQL inserts new addresses without ON CONFLICT, and on the unique
    violation writes the chunk again through ON CONFLICT), counted as the lookup saw it."""
    store_class = type(store_for(engine))
    original = store_class.lookup
    raced: list[str] = []

    def lookup(self, conn, emails):  # type: ignore[no-untyped-def]
        found = original(self, conn, emails)
        if "late@example.com" in emails and not raced:
            raced.append("late@example.com")
            with session_scope(engine) as session:  # another connection, committed at once
                signup = models.Subscriber(
                    email="late@example.com", status="active", first_name="Signup", attributes={"from": "form"}
                )
                session.add(signup)
                session.flush()
                session.add(models.SubscriberTag(subscriber_id=signup.id, tag="signup"))
        return found

    monkeypatch.setattr(store_class, "lookup", lookup)
    path = write(
        tmp_path, "email,first_name,city,tags\nearly@example.com,E,Lyon,x\nlate@example.com,Late,Oslo,x;signup\n"
    )
    report = import_subscribers(engine, path, progress=False)
    assert raced
    assert (report.created, report.updated, report.duplicates_merged, report.rejected) == (2, 0, 0, [])
    rows = subscribers(engine)
    assert set(rows) == {"early@example.com", "late@example.com"}
    assert rows["late@example.com"].first_name == "Late"
    assert rows["late@example.com"].attributes == {"from": "form", "city": "Oslo"}
    assert tags_of(engine) == {"early@example.com": {"x"}, "late@example.com": {"x", "signup"}}


# --- streaming and progress ----------------------------------------------------------------------


def _big_csv(path: Path, rows: int) -> Path:
    zones = ["America/New_York", "Europe/London", "Asia/Tokyo", "Australia/Sydney", ""]
    with path.open("w", encoding="utf-8") as handle:
        handle.write(OWN_HEADER + ",state\n")
        for n in range(rows):
            handle.write(
                f"reader{n}@mail{n % 17}.example.com,First{n},Last{n},{zones[n % 5]},en-US,"
                f"ketamine;anxiety{n % 3},,2024-01-{1 + n % 28:02d},v1,S{n % 50}\n"
            )
    return path


def test_memory_stays_flat_on_a_large_file(engine, tmp_path):
    """50,000 rows held at once would need well over 50 MB here; streaming in chunks stays far below."""
    path = _big_csv(tmp_path / "big.csv", 50_000)
    tracemalloc.start()
    try:
        report = import_subscribers(engine, path, progress=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.created == 50_000 and report.rejected == []
    assert peak < 25 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"
    with session_scope(engine) as session:
        assert session.scalar(select(models.SubscriberTag.tag).where(models.SubscriberTag.tag == "anxiety2").limit(1))


def test_progress_bar_goes_to_stderr(engine, tmp_path, capsys):
    path = write(tmp_path, "email\na@example.com\n")
    import_subscribers(engine, path, progress=True)
    captured = capsys.readouterr()
    assert "people.csv" in captured.err and captured.out == ""


def test_report_to_dict():
    report = ImportReport(
        path="x.csv",
        format="newsletter",
        total_rows=3,
        created=1,
        updated=1,
        rejected=[Rejection(3, None, "missing email address")],
        rejected_count=1,
        rejects_file="x.rejected.csv",
    )
    assert report.to_dict() == {
        "path": "x.csv",
        "format": "newsletter",
        "total_rows": 3,
        "created": 1,
        "updated": 1,
        "duplicates_merged": 0,
        "rejected": [{"line": 3, "email": None, "reason": "missing email address"}],
        "imported": 2,
        "rejected_count": 1,
        "rejects_file": "x.rejected.csv",
        "encoding": "UTF-8",
        "notices": [],
    }


def test_json_attributes_merge_on_both_stores(engine, tmp_path):
    """The upsert merges JSON objects in SQL (json_patch / jsonb ||): check a key with odd text survives."""
    with session_scope(engine) as session:
        session.execute(
            insert(models.Subscriber),
            [{"email": "j@example.com", "attributes": {"a": "1", "q": 'x"y'}, "status": "active"}],
        )
    path = write(tmp_path, 'email,b,q\nj@example.com,"2, two","ünï ""quoted"""\n')
    import_subscribers(engine, path, progress=False)
    assert subscribers(engine)["j@example.com"].attributes == {"a": "1", "b": "2, two", "q": 'ünï "quoted"'}
