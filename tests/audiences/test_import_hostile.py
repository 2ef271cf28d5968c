"""Subscriber files as people really have them, and as an attacker writes them (issue 14).

Spreadsheet encodings (Windows-1252, Latin-1, UTF-16 "Unicode Text"), exit codes that say
whether every row went in, unclosed quotes that used to swallow the rows below, memory that
must not grow with rejected rows, and names with line breaks that used to stop a send.
Store tests run on SQLite and PostgreSQL (the ``engine`` fixture).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert, select
from starlette.testclient import TestClient

from cli_runs import run_newsletter
from newsletter.audiences import clean_name, import_subscribers, rejects_path_for
from newsletter.audiences.rejects import KEPT
from newsletter.campaigns import create_campaign, import_article, send_campaign
from newsletter.campaigns.preview import preview
from newsletter.db import models, session_scope
from newsletter.delivery.dispatch import RetryPolicy
from newsletter.errors import UserError
from newsletter.preflight import run_preflight
from newsletter.tracking import TokenSigner
from newsletter.web import create_app
from repo_paths import REPO_DIR

REPO = REPO_DIR
NAMES = "email,first_name,last_name\r\njose@example.com,José,Núñez\r\nsoren@example.com,Søren,Åberg\r\n"


def names_of(engine: Engine) -> dict[str, tuple[str | None, str | None]]:
    with session_scope(engine) as session:
        rows = session.execute(
            select(models.Subscriber.email, models.Subscriber.first_name, models.Subscriber.last_name)
        ).all()
    return {email: (first, last) for email, first, last in rows}


# --- encodings ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("codec", "label"), [("cp1252", "Windows-1252"), ("latin-1", "Windows-1252")])
def test_a_spreadsheet_csv_in_a_western_encoding_is_read_with_a_notice(engine, tmp_path, codec, label):
    path = tmp_path / "excel.csv"
    path.write_bytes(NAMES.encode(codec))
    report = import_subscribers(engine, path, progress=False)
    assert (report.created, report.rejected_count) == (2, 0)
    assert names_of(engine) == {"jose@example.com": ("José", "Núñez"), "soren@example.com": ("Søren", "Åberg")}
    assert report.encoding == label
    [notice] = report.notices
    assert notice.startswith(f"{path}: ") and notice.endswith(
        "excel.csv: not UTF-8: read as Windows-1252 (a sample: 'José'). If that looks wrong, "
        "pass --encoding (for example --encoding cp1251) or save the file as 'CSV UTF-8'."
    )
    assert "--encoding" in notice


def test_windows_1252_punctuation_is_read_as_windows_1252(engine, tmp_path):
    path = tmp_path / "quotes.csv"
    path.write_bytes("email,first_name,note\nann@example.com,Ann,“Smart” – 5€\n".encode("cp1252"))
    import_subscribers(engine, path, progress=False)
    with session_scope(engine) as session:
        assert session.scalar(select(models.Subscriber.attributes)) == {"note": "“Smart” – 5€"}


@pytest.mark.parametrize(
    ("separator", "codec"),
    [
        ("\t", "utf-16"),  # Excel's "Unicode Text": UTF-16 with a BOM, tab separated
        (",", "utf-16"),
        (",", "utf-16-le"),  # no BOM: told from the NUL bytes
        (";", "utf-8"),  # Excel's "CSV" where the decimal mark is a comma
        ("\t", "utf-8"),
    ],
)
def test_utf16_and_other_separators_import_every_row(engine, tmp_path, separator, codec):
    path = tmp_path / "unicode.txt"
    path.write_bytes(NAMES.replace(",", separator).encode(codec))
    report = import_subscribers(engine, path, progress=False)
    assert (report.total_rows, report.created, report.rejected_count) == (2, 2, 0)
    assert names_of(engine)["soren@example.com"] == ("Søren", "Åberg")


def test_the_encoding_option_overrides_the_guess(engine, tmp_path):
    path = tmp_path / "cyrillic.csv"
    path.write_bytes("email,first_name\nivan@example.com,Иван\n".encode("cp1251"))
    report = import_subscribers(engine, path, progress=False, encoding="cp1251")
    assert names_of(engine)["ivan@example.com"][0] == "Иван" and report.notices == []
    with pytest.raises(UserError, match="unknown encoding 'klingon'") as caught:
        import_subscribers(engine, path, progress=False, encoding="klingon")
    assert caught.value.where == "--encoding"


def test_the_encoding_is_told_from_a_sample_and_the_rest_is_streamed(engine, tmp_path):
    """Only the first 64 KiB decide: a UTF-8 file with one Latin-1 byte far down loses that row only."""
    path = tmp_path / "long.csv"
    rows = "".join(f"r{n}@example.com,Zoë\n" for n in range(5000))  # about 100 KB of UTF-8
    path.write_bytes(b"email,first_name\n" + rows.encode() + b"late@example.com,Jos\xe9\n")
    report = import_subscribers(engine, path, progress=False)
    assert (report.created, report.encoding, report.notices) == (5000, "UTF-8", [])
    assert [(r.line, r.email) for r in report.rejected] == [(5002, "late@example.com")]
    assert "not UTF-8 text" in report.rejected[0].reason


# --- exit codes, the rejects file ------------------------------------------------------------------


def _cli(args: list[str], cwd: Path, db_url: str) -> subprocess.CompletedProcess:
    return run_newsletter(args, cwd, {"NEWSLETTER_DATABASE_URL": db_url, "NEWSLETTER_SECRET_KEY": "cli-test-key"})


def test_exit_code_says_whether_every_row_went_in(tmp_path, db_url):
    assert _cli(["init"], tmp_path, db_url).returncode == 0
    clean = tmp_path / "clean.csv"
    clean.write_text("email\na@example.com\n")
    some = tmp_path / "some.csv"
    some.write_text("email\nb@example.com\nnot-an-address\n")
    none = tmp_path / "none.csv"
    none.write_text("email\nnope\nnada\n")
    excel = tmp_path / "excel.csv"
    excel.write_bytes(NAMES.encode("cp1252"))

    assert _cli(["subscribers", "import", "clean.csv"], tmp_path, db_url).returncode == 0
    assert not (tmp_path / "clean.rejected.csv").exists()

    partly = _cli(["subscribers", "import", "some.csv", "--json"], tmp_path, db_url)
    assert partly.returncode == 3, partly.stderr
    data = json.loads(partly.stdout)
    assert (data["rejected_count"], data["rejects_file"]) == (1, "some.rejected.csv")
    rejects = tmp_path / "some.rejected.csv"
    assert rejects.read_text().splitlines()[1].startswith("3,not-an-address,invalid email address")
    assert stat.S_IMODE(rejects.stat().st_mode) == 0o600  # it holds addresses

    failed = _cli(["subscribers", "import", "none.csv"], tmp_path, db_url)
    assert failed.returncode == 1
    assert failed.stderr.strip().splitlines()[-1] == "error: none.csv: every row was rejected (none.rejected.csv)"
    assert "Traceback" not in failed.stderr

    converted = _cli(["subscribers", "import", "excel.csv", "--json"], tmp_path, db_url)
    assert converted.returncode == 0, converted.stderr
    assert "read as Windows-1252" in json.loads(converted.stdout)["notices"][0]
    told = _cli(["subscribers", "import", "excel.csv"], tmp_path, db_url)
    assert told.returncode == 0 and "note: excel.csv: not UTF-8: read as Windows-1252" in told.stderr

    elsewhere = _cli(["subscribers", "import", "some.csv", "--rejects", "out/bad.csv"], tmp_path, db_url)
    assert elsewhere.returncode == 1 and "out/bad.csv" in elsewhere.stderr and "Traceback" not in elsewhere.stderr


def test_rejects_file_is_whole_or_absent_and_never_the_input(engine, tmp_path):
    folder = tmp_path / "upload"
    folder.mkdir()
    path = folder / "people.csv"
    path.write_text("email\nok@example.com\nbad\n")
    rejects = rejects_path_for(path)
    assert rejects == folder / "people.rejected.csv"
    report = import_subscribers(engine, path, progress=False, rejects=rejects)
    assert report.rejects_file is not None and rejects.read_text().count("\n") == 2
    path.write_text("email\nok@example.com\n")  # fixed: the old rejects file would mislead
    import_subscribers(engine, path, progress=False, rejects=rejects)
    assert not rejects.exists()
    assert [p.name for p in folder.iterdir()] == ["people.csv"]  # no temporary file left behind
    with pytest.raises(UserError, match="over the file being imported"):
        import_subscribers(engine, path, progress=False, rejects=path)


# --- unclosed quotes ----------------------------------------------------------------------------


def test_an_unclosed_quote_no_longer_swallows_the_rows_below(engine, tmp_path):
    path = tmp_path / "quote.csv"
    path.write_text(
        "email,first_name\n"
        'ann@example.com,"Ann\n'  # 2: the quote is never closed
        "bob@example.com,Bob\n"  # 3: used to become part of Ann's first name
        'cy@example.com,"Cy"\n'  # 4: its first quote used to close Ann's
        "dee@example.com,Dee\n"
    )  # 5
    report = import_subscribers(engine, path, progress=False)
    assert report.total_rows == 4
    assert [(r.line, r.email) for r in report.rejected] == [(2, "ann@example.com")]
    assert "unclosed quote" in report.rejected[0].reason and "line 4" in report.rejected[0].reason
    assert names_of(engine) == {
        "bob@example.com": ("Bob", None),
        "cy@example.com": ("Cy", None),
        "dee@example.com": ("Dee", None),
    }


def test_an_unclosed_quote_after_a_value_that_spans_lines_names_the_line_it_opened_on(engine, tmp_path):
    path = tmp_path / "quote.csv"
    path.write_text(
        "email,note,first_name\n"
        'ann@example.com,"two\n'  # 2: a note over two lines, on purpose
        'lines","Ann\n'  # 3: the quote that is never closed
        "bob@example.com,,Bob\n"
    )  # 4
    report = import_subscribers(engine, path, progress=False)
    assert (report.total_rows, report.created) == (2, 1)
    assert [(r.line, r.email) for r in report.rejected] == [(2, "ann@example.com")]
    assert 'opens with " on line 3 runs on to line 4' in report.rejected[0].reason
    assert set(names_of(engine)) == {"bob@example.com"}


def test_an_unclosed_quote_running_to_the_end_of_the_file_loses_no_row(engine, tmp_path):
    path = tmp_path / "quote.csv"
    path.write_text(
        'email,first_name,city\nann@example.com,Ann,"Portland\nbob@example.com,Bob,Salem\n\ncy@example.com,Cy,Bend\n'
    )
    report = import_subscribers(engine, path, progress=False)
    assert (report.total_rows, report.created) == (3, 2)
    assert [r.line for r in report.rejected] == [2]
    assert set(names_of(engine)) == {"bob@example.com", "cy@example.com"}


def test_an_unclosed_quote_longer_than_csvs_field_limit_loses_no_row(engine, tmp_path):
    path = tmp_path / "quote.csv"
    rows = "".join(f"r{n}@example.com,Reader{n}\n" for n in range(8000))  # about 200 KB: past csv's 128 KiB
    path.write_text('email,first_name\nann@example.com,"Ann\n' + rows)
    report = import_subscribers(engine, path, progress=False)
    assert (report.total_rows, report.created, report.rejected_count) == (8001, 8000, 1)
    assert report.rejected[0].line == 2


def test_a_value_that_spans_lines_on_purpose_is_one_row(engine, tmp_path):
    path = tmp_path / "notes.csv"
    path.write_text(
        "email,first_name,note\n"
        'ann@example.com,Ann,"Called twice,\nwrites from ann.b@example.com\nprefers mornings"\n'
        "bob@example.com,Bob,\n"
    )
    report = import_subscribers(engine, path, progress=False)
    assert (report.total_rows, report.created, report.rejected_count) == (2, 2, 0)
    with session_scope(engine) as session:
        note = session.scalar(select(models.Subscriber.attributes).where(models.Subscriber.email == "ann@example.com"))
    assert note == {"note": "Called twice,\nwrites from ann.b@example.com\nprefers mornings"}


def test_a_file_of_unclosed_quotes_is_read_in_linear_time(engine, tmp_path):
    """Every line opens a quote that the next line closes: each line is read at most twice."""
    path = tmp_path / "quotes.csv"
    lines = 20_000
    path.write_text("email,first_name\n" + "".join(f'r{n}@example.com,"Reader{n}\n' for n in range(lines)))
    started = time.monotonic()
    report = import_subscribers(engine, path, progress=False)
    assert time.monotonic() - started < 30  # about 1 s; generous for a loaded machine
    assert report.total_rows == lines and report.created + report.rejected_count == lines


# --- memory ---------------------------------------------------------------------------------------


_MEASURE = """
import json, resource, sys
from pathlib import Path
from newsletter.audiences import import_subscribers, rejects_path_for
from newsletter.db import make_engine, upgrade
engine = make_engine(sys.argv[1]); upgrade(engine)
path = Path(sys.argv[2])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
report = import_subscribers(engine, path, progress=False, rejects=rejects_path_for(path))
text = json.dumps(report.to_dict())  # what --json prints
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"growth_kb": after - before, "count": report.rejected_count, "kept": len(report.rejected),
                  "total": report.total_rows, "json_bytes": len(text)}))
"""


def test_memory_stays_flat_however_many_rows_are_rejected(tmp_path):
    """200,000 rejected rows: the old importer held every one (and its JSON) in memory, 180 MB
    more at its peak; now they stream to the rejects file and the first 100 are kept (1 MB)."""
    rows = 200_000
    path = tmp_path / "bad.csv"
    with path.open("w") as handle:
        handle.write("email,first_name,last_name,timezone\n")
        for n in range(rows):
            handle.write(
                f"not-an-address-{n}-of-a-reader-who-typed-it-badly.example.com,First{n},Last{n},America/New_York\n"
            )
    result = subprocess.run(
        [sys.executable, "-c", _MEASURE, f"sqlite:///{tmp_path / 'n.db'}", str(path)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 0, result.stderr
    measured = json.loads(result.stdout)
    assert (measured["count"], measured["kept"], measured["total"]) == (rows, KEPT, rows)
    assert measured["growth_kb"] < 100 * 1024, measured
    rejects = tmp_path / "bad.rejected.csv"
    with rejects.open() as handle:
        assert sum(1 for _ in handle) == rows + 1
    assert stat.S_IMODE(rejects.stat().st_mode) == 0o600


# --- names ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("Ann\r\nBcc: x@evil.example", "Ann Bcc: x@evil.example"),
        ("  Mary\tJane  ", "Mary Jane"),
        ("Jo\x00e\x1b[31m", "Joe[31m"),
        ("\u202eevil\u200b", "evil"),  # right-to-left override and zero-width space are dropped
        ("Zoë\u200dx", "Zoë\u200dx"),  # a zero-width joiner is part of some names: kept
        ("Ann\u2028Lee\x85", "Ann Lee"),
        (" \r\n\t", None),
        (None, None),
    ],
)
def test_clean_name(raw, clean):
    assert clean_name(raw) == clean


def test_names_are_cleaned_at_import(engine, tmp_path):
    path = tmp_path / "names.csv"
    path.write_text(
        "email,first_name,last_name\n"
        'ann@example.com,"Ann\r\nBcc: x@evil.example","Lee\x07\t"\n'
        'bob@example.com,"\u202e\r\n",Ray\n',
        newline="",
    )
    report = import_subscribers(engine, path, progress=False)
    assert (report.created, report.rejected_count) == (2, 0)
    assert names_of(engine) == {"ann@example.com": ("Ann Bcc: x@evil.example", "Lee"), "bob@example.com": (None, "Ray")}


def _campaign(engine: Engine, settings, seed_article_path: Path) -> int:
    with session_scope(engine) as session:
        slug = import_article(session, seed_article_path).row.slug
        return create_campaign(session, settings, article_slug=slug, segment="all").id


def _hand_written_names(engine: Engine) -> None:
    """Subscribers written straight into the store, past the cleaner (as before this fix): the
    first two, the preflight's natural samples, have names no header can hold."""
    rows = [("crlf@example.com", "Ann\r\nBcc: x@evil.example"), ("esc@example.com", "Esc\x1b[2J")]
    rows += [(f"reader{n}@example.com", f"Reader{n}") for n in range(5)]
    with session_scope(engine) as session:
        session.execute(
            insert(models.Subscriber),
            [{"email": email, "first_name": first, "status": "active", "attributes": {}} for email, first in rows],
        )


def _failed(engine: Engine, campaign_id: int) -> dict[str, str]:
    with session_scope(engine) as session:
        rows = session.execute(
            select(models.Subscriber.email, models.Delivery.error)
            .join(models.Delivery, models.Delivery.subscriber_id == models.Subscriber.id)
            .where(models.Delivery.campaign_id == campaign_id, models.Delivery.status == "failed")
        ).all()
    return dict(rows)


def _assert_bad_names_failed_alone(engine: Engine, campaign_id: int, summary) -> None:  # type: ignore[no-untyped-def]
    assert (summary.sent, summary.failed, summary.ambiguous) == (5, 2, 0)
    failed = _failed(engine, campaign_id)
    assert set(failed) == {"crlf@example.com", "esc@example.com"}
    assert all("name has a line break or another control character" in reason for reason in failed.values())


def test_a_name_no_header_can_hold_fails_alone_in_the_outbox(engine, settings, seed_article_path):
    _hand_written_names(engine)
    campaign_id = _campaign(engine, settings, seed_article_path)
    with session_scope(engine) as session:
        assert preview(session, settings, campaign_id).sample_email == "reader0@example.com"
        run_preflight(session, settings, campaign_id)  # used to raise ValueError: delivery 0: ...
    summary = send_campaign(engine, settings, campaign_id)
    _assert_bad_names_failed_alone(engine, campaign_id, summary)
    assert len(list((Path(settings.outbox_dir) / f"campaign-{campaign_id}").glob("*.eml"))) == 5


def test_a_name_no_header_can_hold_fails_alone_through_sendgrid(engine, settings, seed_article_path, fake_sendgrid):
    sg = settings.with_overrides(
        sendgrid_api_key=fake_sendgrid.api_key, sendgrid_host=fake_sendgrid.url, sendgrid_timeout=30.0
    )
    _hand_written_names(engine)
    campaign_id = _campaign(engine, sg, seed_article_path)
    summary = send_campaign(engine, sg, campaign_id, retry=RetryPolicy(max_attempts=2, base_seconds=0.01))
    _assert_bad_names_failed_alone(engine, campaign_id, summary)
    assert set(fake_sendgrid.received) == {f"reader{n}@example.com" for n in range(5)}
    assert len(fake_sendgrid.requests) == 1  # one request for the rest of the batch


def test_the_preference_page_cleans_names_as_the_import_does(engine, settings, seed_article_path):
    with session_scope(engine) as session:
        session.execute(
            insert(models.Subscriber),
            [{"email": "ann@example.com", "first_name": "Ann", "status": "active", "attributes": {}}],
        )
    campaign_id = _campaign(engine, settings, seed_article_path)
    send_campaign(engine, settings, campaign_id)
    with session_scope(engine) as session:
        delivery_id = session.scalar(select(models.Delivery.id))
    token = TokenSigner(settings.signing_key()).sign(delivery_id)
    client = TestClient(create_app(settings, engine), headers={"origin": "https://news.example.test"})
    typed = "Ann\r\nBcc: x@evil.example\x00\u202e"
    answer = client.post(f"/p/{token}", data={"first_name": typed, "action": "save"})
    assert answer.status_code == 200 and "Your preferences are saved." in answer.text
    assert names_of(engine)["ann@example.com"][0] == clean_name(typed) == "Ann Bcc: x@evil.example"
